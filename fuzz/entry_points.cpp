#include "entry_points.hpp"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <optional>
#include <string>
#include <unordered_set>
#include <vector>

#include "formats/gguf.hpp"
#include "formats/pickle.hpp"
#include "formats/zip.hpp"
#include "hub/hub_protocol.hpp"
#include "peft/adapter_io.hpp"
#include "peft/config.hpp"
#include "peft/error.hpp"
#include "peft/hub_download.hpp"
#include "peft/inspect.hpp"
#include "peft/safetensors.hpp"
#include "peft/torch_file.hpp"
#include "peft/validate.hpp"

namespace peft::fuzz {
namespace {
namespace fs = std::filesystem;

[[noreturn]] void finding(const std::string& what) {
  std::fprintf(stderr, "fuzz finding: %s\n", what.c_str());
  std::abort();
}

std::span<const std::byte> bytes_of(Input data) {
  return std::as_bytes(data);
}

// Reads every byte of every tensor, so that a view reaching outside its buffer is
// caught by AddressSanitizer; the sum keeps the loop from being optimised away.
unsigned touch(const StateDict& tensors) {
  unsigned sum = 0;
  for (const auto& [name, tensor] : tensors) {
    sum += static_cast<unsigned>(name.size());
    for (const std::byte b : tensor.bytes()) sum += std::to_integer<unsigned>(b);
  }
  return sum;
}

// Same names, dtypes, shapes and bytes; the order may differ (writers sort by name).
bool same_tensors(const StateDict& a, const StateDict& b) {
  if (a.size() != b.size()) return false;
  for (const auto& [name, tensor] : a) {
    if (!b.contains(name)) return false;
    const Tensor& other = b.at(name);
    if (tensor.dtype() != other.dtype() || tensor.shape() != other.shape()) return false;
    const auto x = tensor.bytes();
    const auto y = other.bytes();
    if (x.size() != y.size() || (!x.empty() && std::memcmp(x.data(), y.data(), x.size()) != 0)) {
      return false;
    }
  }
  return true;
}

// Calls `f`, accepting a peft::Error as its outcome.
template <typename F>
void tolerate(F&& f) {
  try {
    f();
  } catch (const Error&) {
  }
}

// Walks a pickle tree (a DAG, possibly cyclic through the memo) once per node.
std::size_t walk(const formats::PickleValue& root) {
  std::unordered_set<const formats::PickleValue*> seen;
  std::vector<const formats::PickleValue*> todo{&root};
  std::size_t text = 0;
  while (!todo.empty()) {
    const auto* node = todo.back();
    todo.pop_back();
    if (!seen.insert(node).second) continue;
    text += formats::describe(*node).size();
    for (const auto* item : node->items) todo.push_back(item);
  }
  return text;
}

void write_file(const fs::path& path, Input data) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(data.data()), static_cast<std::streamsize>(data.size()));
  if (!out) finding("cannot write " + path.string());
}

}  // namespace

void safetensors_input(Input data) {
  std::optional<SafetensorsFile> file;
  try {
    file.emplace(SafetensorsFile::from_bytes(bytes_of(data), nullptr, "fuzz.safetensors"));
  } catch (const Error&) {
    return;
  }
  const StateDict tensors = file->state_dict();
  (void)touch(tensors);
  for (const auto& info : file->tensors()) {
    if (file->info(info.name) == nullptr) finding("a listed tensor cannot be found by name");
  }
  // What was read must write and read back to the same tensors.
  std::vector<std::byte> again;
  try {
    again = serialize_safetensors(tensors, file->metadata());
  } catch (const Error& e) {
    finding(std::string("a file that reads does not write back: ") + e.what());
  }
  try {
    const auto back = SafetensorsFile::from_bytes(again, nullptr, "fuzz-again.safetensors");
    if (!same_tensors(back.state_dict(), tensors) || back.metadata() != file->metadata()) {
      finding("the round trip changed the tensors or the metadata");
    }
  } catch (const Error& e) {
    finding(std::string("a file we wrote does not read back: ") + e.what());
  }
}

void gguf_input(Input data) {
  tolerate([&] {
    const auto bytes = bytes_of(data);
    const formats::GgufContents contents = formats::read_gguf(bytes, "fuzz.gguf");
    unsigned sum = 0;
    for (const auto& t : contents.tensors) {
      if (t.offset > bytes.size() - contents.data_offset ||
          t.nbytes > bytes.size() - contents.data_offset - t.offset) {
        finding("read_gguf accepted a tensor beyond the end of the file");
      }
      const auto* first = bytes.data() + contents.data_offset + t.offset;
      for (std::uint64_t i = 0; i < t.nbytes; i += 64) sum += std::to_integer<unsigned>(first[i]);
    }
    (void)sum;
    // Metadata the writer can hold reads back the same: not arrays of arrays, and no
    // non-finite float (the reader shows those as text).
    const auto writable_value = [](const formats::GgufKeyValue& kv) {
      if (kv.type != formats::GgufValueType::Array) {
        return !kv.value.is_string() || kv.type == formats::GgufValueType::String;
      }
      if (kv.element_type == formats::GgufValueType::Array) return false;
      if (kv.element_type == formats::GgufValueType::String) return true;
      return std::none_of(kv.value.begin(), kv.value.end(),
                          [](const nlohmann::json& element) { return element.is_string(); });
    };
    std::vector<formats::GgufKeyValue> writable;
    for (const auto& kv : contents.metadata) {
      if (writable_value(kv)) writable.push_back(kv);
    }
    const auto written = formats::serialize_gguf(writable, {});
    const auto again = formats::read_gguf(written, "fuzz-again.gguf");
    if (again.metadata.size() != writable.size()) finding("GGUF metadata round trip lost entries");
    for (std::size_t i = 0; i < writable.size(); ++i) {
      if (again.metadata[i].key != writable[i].key ||
          again.metadata[i].value != writable[i].value) {
        finding("GGUF metadata round trip changed '" + writable[i].key + "'");
      }
    }
  });
}

void zip_input(Input data) {
  tolerate([&] {
    const auto archive = formats::ZipArchive::open(bytes_of(data), "fuzz.zip");
    unsigned sum = 0;
    for (const auto& entry : archive.entries()) {
      if (archive.find(entry.name) != &entry) finding("an entry cannot be found by its name");
      tolerate([&] {
        for (const std::byte b : archive.data(entry)) sum += std::to_integer<unsigned>(b);
      });
    }
    (void)sum;
  });
  TorchReadOptions options;
  options.verify_crc = false;
  tolerate([&] { (void)touch(load_torch_bytes(bytes_of(data), nullptr, "fuzz.bin", options)); });
}

void pickle_input(Input data) {
  for (const std::size_t id_size : {5, 6}) {
    formats::UnpickleOptions options;
    options.persistent_id_size = id_size;
    options.allow_trailing_bytes = id_size == 6;
    tolerate([&] {
      const auto tree = formats::unpickle(bytes_of(data), "fuzz.pkl", options);
      if (tree.consumed() > data.size()) finding("the unpickler read past its input");
      (void)walk(tree.root());
    });
  }
  tolerate([&] { (void)touch(load_torch_bytes(bytes_of(data), nullptr, "fuzz.pkl")); });
}

void config_input(Input data) {
  const std::string_view text(reinterpret_cast<const char*>(data.data()), data.size());
  std::optional<PeftConfig> config;
  try {
    config.emplace(PeftConfig::from_json_text(text, "fuzz.json"));
  } catch (const Error&) {
    return;
  }
  const PeftConfig& c = *config;
  // Every typed accessor: a value or a peft::Error, nothing else.
  const std::vector<std::function<void()>> accessors = {
      [&] { (void)c.peft_type(); },
      [&] { (void)c.task_type(); },
      [&] { (void)c.base_model_name_or_path(); },
      [&] { (void)c.revision(); },
      [&] { (void)c.inference_mode(); },
      [&] { (void)c.peft_version(); },
      [&] { (void)c.r(); },
      [&] { (void)c.lora_alpha(); },
      [&] { (void)c.use_rslora(); },
      [&] { (void)c.use_dora(); },
      [&] { (void)c.lora_bias(); },
      [&] { (void)c.bias(); },
      [&] { (void)c.fan_in_fan_out(); },
      [&] { (void)c.init_lora_weights(); },
      [&] { (void)c.target_modules(); },
      [&] { (void)c.exclude_modules(); },
      [&] { (void)c.feedforward_modules(); },
      [&] { (void)c.target_parameters(); },
      [&] { (void)c.modules_to_save(); },
      [&] { (void)c.layers_to_transform(); },
      [&] { (void)c.layers_pattern(); },
      [&] { (void)c.rank_pattern(); },
      [&] { (void)c.alpha_pattern(); },
      [&] { (void)c.adalora_rank_masks(); },
      [&] { (void)c.trainable_token_indices(); },
      [&] { (void)c.token_indices(); },
      [&] { (void)c.layer_replication(); },
      [&] { (void)c.save_projection(); },
      [&] { (void)c.num_vectors(); },
      [&] { (void)c.topk(); },
      [&] { (void)c.save_only_topk_weights(); },
      [&] { (void)c.num_virtual_tokens(); },
      [&] { (void)c.token_dim(); },
      [&] { (void)c.num_transformer_submodules(); },
      [&] { (void)c.num_layers(); },
      [&] { (void)c.num_attention_heads(); },
      [&] { (void)c.encoder_reparameterization_type(); },
      [&] { (void)c.prefix_projection(); },
      [&] { (void)c.unknown_fields(); },
      [&] { (void)c.member_keys("rank_pattern"); },
      [&] { (void)c.member_keys("alpha_pattern"); },
      [&] { c.validate(); },
      [&] { (void)c.completed().to_json_text(); },
  };
  for (const auto& accessor : accessors) tolerate(accessor);

  // The text we write must read back and write the same text again.
  std::string first;
  try {
    first = c.to_json_text();
  } catch (const Error&) {
    return;  // values Python's encoder cannot write either
  }
  try {
    const std::string second = PeftConfig::from_json_text(first, "fuzz-again.json").to_json_text();
    if (second != first) finding("writing a config read back from our own text changed it");
  } catch (const Error& e) {
    finding(std::string("a config we wrote does not read back: ") + e.what());
  }
}

void adapter_folder_input(Input data, const fs::path& folder) {
  if (data.size() < 3) return;
  const unsigned flags = data[0];
  const std::size_t config_length = data[1] | (std::size_t{data[2]} << 8);
  const Input rest = data.subspan(3);
  if (config_length > rest.size()) return;
  const Input config = rest.first(config_length);
  const Input weights = rest.subspan(config_length);
  const char* weights_name = (flags & 1) ? "adapter_model.bin" : "adapter_model.safetensors";

  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(folder, ec)) fs::remove_all(entry.path(), ec);
  std::vector<fs::path> adapters{folder};
  if (flags & 2) adapters.push_back(folder / "second");
  for (const auto& adapter : adapters) {
    fs::create_directories(adapter, ec);
    write_file(adapter / "adapter_config.json", config);
    write_file(adapter / weights_name, weights);
  }

  tolerate([&] { (void)touch(load_peft_weights(folder.string())); });
  tolerate([&] {
    LoadWeightsOptions options;
    options.use_mmap = false;
    options.location.subfolder = (flags & 2) ? "second" : "";
    (void)touch(load_peft_weights(folder.string(), options));
  });
  tolerate([&] { (void)load_adapter_config(folder.string()).to_json_text(); });
  // inspect and validate never throw for a broken file: they report it.
  try {
    for (const auto& summary : inspect_adapters(folder)) {
      (void)to_json(summary, true).dump();
    }
    for (const auto& problem : validate_adapter_folder(folder)) (void)to_json(problem).dump();
  } catch (const std::exception& e) {
    finding(std::string("inspect/validate threw on a broken adapter: ") + e.what());
  }
}

void hub_protocol_input(Input data) {
  if (data.empty()) return;
  const std::string_view text(reinterpret_cast<const char*>(data.data()) + 1, data.size() - 1);
  const auto nul = text.find('\0');
  const std::string_view first = text.substr(0, nul);
  const std::string_view second = nul == std::string_view::npos ? "" : text.substr(nul + 1);
  switch (data[0] % 5) {
    case 0:
      tolerate([&] {
        const auto info = hub::parse_revision_info(text, "fuzz");
        for (const auto& file : info.files) (void)hub::is_safe_repo_path(file);
      });
      break;
    case 1: {
      hub::HttpHeaders headers;
      std::size_t start = 0;
      while (start < text.size()) {
        const auto end = std::min(text.find('\n', start), text.size());
        const auto line = text.substr(start, end - start);
        const auto colon = line.find(':');
        if (colon != std::string_view::npos)
          headers.fields.emplace_back(std::string(line.substr(0, colon)),
                                      std::string(line.substr(colon + 1)));
        start = end + 1;
      }
      const auto meta = hub::parse_file_metadata(headers);
      if (hub::is_safe_etag(meta.etag) && meta.etag.find('/') != std::string::npos)
        finding("an etag with '/' was accepted as a blob name");
      break;
    }
    case 2:
      (void)hub::content_range_start(text);
      break;
    case 3: {
      const std::string resolved = hub::resolve_url(first, second);
      if (!resolved.empty() && hub::is_relative_location(resolved) &&
          !hub::url_scheme(first).empty())
        finding("a redirect resolved against an absolute URL is not absolute");
      (void)hub::url_authority(resolved);
      break;
    }
    default: {
      (void)fnmatch_case(first, second);
      (void)hub::url_quote(first, "/");
      if (!hub::is_safe_repo_path(first)) break;
      // An accepted path has no absolute start and no empty, "." or ".." component.
      if (first.starts_with("/")) finding("an absolute path was accepted");
      for (std::size_t start = 0; start <= first.size();) {
        const auto end = std::min(first.find('/', start), first.size());
        const auto part = first.substr(start, end - start);
        if (part.empty() || part == "." || part == "..")
          finding("a path with an empty, '.' or '..' component was accepted");
        start = end + 1;
      }
    }
  }
}

void run_target(std::string_view target, Input data) {
  if (target == "hub_protocol") return hub_protocol_input(data);
  if (target == "safetensors") return safetensors_input(data);
  if (target == "zip") return zip_input(data);
  if (target == "pickle") return pickle_input(data);
  if (target == "config") return config_input(data);
  if (target == "gguf") return gguf_input(data);
  if (target == "adapter_folder") {
    // One folder per process, removed at exit.
    struct Scratch {
      fs::path path;
      Scratch() {
        const char* base = std::getenv("TMPDIR");
        std::string pattern = std::string(base != nullptr ? base : "/tmp") + "/peft-fuzz-XXXXXX";
        if (::mkdtemp(pattern.data()) == nullptr) finding("cannot create a temporary folder");
        path = pattern;
      }
      ~Scratch() {
        std::error_code ec;
        fs::remove_all(path, ec);
      }
    };
    static const Scratch scratch;
    return adapter_folder_input(data, scratch.path);
  }
  finding("unknown fuzz target " + std::string(target));
}

}  // namespace peft::fuzz
