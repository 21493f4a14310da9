// Adapter folders end to end against real PEFT output: save_pretrained writes the files
// PEFT wrote (byte-identical weights, equal configs), from_pretrained reproduces PEFT's
// loaded model, load_peft_weights resolves folders and the Hugging Face cache.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <set>

#include <fmt/format.h>

#include "peft/adapter_io.hpp"
#include "peft/convert.hpp"
#include "peft/hub_cache.hpp"
#include "peft/safetensors.hpp"
#include "peft_ref_case.hpp"
#include "test_support.hpp"

namespace peft {
namespace {
namespace fs = std::filesystem;
using testing::PeftRefCase;

// Configs are equal when every field is, target_modules & co. compared as sets (PEFT
// writes them from Python sets, in hash order).
void expect_same_config(const fs::path& mine, const fs::path& theirs) {
  auto a = nlohmann::json::parse(testing::read_text(mine));
  auto b = nlohmann::json::parse(testing::read_text(theirs));
  for (const char* set_field : {"target_modules", "exclude_modules", "feedforward_modules"}) {
    for (auto* j : {&a, &b}) {
      if (j->contains(set_field) && (*j)[set_field].is_array()) {
        auto values = (*j)[set_field].get<std::vector<std::string>>();
        std::sort(values.begin(), values.end());
        (*j)[set_field] = values;
      }
    }
  }
  EXPECT_EQ(a, b) << mine << " vs " << theirs;
}

// Byte-identical, except values PEFT computes in floating point (VB-LoRA top-k softmax,
// prompt-encoder outputs): there the header must be identical and the values within
// |a-b| <= 1e-6 + 1e-5·|b| (float32 results of different libm/BLAS; see the conformance test).
void expect_same_weights(const fs::path& mine, const fs::path& theirs) {
  const auto a = testing::read_bytes(mine), b = testing::read_bytes(theirs);
  if (a == b) return;
  const auto fa = SafetensorsFile::open(mine), fb = SafetensorsFile::open(theirs);
  ASSERT_EQ(fa.header_length(), fb.header_length()) << mine;
  ASSERT_TRUE(
      std::equal(a.begin(), a.begin() + 8 + static_cast<long>(fa.header_length()), b.begin()))
      << mine;
  for (const auto& info : fb.tensors()) {
    const bool computed =
        info.name.find("_topk_weights") != std::string::npos || info.name == "prompt_embeddings";
    const Tensor x = fa.tensor(info.name), y = fb.tensor(info.name);
    if (x.equals(y)) continue;
    ASSERT_TRUE(computed) << info.name << " differs in " << mine;
    const auto xs = x.to_doubles(), ys = y.to_doubles();
    for (std::size_t i = 0; i < xs.size(); ++i) {
      ASSERT_LE(std::fabs(xs[i] - ys[i]), 1e-6 + 1e-5 * std::fabs(ys[i]))
          << info.name << "[" << i << "]";
    }
  }
}

std::vector<std::string> files_below(const fs::path& root) {
  std::vector<std::string> out;
  for (const auto& entry : fs::recursive_directory_iterator(root)) {
    if (entry.is_regular_file()) out.push_back(fs::relative(entry.path(), root).string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

SavePretrainedOptions save_options(const PeftRefCase& c) {
  SavePretrainedOptions options;
  const auto& kwargs = c.json()["save_pretrained"]["kwargs"];
  if (kwargs.contains("selected_adapters")) {
    options.selected_adapters = PeftRefCase::strings(kwargs["selected_adapters"]);
    options.select_none = options.selected_adapters.empty();
  }
  const auto& embed = kwargs["save_embedding_layers"];
  if (embed.is_boolean()) {
    options.save_embedding_layers =
        embed.get<bool>() ? SaveEmbeddingLayers::Yes : SaveEmbeddingLayers::No;
  }
  const std::string cls = c.json()["base_model"]["class"].get<std::string>();
  options.base_model_class = cls.substr(cls.rfind('.') + 1);
  options.base_model_library = cls.substr(0, cls.rfind('.'));
  const auto& transformers = c.json()["base_model"]["transformers_config"];
  if (transformers.is_object()) {
    options.is_transformers_model = true;
    options.base_model_name_or_path = transformers.value("_name_or_path", "");
  }
  if (c.json()["peft_model_class"] == "PeftModelForCausalLM")
    options.task_type_pipeline = "text-generation";
  return options;
}

// PiSSA conversion on save changes the written adapter: not done yet (issue 5 note).
bool converts_on_save(const PeftRefCase& c) {
  return c.json()["save_pretrained"]["kwargs"].contains("path_initial_model_for_weight_conversion");
}

class AdapterFolders : public ::testing::TestWithParam<std::string> {};

TEST_P(AdapterFolders, SavePretrainedWritesWhatPeftWrote) {
  const PeftRefCase c(testing::peft_ref_root() / GetParam());
  PeftModel model = c.trained_model();
  testing::TempDir out;
  SavePretrainedOptions options = save_options(c);
  testing::TempDir initial_copy;  // the conversion rewrites the initial adapter's config
  if (converts_on_save(c)) {
    std::string initial =
        c.json()["save_pretrained"]["kwargs"]["path_initial_model_for_weight_conversion"];
    initial.replace(initial.find("<case_dir>"), 10, c.dir().string());
    fs::copy(initial, initial_copy.path(), fs::copy_options::recursive);
    options.path_initial_model_for_weight_conversion = initial_copy.path();
    expect_same_config(initial_copy / "adapter_config.json",
                       fs::path(initial) / "adapter_config.json");
  }
  Diagnostics warnings;
  options.warnings = &warnings;
  save_pretrained(model, out.path(), options);
  // Python's default warning filter shows a repeated warning once.
  std::vector<std::string> python;
  for (const auto& w : warnings) {
    const std::string shown = "UserWarning: " + w.message;
    if (std::find(python.begin(), python.end(), shown) == python.end()) python.push_back(shown);
  }
  EXPECT_EQ(python, PeftRefCase::strings(c.json()["save_pretrained"]["warnings"]));
  auto expected =
      PeftRefCase::strings(c.json()["save_pretrained"]["files_written"]["safe_serialization=True"]);
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(files_below(out.path()), expected);
  for (const auto& file : expected) {
    const fs::path mine = out / file, theirs = c.dir() / file;
    if (!fs::exists(theirs)) continue;  // PEFT's README.md was kept in three cases only
    if (file.ends_with("adapter_model.safetensors")) {
      expect_same_weights(mine, theirs);
    } else if (file.ends_with("adapter_config.json")) {
      expect_same_config(mine, theirs);
    } else if (file == "README.md") {
      const std::string a = testing::read_text(mine), b = testing::read_text(theirs);
      EXPECT_EQ(a.substr(0, a.find("\n---\n")), b.substr(0, b.find("\n---\n"))) << "front matter";
      EXPECT_TRUE(a.ends_with("- PEFT 0.18.0"));
    }
  }
}

TEST_P(AdapterFolders, FromPretrainedReproducesPeftsModel) {
  const PeftRefCase c(testing::peft_ref_root() / GetParam());
  const auto& info = c.json()["from_pretrained"];
  if (info.contains("skipped") && !info["skipped"].is_null() && info["skipped"] != false) {
    GTEST_SKIP() << "PEFT's from_pretrained was not run for this case: " << info["skipped"].dump();
  }
  if (!info["error"].is_null()) GTEST_SKIP() << "PEFT's from_pretrained failed for this case";
  PeftModel model = c.fresh_model();
  const auto& steps = c.json()["load_steps"];
  for (const auto& step : steps) {
    FromPretrainedOptions options;
    options.location.subfolder = step["source"].get<std::string>();
    options.adapter_name =
        step["set_peft_model_state_dict_args"]["adapter_name"].get<std::string>();
    options.low_cpu_mem_usage =
        step["set_peft_model_state_dict_args"]["low_cpu_mem_usage"].get<bool>();
    const auto& pairs = step["load_peft_weights_args"]["key_mapping_pairs"];
    if (pairs.is_array()) {
      for (const auto& pair : pairs) options.key_mapping.emplace_back(pair[0], pair[1]);
    }
    from_pretrained(model, c.dir().string(), options);
  }
  const std::string expected = fs::exists(c.dir() / "from_pretrained_state.safetensors")
                                   ? "from_pretrained_state.safetensors"
                                   : "loaded_state.safetensors";
  const StateDict want = c.load_state(expected);
  for (const auto& [key, tensor] : want) {
    const Tensor* mine = model.state.find(key);
    ASSERT_NE(mine, nullptr) << key;
    const bool computed = key.find("vblora_logits") != std::string::npos;
    if (!computed) EXPECT_TRUE(mine->equals(tensor)) << key;
  }
}

INSTANTIATE_TEST_SUITE_P(Cases, AdapterFolders, ::testing::ValuesIn(testing::peft_ref_case_names()),
                         [](const auto& info) { return info.param; });

TEST(LoadPeftWeights, KeyMappingFirstMatchingPatternOnly) {
  const PeftRefCase c(testing::peft_ref_root() / "lora_key_mapping");
  LoadWeightsOptions options;
  for (const auto& pair :
       c.json()["load_steps"][0]["load_peft_weights_args"]["key_mapping_pairs"]) {
    options.key_mapping.emplace_back(pair[0], pair[1]);
  }
  const StateDict mapped = load_peft_weights(c.dir().string(), options);
  const StateDict expected =
      SafetensorsFile::open(c.dir() / "load_peft_weights_output_step0.safetensors").state_dict();
  ASSERT_EQ(mapped.size(), expected.size());
  for (const auto& [key, tensor] : expected) {
    ASSERT_TRUE(mapped.contains(key)) << key;
    EXPECT_TRUE(mapped.at(key).equals(tensor)) << key;
  }
}

TEST(LoadPeftWeights, KeyMappingRejectsUnprefixedKeysAndSupportsGroups) {
  StateDict weights;
  weights.set("base_model.model.a.lin.weight", Tensor::zeros(DType::F32, {1}));
  const auto mapped = apply_key_mapping(weights, {{R"(^(\w+)\.lin)", R"(\1.inner.\g<1>)"}});
  EXPECT_TRUE(mapped.contains("base_model.model.a.inner.a.weight"));
  StateDict bare;
  bare.set("prompt_embeddings", Tensor::zeros(DType::F32, {1}));
  EXPECT_PEFT_ERROR(apply_key_mapping(bare, {{"x", "y"}}), ErrorCode::InvalidArgument,
                    "base_model");
}

TEST(LoadPeftWeights, PrefersSafetensorsAndListsEveryPlaceTried) {
  testing::TempDir dir;
  StateDict a;
  a.set("base_model.model.x.lora_A.weight", Tensor::zeros(DType::F32, {2}));
  save_safetensors(a, dir / "adapter_model.safetensors");
  std::ofstream(dir / "adapter_model.bin") << "stale and not even a zip";
  EXPECT_EQ(load_peft_weights(dir.path().string()).size(), 1u);
  LoadWeightsOptions options;
  options.location.subfolder = "nope";
  options.location.cache_dir = dir / "cache";
  try {
    load_peft_weights(dir.path().string(), options);
    ADD_FAILURE() << "expected NotFound";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::NotFound);
    const std::string message = e.what();
    EXPECT_NE(message.find("nope/adapter_model.safetensors"), std::string::npos) << message;
    EXPECT_NE(message.find("nope/adapter_model.bin"), std::string::npos) << message;
  }
}

// A cache laid out as huggingface_hub writes it: blobs, relative symlinks, refs.
struct FakeCache {
  testing::TempDir home;
  fs::path repo;
  std::string main_commit = std::string(40, 'a');
  std::string old_commit = std::string(40, 'b');
  FakeCache() {
    repo = home / "hub" / "models--org--adapter";
    fs::create_directories(repo / "blobs");
    fs::create_directories(repo / "refs");
    std::ofstream(repo / "refs" / "main") << main_commit;  // no newline, as the hub writes it
    std::ofstream(repo / "refs" / "v1") << old_commit << "\n";
    add(main_commit, "adapter_config.json", R"({"peft_type": "LORA", "r": 2})");
    add(main_commit, "sub/adapter_config.json", R"({"peft_type": "IA3"})");
    add(old_commit, "adapter_config.json", R"({"peft_type": "LORA", "r": 4})");
    fs::create_directories(repo / ".no_exist" / main_commit);
    std::ofstream(repo / ".no_exist" / main_commit / "adapter_model.bin");
  }
  void add(const std::string& commit, const std::string& path, const std::string& content) {
    const std::string blob = fmt::format("{:040x}", std::hash<std::string>{}(content));
    std::ofstream(repo / "blobs" / blob) << content;
    const fs::path link = repo / "snapshots" / commit / path;
    fs::create_directories(link.parent_path());
    fs::create_symlink(fs::relative(repo / "blobs" / blob, link.parent_path()), link);
  }
};

TEST(HubCacheLookup, ResolvesRevisionsSubfoldersAndMarkers) {
  FakeCache cache;
  const HubCache hub(cache.home / "hub");
  EXPECT_EQ(hub.commit("org/adapter"), cache.main_commit);
  EXPECT_EQ(hub.commit("org/adapter", "v1"), cache.old_commit);
  EXPECT_EQ(hub.commit("org/adapter", cache.old_commit), cache.old_commit);
  EXPECT_FALSE(hub.commit("org/adapter", "nope").has_value());
  ASSERT_TRUE(hub.find("org/adapter", "adapter_config.json").has_value());
  EXPECT_TRUE(hub.find("org/adapter", "sub/adapter_config.json").has_value());
  EXPECT_FALSE(hub.find("org/adapter", "adapter_model.safetensors").has_value());
  EXPECT_TRUE(hub.known_missing("org/adapter", "adapter_model.bin"));
  EXPECT_PEFT_ERROR(hub.find("org/adapter", "../../etc/passwd"), ErrorCode::InvalidArgument, "..");

  AdapterLocation location;
  location.cache_dir = cache.home / "hub";
  EXPECT_EQ(load_adapter_config("org/adapter", location).r(), 2);
  location.revision = "v1";
  EXPECT_EQ(load_adapter_config("org/adapter", location).r(), 4);
  location.revision = "main";
  location.subfolder = "sub";
  EXPECT_EQ(load_adapter_config("org/adapter", location).peft_type(), PeftType::IA3);
}

TEST(HubCacheLookup, EnvironmentVariables) {
  FakeCache cache;
  ::setenv("HF_HOME", cache.home.path().c_str(), 1);
  ::unsetenv("HF_HUB_CACHE");
  ::unsetenv("HUGGINGFACE_HUB_CACHE");
  EXPECT_EQ(HubCache::default_root(), cache.home / "hub");
  EXPECT_EQ(load_adapter_config("org/adapter").r(), 2);
  ::setenv("HF_HUB_CACHE", "$HF_HOME/elsewhere", 1);
  EXPECT_EQ(HubCache::default_root(), cache.home / "elsewhere");
  ::setenv("HF_HUB_OFFLINE", "1", 1);
  ::setenv("TRANSFORMERS_OFFLINE", "0", 1);
  EXPECT_TRUE(HubCache::offline_from_environment());
  ::setenv("HF_HUB_OFFLINE", "0", 1);
  ::setenv("TRANSFORMERS_OFFLINE", "1", 1);
  EXPECT_FALSE(HubCache::offline_from_environment());  // the first non-empty one decides
  ::unsetenv("HF_HUB_OFFLINE");
  EXPECT_TRUE(HubCache::offline_from_environment());
  for (const char* name : {"HF_HOME", "HF_HUB_CACHE", "TRANSFORMERS_OFFLINE"}) ::unsetenv(name);
}

TEST(SavePretrained, RefusesAFileAndUnknownAdapters) {
  const PeftRefCase c(testing::peft_ref_root() / "lora_linear");
  PeftModel model = c.trained_model();
  testing::TempDir dir;
  std::ofstream(dir / "file") << "x";
  EXPECT_PEFT_ERROR(save_pretrained(model, dir / "file"), ErrorCode::InvalidArgument, "not a file");
  SavePretrainedOptions options;
  options.selected_adapters = {"ghost"};
  EXPECT_PEFT_ERROR(save_pretrained(model, dir / "out", options), ErrorCode::NotFound, "ghost");
}

TEST(SavePretrained, RefusesAnAdapterWithoutTensorsBeforeWriting) {
  testing::TempDir dir;
  const fs::path c = testing::peft_ref_root() / "lora_linear";
  // The common mistake: weights with saved keys (load_peft_weights) as the model's state.
  PeftModel model;
  model.state = load_peft_weights(c.string());
  model.adapters.emplace_back("default", load_adapter_config(c.string()));
  EXPECT_PEFT_ERROR(save_pretrained(model, dir / "out"), ErrorCode::InvalidArgument,
                    "save_adapter");
  EXPECT_FALSE(fs::exists(dir / "out"));
}

TEST(SaveAdapter, WritesWhatLoadPeftWeightsRead) {
  testing::TempDir dir;
  const fs::path c = testing::peft_ref_root() / "lora_linear";
  const PeftConfig config = load_adapter_config(c.string());
  const StateDict weights = load_peft_weights(c.string());
  save_adapter(dir / "out", config, weights);
  EXPECT_TRUE(testing::read_bytes(dir / "out" / "adapter_model.safetensors") ==
              testing::read_bytes(c / "adapter_model.safetensors"));
  EXPECT_EQ(testing::read_text(dir / "out" / "adapter_config.json"),
            testing::read_text(c / "adapter_config.json"));
  // Not again without overwrite; then .bin.
  EXPECT_PEFT_ERROR(save_adapter(dir / "out", config, weights), ErrorCode::InvalidArgument,
                    "exists already");
  SaveAdapterOptions bin;
  bin.safe_serialization = false;
  save_adapter(dir / "bin", config, weights, bin);
  EXPECT_EQ(load_peft_weights((dir / "bin").string()).size(), weights.size());
  // Refused before anything is written: nothing, a config for other modules.
  EXPECT_PEFT_ERROR(save_adapter(dir / "empty", config, {}), ErrorCode::InvalidArgument,
                    "empty_weights");
  EXPECT_FALSE(fs::exists(dir / "empty"));
  PeftConfig other = config;
  other.mutable_json()["target_modules"] = nlohmann::json::array({"elsewhere"});
  EXPECT_PEFT_ERROR(save_adapter(dir / "other", other, weights), ErrorCode::InvalidArgument,
                    "untargeted_module");
  EXPECT_FALSE(fs::exists(dir / "other"));
}

TEST(HubReference, ParsesIdsRevisionsAndSubfolders) {
  auto ref = parse_hub_reference("org/name");
  ASSERT_TRUE(ref);
  EXPECT_EQ(ref->repo_id, "org/name");
  EXPECT_EQ(ref->subfolder, "");
  EXPECT_FALSE(ref->revision);
  ref = parse_hub_reference("org/name/sub/dir@refs/pr/1");
  ASSERT_TRUE(ref);
  EXPECT_EQ(ref->repo_id, "org/name");
  EXPECT_EQ(ref->subfolder, "sub/dir");
  EXPECT_EQ(ref->revision, "refs/pr/1");
  ref = parse_hub_reference("gpt2@" + std::string(40, 'a'));
  ASSERT_TRUE(ref);
  EXPECT_EQ(ref->repo_id, "gpt2");
  for (const char* bad : {"", "/abs/path", "org/", "org//x", "a--b/c", "org/name@", "../x",
                          "org/name/../x", "-org/name", "org/na me"}) {
    EXPECT_FALSE(parse_hub_reference(bad)) << bad;
  }
}

}  // namespace
}  // namespace peft
