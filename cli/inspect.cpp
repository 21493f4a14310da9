// peftcpp inspect: what is in an adapter, at a glance, from headers only.
#include <fmt/format.h>

#include <filesystem>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>

#include "commands.hpp"
#include "peft/error.hpp"
#include "peft/safetensors.hpp"

namespace peftcpp::cli {
namespace fs = std::filesystem;

namespace {

struct InspectOptions {
  std::string path;
  bool tensors = false;
  bool json = false;
};

nlohmann::json inspect_weights(const fs::path& file) {
  const auto st = peft::SafetensorsFile::open(file);
  nlohmann::json out;
  out["file"] = file.string();
  out["bytes_on_disk"] = st.file_size();
  std::map<std::string, std::uint64_t> dtype_counts;
  std::uint64_t parameters = 0;
  nlohmann::json tensors = nlohmann::json::array();
  for (const auto& info : st.tensors()) {
    dtype_counts[std::string(peft::dtype_name(info.dtype))]++;
    parameters += peft::shape_numel(info.shape);
    tensors.push_back(
        {{"name", info.name}, {"dtype", peft::dtype_name(info.dtype)}, {"shape", info.shape}});
  }
  out["num_tensors"] = st.size();
  out["parameters"] = parameters;
  out["dtypes"] = dtype_counts;
  out["tensors"] = std::move(tensors);
  if (st.metadata()) out["metadata"] = *st.metadata();
  return out;
}

void print_human(const nlohmann::json& report, bool with_tensors) {
  if (report.contains("config")) {
    const auto& config = report["config"];
    fmt::print("peft_type:        {}\n", config.value("peft_type", "?"));
    if (config.contains("task_type") && !config["task_type"].is_null()) {
      fmt::print("task_type:        {}\n", config["task_type"].get<std::string>());
    }
    if (config.contains("base_model_name_or_path") &&
        config["base_model_name_or_path"].is_string()) {
      fmt::print("base model:       {}\n", config["base_model_name_or_path"].get<std::string>());
    }
  }
  if (!report.contains("weights")) {
    fmt::print("weights:          missing\n");
    return;
  }
  const auto& weights = report["weights"];
  fmt::print("weights:          {} ({} bytes)\n", weights["file"].get<std::string>(),
             weights["bytes_on_disk"].get<std::uint64_t>());
  fmt::print("tensors:          {}\n", weights["num_tensors"].get<std::uint64_t>());
  fmt::print("parameters:       {}\n", weights["parameters"].get<std::uint64_t>());
  std::string dtypes;
  for (const auto& [name, count] : weights["dtypes"].items()) {
    dtypes += fmt::format("{}{}×{}", dtypes.empty() ? "" : ", ", count.get<std::uint64_t>(), name);
  }
  fmt::print("dtypes:           {}\n", dtypes);
  if (with_tensors) {
    for (const auto& t : weights["tensors"]) {
      fmt::print("  {:<70} {:<5} [{}]\n", t["name"].get<std::string>(),
                 t["dtype"].get<std::string>(),
                 fmt::join(t["shape"].get<std::vector<std::uint64_t>>(), ", "));
    }
  }
}

void run_inspect(const InspectOptions& options) {
  const fs::path path(options.path);
  nlohmann::json report;
  fs::path weights;
  if (fs::is_directory(path)) {
    const fs::path config = path / "adapter_config.json";
    if (fs::exists(config)) {
      std::ifstream in(config);
      try {
        report["config"] = nlohmann::json::parse(in);
      } catch (const nlohmann::json::exception& e) {
        throw peft::Error(peft::ErrorCode::InvalidJson, config.string(), e.what());
      }
    }
    if (fs::exists(path / "adapter_model.safetensors"))
      weights = path / "adapter_model.safetensors";
  } else if (fs::exists(path)) {
    weights = path;
  } else {
    throw peft::Error(peft::ErrorCode::NotFound, path.string(), "no such file or folder");
  }
  if (!weights.empty()) report["weights"] = inspect_weights(weights);
  if (!options.tensors && report.contains("weights")) report["weights"].erase("tensors");
  if (options.json) {
    std::cout << report.dump(2) << "\n";
  } else {
    print_human(report, options.tensors);
  }
}

}  // namespace

void register_inspect(CLI::App& app, GlobalOptions& /*global*/) {
  auto options = std::make_shared<InspectOptions>();
  CLI::App* cmd = app.add_subcommand("inspect", "show what an adapter folder or weight file holds");
  cmd->add_option("path", options->path, "adapter folder or .safetensors file")->required();
  cmd->add_flag("--tensors", options->tensors, "list every tensor with dtype and shape");
  cmd->add_flag("--json", options->json, "print a JSON document instead of text");
  cmd->footer("Example:\n  peftcpp inspect examples/tf_llama_lora --tensors");
  cmd->callback([options] { run_inspect(*options); });
}

}  // namespace peftcpp::cli
