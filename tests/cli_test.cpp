// The peftcpp binary, run as a user would: exit codes, --json documents, round trips,
// and the broken adapters users actually meet.
#include <gtest/gtest.h>

#include <fstream>
#include <set>

#include <nlohmann/json.hpp>

#include "peft/safetensors.hpp"
#include "test_support.hpp"

namespace peft {
namespace {
namespace fs = std::filesystem;
using testing::run_command;

testing::CommandResult peftcpp(std::vector<std::string> args) {
  args.insert(args.begin(), testing::peftcpp_binary().string());
  return run_command(args);
}

std::string case_dir(const std::string& name) {
  return (testing::peft_ref_root() / name).string();
}

TEST(Cli, VersionHelpAndUsageErrors) {
  EXPECT_EQ(peftcpp({"--version"}).exit_code, 0);
  const auto help = peftcpp({"inspect", "--help"});
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_NE(help.out.find("Example"), std::string::npos);
  EXPECT_EQ(peftcpp({}).exit_code, 2);
  EXPECT_EQ(peftcpp({"frobnicate"}).exit_code, 2);
  EXPECT_EQ(peftcpp({"convert", "only-one-argument"}).exit_code, 2);
  EXPECT_EQ(peftcpp({"convert", "a", "b", "--dtype", "f8"}).exit_code, 2);
}

TEST(Cli, InspectJsonDescribesEveryAdapterOfAFolder) {
  const auto result = peftcpp({"inspect", case_dir("lora_multi_adapter"), "--json", "--tensors"});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  const auto json = nlohmann::json::parse(result.out);
  ASSERT_EQ(json["adapters"].size(), 2u);
  const auto& root = json["adapters"][0];
  EXPECT_EQ(root["name"], "default");
  EXPECT_EQ(root["peft_type"], "LORA");
  EXPECT_EQ(root["weights"]["format"], "safetensors");
  EXPECT_EQ(root["weights"]["tensors"].size(), root["weights"]["num_tensors"].get<std::size_t>());
  for (const auto& module : root["modules"]) {
    EXPECT_TRUE(module["rank"].is_number());
    EXPECT_TRUE(module["scaling"].is_number());
  }
  EXPECT_EQ(json["adapters"][1]["name"], "other");
}

TEST(Cli, InspectShowsPatternRanksAndScaling) {
  const auto result = peftcpp({"inspect", case_dir("lora_rank_alpha_pattern")});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  // rank_pattern/alpha_pattern give one module its own rank and alpha: two distinct lines.
  const auto json = nlohmann::json::parse(
      peftcpp({"inspect", case_dir("lora_rank_alpha_pattern"), "--json"}).out);
  std::set<double> scalings;
  for (const auto& module : json["adapters"][0]["modules"])
    scalings.insert(module["scaling"].get<double>());
  EXPECT_GT(scalings.size(), 1u);
}

TEST(Cli, InspectAConfigOnlyFolderReportsMissingWeights) {
  testing::TempDir dir;
  fs::copy_file(fs::path(case_dir("lora_linear")) / "adapter_config.json",
                dir / "adapter_config.json");
  const auto result = peftcpp({"inspect", dir.path().string()});
  EXPECT_EQ(result.exit_code, 0) << result.err;
  EXPECT_NE(result.out.find("missing"), std::string::npos);
}

TEST(Cli, InspectOfNothingIsAClearError) {
  const auto result = peftcpp({"inspect", "/nonexistent/adapter"});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_NE(result.err.find("/nonexistent/adapter"), std::string::npos);
  EXPECT_EQ(result.err.find('\n'), result.err.size() - 1) << "one line: " << result.err;
}

TEST(Cli, ValidateFlagsEmptyAndBrokenAdapters) {
  const fs::path empty = testing::test_data() / "real-adapters" /
                         "Hastws__NVIDIA-Nemotron-Model-Reasoning-Challenge__adapter";
  const auto result = peftcpp({"validate", empty.string(), "--json"});
  EXPECT_EQ(result.exit_code, 1);
  const auto json = nlohmann::json::parse(result.out);
  EXPECT_EQ(json["problems"][0]["code"], "empty_weights");

  EXPECT_EQ(peftcpp({"validate", case_dir("lora_linear")}).exit_code, 0);
  EXPECT_EQ(peftcpp({"validate", "/nonexistent"}).exit_code, 2);

  testing::TempDir dir;
  // Truncated weights.
  fs::copy_file(fs::path(case_dir("lora_linear")) / "adapter_config.json",
                dir / "adapter_config.json");
  auto bytes = testing::read_bytes(fs::path(case_dir("lora_linear")) / "adapter_model.safetensors");
  bytes.resize(bytes.size() / 2);
  testing::write_bytes(dir / "adapter_model.safetensors", bytes);
  auto broken = nlohmann::json::parse(peftcpp({"validate", dir.path().string(), "--json"}).out);
  EXPECT_EQ(broken["problems"][0]["code"], "unreadable_weights");
  // Keys saved with their adapter name, and a rank that contradicts the config.
  StateDict wrong;
  wrong.set("base_model.model.lin0.lora_A.default.weight", Tensor::zeros(DType::F32, {3, 4}));
  wrong.set("base_model.model.lin0.lora_A.weight", Tensor::zeros(DType::F32, {3, 4}));
  save_safetensors(wrong, dir / "adapter_model.safetensors");
  broken = nlohmann::json::parse(peftcpp({"validate", dir.path().string(), "--json"}).out);
  std::set<std::string> codes;
  for (const auto& p : broken["problems"]) codes.insert(p["code"]);
  EXPECT_TRUE(codes.count("adapter_name_in_key"));
  EXPECT_TRUE(codes.count("rank_mismatch"));
  // A config that is not JSON.
  std::ofstream(dir / "adapter_config.json") << "{ not json";
  broken = nlohmann::json::parse(peftcpp({"validate", dir.path().string(), "--json"}).out);
  EXPECT_EQ(broken["problems"][0]["code"], "bad_config");
}

TEST(Cli, ConvertRoundTripsByteIdentical) {
  testing::TempDir dir;
  const fs::path original = fs::path(case_dir("tf_llama_lora")) / "adapter_model.safetensors";
  ASSERT_EQ(peftcpp({"convert", original.string(), (dir / "a.bin").string()}).exit_code, 0);
  ASSERT_EQ(
      peftcpp({"convert", (dir / "a.bin").string(), (dir / "b.safetensors").string()}).exit_code,
      0);
  EXPECT_TRUE(testing::read_bytes(original) == testing::read_bytes(dir / "b.safetensors"));
  // Refuses to overwrite without --force, leaving the file intact.
  const auto refused = peftcpp({"convert", original.string(), (dir / "b.safetensors").string()});
  EXPECT_EQ(refused.exit_code, 1);
  EXPECT_NE(refused.err.find("--force"), std::string::npos);
  EXPECT_EQ(peftcpp({"convert", original.string(), (dir / "b.safetensors").string(), "--force"})
                .exit_code,
            0);
  // Casting.
  ASSERT_EQ(
      peftcpp({"convert", original.string(), (dir / "c.safetensors").string(), "--dtype", "bf16"})
          .exit_code,
      0);
  const auto cast = SafetensorsFile::open(dir / "c.safetensors");
  for (const auto& info : cast.tensors()) EXPECT_EQ(info.dtype, DType::BF16);
  // Folder to folder keeps the config.
  ASSERT_EQ(peftcpp({"convert", case_dir("tf_llama_lora"), (dir / "folder").string()}).exit_code,
            0);
  EXPECT_TRUE(fs::exists(dir / "folder" / "adapter_config.json"));
  EXPECT_EQ(peftcpp({"diff", case_dir("tf_llama_lora"), (dir / "folder").string()}).exit_code, 0);
}

TEST(Cli, DiffFollowsDiffExitCodes) {
  EXPECT_EQ(peftcpp({"diff", case_dir("lora_linear"), case_dir("lora_linear")}).exit_code, 0);
  const auto different =
      peftcpp({"diff", case_dir("lora_linear"), case_dir("lora_rslora"), "--json"});
  EXPECT_EQ(different.exit_code, 1);
  const auto json = nlohmann::json::parse(different.out);
  EXPECT_FALSE(json["identical"].get<bool>());
  EXPECT_FALSE(json["config"].empty());
  EXPECT_EQ(peftcpp({"diff", case_dir("lora_linear"), "/nonexistent"}).exit_code, 2);
}

TEST(Cli, ExtractWritesWhatPeftWrote) {
  testing::TempDir dir;
  const fs::path c(case_dir("lora_modules_to_save"));
  const auto result =
      peftcpp({"extract", "--model", (c / "model_state.safetensors").string(), "--config",
               (c / "adapter_config.json").string(), "--out", (dir / "out").string()});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_TRUE(testing::read_bytes(dir / "out" / "adapter_model.safetensors") ==
              testing::read_bytes(c / "adapter_model.safetensors"));
  // A second run refuses to replace the adapter without --force.
  EXPECT_EQ(peftcpp({"extract", "--model", (c / "model_state.safetensors").string(), "--config",
                     (c / "adapter_config.json").string(), "--out", (dir / "out").string()})
                .exit_code,
            1);
}

}  // namespace
}  // namespace peft

namespace peft {
namespace {

TEST(Cli, HubIdsResolveThroughTheLocalCache) {
  testing::TempDir home;
  const fs::path repo = home / "hub" / "models--someone--tiny-adapter";
  const std::string commit(40, 'c');
  fs::create_directories(repo / "refs");
  std::ofstream(repo / "refs" / "main") << commit;
  fs::create_directories(repo / "blobs");
  fs::create_directories(repo / "snapshots" / commit);
  for (const char* file : {"adapter_config.json", "adapter_model.safetensors"}) {
    fs::copy_file(fs::path(case_dir("lora_linear")) / file, repo / "blobs" / file);
    fs::create_symlink(fs::path("../../blobs") / file, repo / "snapshots" / commit / file);
  }
  ::setenv("HF_HUB_CACHE", (home / "hub").c_str(), 1);
  const auto inspect = peftcpp({"inspect", "someone/tiny-adapter", "--json"});
  const auto validate = peftcpp({"validate", "someone/tiny-adapter"});
  const auto missing = peftcpp({"inspect", "someone/not-cached"});
  ::unsetenv("HF_HUB_CACHE");
  ASSERT_EQ(inspect.exit_code, 0) << inspect.err;
  EXPECT_EQ(nlohmann::json::parse(inspect.out)["adapters"][0]["peft_type"], "LORA");
  EXPECT_EQ(validate.exit_code, 0) << validate.out;
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_NE(missing.err.find("models--someone--not-cached"), std::string::npos) << missing.err;
}

}  // namespace
}  // namespace peft
