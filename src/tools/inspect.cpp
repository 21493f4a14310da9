#include "peft/inspect.hpp"

#include <algorithm>
#include <cmath>

#include "methods/registry.hpp"
#include "peft/error.hpp"
#include "peft/file_format.hpp"
#include "peft/module_match.hpp"
#include "peft/safetensors.hpp"
#include "peft/torch_file.hpp"

namespace peft {
namespace fs = std::filesystem;

namespace {

bool is_number(std::string_view part) {
  return !part.empty() && part.find_first_not_of("0123456789") == std::string_view::npos;
}

// Tensor names, dtypes and shapes: the safetensors header only, or the torch.save
// pickle (with CRC checks: a diagnostic read reports damaged records too). `reader` is
// what weights_reader_for chose for the file.
void read_tensor_list(AdapterSummary& summary, FileFormat reader) {
  summary.weights_format = reader == FileFormat::Safetensors ? "safetensors" : "bin";
  if (reader == FileFormat::Safetensors) {
    const SafetensorsFile file = SafetensorsFile::open(summary.weights_file);
    for (const auto& info : file.tensors()) {
      summary.tensors.push_back({info.name, info.dtype, info.shape});
    }
  } else {
    TorchReadOptions read;
    read.verify_crc = true;
    for (const auto& [name, tensor] : load_torch_file(summary.weights_file, read)) {
      summary.tensors.push_back({name, tensor.dtype(), tensor.shape()});
    }
  }
}

void count_tensors(AdapterSummary& summary) {
  std::error_code ec;
  summary.bytes_on_disk = fs::file_size(summary.weights_file, ec);
  for (const auto& tensor : summary.tensors) {
    summary.dtypes[std::string(dtype_name(tensor.dtype))]++;
    summary.parameters += shape_numel(tensor.shape);
  }
}

void read_weights(AdapterSummary& summary) {
  std::error_code ec;
  for (const char* name : {"adapter_model.safetensors", "adapter_model.bin"}) {
    if (fs::exists(summary.folder / name, ec)) {
      summary.weights_file = summary.folder / name;
      break;
    }
  }
  if (summary.weights_file.empty()) return;
  // The name until the content says otherwise (or cannot be read).
  summary.weights_format = summary.weights_file.extension() == ".bin" ? "bin" : "safetensors";
  try {
    read_tensor_list(summary, weights_reader_for(summary.weights_file));
  } catch (const Error& e) {
    summary.weights_error = e.what();
  }
  count_tensors(summary);
}

// Groups tensors by the tuner layer they belong to (the text before the method prefix).
void find_modules(AdapterSummary& summary) {
  if (!summary.config) return;
  const PeftConfig& config = *summary.config;
  const std::string_view prefix = methods::method(config.peft_type()).prefix;
  if (prefix.empty()) return;  // a type whose rules are unknown: list tensors only
  if (config.is_prompt_learning()) return;
  const bool lora_like =
      config.peft_type() == PeftType::LORA || config.peft_type() == PeftType::ADALORA;
  std::map<std::string, std::size_t> index;
  for (const auto& tensor : summary.tensors) {
    const auto at = tensor.name.rfind(prefix);
    if (at == std::string::npos || at == 0 || tensor.name[at - 1] != '.') {
      summary.other_keys.push_back(tensor.name);
      continue;
    }
    std::string module = tensor.name.substr(0, at - 1);
    if (module == "base_model") {
      // The tuner model's own tensors, shared by every layer (VeRA/RandLoRA projections,
      // the VB-LoRA vector bank): no module of the base model.
      summary.other_keys.push_back(tensor.name);
      continue;
    }
    if (module.starts_with("base_model.model.")) module.erase(0, 17);
    auto [it, inserted] = index.emplace(module, summary.modules.size());
    if (inserted) summary.modules.push_back({module, {}, {}, {}, {}, 0});
    ModuleSummary& entry = summary.modules[it->second];
    ++entry.tensors;
    const std::string_view leaf = std::string_view(tensor.name).substr(at);
    if (lora_like && !tensor.shape.empty() &&
        (leaf == "lora_A.weight" || leaf == "lora_embedding_A" || leaf == "lora_A")) {
      entry.weights_rank = static_cast<std::int64_t>(tensor.shape[0]);
    }
  }
  if (!lora_like) return;
  for (auto& entry : summary.modules) {
    try {
      // PEFT's LoraLayer.update_layer: r and alpha from the config (patterns applied).
      entry.rank = rank_for(config, entry.module);
      entry.alpha = alpha_for(config, entry.module);
      const auto r = static_cast<double>(*entry.rank);
      if (r > 0) entry.scaling = *entry.alpha / (config.use_rslora() ? std::sqrt(r) : r);
    } catch (const Error&) {
      // a broken pattern is reported by validate, not here
    }
  }
}

AdapterSummary summarize(const fs::path& folder, std::string name) {
  AdapterSummary summary;
  summary.name = std::move(name);
  summary.folder = folder;
  std::error_code ec;
  if (fs::exists(folder / "adapter_config.json", ec)) {
    try {
      summary.config = PeftConfig::load(folder);
    } catch (const Error& e) {
      summary.config_error = e.what();
    }
  } else {
    summary.config_error =
        (folder / "adapter_config.json").string() + ": not_found: no adapter_config.json";
  }
  read_weights(summary);
  find_modules(summary);
  return summary;
}

}  // namespace

std::string layer_pattern(std::string_view module) {
  std::string out;
  std::size_t start = 0;
  while (start <= module.size()) {
    const auto dot = module.find('.', start);
    const auto part =
        module.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start);
    if (!out.empty()) out += '.';
    out += is_number(part) ? std::string("*") : std::string(part);
    if (dot == std::string_view::npos) break;
    start = dot + 1;
  }
  return out;
}

AdapterSummary summarize_adapter(const PeftConfig& config, const StateDict& weights,
                                 std::string name) {
  AdapterSummary summary;
  summary.name = std::move(name);
  summary.config = config;
  summary.weights_format = "memory";
  for (const auto& [key, tensor] : weights) {
    summary.tensors.push_back({key, tensor.dtype(), tensor.shape()});
    summary.dtypes[std::string(dtype_name(tensor.dtype()))]++;
    summary.parameters += shape_numel(tensor.shape());
    summary.bytes_on_disk += tensor.nbytes();
  }
  find_modules(summary);
  return summary;
}

AdapterSummary inspect_weights_file(const fs::path& file) {
  AdapterSummary summary;
  summary.name = file.filename().string();
  summary.folder = file.parent_path();
  summary.weights_file = file;
  const FileFormat reader = weights_reader_for(file);  // throws for JSON, GGUF, missing
  try {
    read_tensor_list(summary, reader);
  } catch (const Error& e) {
    summary.weights_error = e.what();
  }
  count_tensors(summary);
  return summary;
}

std::vector<AdapterSummary> inspect_adapters(const fs::path& folder) {
  std::vector<AdapterSummary> out;
  std::error_code ec;
  if (!fs::is_directory(folder, ec)) {
    throw Error(ErrorCode::NotFound, folder.string(), "is not an adapter folder");
  }
  AdapterSummary root = summarize(folder, "default");
  const bool root_is_adapter = root.config || !root.weights_file.empty();
  std::vector<fs::path> subfolders;
  for (const auto& entry : fs::directory_iterator(folder, ec)) {
    if (entry.is_directory() && fs::exists(entry.path() / "adapter_config.json")) {
      subfolders.push_back(entry.path());
    }
  }
  std::sort(subfolders.begin(), subfolders.end());
  if (!root_is_adapter && subfolders.empty()) {
    const bool model_folder = fs::exists(folder / "config.json", ec) ||
                              fs::exists(folder / "model.safetensors", ec) ||
                              fs::exists(folder / "model.safetensors.index.json", ec) ||
                              fs::exists(folder / "pytorch_model.bin", ec);
    throw Error(ErrorCode::NotFound, folder.string(),
                std::string("holds no adapter: no adapter_config.json, adapter_model.safetensors "
                            "or adapter_model.bin, and no sub folder with an adapter_config.json") +
                    (model_folder ? " (it looks like a model checkpoint folder)" : ""));
  }
  if (root_is_adapter) out.push_back(std::move(root));
  for (const auto& sub : subfolders) out.push_back(summarize(sub, sub.filename().string()));
  return out;
}

namespace {

nlohmann::json to_json_unchecked(const AdapterSummary& s, bool with_tensors) {
  nlohmann::json j;
  j["name"] = s.name;
  j["folder"] = s.folder.string();
  if (s.config) {
    const PeftConfig& c = *s.config;
    j["peft_type"] = to_string(c.peft_type());
    const auto task = c.json().find("task_type");
    j["task_type"] = task != c.json().end() ? *task : nlohmann::json();
    // Raw values: a field of the wrong type is shown as it is, not thrown (validate reports it).
    for (const char* field : {"base_model_name_or_path", "peft_version"}) {
      const auto* value = c.find(field);
      j[field] = value != nullptr ? *value : nlohmann::json();
    }
    j["config"] = c.json();
  } else {
    j["config_error"] = s.config_error;
  }
  nlohmann::json w;
  w["file"] = s.weights_file.empty() ? nlohmann::json() : nlohmann::json(s.weights_file.string());
  w["format"] = s.weights_format.empty() ? nlohmann::json() : nlohmann::json(s.weights_format);
  w["bytes_on_disk"] = s.bytes_on_disk;
  w["num_tensors"] = s.tensors.size();
  w["parameters"] = s.parameters;
  w["dtypes"] = s.dtypes;
  if (!s.weights_error.empty()) w["error"] = s.weights_error;
  if (with_tensors) {
    w["tensors"] = nlohmann::json::array();
    for (const auto& t : s.tensors) {
      w["tensors"].push_back(
          {{"name", t.name}, {"dtype", dtype_name(t.dtype)}, {"shape", t.shape}});
    }
  }
  j["weights"] = std::move(w);
  j["modules"] = nlohmann::json::array();
  for (const auto& m : s.modules) {
    nlohmann::json entry{
        {"module", m.module}, {"pattern", layer_pattern(m.module)}, {"tensors", m.tensors}};
    entry["rank"] = m.rank ? nlohmann::json(*m.rank) : nlohmann::json();
    entry["weights_rank"] = m.weights_rank ? nlohmann::json(*m.weights_rank) : nlohmann::json();
    entry["alpha"] = m.alpha ? nlohmann::json(*m.alpha) : nlohmann::json();
    entry["scaling"] = m.scaling ? nlohmann::json(*m.scaling) : nlohmann::json();
    j["modules"].push_back(std::move(entry));
  }
  j["other_keys"] = s.other_keys;
  return j;
}

}  // namespace

nlohmann::json to_json(const AdapterSummary& s, bool with_tensors) {
  nlohmann::json j = to_json_unchecked(s, with_tensors);
  // Names from the files may hold bytes that are not UTF-8 (a lone surrogate kept from a
  // "\ud800" escape, a .bin key): dump() would throw on them, so they become U+FFFD.
  return nlohmann::json::parse(j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
}

}  // namespace peft
