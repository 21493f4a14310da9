// peftcpp merge / unmerge: adapters into (or out of) a base checkpoint, streamed shard by
// shard, with a progress bar when stderr is a terminal.
#include <fmt/format.h>
#include <unistd.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <optional>
#include <random>
#include <set>

#include "commands.hpp"
#include "peft/adapter_io.hpp"
#include "peft/checkpoint.hpp"
#include "peft/error.hpp"
#include "peft/merge.hpp"
#include "peft/safetensors.hpp"

namespace peftcpp::cli {
namespace fs = std::filesystem;

namespace {

struct CheckpointOptions {
  std::string base, out, dtype, max_shard_size, extras, combination = "svd";
  std::vector<std::string> adapters;
  std::vector<double> weights;
  bool safe_merge = false, force = false, no_autocast = false;
  unsigned threads = 0;
  int svd_rank = 0;
  // add_weighted_adapter's other arguments; unset ones keep PEFT's defaults.
  std::optional<double> density, svd_clamp;
  std::string majority_sign_method = "total";
  std::optional<std::uint64_t> seed;
  std::string module_order;  // a file: module paths in the model's order, one per line
};

// Module paths, one per line (blank lines and lines starting with '#' skipped).
std::vector<std::string> read_module_order(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw peft::Error(peft::ErrorCode::NotFound, path, "cannot read the module order file");
  std::vector<std::string> modules;
  for (std::string line; std::getline(in, line);) {
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
    if (!line.empty() && line.front() != '#') modules.push_back(line);
  }
  return modules;
}

// The base's config.json "model_type", which orders the modules of DARE's masks when no
// --module-order is given; "" when there is none or it cannot be read (the merge itself then
// reports a broken config.json where it needs it).
std::string model_type_of(const peft::CheckpointLayout& base) {
  if (!base.config) return {};
  std::ifstream in(*base.config);
  const auto config = nlohmann::json::parse(in, nullptr, false);
  if (!config.is_object() || !config.contains("model_type") || !config["model_type"].is_string())
    return {};
  return config["model_type"].get<std::string>();
}

// The options of --weights as add_weighted_adapter takes them. A DARE combination without
// --seed gets a fresh seed, printed so that the same merge can be run again.
peft::WeightedAdapterOptions weighted_options(const CheckpointOptions& o, bool quiet) {
  peft::WeightedAdapterOptions w;
  w.combination_type = o.combination;
  w.svd_rank = o.svd_rank;
  w.svd_clamp = o.svd_clamp;
  w.density = o.density;
  w.majority_sign_method = o.majority_sign_method;
  w.torch_seed = o.seed;
  if (!o.module_order.empty()) w.module_order = read_module_order(o.module_order);
  if (!w.torch_seed && peft::combination_draws_masks(o.combination)) {
    std::random_device device;
    w.torch_seed = device();
    if (!quiet) {
      fmt::print(stderr, "peftcpp: {} masks drawn with --seed {} (pass it to repeat this merge)\n",
                 o.combination, *w.torch_seed);
    }
  }
  return w;
}

std::string human_bytes(double bytes) {
  const char* units[] = {"B", "KB", "MB", "GB", "TB"};
  int u = 0;
  while (bytes >= 1000 && u < 4) {
    bytes /= 1000;
    ++u;
  }
  return u == 0 ? fmt::format("{:.0f} B", bytes) : fmt::format("{:.1f} {}", bytes, units[u]);
}

std::string clock_text(double seconds) {
  const long s = std::lround(seconds);
  return s >= 3600 ? fmt::format("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
                   : fmt::format("{}:{:02}", s / 60, s % 60);
}

// A one-line bar on stderr, redrawn at most ten times a second.
class ProgressBar {
 public:
  explicit ProgressBar(std::string label)
      : label_(std::move(label)), start_(std::chrono::steady_clock::now()) {}

  void update(const peft::CheckpointProgress& p) {
    const auto now = std::chrono::steady_clock::now();
    const bool last = p.tensors_done == p.tensors_total;
    if (!last && now - last_draw_ < std::chrono::milliseconds(100)) return;
    last_draw_ = now;
    const double elapsed = std::chrono::duration<double>(now - start_).count();
    const double fraction =
        p.bytes_total ? static_cast<double>(p.bytes_done) / static_cast<double>(p.bytes_total)
                      : 1.0;
    const double rate = elapsed > 0 ? static_cast<double>(p.bytes_done) / elapsed : 0.0;
    const double eta = rate > 0 ? static_cast<double>(p.bytes_total - p.bytes_done) / rate : 0.0;
    constexpr int kWidth = 24;
    const int filled = static_cast<int>(fraction * kWidth);
    fmt::print(stderr, "\r{} [{}{}] {}/{} tensors  {}/{}  {}/s  {} {}\x1b[K", label_,
               std::string(static_cast<std::size_t>(filled), '#'),
               std::string(static_cast<std::size_t>(kWidth - filled), '.'), p.tensors_done,
               p.tensors_total, human_bytes(static_cast<double>(p.bytes_done)),
               human_bytes(static_cast<double>(p.bytes_total)), human_bytes(rate),
               last ? "in" : "ETA", clock_text(last ? elapsed : eta));
    if (last) fmt::print(stderr, "\n");
    std::fflush(stderr);
  }

 private:
  std::string label_;
  std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point last_draw_{};
};

// "default" for the first adapter, then each folder's (or repository's) name, made unique.
std::vector<std::string> adapter_names(const std::vector<std::string>& paths) {
  std::vector<std::string> names;
  std::set<std::string> used;
  for (std::size_t i = 0; i < paths.size(); ++i) {
    fs::path p = fs::path(paths[i]).lexically_normal();
    if (p.filename().empty()) p = p.parent_path();
    std::string name = i == 0 ? "default" : p.filename().string();
    if (name.empty() || name == "." || name == "..") name = fmt::format("adapter{}", i);
    std::string unique = name;
    for (int k = 2; used.count(unique); ++k) unique = fmt::format("{}_{}", name, k);
    used.insert(unique);
    names.push_back(unique);
  }
  return names;
}

std::vector<peft::MergeAdapter> load_adapters(const CheckpointOptions& o,
                                              const peft::AdapterLocation& location) {
  peft::StateDict extras;
  if (!o.extras.empty()) extras = peft::SafetensorsFile::open(o.extras).state_dict();
  peft::LoadWeightsOptions load;
  load.location = location;
  const auto names = adapter_names(o.adapters);
  std::vector<peft::MergeAdapter> adapters;
  for (std::size_t i = 0; i < o.adapters.size(); ++i) {
    adapters.push_back({names[i], peft::load_adapter_config(o.adapters[i], location),
                        peft::load_peft_weights(o.adapters[i], load), extras});
  }
  return adapters;
}

void add_common_options(CLI::App* cmd, CheckpointOptions& o, const char* adapter_help) {
  cmd->add_option("--adapter", o.adapters, adapter_help)->required()->delimiter(',');
  cmd->add_option("--out", o.out, "output folder (shards, index and the base's other files)")
      ->required();
  cmd->add_option("--dtype", o.dtype, "cast floating tensors first (as torch_dtype=...)")
      ->check(kCastDtypeNames);
  cmd->add_option("--max-shard-size", o.max_shard_size,
                  "re-shard as transformers does (\"5GB\", \"500MB\"; decimal units); default: "
                  "keep the input's shard boundaries")
      ->check(
          [](const std::string& text) -> std::string {
            try {
              peft::parse_shard_size(text);
              return {};
            } catch (const peft::Error& e) {
              return e.detail();
            }
          },
          "SIZE");
  cmd->add_option("--threads", o.threads, "threads computing tensors (default: every core)")
      ->check(CLI::Range(0u, 256u));
  cmd->add_option("--extras", o.extras,
                  "FourierFT/WaveFT positions to use instead of drawing them from "
                  "random_loc_seed as torch does, as a .safetensors file");
  cmd->add_flag("--force", o.force, "write into an existing non-empty folder");
  cmd->add_flag("--no-autocast", o.no_autocast,
                "the adapter was loaded with autocast_adapter_dtype=False: its half-precision "
                "factors are used as they are instead of in float32 (PEFT's default)");
}

peft::CheckpointWriteOptions write_options(const CheckpointOptions& o, const GlobalOptions& global,
                                           std::unique_ptr<ProgressBar>& bar,
                                           const std::string& label) {
  peft::CheckpointWriteOptions write;
  if (!o.max_shard_size.empty()) write.max_shard_size = peft::parse_shard_size(o.max_shard_size);
  write.dtype = cast_dtype(o.dtype);
  write.threads = o.threads;
  write.force = o.force;
  if (!global.quiet && ::isatty(STDERR_FILENO)) {
    bar = std::make_unique<ProgressBar>(label);
    write.progress = [b = bar.get()](const peft::CheckpointProgress& p) { b->update(p); };
  }
  return write;
}

void report(const peft::CheckpointWriteResult& result, const peft::Diagnostics& warnings,
            const GlobalOptions& global, const std::string& verb, const std::string& out) {
  if (global.quiet) return;
  for (const auto* list : {&warnings, &result.warnings}) {
    for (const auto& w : *list) fmt::print(stderr, "peftcpp: warning: {}\n", peft::to_text(w));
  }
  std::uint64_t on_disk = 0;  // the files' sizes, not the tensor bytes
  for (const auto& f : result.files) {
    std::error_code ec;
    const auto size = fs::file_size(fs::path(out) / f, ec);
    if (!ec) on_disk += size;
  }
  fmt::print("{} {} of {} tensors; wrote {} in {} file{} to {}\n", verb, result.changed,
             result.tensors, human_bytes(static_cast<double>(on_disk)), result.files.size(),
             result.files.size() == 1 ? "" : "s", out);
  if (global.verbose) {
    for (const auto& f : result.files) fmt::print("  {}\n", f);
    for (const auto& f : result.copied) fmt::print("  {} (copied)\n", f);
  }
}

}  // namespace

void register_merge(CLI::App& app, GlobalOptions& global) {
  auto o = std::make_shared<CheckpointOptions>();
  CLI::App* cmd = app.add_subcommand(
      "merge", "merge adapters into a base checkpoint (PEFT's merge_and_unload), shard by shard");
  cmd->add_option(
         "--base", o->base,
         "base checkpoint: a .safetensors or .bin file, a folder (model.safetensors[.index.json], "
         "else pytorch_model.bin[.index.json]) or a Hub id in the cache; written as "
         "safetensors")
      ->required();
  add_common_options(cmd, *o,
                     "adapter folder(s) or Hub id(s) (org/name[/sub][@rev]), comma-separated; "
                     "merged in order");
  cmd->add_option("--weights", o->weights,
                  "combine the adapters with add_weighted_adapter, one weight each")
      ->delimiter(',');
  std::vector<std::string> combinations;
  for (const auto type : peft::weighted_combination_types()) combinations.emplace_back(type);
  cmd->add_option("--combination", o->combination,
                  "add_weighted_adapter's combination_type (default svd, as PEFT)")
      ->check(CLI::IsMember(combinations));
  cmd->add_option("--svd-rank", o->svd_rank,
                  "rank of an svd-family combination (default: the largest)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--svd-clamp", o->svd_clamp,
                  "clamp the SVD factors at this quantile of their entries (depends on the "
                  "SVD's sign choices)")
      ->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--density", o->density,
                  "fraction of entries ties/dare/magnitude_prune keep (required by them)")
      ->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--majority-sign-method", o->majority_sign_method,
                  "sign election of ties/dare_ties: total (default) or frequency")
      ->check(CLI::IsMember({"total", "frequency"}));
  cmd->add_option("--seed", o->seed,
                  "DARE masks: the torch.manual_seed PEFT ran before add_weighted_adapter "
                  "(default: drawn and printed)");
  cmd->add_option("--module-order", o->module_order,
                  "DARE: a file of module paths in the model's named_modules() order, one per "
                  "line (default: paths with their numbers compared as numbers, and, for the "
                  "families the base's config.json names that peftcpp knows, each block's "
                  "modules in model order)");
  cmd->add_flag("--safe-merge", o->safe_merge, "PEFT's safe_merge: round each delta first");
  cmd->footer(
      "Examples:\n"
      "  peftcpp merge --base meta-llama/Llama-3.2-1B --adapter my-lora --out merged\n"
      "  peftcpp merge --base ./base --adapter a,b --weights 0.7,0.3 --combination linear "
      "--out merged --dtype bf16 --max-shard-size 2GB\n"
      "  peftcpp merge --base ./base --adapter a,b --weights 1,1 --combination dare_ties "
      "--density 0.5 --seed 42 --out merged\n"
      "  peftcpp merge --base model.safetensors --adapter my-lora --out merged --threads 1");
  cmd->callback([o, cmd, &global] {
    const bool weighted_option = cmd->count("--combination") || cmd->count("--svd-rank") ||
                                 cmd->count("--svd-clamp") || cmd->count("--density") ||
                                 cmd->count("--majority-sign-method") || cmd->count("--seed") ||
                                 cmd->count("--module-order");
    if (o->weights.empty() && weighted_option) {
      throw CLI::ValidationError(
          "--combination/--svd-rank/--svd-clamp/--density/"
          "--majority-sign-method/--seed",
          "combine adapters only with --weights (one weight per adapter)");
    }
    if (!o->weights.empty() && o->weights.size() != o->adapters.size()) {
      throw CLI::ValidationError("--weights", fmt::format("{} weights for {} adapters",
                                                          o->weights.size(), o->adapters.size()));
    }
    const peft::AdapterLocation location;  // each id carries its own @revision and sub folder
    auto adapters = load_adapters(*o, location);
    const auto base = peft::open_checkpoint(o->base, location);
    peft::Diagnostics warnings;
    peft::MergeOptions options;
    options.safe_merge = o->safe_merge;
    options.autocast_adapter_dtype = !o->no_autocast;
    options.warnings = &warnings;
    if (!o->weights.empty()) {
      std::string name = "combined";
      for (int k = 2; std::any_of(adapters.begin(), adapters.end(),
                                  [&](const auto& a) { return a.name == name; });
           ++k) {
        name = fmt::format("combined_{}", k);
      }
      auto weighted = weighted_options(*o, global.quiet);
      weighted.model_type = model_type_of(base);
      weighted.warnings = &warnings;
      adapters.push_back(peft::add_weighted_adapter(adapters, o->weights, name, weighted));
      options.adapter_names = {name};
    } else {
      for (const auto& a : adapters) options.adapter_names.push_back(a.name);
    }
    std::unique_ptr<ProgressBar> bar;
    const auto write = write_options(*o, global, bar, "merge");
    const auto result = peft::merge_checkpoint(base, std::move(adapters), options, o->out, write);
    report(result, warnings, global, "merged: changed", o->out);
  });
}

void register_unmerge(CLI::App& app, GlobalOptions& global) {
  auto o = std::make_shared<CheckpointOptions>();
  CLI::App* cmd = app.add_subcommand(
      "unmerge", "take merged adapters out of a checkpoint again, where that is determined");
  cmd->add_option("--merged", o->base,
                  "merged checkpoint: a .safetensors file, a folder or a Hub id in the cache")
      ->required();
  add_common_options(cmd, *o,
                     "the adapter folder(s) or Hub id(s) (org/name[/sub][@rev]) that were "
                     "merged, comma-separated; taken out in reverse order");
  cmd->footer(
      "Refuses (exit 1), saying why, where the merged weights and the adapter do not determine "
      "the base (DoRA, modules_to_save, trainable tokens, bias=\"all\", OSF...).\n\n"
      "Examples:\n"
      "  peftcpp unmerge --merged merged --adapter my-lora --out restored\n"
      "  peftcpp unmerge --merged merged/model.safetensors --adapter a,b --out restored");
  cmd->callback([o, &global] {
    const peft::AdapterLocation location;  // each id carries its own @revision and sub folder
    auto adapters = load_adapters(*o, location);
    peft::Diagnostics warnings;
    peft::MergeOptions options;
    options.autocast_adapter_dtype = !o->no_autocast;
    options.warnings = &warnings;
    for (const auto& a : adapters) options.adapter_names.push_back(a.name);
    std::unique_ptr<ProgressBar> bar;
    const auto write = write_options(*o, global, bar, "unmerge");
    const auto merged = peft::open_checkpoint(o->base, location);
    const auto result =
        peft::unmerge_checkpoint(merged, std::move(adapters), options, o->out, write);
    report(result, warnings, global, "unmerged: restored", o->out);
  });
}

}  // namespace peftcpp::cli
