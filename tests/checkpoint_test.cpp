// Base checkpoints: reading single files, sharded folders and Hub-cache snapshots; writing
// shards and the index as transformers does; and merging / unmerging shard by shard with the
// same bytes as a merge of the whole state, in bounded memory.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <map>
#include <thread>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "checkpoint/shard_plan.hpp"
#include "peft/checkpoint.hpp"
#include "peft/error.hpp"
#include "peft/merge.hpp"
#include "peft/safetensors.hpp"
#include "peft/torch_file.hpp"
#include "synthetic_model.hpp"
#include "test_support.hpp"

namespace peft {
namespace {
namespace fs = std::filesystem;
using json = nlohmann::json;

const std::vector<std::string> kAllLinear = {"q_proj",    "k_proj",  "v_proj",   "o_proj",
                                             "gate_proj", "up_proj", "down_proj"};

void write_text(const fs::path& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
}

json read_json(const fs::path& path) {
  return json::parse(testing::read_text(path));
}

// `state` saved as exactly `shards` shards of consecutive tensors of about equal size, with
// the index transformers would write.
void write_shards(const fs::path& dir, const StateDict& state, std::size_t shards) {
  fs::create_directories(dir);
  const std::uint64_t per_shard = state.total_bytes() / shards;
  std::vector<StateDict> parts(shards);
  std::vector<std::pair<std::string, std::string>> weight_map;
  std::uint64_t done = 0;
  for (const auto& [key, tensor] : state) {
    const std::size_t s = std::min<std::size_t>(shards - 1, done / per_shard);
    parts[s].set(key, tensor);
    weight_map.emplace_back(key, shard_file_name(s, shards));
    done += tensor.nbytes();
  }
  for (std::size_t s = 0; s < shards; ++s) {
    save_safetensors(parts[s], dir / shard_file_name(s, shards), Metadata{{"format", "pt"}});
  }
  write_text(dir / "model.safetensors.index.json",
             checkpoint_index_json(weight_map, state.total_bytes()));
}

// A synthetic model saved in `shards` shards (plus config.json).
StateDict write_sharded(const fs::path& dir, const testing::SyntheticModel& model, int shards) {
  StateDict state = testing::synthetic_state(model);
  write_shards(dir, state, static_cast<std::size_t>(shards));
  testing::write_model_config(dir, !model.lm_head);
  return state;
}

void expect_same_bytes(const StateDict& ours, const StateDict& expected) {
  ASSERT_EQ(ours.size(), expected.size());
  for (const auto& [key, want] : expected) {
    const Tensor* got = ours.find(key);
    ASSERT_NE(got, nullptr) << key;
    EXPECT_TRUE(got->equals(want)) << key << " differs";
  }
}

std::vector<std::string> shard_files(const fs::path& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) {
    const auto name = e.path().filename().string();
    if (name.ends_with(".safetensors")) out.push_back(name);
  }
  std::sort(out.begin(), out.end());
  return out;
}

// --- sizes, plans, names ---------------------------------------------------------------

TEST(ShardSize, ParsesAsHuggingfaceHub) {
  EXPECT_EQ(parse_shard_size("5GB"), 5'000'000'000u);
  EXPECT_EQ(parse_shard_size("500MB"), 500'000'000u);
  EXPECT_EQ(parse_shard_size(" 10kb "), 10'000u);
  EXPECT_EQ(parse_shard_size("1.5GB"), 1'500'000'000u);
  EXPECT_EQ(parse_shard_size("2TB"), 2'000'000'000'000u);
  EXPECT_EQ(parse_shard_size("0.0015 KB"), 1u);  // int(1.5) truncates
  EXPECT_EQ(parse_shard_size("123456"), 123456u);
  // transformers' binary units.
  EXPECT_EQ(parse_shard_size("2KiB"), 2048u);
  EXPECT_EQ(parse_shard_size("5GiB"), 5ULL << 30);
  EXPECT_EQ(parse_shard_size("1.5 mib"), 1'572'864u);
  for (const char* bad : {"", "GB", "5XB", "5XiB", "abcMB", "0MB", "-1GB", "1e400GB", "KiB"}) {
    EXPECT_PEFT_ERROR(parse_shard_size(bad), ErrorCode::InvalidArgument, "max_shard_size");
  }
}

TEST(ShardPlan, GreedyInStateDictOrder) {
  using Plan = std::vector<std::vector<std::size_t>>;
  // The docstring example of transformers: [6, 6, 2, 6, 2, 2] with a 10 limit.
  EXPECT_EQ(plan_shards({6, 6, 2, 6, 2, 2}, 10), (Plan{{0}, {1, 2}, {3, 4, 5}}));
  // A tensor over the limit gets its own shard, placed before the one being filled.
  EXPECT_EQ(plan_shards({3, 12, 3, 3, 5}, 10), (Plan{{1}, {0, 2, 3}, {4}}));
  EXPECT_EQ(plan_shards({10, 0, 1}, 10), (Plan{{0, 1}, {2}}));
  EXPECT_EQ(plan_shards({}, 10), Plan{});
}

TEST(ShardNames, AndIndexAsTransformersWritesThem) {
  EXPECT_EQ(shard_file_name(0, 1), "model.safetensors");
  EXPECT_EQ(shard_file_name(0, 4), "model-00001-of-00004.safetensors");
  EXPECT_EQ(shard_file_name(11, 12), "model-00012-of-00012.safetensors");
  const std::string text = checkpoint_index_json({{"b.weight", "model-00002-of-00002.safetensors"},
                                                  {"a.weight", "model-00001-of-00002.safetensors"}},
                                                 1234);
  EXPECT_EQ(text,
            "{\n  \"metadata\": {\n    \"total_size\": 1234\n  },\n  \"weight_map\": {\n"
            "    \"a.weight\": \"model-00001-of-00002.safetensors\",\n"
            "    \"b.weight\": \"model-00002-of-00002.safetensors\"\n  }\n}\n");
  EXPECT_NE(checkpoint_index_json({}, 1, 7).find("\"total_parameters\": 7"), std::string::npos);
  EXPECT_TRUE(is_weight_file("model-00001-of-00002.safetensors"));
  EXPECT_TRUE(is_weight_file("pytorch_model.bin.index.json"));
  EXPECT_FALSE(is_weight_file("tokenizer.json"));
  EXPECT_FALSE(is_weight_file("tokenizer.model"));
}

// --- reading --------------------------------------------------------------------------

TEST(CheckpointIndex, ReadsEveryShardInOrder) {
  testing::TempDir dir;
  const StateDict state = write_sharded(dir.path(), {.layers = 4}, 4);
  const CheckpointLayout layout = open_checkpoint(dir.path().string());
  ASSERT_TRUE(layout.index.has_value());
  EXPECT_EQ(layout.shards.size(), 4u);
  EXPECT_EQ(layout.shards[0].file_name, "model-00001-of-00004.safetensors");
  EXPECT_EQ(layout.tensor_count(), state.size());
  EXPECT_EQ(layout.total_bytes(), state.total_bytes());
  EXPECT_TRUE(layout.unmapped.empty());
  EXPECT_TRUE(layout.warnings.empty());
  ASSERT_TRUE(layout.config.has_value());
  expect_same_bytes(load_checkpoint(layout), state);
  const json index = read_json(dir / "model.safetensors.index.json");
  EXPECT_EQ(index["metadata"]["total_size"].get<std::uint64_t>(), state.total_bytes());
}

TEST(CheckpointIndex, MissingShardIsNamed) {
  testing::TempDir dir;
  write_sharded(dir.path(), {.layers = 4}, 4);
  fs::remove(dir / "model-00003-of-00004.safetensors");
  EXPECT_PEFT_ERROR(open_checkpoint(dir.path().string()), ErrorCode::NotFound,
                    "shard 'model-00003-of-00004.safetensors'");
}

TEST(CheckpointIndex, NamesMissingInTheirShardAreListed) {
  testing::TempDir dir;
  write_sharded(dir.path(), {.layers = 4}, 4);
  json index = read_json(dir / "model.safetensors.index.json");
  index["weight_map"]["model.ghost.weight"] = "model-00002-of-00004.safetensors";
  write_text(dir / "model.safetensors.index.json", index.dump(2));
  EXPECT_PEFT_ERROR(open_checkpoint(dir.path().string()), ErrorCode::MissingKey,
                    "'model.ghost.weight'");
}

TEST(CheckpointIndex, BrokenIndexIsInvalidJson) {
  testing::TempDir dir;
  write_sharded(dir.path(), {.layers = 2}, 2);
  const fs::path index = dir / "model.safetensors.index.json";
  const json good = read_json(index);
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"{\"weight_map\": {", "not valid JSON"},
      {"[]", "JSON object"},
      {"{\"metadata\": {}}", "weight_map"},
      {"{\"weight_map\": {\"a\": 3}}", "weight_map['a']"},
      {"{\"weight_map\": {}}", "maps no tensor"},
      {"{\"weight_map\": {\"a\": \"../model.safetensors\"}}", "a file name next to the index"},
      {"{\"metadata\": {\"total_size\": \"12\"}, \"weight_map\": {\"a\": \"x\"}}", "total_size"},
  };
  for (const auto& [text, fragment] : cases) {
    write_text(index, text);
    EXPECT_PEFT_ERROR(open_checkpoint(dir.path().string()), ErrorCode::InvalidJson, fragment);
  }
  write_text(index, good.dump());
  EXPECT_NO_THROW(open_checkpoint(dir.path().string()));
}

TEST(CheckpointIndex, UnmappedTensorsAreIgnoredAndReported) {
  testing::TempDir dir;
  write_sharded(dir.path(), {.layers = 2}, 2);
  json index = read_json(dir / "model.safetensors.index.json");
  index["weight_map"].erase("model.norm.weight");
  index["metadata"]["total_size"] = 1;  // also wrong now
  write_text(dir / "model.safetensors.index.json", index.dump(2));
  const CheckpointLayout layout = open_checkpoint(dir.path().string());
  ASSERT_EQ(layout.unmapped.size(), 1u);
  EXPECT_NE(layout.unmapped[0].find("model.norm.weight"), std::string::npos);
  EXPECT_EQ(layout.warnings.size(), 2u);
  EXPECT_FALSE(load_checkpoint(layout).contains("model.norm.weight"));
}

TEST(OpenCheckpoint, FileFolderHubCacheAndNotFound) {
  testing::TempDir dir;
  const StateDict state = testing::synthetic_state({});
  fs::create_directories(dir / "single");
  save_safetensors(state, dir / "single" / "model.safetensors");
  const auto from_file = open_checkpoint((dir / "single" / "model.safetensors").string());
  EXPECT_FALSE(from_file.index.has_value());
  // transformers' file name: the file stands for its folder (whose other files are copied).
  EXPECT_EQ(from_file.folder, dir / "single");
  fs::copy_file(dir / "single" / "model.safetensors", dir / "single" / "weights.safetensors");
  testing::write_model_config(dir / "single", false);
  const auto from_other_file = open_checkpoint((dir / "single" / "weights.safetensors").string());
  EXPECT_TRUE(from_other_file.folder.empty());
  EXPECT_EQ(from_other_file.config, dir / "single" / "config.json");
  const auto from_folder = open_checkpoint((dir / "single").string());
  EXPECT_EQ(from_folder.folder, dir / "single");
  expect_same_bytes(load_checkpoint(from_folder), state);

  // A Hub cache snapshot: refs/main names the commit, files sit under snapshots/<commit>.
  const std::string commit(40, 'a');
  const fs::path repo = dir / "hub" / "models--org--tiny";
  fs::create_directories(repo / "refs");
  write_text(repo / "refs" / "main", commit);
  write_sharded(repo / "snapshots" / commit, {}, 2);
  AdapterLocation location;
  location.cache_dir = dir / "hub";
  const auto from_hub = open_checkpoint("org/tiny", location);
  EXPECT_EQ(from_hub.shards.size(), 2u);
  EXPECT_EQ(from_hub.source, "org/tiny");

  EXPECT_PEFT_ERROR(open_checkpoint((dir / "nowhere").string(), location), ErrorCode::NotFound,
                    "nowhere");
  fs::create_directories(dir / "empty");
  EXPECT_PEFT_ERROR(open_checkpoint((dir / "empty").string()), ErrorCode::NotFound,
                    "model.safetensors");
  EXPECT_PEFT_ERROR(open_checkpoint((dir / "empty").string()), ErrorCode::NotFound,
                    "pytorch_model.bin.index.json");
}

// `state` as PyTorch .bin shards with pytorch_model.bin.index.json (or one pytorch_model.bin),
// split like write_shards.
void write_bin_shards(const fs::path& dir, const StateDict& state, std::size_t shards) {
  const fs::path staging = dir.string() + "-staging";
  write_shards(staging, state, shards);
  fs::create_directories(dir);
  std::vector<std::pair<std::string, std::string>> weight_map;
  for (std::size_t s = 0; s < shards; ++s) {
    const auto part = SafetensorsFile::open(staging / shard_file_name(s, shards)).state_dict();
    std::string name = shards == 1 ? std::string("pytorch_model.bin")
                                   : fmt::format("pytorch_model-{:05}-of-{:05}.bin", s + 1, shards);
    save_torch_file(part, dir / name);
    for (const auto& [key, tensor] : part) weight_map.emplace_back(key, name);
  }
  if (shards > 1) {
    write_text(dir / "pytorch_model.bin.index.json",
               checkpoint_index_json(weight_map, state.total_bytes()));
  }
  fs::remove_all(staging);
}

TEST(OpenCheckpoint, PyTorchBinFolders) {
  testing::TempDir dir;
  const StateDict state = testing::synthetic_state({});
  for (std::size_t shards : {1u, 3u}) {
    const fs::path folder = dir / fmt::format("bin{}", shards);
    write_bin_shards(folder, state, shards);
    const auto layout = open_checkpoint(folder.string());
    EXPECT_EQ(layout.shards.size(), shards);
    EXPECT_EQ(layout.index.has_value(), shards > 1);
    EXPECT_EQ(layout.folder, folder);
    expect_same_bytes(load_checkpoint(layout), state);
  }
  // safetensors wins when a folder has both, as in transformers.
  write_shards(dir / "bin1", state, 2);
  EXPECT_EQ(open_checkpoint((dir / "bin1").string()).shards[0].file_name, shard_file_name(0, 2));
  // A damaged .bin shard is named.
  const fs::path broken = dir / "bin3" / "pytorch_model-00002-of-00003.bin";
  const auto bytes = testing::read_bytes(broken);
  std::ofstream(broken, std::ios::binary | std::ios::trunc)
      .write(reinterpret_cast<const char*>(bytes.data()),
             static_cast<std::streamsize>(bytes.size() / 2));
  EXPECT_PEFT_ERROR(open_checkpoint((dir / "bin3").string()), ErrorCode::InvalidZip,
                    "pytorch_model-00002-of-00003.bin");
}

// --- merging --------------------------------------------------------------------------

struct Sharded {
  explicit Sharded(const testing::SyntheticModel& model, int shards)
      : state(write_sharded(dir / "base", model, shards)),
        lora(testing::synthetic_lora(state, kAllLinear, 4, 8, model.seed + 100)) {}
  testing::TempDir dir;
  StateDict state;
  MergeAdapter lora;
};

std::unique_ptr<Sharded> sharded_with_lora(const testing::SyntheticModel& model, int shards) {
  return std::make_unique<Sharded>(model, shards);
}

TEST(MergeCheckpoint, SameBytesAsMergingTheWholeState) {
  auto s = sharded_with_lora({.layers = 4, .hidden = 32, .intermediate = 48}, 4);
  const StateDict expected = merge_adapters(s->state, {s->lora});
  for (unsigned threads : {1u, 2u, 3u}) {
    const fs::path out = s->dir / fmt::format("out{}", threads);
    CheckpointWriteOptions write;
    write.threads = threads;
    const auto result = merge_checkpoint((s->dir / "base").string(), {s->lora}, {}, out, write);
    EXPECT_EQ(result.tensors, s->state.size());
    EXPECT_EQ(result.changed, 4u * 7u);
    // The base's shard boundaries, standard names, an index, config.json copied.
    EXPECT_EQ(shard_files(out), shard_files(s->dir / "base"));
    const json index = read_json(out / "model.safetensors.index.json");
    EXPECT_EQ(index["weight_map"],
              read_json(s->dir / "base" / "model.safetensors.index.json")["weight_map"]);
    EXPECT_EQ(index["metadata"]["total_size"].get<std::uint64_t>(), s->state.total_bytes());
    EXPECT_TRUE(fs::exists(out / "config.json"));
    const auto layout = open_checkpoint(out.string());
    expect_same_bytes(load_checkpoint(layout), expected);
    for (const auto& shard : layout.shards) {
      const auto file = SafetensorsFile::open(shard.path);
      ASSERT_TRUE(file.metadata().has_value());
      EXPECT_EQ(file.metadata()->at("format"), "pt");
      // Written as the reference writer would have written the same tensors.
      const auto bytes = testing::read_bytes(shard.path);
      EXPECT_EQ(bytes, serialize_safetensors(file.state_dict(), file.metadata()));
    }
  }
}

TEST(MergeCheckpoint, ReshardsWithTransformersAlgorithm) {
  auto s = sharded_with_lora({.layers = 3, .hidden = 32, .intermediate = 64}, 2);
  const std::uint64_t max = 9000;
  CheckpointWriteOptions write;
  write.max_shard_size = max;
  const fs::path out = s->dir / "out";
  merge_checkpoint((s->dir / "base").string(), {s->lora}, {}, out, write);
  // State-dict order of a sharded checkpoint: shard by shard, each in file order.
  const auto base = open_checkpoint((s->dir / "base").string());
  const auto names = base.names();
  std::vector<std::uint64_t> sizes;
  for (const auto& name : names) sizes.push_back(s->state.at(name).nbytes());
  const auto plan = plan_shards(sizes, max);
  ASSERT_GT(plan.size(), 2u);
  const json index = read_json(out / "model.safetensors.index.json");
  ASSERT_EQ(index["weight_map"].size(), names.size());
  for (std::size_t g = 0; g < plan.size(); ++g) {
    for (std::size_t i : plan[g]) {
      EXPECT_EQ(index["weight_map"][names[i]], shard_file_name(g, plan.size())) << names[i];
    }
  }
  EXPECT_EQ(shard_files(out).size(), plan.size());
  expect_same_bytes(load_checkpoint(open_checkpoint(out.string())),
                    merge_adapters(s->state, {s->lora}));

  // Everything fits in one shard: a single model.safetensors and no index.
  write.max_shard_size = parse_shard_size("5GB");
  write.force = true;
  merge_checkpoint((s->dir / "base").string(), {s->lora}, {}, out, write);
  EXPECT_EQ(shard_files(out), std::vector<std::string>{"model.safetensors"});
  EXPECT_FALSE(fs::exists(out / "model.safetensors.index.json"));  // stale index removed
}

TEST(MergeCheckpoint, CastsBeforeMergingAndUpdatesConfig) {
  auto s = sharded_with_lora({.layers = 2, .hidden = 16, .intermediate = 32}, 2);
  StateDict cast;
  for (const auto& [key, t] : s->state) {
    cast.set(key, is_floating(t.dtype()) ? t.to(DType::F32) : t);
  }
  CheckpointWriteOptions write;
  write.dtype = DType::F32;
  const fs::path out = s->dir / "out";
  merge_checkpoint((s->dir / "base").string(), {s->lora}, {}, out, write);
  const StateDict merged = load_checkpoint(open_checkpoint(out.string()));
  expect_same_bytes(merged, merge_adapters(cast, {s->lora}));
  EXPECT_EQ(merged.at("model.position_ids").dtype(), DType::I64);
  EXPECT_EQ(read_json(out / "config.json")["torch_dtype"], "float32");
}

TEST(MergeCheckpoint, CopiesNonWeightFilesOnly) {
  auto s = sharded_with_lora({}, 2);
  const fs::path base = s->dir / "base";
  write_text(base / "tokenizer.json", "{\"version\": \"1.0\"}");
  write_text(base / "tokenizer.model", "sentencepiece");
  write_text(base / "generation_config.json", "{}");
  write_text(base / ".gitattributes", "*.safetensors filter=lfs");
  write_text(base / "pytorch_model.bin", "not copied");
  fs::create_directories(base / "original");
  const fs::path out = s->dir / "out";
  const auto result = merge_checkpoint(base.string(), {s->lora}, {}, out);
  EXPECT_EQ(result.copied, (std::vector<std::string>{"config.json", "generation_config.json",
                                                     "tokenizer.json", "tokenizer.model"}));
  EXPECT_EQ(testing::read_text(out / "tokenizer.model"), "sentencepiece");
  EXPECT_EQ(testing::read_text(out / "config.json"), testing::read_text(base / "config.json"));
  EXPECT_FALSE(fs::exists(out / "pytorch_model.bin"));
  EXPECT_FALSE(fs::exists(out / ".gitattributes"));
  EXPECT_FALSE(fs::exists(out / "original"));
}

TEST(MergeCheckpoint, PyTorchBinBaseGivesTheSameFilesAsItsSafetensors) {
  auto s = sharded_with_lora({.layers = 3, .hidden = 32, .intermediate = 48}, 2);
  const fs::path bin_base = s->dir / "bin-base";
  write_bin_shards(bin_base, s->state, 2);
  fs::copy_file(s->dir / "base" / "config.json", bin_base / "config.json");
  merge_checkpoint((s->dir / "base").string(), {s->lora}, {}, s->dir / "from-st");
  const auto result = merge_checkpoint(bin_base.string(), {s->lora}, {}, s->dir / "from-bin");
  EXPECT_EQ(result.changed, 3u * 7u);
  // Output is safetensors either way; the .bin files and their index are not copied.
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(s->dir / "from-bin")) {
    names.push_back(e.path().filename().string());
  }
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{"config.json", "model-00001-of-00002.safetensors",
                                             "model-00002-of-00002.safetensors",
                                             "model.safetensors.index.json"}));
  for (const auto& name : names) {
    EXPECT_EQ(testing::read_bytes(s->dir / "from-bin" / name),
              testing::read_bytes(s->dir / "from-st" / name))
        << name;
  }
}

TEST(MergeCheckpoint, SingleFileBaseBringsItsConfig) {
  auto s = sharded_with_lora({}, 1);
  const fs::path base = s->dir / "base";
  write_text(base / "tokenizer.json", "{}");
  // transformers' name: the folder's other files come along.
  auto result =
      merge_checkpoint((base / "model.safetensors").string(), {s->lora}, {}, s->dir / "standard");
  EXPECT_EQ(result.copied, (std::vector<std::string>{"config.json", "tokenizer.json"}));
  // Any other name: only the model's config.json.
  fs::rename(base / "model.safetensors", base / "finetuned.safetensors");
  result =
      merge_checkpoint((base / "finetuned.safetensors").string(), {s->lora}, {}, s->dir / "other");
  EXPECT_EQ(result.copied, std::vector<std::string>{"config.json"});
  EXPECT_EQ(testing::read_text(s->dir / "other" / "config.json"),
            testing::read_text(base / "config.json"));
  EXPECT_TRUE(fs::exists(s->dir / "other" / "model.safetensors"));
}

// The peft-merge case `name` merged as a streamed checkpoint twice: with the adapter as
// saved, and without its `<...>.<part>` tensors for each part of `frozen` (which peftcpp
// then draws as PEFT does). Both must write the same bytes.
void expect_redrawn_merge_matches(const std::string& name,
                                  std::initializer_list<std::string_view> frozen) {
  const fs::path fixture = testing::peft_merge_root() / name;
  if (!fs::exists(fixture / "adapter" / "adapter_model.safetensors")) {
    GTEST_SKIP() << "no " << name << " case under " << testing::peft_merge_root();
  }
  const PeftConfig config = PeftConfig::load(fixture / "adapter");
  const StateDict saved =
      SafetensorsFile::open(fixture / "adapter" / "adapter_model.safetensors").state_dict();
  MergeAdapter stripped{"default", config, {}, {}};
  for (const auto& [key, tensor] : saved) {
    const bool drop = std::any_of(frozen.begin(), frozen.end(), [&](std::string_view part) {
      return key.ends_with("." + std::string(part));
    });
    if (!drop) stripped.weights.set(key, tensor);
  }
  ASSERT_LT(stripped.weights.size(), saved.size());
  testing::TempDir dir;
  const std::string base = (fixture / "base_model.safetensors").string();
  merge_checkpoint(base, {MergeAdapter{"default", config, saved, {}}}, {}, dir / "saved");
  merge_checkpoint(base, {stripped}, {}, dir / "drawn");
  EXPECT_EQ(testing::read_bytes(dir / "drawn" / "model.safetensors"),
            testing::read_bytes(dir / "saved" / "model.safetensors"));
}

TEST(MergeCheckpoint, VeraWithoutSavedProjections) {
  expect_redrawn_merge_matches("vera", {"vera_A", "vera_B"});
}

TEST(MergeCheckpoint, RandLoraWithoutSavedProjections) {
  expect_redrawn_merge_matches("randlora", {"randlora_A", "randlora_B"});
}

TEST(MergeCheckpoint, RefusesToOverwrite) {
  auto s = sharded_with_lora({}, 2);
  const fs::path base = s->dir / "base";
  const fs::path out = s->dir / "out";
  fs::create_directories(out);
  write_text(out / "notes.txt", "mine");
  write_text(out / "model-00001-of-00009.safetensors", "stale");
  EXPECT_PEFT_ERROR(merge_checkpoint(base.string(), {s->lora}, {}, out), ErrorCode::InvalidArgument,
                    "not empty");
  CheckpointWriteOptions write;
  write.force = true;
  merge_checkpoint(base.string(), {s->lora}, {}, out, write);
  EXPECT_TRUE(fs::exists(out / "notes.txt"));
  EXPECT_FALSE(fs::exists(out / "model-00001-of-00009.safetensors"));
  EXPECT_PEFT_ERROR(merge_checkpoint(base.string(), {s->lora}, {}, base, write),
                    ErrorCode::InvalidArgument, "base checkpoint");
  write_text(s->dir / "file", "x");
  EXPECT_PEFT_ERROR(merge_checkpoint(base.string(), {s->lora}, {}, s->dir / "file", write),
                    ErrorCode::InvalidArgument, "not a folder");
}

TEST(MergeCheckpoint, MissingBaseTensorsAreNamedBeforeWriting) {
  auto s = sharded_with_lora({}, 2);
  StateDict other = testing::synthetic_state({.layers = 3});
  const MergeAdapter lora = testing::synthetic_lora(other, {"q_proj"}, 2, 4, 9);
  const fs::path out = s->dir / "out";
  EXPECT_PEFT_ERROR(merge_checkpoint((s->dir / "base").string(), {lora}, {}, out),
                    ErrorCode::MissingKey, "'model.layers.2.self_attn.q_proj.weight'");
  EXPECT_FALSE(fs::exists(out));
}

TEST(MergeCheckpoint, TiedEmbeddingFromConfig) {
  // lm_head.weight not stored, tie_word_embeddings true: a LoRA on lm_head changes the
  // input embedding, as in PEFT.
  auto s = sharded_with_lora({.lm_head = false}, 2);
  StateDict with_head = testing::synthetic_state({.lm_head = true});
  const MergeAdapter lora = testing::synthetic_lora(with_head, {"lm_head", "q_proj"}, 2, 4, 5);
  MergeOptions tied;
  tied.tied_keys = {{"lm_head.weight", "model.embed_tokens.weight"}};
  const fs::path out = s->dir / "out";
  merge_checkpoint((s->dir / "base").string(), {lora}, {}, out);
  const StateDict merged = load_checkpoint(open_checkpoint(out.string()));
  expect_same_bytes(merged, merge_adapters(s->state, {lora}, tied));
  EXPECT_FALSE(
      merged.at("model.embed_tokens.weight").equals(s->state.at("model.embed_tokens.weight")));
  EXPECT_EQ(tied_weight_keys(open_checkpoint((s->dir / "base").string())), tied.tied_keys);
}

TEST(MergeCheckpoint, ReportsProgress) {
  auto s = sharded_with_lora({.layers = 3}, 3);
  std::vector<CheckpointProgress> seen;
  CheckpointWriteOptions write;
  write.threads = 2;
  write.progress = [&](const CheckpointProgress& p) { seen.push_back(p); };
  merge_checkpoint((s->dir / "base").string(), {s->lora}, {}, s->dir / "out", write);
  ASSERT_EQ(seen.size(), s->state.size());
  for (std::size_t i = 0; i < seen.size(); ++i) {
    EXPECT_EQ(seen[i].tensors_done, i + 1);
    EXPECT_EQ(seen[i].tensors_total, s->state.size());
    EXPECT_EQ(seen[i].bytes_total, s->state.total_bytes());
    if (i) EXPECT_GT(seen[i].bytes_done, seen[i - 1].bytes_done);
  }
  EXPECT_EQ(seen.back().bytes_done, s->state.total_bytes());
}

TEST(UnmergeCheckpoint, SameBytesAsUnmergingTheWholeState) {
  auto s = sharded_with_lora({.layers = 2, .hidden = 32, .intermediate = 48}, 3);
  const fs::path merged = s->dir / "merged";
  merge_checkpoint((s->dir / "base").string(), {s->lora}, {}, merged);
  const fs::path restored = s->dir / "restored";
  CheckpointWriteOptions write;
  write.threads = 2;
  unmerge_checkpoint(merged.string(), {s->lora}, {}, restored, write);
  const StateDict merged_state = load_checkpoint(open_checkpoint(merged.string()));
  expect_same_bytes(load_checkpoint(open_checkpoint(restored.string())),
                    unmerge_adapters(merged_state, {s->lora}));
}

TEST(UnmergeCheckpoint, RefusesWhatCannotBeRestored) {
  auto s = sharded_with_lora({}, 2);
  MergeAdapter dora = s->lora;
  dora.config.mutable_json()["use_dora"] = true;
  for (const auto& [key, t] : s->lora.weights) {
    if (!key.ends_with(".lora_B.weight")) continue;
    const std::string module = key.substr(0, key.size() - std::string(".lora_B.weight").size());
    std::vector<float> ones(t.shape()[0], 1.0f);
    dora.weights.set(module + ".lora_magnitude_vector",
                     Tensor::from_floats(DType::F32, {t.shape()[0]}, ones));
  }
  EXPECT_PEFT_ERROR(unmerge_checkpoint((s->dir / "base").string(), {dora}, {}, s->dir / "out"),
                    ErrorCode::Unsupported, "DoRA");
  // Nothing was committed: the output folder the refused unmerge created is gone again.
  EXPECT_FALSE(fs::exists(s->dir / "out"));
}

// --- memory ---------------------------------------------------------------------------

std::uint64_t status_kb(pid_t pid, const std::string& field) {
  std::ifstream in(fmt::format("/proc/{}/status", pid));
  std::string line;
  while (std::getline(in, line)) {
    if (line.starts_with(field + ":")) return std::stoull(line.substr(field.size() + 1));
  }
  return 0;
}

struct MemoryRun {
  int exit_code = -1;
  std::uint64_t peak_anon = 0;  // bytes, sampled every millisecond
  std::uint64_t peak_rss = 0;   // bytes, VmHWM: mapped file pages included
};

// Runs the CLI and samples its RssAnon until it exits.
MemoryRun run_sampled(const std::vector<std::string>& argv) {
  // posix_spawn returns once the child runs the new program, so no sample sees the pages
  // a forked child shares with this test process.
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
  pid_t pid = 0;
  const int spawned = ::posix_spawn(&pid, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  MemoryRun run;
  if (spawned != 0) return run;
  int status = 0;
  while (true) {
    const pid_t done = ::waitpid(pid, &status, WNOHANG);
    if (done == pid) break;
    run.peak_anon = std::max(run.peak_anon, status_kb(pid, "RssAnon") * 1024);
    run.peak_rss = std::max(run.peak_rss, status_kb(pid, "VmHWM") * 1024);
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  run.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return run;
}

TEST(MergeCheckpoint, PeakAnonymousMemoryStaysNearOneShard) {
#if defined(__SANITIZE_ADDRESS__)
  // AddressSanitizer's shadow memory and quarantine are anonymous memory too: the
  // measurement only means something in a plain build (which CI runs first).
  GTEST_SKIP() << "peak anonymous memory is not meaningful under AddressSanitizer";
#endif
  // 4 shards of ~20 MB BF16 (0.5 MB per attention weight, 1 MB per MLP weight).
  testing::TempDir dir;
  const testing::SyntheticModel model{
      .layers = 16, .hidden = 512, .intermediate = 1024, .vocab = 1024};
  StateDict state = write_sharded(dir / "base", model, 4);
  const MergeAdapter lora = testing::synthetic_lora(state, kAllLinear, 16, 32, 3);
  testing::save_adapter(lora, dir / "adapter");
  state.clear();

  const auto layout = open_checkpoint((dir / "base").string());
  std::uint64_t largest = 0;
  for (const auto& shard : layout.shards) largest = std::max(largest, shard.file_size);
  const std::uint64_t adapter = lora.weights.total_bytes();
  for (const char* threads : {"1", "2"}) {
    const MemoryRun run =
        run_sampled({testing::peftcpp_binary().string(), "merge", "--base", (dir / "base").string(),
                     "--adapter", (dir / "adapter").string(), "--out", (dir / "out").string(),
                     "--force", "--threads", threads});
    ASSERT_EQ(run.exit_code, 0);
    std::printf(
        "[ memory ] threads %s: peak RssAnon %.1f MB, peak RSS %.1f MB; largest shard %.1f MB, "
        "adapter %.1f MB\n",
        threads, static_cast<double>(run.peak_anon) / 1e6, static_cast<double>(run.peak_rss) / 1e6,
        static_cast<double>(largest) / 1e6, static_cast<double>(adapter) / 1e6);
    EXPECT_GT(run.peak_anon, 0u);
    EXPECT_LT(static_cast<double>(run.peak_anon),
              1.5 * static_cast<double>(largest) + static_cast<double>(adapter));
  }
  // And the result is what merging everything at once gives.
  expect_same_bytes(load_checkpoint(open_checkpoint((dir / "out").string())),
                    merge_adapters(load_checkpoint(layout), {lora}));
}

}  // namespace
}  // namespace peft
