// Reading a base checkpoint: a single safetensors file, or shards named by
// model.safetensors.index.json (docs/formats.md "Sharded checkpoints"), locally or in the Hugging
// Face cache.
#include "peft/checkpoint.hpp"
#include "formats/json_file.hpp"

#include <algorithm>
#include <map>
#include <unordered_set>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "checkpoint/checkpoint_shard_file.hpp"
#include "peft/error.hpp"
#include "peft/safetensors.hpp"

namespace peft {
namespace fs = std::filesystem;

namespace {

constexpr const char* kSingle = "model.safetensors";
constexpr const char* kIndex = "model.safetensors.index.json";
constexpr const char* kBinSingle = "pytorch_model.bin";
constexpr const char* kBinIndex = "pytorch_model.bin.index.json";
constexpr std::size_t kListed = 5;  // names quoted in a message before "and N more"

std::string quoted_list(const std::vector<std::string>& names) {
  std::string out;
  for (std::size_t i = 0; i < names.size() && i < kListed; ++i) {
    out += fmt::format("{}'{}'", i ? ", " : "", names[i]);
  }
  if (names.size() > kListed) out += fmt::format(" and {} more", names.size() - kListed);
  return out;
}

std::optional<fs::path> existing(const fs::path& path) {
  std::error_code ec;
  if (fs::is_regular_file(path, ec)) return path;
  return std::nullopt;
}

CheckpointLayout single_file(const fs::path& file, std::string source) {
  const auto st = detail::ShardFile::open(file);
  CheckpointShard shard;
  shard.path = file;
  shard.file_name = file.filename().string();
  shard.file_size = st.file_size();
  shard.metadata = st.metadata();
  for (const auto& info : st.tensors()) {
    shard.names.push_back(info.name);
    shard.bytes += info.nbytes;
  }
  CheckpointLayout layout;
  layout.source = std::move(source);
  layout.shards.push_back(std::move(shard));
  return layout;
}

// A shard name from weight_map: a plain file name next to the index (no folders, so an
// index cannot point outside its checkpoint).
void check_shard_name(const std::string& name, const fs::path& index) {
  if (name.empty() || name == "." || name == ".." ||
      name.find_first_of("/\\") != std::string::npos) {
    throw Error(
        ErrorCode::InvalidJson, index.string(),
        fmt::format("weight_map names shard '{}': expected a file name next to the index", name));
  }
}

const nlohmann::json& weight_map_of(const nlohmann::json& doc, const fs::path& index) {
  if (!doc.is_object()) {
    throw Error(ErrorCode::InvalidJson, index.string(), "the index must be a JSON object");
  }
  const auto it = doc.find("weight_map");
  if (it == doc.end() || !it->is_object()) {
    throw Error(ErrorCode::InvalidJson, index.string(),
                "\"weight_map\" must be an object mapping tensor names to shard file names");
  }
  for (const auto& [name, shard] : it->items()) {
    if (!shard.is_string()) {
      throw Error(ErrorCode::InvalidJson, index.string(),
                  fmt::format("weight_map['{}'] must be a shard file name (a string), got {}", name,
                              shard.dump()));
    }
  }
  return *it;
}

std::optional<std::uint64_t> metadata_number(const nlohmann::json& doc, const char* key,
                                             const fs::path& index) {
  const auto meta = doc.find("metadata");
  if (meta == doc.end() || meta->is_null()) return std::nullopt;
  if (!meta->is_object()) {
    throw Error(ErrorCode::InvalidJson, index.string(), "\"metadata\" must be an object");
  }
  const auto it = meta->find(key);
  if (it == meta->end()) return std::nullopt;
  if (!it->is_number_unsigned() && !(it->is_number_integer() && it->get<std::int64_t>() >= 0)) {
    throw Error(ErrorCode::InvalidJson, index.string(),
                fmt::format("metadata.{} must be a non-negative integer, got {}", key, it->dump()));
  }
  return it->get<std::uint64_t>();
}

}  // namespace

std::size_t CheckpointLayout::tensor_count() const {
  std::size_t n = 0;
  for (const auto& shard : shards) n += shard.names.size();
  return n;
}

std::uint64_t CheckpointLayout::total_bytes() const {
  std::uint64_t n = 0;
  for (const auto& shard : shards) n += shard.bytes;
  return n;
}

std::vector<std::string> CheckpointLayout::names() const {
  std::vector<std::string> out;
  out.reserve(tensor_count());
  for (const auto& shard : shards) out.insert(out.end(), shard.names.begin(), shard.names.end());
  return out;
}

CheckpointLayout read_checkpoint_index(const fs::path& index_file) {
  const nlohmann::json doc = formats::read_json_file(index_file);
  const nlohmann::json& weight_map = weight_map_of(doc, index_file);
  const auto total_size = metadata_number(doc, "total_size", index_file);

  // std::map: shards in file-name order, which is their number order for standard names.
  std::map<std::string, std::vector<std::string>> mapped;
  for (const auto& [name, shard] : weight_map.items()) {
    const auto file = shard.get<std::string>();
    check_shard_name(file, index_file);
    mapped[file].push_back(name);
  }
  if (mapped.empty()) {
    throw Error(ErrorCode::InvalidJson, index_file.string(), "weight_map maps no tensor");
  }

  CheckpointLayout layout;
  layout.source = index_file.string();
  layout.folder = index_file.parent_path();
  layout.index = index_file;
  layout.config = existing(layout.folder / "config.json");
  layout.total_parameters = metadata_number(doc, "total_parameters", index_file);
  for (auto& [file, names] : mapped) {
    const fs::path path = layout.folder / file;
    std::error_code ec;
    if (!fs::is_regular_file(path, ec)) {
      throw Error(ErrorCode::NotFound, index_file.string(),
                  fmt::format("shard '{}' named by weight_map (for {} tensors, e.g. '{}') does "
                              "not exist",
                              file, names.size(), names.front()));
    }
    const auto st = detail::ShardFile::open(path);
    std::vector<std::string> missing;
    for (const auto& name : names) {
      if (!st.contains(name)) missing.push_back(name);
    }
    if (!missing.empty()) {
      std::sort(missing.begin(), missing.end());
      throw Error(
          ErrorCode::MissingKey, path.string(),
          fmt::format("{} tensors that {} maps to this shard are not in it: {}", missing.size(),
                      index_file.filename().string(), quoted_list(missing)));
    }
    const std::unordered_set<std::string> wanted(names.begin(), names.end());
    CheckpointShard shard;
    shard.path = path;
    shard.file_name = file;
    shard.file_size = st.file_size();
    shard.metadata = st.metadata();
    for (const auto& info : st.tensors()) {  // data order: the order writing keeps
      if (wanted.count(info.name) == 0) {
        layout.unmapped.push_back(file + ": " + info.name);
        continue;
      }
      shard.names.push_back(info.name);
      shard.bytes += info.nbytes;
    }
    layout.shards.push_back(std::move(shard));
  }
  if (!layout.unmapped.empty()) {
    report_warning(&layout.warnings, "unmapped_tensors",
                   fmt::format("{} tensors stored in shards are not in weight_map and are "
                               "ignored, as transformers does: {}",
                               layout.unmapped.size(), quoted_list(layout.unmapped)),
                   index_file.string());
  }
  if (total_size && *total_size != layout.total_bytes()) {
    report_warning(&layout.warnings, "total_size_mismatch",
                   fmt::format("metadata.total_size is {} but the mapped tensors take {} bytes",
                               *total_size, layout.total_bytes()),
                   index_file.string());
  }
  return layout;
}

CheckpointLayout open_checkpoint(const std::string& path_or_id, const AdapterLocation& location) {
  std::error_code ec;
  const fs::path given(path_or_id);
  if (location.subfolder.empty() && fs::is_regular_file(given, ec)) {
    CheckpointLayout layout = single_file(given, path_or_id);
    // A file with transformers' standard name is a checkpoint folder's weights: its
    // tokenizer and configs travel with it. Any other file brings only config.json.
    const std::string name = given.filename().string();
    if (name == kSingle || name == kBinSingle) layout.folder = given.parent_path();
    layout.config = existing(given.parent_path() / "config.json");
    return layout;
  }
  const fs::path folder = resolve_adapter_folder(path_or_id, location);
  // transformers' preference: safetensors (sharded, then single), then PyTorch .bin.
  for (const char* index_name : {kIndex, kBinIndex}) {
    if (const auto index = existing(folder / index_name)) {
      CheckpointLayout layout = read_checkpoint_index(*index);
      layout.source = path_or_id;
      return layout;
    }
    const char* single_name = index_name == kIndex ? kSingle : kBinSingle;
    if (const auto file = existing(folder / single_name)) {
      CheckpointLayout layout = single_file(*file, path_or_id);
      layout.folder = folder;
      layout.config = existing(folder / "config.json");
      return layout;
    }
  }
  throw Error(ErrorCode::NotFound, path_or_id,
              fmt::format("{} holds none of {}, {}, {}, {}", folder.string(), kIndex, kSingle,
                          kBinIndex, kBinSingle));
}

StateDict load_checkpoint(const CheckpointLayout& layout) {
  StateDict out;
  for (const auto& shard : layout.shards) {
    const auto st = detail::ShardFile::open(shard.path);
    for (const auto& name : shard.names) out.set(name, st.tensor(name));
  }
  return out;
}

std::vector<std::pair<std::string, std::string>> tied_weight_keys(const CheckpointLayout& layout) {
  if (!layout.config) return {};
  const nlohmann::json config = formats::read_json_file(*layout.config);
  if (!config.is_object()) return {};
  const auto names = layout.names();
  const auto has = [&](std::string_view key) {
    return std::find(names.begin(), names.end(), key) != names.end();
  };
  bool tied = false;
  if (const auto it = config.find("tie_word_embeddings"); it != config.end() && it->is_boolean()) {
    tied = it->get<bool>();
  } else {
    // transformers' default is True, and save_pretrained then drops lm_head.weight.
    tied = !has("lm_head.weight");
  }
  if (!tied) return {};
  for (const char* embed : {"model.embed_tokens.weight", "transformer.wte.weight",
                            "model.decoder.embed_tokens.weight"}) {
    if (has(embed)) return {{"lm_head.weight", embed}};
  }
  return {};
}

}  // namespace peft
