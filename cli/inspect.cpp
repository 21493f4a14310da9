// peftcpp inspect: what is in an adapter, at a glance, from headers only.
#include <fmt/format.h>

#include <algorithm>
#include <filesystem>
#include <iostream>
#include <map>
#include <tuple>

#include "commands.hpp"
#include "peft/adapter_io.hpp"
#include "peft/error.hpp"
#include "peft/file_format.hpp"
#include "peft/gguf.hpp"
#include "peft/inspect.hpp"

namespace peftcpp::cli {
namespace fs = std::filesystem;

namespace {

struct InspectOptions {
  std::string path;
  peft::AdapterLocation location;
  bool tensors = false;
  bool json = false;
};

std::string with_commas(std::uint64_t n) {
  std::string digits = std::to_string(n);
  for (int i = static_cast<int>(digits.size()) - 3; i > 0; i -= 3)
    digits.insert(static_cast<std::size_t>(i), ",");
  return digits;
}

std::string json_text(const nlohmann::json& value) {
  if (value.is_null()) return "—";
  if (value.is_boolean()) return value.get<bool>() ? "yes" : "no";
  if (value.is_string()) return value.get<std::string>();
  if (value.is_array()) {
    std::string out;
    for (const auto& item : value) out += (out.empty() ? "" : ", ") + json_text(item);
    return out.empty() ? "[]" : out;
  }
  // Lone surrogates kept from the file are not UTF-8: show them as U+FFFD, never throw.
  return value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

void print_field(std::string_view label, const std::string& value) {
  fmt::print("  {:<17} {}\n", label, value);
}

void print_modules(const peft::AdapterSummary& s) {
  // One line per layer pattern and (rank, alpha, scaling, rank in the weights).
  using Key = std::tuple<std::string, std::string, std::string, std::string, std::string>;
  std::map<Key, std::size_t> groups;
  std::vector<Key> order;
  const auto number = [](const auto& v) {
    return v ? fmt::format("{:g}", static_cast<double>(*v)) : std::string("?");
  };
  for (const auto& m : s.modules) {
    // Only the config's rank counts (PEFT's rule); the tensors' rank is shown when it
    // disagrees, or when there is no config to give one.
    const std::string weights_rank =
        m.rank_mismatch() || (!m.rank && m.weights_rank) ? number(m.weights_rank) : "";
    Key key{peft::layer_pattern(m.module), number(m.rank), number(m.alpha), number(m.scaling),
            weights_rank};
    if (groups[key]++ == 0) order.push_back(key);
  }
  fmt::print("  modules ({})\n", s.modules.size());
  for (const auto& key : order) {
    const auto& [pattern, rank, alpha, scaling, weights_rank] = key;
    std::string facts;
    if (rank != "?" || alpha != "?") {
      facts = fmt::format("r={} alpha={} scaling={}", rank, alpha, scaling);
    }
    if (!weights_rank.empty()) {
      facts += rank == "?"
                   ? fmt::format("rank {} (weights)", weights_rank)
                   : fmt::format("  ≠ weights' rank {}: PEFT refuses these tensors", weights_rank);
    }
    fmt::print("    {:<48} ×{:<3} {}\n", pattern, groups[key], facts);
  }
}

void print_summary(const peft::AdapterSummary& s, bool with_tensors) {
  fmt::print("{}  [{}]\n", s.folder.string(), s.name);
  if (s.config) {
    const auto& c = *s.config;
    const auto& j = c.json();
    std::string type(peft::to_string(c.peft_type()));
    if (j.contains("task_type") && !j["task_type"].is_null())
      type += " (task " + json_text(j["task_type"]) + ")";
    print_field("peft_type", type);
    const auto& base =
        j.contains("base_model_name_or_path") ? j["base_model_name_or_path"] : nlohmann::json();
    print_field("base model", base.is_string() && base.get<std::string>().empty()
                                  ? "\"\" (empty)"
                                  : json_text(base));
    const auto& version = j.contains("peft_version") ? j["peft_version"] : nlohmann::json();
    print_field("peft version",
                version.is_null() ? "— (written before PEFT 0.18)" : json_text(version));
    if (j.contains("target_modules")) print_field("targets", json_text(j["target_modules"]));
    if (j.contains("bias")) print_field("bias", json_text(j["bias"]));
    if (j.contains("use_dora")) print_field("dora", json_text(j["use_dora"]));
    if (j.contains("use_rslora")) print_field("rslora", json_text(j["use_rslora"]));
    if (j.contains("modules_to_save"))
      print_field("modules_to_save", json_text(j["modules_to_save"]));
    if (j.contains("trainable_token_indices") && !j["trainable_token_indices"].is_null()) {
      print_field("trainable tokens", json_text(j["trainable_token_indices"]));
    }
    for (const auto& warning : c.warnings()) print_field("note", peft::to_text(warning));
  } else {
    print_field("config", s.config_error);
  }
  if (s.weights_file.empty()) {
    print_field("weights", "missing (no adapter_model.safetensors or adapter_model.bin)");
  } else {
    std::string dtypes;
    for (const auto& [name, count] : s.dtypes)
      dtypes += fmt::format("{}{}×{}", dtypes.empty() ? "" : ", ", name, count);
    print_field("weights", fmt::format("{} ({}, {} bytes)", s.weights_file.filename().string(),
                                       s.weights_format, with_commas(s.bytes_on_disk)));
    if (!s.weights_error.empty()) print_field("weights error", s.weights_error);
    print_field("tensors", fmt::format("{} ({})", s.tensors.size(), dtypes.empty() ? "—" : dtypes));
    print_field("parameters", with_commas(s.parameters));
  }
  if (!s.modules.empty()) print_modules(s);
  if (!s.other_keys.empty())
    fmt::print("  other tensors ({}): {}\n", s.other_keys.size(), fmt::join(s.other_keys, ", "));
  if (with_tensors) {
    fmt::print("  tensors\n");
    for (const auto& t : s.tensors) {
      fmt::print("    {:<72} {:<5} [{}]\n", t.name, peft::dtype_name(t.dtype),
                 fmt::join(t.shape, ", "));
    }
  }
}

// A GGUF file (a llama.cpp model or LoRA adapter): its metadata and tensors.
void print_gguf(const peft::GgufSummary& g, bool with_tensors) {
  fmt::print("{}\n", g.file.string());
  print_field("format", fmt::format("GGUF v{} ({} bytes)", g.version, with_commas(g.file_bytes)));
  for (const auto& [key, value] : g.metadata) {
    std::string shown = value.is_string()
                            ? value.get<std::string>()
                            : value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    if (value.is_array() && value.size() > 8) shown = fmt::format("[{} values]", value.size());
    print_field(key, shown);
  }
  print_field("tensors", std::to_string(g.tensors.size()));
  if (!with_tensors) return;
  fmt::print("  tensors\n");
  for (const auto& t : g.tensors) {
    fmt::print("    {:<72} {:<5} [{}]\n", t.name, t.type, fmt::join(t.ne, ", "));
  }
}

// A single weights file (recognised by content): its tensors only.
bool inspect_file(const fs::path& path, const InspectOptions& options) {
  if (peft::detect_file_format(path) == peft::FileFormat::Gguf) {
    const peft::GgufSummary g = peft::inspect_gguf_file(path);
    if (options.json) {
      std::cout << peft::to_json(g, options.tensors).dump(2) << "\n";
    } else {
      print_gguf(g, options.tensors);
    }
    return true;
  }
  const peft::AdapterSummary s = peft::inspect_weights_file(path);
  if (options.json) {
    std::cout << peft::to_json(s, options.tensors).dump(2) << "\n";
  } else {
    print_summary(s, options.tensors);
  }
  return s.weights_error.empty();
}

// Exit status 1 when any part of what was asked about could not be read.
void run_inspect(const InspectOptions& options, GlobalOptions& global) {
  std::error_code ec;
  if (fs::is_regular_file(options.path, ec)) {
    global.exit_code = inspect_file(options.path, options) ? 0 : 1;
    return;
  }
  // A folder, or a Hub id found in the Hugging Face cache.
  const auto adapters =
      peft::inspect_adapters(peft::resolve_adapter_folder(options.path, options.location));
  const bool complete = std::all_of(adapters.begin(), adapters.end(),
                                    [](const peft::AdapterSummary& s) { return s.complete(); });
  global.exit_code = complete ? 0 : 1;
  if (options.json) {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& s : adapters) out.push_back(peft::to_json(s, options.tensors));
    std::cout << nlohmann::json{{"adapters", out}}.dump(2) << "\n";
    return;
  }
  for (std::size_t i = 0; i < adapters.size(); ++i) {
    if (i) fmt::print("\n");
    print_summary(adapters[i], options.tensors);
  }
}

}  // namespace

void register_inspect(CLI::App& app, GlobalOptions& global) {
  auto options = std::make_shared<InspectOptions>();
  CLI::App* cmd = app.add_subcommand("inspect", "show what an adapter folder or weight file holds");
  cmd->add_option(
         "path", options->path,
         "adapter folder, weights file (.safetensors or torch.save .bin), GGUF file, or Hub id "
         "(org/name[/sub][@rev]) in the local cache")
      ->required();
  add_location_options(cmd, options->location);
  cmd->add_flag("--tensors", options->tensors, "list every tensor with dtype and shape");
  cmd->add_flag("--json", options->json, "print a JSON document instead of text (see docs/cli.md)");
  cmd->footer(
      "Reads headers only: instant even on multi-GB files. Exit code: 0 when everything was "
      "read, 1 when a part could not be (shown inline), 2 usage error.\n\nExamples:\n"
      "  peftcpp inspect examples/tf_llama_lora\n"
      "  peftcpp inspect examples/tf_llama_lora --tensors\n"
      "  peftcpp inspect adapter_model.safetensors --json");
  cmd->callback([options, &global] { run_inspect(*options, global); });
}

}  // namespace peftcpp::cli
