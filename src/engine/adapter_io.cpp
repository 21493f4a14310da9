#include "peft/adapter_io.hpp"

#include <algorithm>

#include <fmt/format.h>

#include "engine/model_card.hpp"
#include "engine/weight_conversion.hpp"
#include "formats/atomic_file.hpp"
#include "methods/registry.hpp"
#include "peft/error.hpp"
#include "peft/file_format.hpp"
#include "peft/hub_cache.hpp"
#include "peft/hub_download.hpp"
#include "peft/safetensors.hpp"
#include "peft/torch_file.hpp"
#include "pycompat/python_regex_sub.hpp"

namespace peft {
namespace fs = std::filesystem;

namespace {

constexpr const char* kSafetensors = "adapter_model.safetensors";
constexpr const char* kBin = "adapter_model.bin";
constexpr const char* kConfig = "adapter_config.json";

fs::path local_folder(const std::string& id_or_path, const AdapterLocation& location) {
  return location.subfolder.empty() ? fs::path(id_or_path)
                                    : fs::path(id_or_path) / location.subfolder;
}

// Where an id is looked for in the Hugging Face cache: its "org/name[/sub][@rev]" parts,
// with the location's sub folder appended and its revision used when the id names none.
struct CacheTarget {
  std::string repo_id, subfolder, revision;
  HubCache cache;
  std::string path_of(const std::string& name) const {
    return subfolder.empty() ? name : subfolder + "/" + name;
  }
  // The snapshot path of `name` ("" for the adapter's folder) at the commit the revision
  // names; nullopt when the cache does not know the revision.
  std::optional<fs::path> place(const std::string& name) const {
    const auto commit = cache.commit(repo_id, revision);
    if (!commit) return std::nullopt;
    fs::path where = cache.repo_folder(repo_id) / "snapshots" / *commit;
    const std::string inside = name.empty() ? subfolder : path_of(name);
    if (!inside.empty()) where /= inside;
    return where;
  }
  // The real place looked at, or the ref that is missing.
  std::string describe(const std::string& name) const {
    if (const auto where = place(name)) return where->string();
    return fmt::format("{} (revision '{}' is not in the cache)",
                       (cache.repo_folder(repo_id) / "refs" / revision).string(), revision);
  }
  // Options for downloading what the cache lacks (docs/hub.md); nullopt when offline.
  std::optional<HubSnapshotOptions> download_options() const {
    HubSnapshotOptions options;
    if (options.settings.offline) return std::nullopt;
    options.revision = revision;
    options.settings.cache_dir = cache.root();
    return options;
  }
};

// The file downloaded from the Hub, or nullopt when the Hub says it does not exist there
// (then the next candidate name is tried, as PEFT does for .safetensors then .bin), when
// there is no such repository (the id may have been meant as a local path) or when the Hub
// cannot be reached: those reasons join the places tried. Refusals that need the user to
// act (gated, token, revision) are thrown as they are.
bool is_missing(const HubError& e) {
  const auto kind = e.kind();
  return kind == HubErrorKind::EntryNotFound || kind == HubErrorKind::RepoNotFound ||
         kind == HubErrorKind::Offline || kind == HubErrorKind::Network;
}

std::optional<fs::path> download_one(const CacheTarget& target, const std::string& name,
                                     std::vector<std::string>& tried) {
  const auto options = target.download_options();
  if (!options) return std::nullopt;
  try {
    return hf_hub_download(target.repo_id, target.path_of(name), *options);
  } catch (const HubError& e) {
    if (!is_missing(e)) throw;
    tried.push_back(e.what());
    return std::nullopt;
  }
}

// The snapshot folder (or its sub folder) downloaded from the Hub; nullopt as above.
std::optional<fs::path> download_folder(const CacheTarget& target,
                                        std::vector<std::string>& tried) {
  auto options = target.download_options();
  if (!options) return std::nullopt;
  if (!target.subfolder.empty()) options->allow_patterns = {target.subfolder + "/*"};
  try {
    fs::path snapshot = snapshot_download(target.repo_id, *options);
    if (!target.subfolder.empty()) snapshot /= target.subfolder;
    std::error_code ec;
    if (fs::is_directory(snapshot, ec)) return snapshot;
    tried.push_back(snapshot.string());
  } catch (const HubError& e) {
    if (!is_missing(e)) throw;
    tried.push_back(e.what());
  }
  return std::nullopt;
}

std::optional<CacheTarget> cache_target(const std::string& id_or_path,
                                        const AdapterLocation& location) {
  const auto ref = parse_hub_reference(id_or_path);
  if (!ref) return std::nullopt;
  std::string subfolder = ref->subfolder;
  if (!location.subfolder.empty())
    subfolder = subfolder.empty() ? location.subfolder : subfolder + "/" + location.subfolder;
  return CacheTarget{ref->repo_id, subfolder, ref->revision.value_or(location.revision),
                     HubCache(location.cache_dir ? *location.cache_dir : HubCache::default_root())};
}

// The first of `filenames` found locally, else in the cache; `tried` records the places.
std::optional<fs::path> find_first(const std::string& id_or_path,
                                   const std::vector<std::string>& filenames,
                                   const AdapterLocation& location,
                                   std::vector<std::string>& tried) {
  std::error_code ec;
  for (const auto& name : filenames) {
    const fs::path local = local_folder(id_or_path, location) / name;
    if (fs::exists(local, ec)) return local;
    tried.push_back(local.string());
  }
  const auto target = cache_target(id_or_path, location);
  if (!target) return std::nullopt;  // not a repository id: the local places were the only ones
  try {
    for (const auto& name : filenames) {
      if (auto cached =
              target->cache.find(target->repo_id, target->path_of(name), target->revision))
        return cached;
      tried.push_back(target->describe(name));
    }
  } catch (const Error& e) {
    tried.push_back(e.what());  // e.g. a revision with ".."
    return std::nullopt;
  }
  // Not cached: download it, unless offline.
  for (const auto& name : filenames) {
    if (auto downloaded = download_one(*target, name, tried)) return downloaded;
  }
  return std::nullopt;
}

[[noreturn]] void not_found(const std::string& id_or_path, const std::string& what,
                            const std::vector<std::string>& tried) {
  throw Error(ErrorCode::NotFound, id_or_path,
              fmt::format("can't find {}; looked in: {}", what, fmt::join(tried, "; ")));
}

// Why get_peft_model_state_dict found nothing: most often a state of saved keys (from
// load_peft_weights) where the model's full keys were expected.
[[noreturn]] void refuse_empty_adapter(const PeftModel& model, const std::string& name,
                                       const fs::path& folder) {
  const PeftConfig& config = model.config(name);
  std::string why = fmt::format("the model holds no tensor of adapter '{}' ({}): nothing to save",
                                name, to_string(config.peft_type()));
  if (!model.state.empty()) {
    why += fmt::format(
        "; the model's keys must be full keys with the adapter name (such as "
        "'<module>.lora_A.{}.weight'); for weights with saved keys, as load_peft_weights "
        "returns them, use save_adapter (peft/convert.hpp)",
        name);
  }
  throw Error(ErrorCode::InvalidArgument, folder.string(), why);
}

std::string python_list(const std::vector<std::string>& items) {
  std::string out = "[";
  for (std::size_t i = 0; i < items.size(); ++i) out += (i ? ", '" : "'") + items[i] + "'";
  return out + "]";
}

}  // namespace

fs::path resolve_adapter_file(const std::string& id_or_path, const std::string& filename,
                              const AdapterLocation& location) {
  std::vector<std::string> tried;
  if (auto found = find_first(id_or_path, {filename}, location, tried)) return *found;
  not_found(id_or_path, filename, tried);
}

fs::path resolve_adapter_folder(const std::string& id_or_path, const AdapterLocation& location) {
  std::error_code ec;
  const fs::path local = local_folder(id_or_path, location);
  if (fs::is_directory(local, ec)) return local;
  std::vector<std::string> tried{local.string()};
  if (const auto target = cache_target(id_or_path, location)) {
    try {
      if (const auto snapshot = target->place(""); snapshot && fs::is_directory(*snapshot, ec))
        return *snapshot;
      tried.push_back(target->describe(""));
    } catch (const Error& e) {
      tried.push_back(e.what());
    }
    // Not cached: download the snapshot (the sub folder only), unless offline.
    if (auto downloaded = download_folder(*target, tried)) return *downloaded;
  }
  not_found(id_or_path, "an adapter folder", tried);
}

StateDict apply_key_mapping(StateDict weights,
                            const std::vector<std::pair<std::string, std::string>>& key_mapping) {
  if (key_mapping.empty()) return weights;
  StateDict out;
  for (auto& [key, tensor] : weights) {
    std::string_view prefix;
    for (const std::string_view candidate : {"base_model.model.", "base_model."}) {
      if (key.starts_with(candidate)) {
        prefix = candidate;
        break;
      }
    }
    if (prefix.empty()) {
      throw Error(ErrorCode::InvalidArgument, key,
                  "key_mapping needs keys starting with 'base_model.model.' or 'base_model.'");
    }
    std::string rest = key.substr(prefix.size());
    for (const auto& [pattern, replacement] : key_mapping) {
      auto [mapped, count] = detail::python_regex_sub(pattern, replacement, rest);
      if (count > 0) {
        rest = std::move(mapped);
        break;  // the first matching pattern only
      }
    }
    out.set(std::string(prefix) + rest, tensor);
  }
  return out;
}

StateDict load_peft_weights(const std::string& id_or_path, const LoadWeightsOptions& options) {
  return annotate_errors(id_or_path, [&]() -> StateDict {
    std::vector<std::string> tried;
    const auto file = find_first(id_or_path, {kSafetensors, kBin}, options.location, tried);
    if (!file)
      not_found(id_or_path, "adapter weights (adapter_model.safetensors or adapter_model.bin)",
                tried);
    WeightsReadOptions read;  // by content: the same result as PEFT for every file it reads
    read.use_mmap = options.use_mmap;
    return apply_key_mapping(read_weights_file(*file, read), options.key_mapping);
  });
}

PeftConfig load_adapter_config(const std::string& id_or_path, const AdapterLocation& location) {
  return PeftConfig::load(resolve_adapter_file(id_or_path, kConfig, location));
}

void save_pretrained(PeftModel& model, const fs::path& folder,
                     const SavePretrainedOptions& options) {
  std::error_code ec;
  if (fs::exists(folder, ec) && !fs::is_directory(folder, ec)) {
    throw Error(ErrorCode::InvalidArgument, folder.string(), "should be a folder, not a file");
  }
  std::vector<std::string> selected = options.selected_adapters;
  if (selected.empty() && !options.select_none) {
    for (const auto& [name, config] : model.adapters) selected.push_back(name);
  }
  for (const auto& name : selected) {
    if (!model.has_adapter(name)) {
      std::vector<std::string> known;
      for (const auto& [n, c] : model.adapters) known.push_back(n);
      throw Error(ErrorCode::NotFound, folder.string(),
                  fmt::format("requested adapters {} are not all among the model's adapters {}",
                              python_list(selected), python_list(known)));
    }
  }
  // Everything is computed and checked before the first write.
  struct Planned {
    std::string name;
    StateDict weights;
    std::optional<PeftConfig> converted_config;
  };
  std::vector<Planned> planned;
  for (const auto& name : selected) {
    GetStateDictOptions get;
    get.adapter_name = name;
    get.save_embedding_layers = options.save_embedding_layers;
    get.warnings = options.warnings;
    Planned plan{name, get_peft_model_state_dict(model, get), std::nullopt};
    if (plan.weights.empty()) refuse_empty_adapter(model, name, folder);
    if (options.path_initial_model_for_weight_conversion) {
      auto converted = detail::convert_to_plain_lora(
          plan.weights, model.config(name), *options.path_initial_model_for_weight_conversion,
          options.warnings);
      plan.weights = std::move(converted.weights);
      plan.converted_config = std::move(converted.config);
    }
    planned.push_back(std::move(plan));
  }
  formats::OutputFolder guard(folder);
  if (options.write_model_card) {
    ModelCardFacts card;
    card.base_model = options.base_model_name_or_path;
    card.is_transformers_model = options.is_transformers_model;
    card.pipeline_tag = options.task_type_pipeline;
    card.lora =
        !model.adapters.empty() && model.adapters.front().second.peft_type() == PeftType::LORA;
    write_model_card(folder / "README.md", card);
  }
  for (auto& [name, weights, converted_config] : planned) {
    const fs::path out = name == "default" ? folder : folder / name;
    fs::create_directories(out);
    if (options.safe_serialization) {
      SafetensorsWriteOptions write;
      write.copy_shared = true;  // tied tensors become independent copies, as PEFT de-aliases
      save_safetensors(weights, out / kSafetensors, Metadata{{"format", "pt"}}, write);
    } else {
      save_torch_file(weights, out / kBin);
    }
    PeftConfig& live = model.config(name);
    if (!live.base_model_name_or_path() && options.base_model_name_or_path) {
      live.mutable_json()["base_model_name_or_path"] = *options.base_model_name_or_path;
    }
    PeftConfig written = converted_config ? *converted_config : live;
    if (converted_config && !written.base_model_name_or_path() && live.base_model_name_or_path()) {
      written.mutable_json()["base_model_name_or_path"] = *live.base_model_name_or_path();
    }
    written.mutable_json()["inference_mode"] = true;
    const auto task = written.json().find("task_type");
    if ((task == written.json().end() || task->is_null()) && !options.base_model_class.empty()) {
      written.mutable_json()["auto_mapping"] = {{"base_model_class", options.base_model_class},
                                                {"parent_library", options.base_model_library}};
    }
    written.save(out / kConfig);
  }
  guard.commit();
}

LoadResult from_pretrained(PeftModel& model, const std::string& id_or_path,
                           const FromPretrainedOptions& options) {
  return annotate_errors(id_or_path, [&]() -> LoadResult {
    PeftConfig config = load_adapter_config(id_or_path, options.location);
    if (config.is_prompt_learning() && options.is_trainable) {
      throw Error(ErrorCode::InvalidArgument, config.source(),
                  "a prompt learning adapter cannot be loaded as trainable");
    }
    config.mutable_json()["inference_mode"] = !options.is_trainable;
    for (const auto& [name, other] : model.adapters) {
      if (name != options.adapter_name && other.peft_type() != config.peft_type()) {
        throw Error(
            ErrorCode::InvalidArgument, config.source(),
            fmt::format("Cannot combine adapters with different peft types. Found {} and {}.",
                        to_string(other.peft_type()), to_string(config.peft_type())));
      }
    }
    if (model.has_adapter(options.adapter_name)) {
      model.config(options.adapter_name) = config;
    } else {
      model.adapters.emplace_back(options.adapter_name, config);
    }
    LoadWeightsOptions load;
    load.location = options.location;
    load.key_mapping = options.key_mapping;
    SetStateDictOptions set;
    set.adapter_name = options.adapter_name;
    set.ignore_mismatched_sizes = options.ignore_mismatched_sizes;
    set.low_cpu_mem_usage = options.low_cpu_mem_usage;
    set.warnings = options.warnings;
    LoadResult result = set_peft_model_state_dict(model, load_peft_weights(id_or_path, load), set);

    // What from_pretrained warns about: adapter keys left missing, except the per-layer
    // aliases of shared tensors and prompt encoders.
    std::vector<std::string> reported;
    for (const auto& key : result.adapter_missing_keys) {
      if (key.find("vblora_vector_bank") == std::string::npos &&
          key.find("prompt_encoder") == std::string::npos) {
        reported.push_back(key);
      }
    }
    if (!reported.empty() && options.warnings != nullptr) {
      const std::string_view prefix = methods::prefix_of(config.peft_type());
      std::string message;
      if (prefix.find(options.adapter_name) != std::string_view::npos) {
        message = fmt::format(
            "Adapter name '{}' should not be contained in the prefix '{}'. This could "
            "be the potential reason for missing adapter keys. ",
            options.adapter_name, prefix);
      }
      report_warning(options.warnings, "missing_adapter_keys",
                     message + "Found missing adapter keys while loading the checkpoint: " +
                         python_list(reported) + ".");
    }
    return result;
  });
}

PeftModel from_pretrained(const StateDict& base, const std::string& id_or_path,
                          const FromPretrainedOptions& options, const InjectionOptions& injection,
                          LoadResult* result) {
  return annotate_errors(id_or_path, [&]() -> PeftModel {
    PeftConfig config = load_adapter_config(id_or_path, options.location);
    config.mutable_json()["inference_mode"] = !options.is_trainable;  // shapes P-tuning's encoder
    InjectionOptions inject = injection;
    if (inject.adapter_folder == ".") {
      inject.adapter_folder = std::filesystem::path(config.source()).parent_path();
    }
    PeftModel model = inject_adapters(base, {{options.adapter_name, config}}, inject);
    LoadResult loaded = from_pretrained(model, id_or_path, options);
    if (result != nullptr) *result = std::move(loaded);
    return model;
  });
}

}  // namespace peft
