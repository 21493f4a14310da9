// The peftcpp binary, run as a user would: exit codes, --json documents, round trips,
// and the broken adapters users actually meet.
#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <set>

#include <fmt/format.h>

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
  // What was readable is shown; the missing part makes the exit status 1.
  EXPECT_EQ(result.exit_code, 1) << result.err;
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

// ---- the defects found by using peftcpp as a user would (issue 12) ----------------------

namespace peft {
namespace {

std::string all_output(const testing::CommandResult& r) {
  return r.out + r.err;
}

// A safetensors file whose 8-byte header length has the low byte 0x80 (the pickle PROTO
// opcode): taken for a legacy torch.save file by a one-byte sniffer.
fs::path proto_like_safetensors(const testing::TempDir& dir) {
  std::string header = R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  header.resize(0x180, ' ');
  std::string file;
  for (int i = 0; i < 8; ++i) file += static_cast<char>((0x180ULL >> (8 * i)) & 0xFF);
  file += header + std::string(8, '\0');
  std::vector<std::byte> bytes(file.size());
  std::memcpy(bytes.data(), file.data(), file.size());
  const fs::path path = dir / "proto.safetensors";
  testing::write_bytes(path, bytes);
  return path;
}

TEST(CliDefects, ConvertReadsSafetensorsWhoseLengthStartsWithTheProtoByte) {
  testing::TempDir dir;
  const fs::path input = proto_like_safetensors(dir);
  const auto result = peftcpp({"convert", input.string(), (dir / "out.bin").string()});
  EXPECT_EQ(result.exit_code, 0) << result.err;
  EXPECT_EQ(peftcpp({"diff", input.string(), (dir / "out.bin").string()}).exit_code, 0);
  EXPECT_EQ(peftcpp({"inspect", input.string()}).exit_code, 0);
}

TEST(CliDefects, EveryCommandRecognisesFilesByContent) {
  const fs::path c(case_dir("lora_linear"));
  const auto bin = peftcpp({"inspect", (c / "adapter_model.bin").string(), "--json"});
  ASSERT_EQ(bin.exit_code, 0) << bin.err;
  EXPECT_EQ(nlohmann::json::parse(bin.out)["weights"]["format"], "bin");
  const auto config = peftcpp({"inspect", (c / "adapter_config.json").string()});
  EXPECT_EQ(config.exit_code, 1);
  EXPECT_NE(config.err.find("pass the folder"), std::string::npos) << config.err;
  EXPECT_EQ(config.err.find("header_too_large"), std::string::npos) << config.err;
  // extract reads a torch.save full state too.
  testing::TempDir dir;
  const fs::path m(case_dir("lora_modules_to_save"));
  ASSERT_EQ(peftcpp({"convert", (m / "model_state.safetensors").string(),
                     (dir / "model_state.bin").string()})
                .exit_code,
            0);
  const auto extract =
      peftcpp({"extract", "--model", (dir / "model_state.bin").string(), "--config",
               (m / "adapter_config.json").string(), "--out", (dir / "out").string()});
  ASSERT_EQ(extract.exit_code, 0) << extract.err;
  EXPECT_TRUE(testing::read_bytes(dir / "out" / "adapter_model.safetensors") ==
              testing::read_bytes(m / "adapter_model.safetensors"));
}

TEST(CliDefects, ConvertRefusesUnknownOutputNames) {
  testing::TempDir dir;
  const fs::path input = fs::path(case_dir("lora_linear")) / "adapter_model.safetensors";
  for (const char* name : {"a.gguf", "folder3", "a.txt"}) {
    const auto result = peftcpp({"convert", input.string(), (dir / name).string()});
    EXPECT_EQ(result.exit_code, 2) << name;
    EXPECT_NE(result.err.find(".safetensors, .bin"), std::string::npos) << result.err;
    EXPECT_FALSE(fs::exists(dir / name)) << name;
  }
}

TEST(CliDefects, ExtractRefusesEmptyAndMismatchedAdapters) {
  testing::TempDir dir;
  const fs::path m(case_dir("lora_modules_to_save"));
  const auto run = [&](const std::vector<std::string>& extra) {
    std::vector<std::string> args{"extract",
                                  "--model",
                                  (m / "model_state.safetensors").string(),
                                  "--config",
                                  (m / "adapter_config.json").string(),
                                  "--out",
                                  (dir / "out").string()};
    args.insert(args.end(), extra.begin(), extra.end());
    return peftcpp(args);
  };
  // No adapter "other" in the model.
  auto result = run({"--adapter", "other"});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_NE(result.err.find("no tensor of adapter 'other'"), std::string::npos) << result.err;
  EXPECT_FALSE(fs::exists(dir / "out"));
  // An extracted adapter given as the model: saved keys, no adapter names.
  result = peftcpp({"extract", "--model", (m / "adapter_model.safetensors").string(), "--config",
                    (m / "adapter_config.json").string(), "--out", (dir / "out").string()});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_NE(result.err.find("full keys"), std::string::npos) << result.err;
  EXPECT_FALSE(fs::exists(dir / "out"));
  // The config of another adapter (other targets, other rank).
  auto other = nlohmann::json::parse(testing::read_text(m / "adapter_config.json"));
  other["target_modules"] = {"lin9"};
  std::ofstream(dir / "other.json") << other.dump();
  result = peftcpp({"extract", "--model", (m / "model_state.safetensors").string(), "--config",
                    (dir / "other.json").string(), "--out", (dir / "out").string()});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_NE(result.err.find("untargeted_module"), std::string::npos) << result.err;
  EXPECT_FALSE(fs::exists(dir / "out"));
}

TEST(CliDefects, InspectShowsTheConfigsScalingAndMarksAContradiction) {
  testing::TempDir dir;
  const fs::path c(case_dir("lora_linear"));
  auto config = nlohmann::json::parse(testing::read_text(c / "adapter_config.json"));
  const int weights_rank = config["r"].get<int>();
  config["r"] = weights_rank * 2;
  config["lora_alpha"] = 16;
  std::ofstream(dir / "adapter_config.json") << config.dump();
  fs::copy_file(c / "adapter_model.safetensors", dir / "adapter_model.safetensors");
  const auto json = nlohmann::json::parse(peftcpp({"inspect", dir.path().string(), "--json"}).out);
  for (const auto& module : json["adapters"][0]["modules"]) {
    EXPECT_EQ(module["rank"], weights_rank * 2);
    EXPECT_EQ(module["weights_rank"], weights_rank);
    EXPECT_DOUBLE_EQ(module["scaling"].get<double>(), 16.0 / (weights_rank * 2));
  }
  const auto text = peftcpp({"inspect", dir.path().string()});
  EXPECT_NE(text.out.find(fmt::format("r={} alpha=16", weights_rank * 2)), std::string::npos)
      << text.out;
  EXPECT_NE(text.out.find("PEFT refuses"), std::string::npos) << text.out;
}

TEST(CliDefects, InspectExitsOneWhenAPartCouldNotBeRead) {
  testing::TempDir dir;
  // An empty folder, a model checkpoint folder: no phantom adapter, exit 1.
  fs::create_directories(dir / "empty");
  auto result = peftcpp({"inspect", (dir / "empty").string()});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_EQ(result.out.find("[default]"), std::string::npos) << result.out;
  fs::create_directories(dir / "model");
  std::ofstream(dir / "model" / "config.json") << "{}";
  result = peftcpp({"inspect", (dir / "model").string()});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_NE(result.err.find("model checkpoint"), std::string::npos) << result.err;
  // Unreadable weights: shown inline, exit 1.
  fs::create_directories(dir / "broken");
  fs::copy_file(fs::path(case_dir("lora_linear")) / "adapter_config.json",
                dir / "broken" / "adapter_config.json");
  testing::write_bytes(dir / "broken" / "adapter_model.safetensors", {});
  result = peftcpp({"inspect", (dir / "broken").string()});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_NE(result.out.find("weights error"), std::string::npos) << result.out;
  // A config that is not a PEFT config.
  fs::create_directories(dir / "notpeft");
  std::ofstream(dir / "notpeft" / "adapter_config.json") << R"({"hello": 1})";
  fs::copy_file(fs::path(case_dir("lora_linear")) / "adapter_model.safetensors",
                dir / "notpeft" / "adapter_model.safetensors");
  EXPECT_EQ(peftcpp({"inspect", (dir / "notpeft").string()}).exit_code, 1);
  EXPECT_EQ(peftcpp({"inspect", case_dir("lora_linear")}).exit_code, 0);
}

TEST(CliDefects, FailedCommandsLeaveNoOutputFolder) {
  testing::TempDir dir;
  fs::create_directories(dir / "in");
  fs::copy_file(fs::path(case_dir("lora_linear")) / "adapter_config.json",
                dir / "in" / "adapter_config.json");
  testing::write_bytes(dir / "in" / "adapter_model.safetensors", {});
  EXPECT_EQ(
      peftcpp({"convert", (dir / "in").string(), (dir / "out" / "nested").string()}).exit_code, 1);
  EXPECT_FALSE(fs::exists(dir / "out"));
}

TEST(CliDefects, ParserErrorsAndCommandWords) {
  auto result = peftcpp({"inspec", "x"});
  EXPECT_EQ(result.exit_code, 2);
  EXPECT_NE(result.err.find("did you mean 'inspect'"), std::string::npos) << result.err;
  result = peftcpp({"help"});
  EXPECT_EQ(result.exit_code, 0);
  EXPECT_NE(result.out.find("merge"), std::string::npos);
  result = peftcpp({"help", "convert"});
  EXPECT_EQ(result.exit_code, 0);
  EXPECT_NE(result.out.find("--dtype"), std::string::npos);
  result = peftcpp({"convert", "only-one"});
  EXPECT_EQ(result.exit_code, 2);
  EXPECT_TRUE(result.err.starts_with("peftcpp: error: ")) << result.err;
  // Global flags after the command.
  EXPECT_EQ(peftcpp({"inspect", case_dir("lora_linear"), "-q"}).exit_code, 0);
  EXPECT_EQ(peftcpp({"validate", case_dir("lora_linear"), "--verbose"}).exit_code, 0);
}

TEST(CliDefects, JsonModeReportsErrorsAsJson) {
  for (const auto& args : std::vector<std::vector<std::string>>{
           {"inspect", "/nonexistent/adapter", "--json"},
           {"validate", "/nonexistent/adapter", "--json"},
           {"diff", "/nonexistent/a", "/nonexistent/b", "--json"}}) {
    const auto result = peftcpp(args);
    EXPECT_NE(result.exit_code, 0);
    const auto json = nlohmann::json::parse(result.out, nullptr, false);
    ASSERT_TRUE(json.is_object()) << result.out;
    EXPECT_EQ(json["error"]["code"], "not_found") << result.out;
    EXPECT_NE(json["error"]["message"].get<std::string>().find("/nonexistent"), std::string::npos);
  }
}

TEST(CliDefects, DtypeOptionsTakePyTorchSpellings) {
  testing::TempDir dir;
  const fs::path input = fs::path(case_dir("lora_linear")) / "adapter_model.safetensors";
  const std::vector<std::pair<std::string, DType>> spellings{
      {"fp16", DType::F16},      {"float16", DType::F16}, {"half", DType::F16},
      {"bfloat16", DType::BF16}, {"float32", DType::F32}, {"fp32", DType::F32},
      {"float", DType::F32}};
  for (const auto& [name, dtype] : spellings) {
    const fs::path out = dir / (name + ".safetensors");
    ASSERT_EQ(peftcpp({"convert", input.string(), out.string(), "--dtype", name}).exit_code, 0)
        << name;
    const auto file = SafetensorsFile::open(out);  // alive while its tensor list is read
    for (const auto& info : file.tensors()) EXPECT_EQ(info.dtype, dtype);
  }
  const auto bad =
      peftcpp({"convert", input.string(), (dir / "x.safetensors").string(), "--dtype", "f8"});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("bfloat16"), std::string::npos) << bad.err;
}

TEST(CliDefects, ValidateOfAFileChecksThatFile) {
  const fs::path c(case_dir("lora_linear"));
  auto result = peftcpp({"validate", (c / "adapter_model.safetensors").string()});
  EXPECT_EQ(result.exit_code, 0) << all_output(result);
  EXPECT_EQ(all_output(result).find("can't find"), std::string::npos);
  result = peftcpp({"validate", (c / "adapter_config.json").string()});
  EXPECT_EQ(result.exit_code, 0) << all_output(result);
  testing::TempDir dir;
  testing::write_bytes(dir / "adapter_model.safetensors", {});
  result = peftcpp({"validate", (dir / "adapter_model.safetensors").string(), "--json"});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_EQ(nlohmann::json::parse(result.out)["problems"][0]["code"], "empty_weights");
}

TEST(CliDefects, DiffOfAFolderAndAFileWithTolerances) {
  testing::TempDir dir;
  const fs::path c(case_dir("lora_linear"));
  // A folder against its own weights file (another format): identical, with a summary.
  auto result = peftcpp({"diff", c.string(), (c / "adapter_model.bin").string()});
  EXPECT_EQ(result.exit_code, 0) << all_output(result);
  EXPECT_NE(result.out.find("identical ("), std::string::npos) << result.out;
  // A bf16 copy differs, but not beyond a tolerance that bf16 rounding stays within.
  ASSERT_EQ(peftcpp({"convert", (c / "adapter_model.safetensors").string(),
                     (dir / "bf16.safetensors").string(), "--dtype", "bf16"})
                .exit_code,
            0);
  ASSERT_EQ(peftcpp({"convert", (dir / "bf16.safetensors").string(),
                     (dir / "back.safetensors").string(), "--dtype", "f32"})
                .exit_code,
            0);
  result = peftcpp({"diff", c.string(), (dir / "back.safetensors").string()});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_NE(result.out.find("different:"), std::string::npos) << result.out;
  result = peftcpp(
      {"diff", c.string(), (dir / "back.safetensors").string(), "--rtol", "0.01", "--atol", "0"});
  EXPECT_EQ(result.exit_code, 0) << result.out;
  EXPECT_NE(result.out.find("within the tolerance"), std::string::npos) << result.out;
  // An error names the argument that is wrong.
  result = peftcpp({"diff", c.string(), (dir / "nope.safetensors").string()});
  EXPECT_EQ(result.exit_code, 2);
  EXPECT_NE(result.err.find("nope.safetensors"), std::string::npos) << result.err;
}

TEST(CliDefects, RevisionAndSubfolderPerInput) {
  testing::TempDir home;
  const fs::path repo = home / "hub" / "models--someone--adapters";
  const std::string main_commit(40, 'a'), tagged_commit(40, 'b');
  fs::create_directories(repo / "refs");
  std::ofstream(repo / "refs" / "main") << main_commit;
  std::ofstream(repo / "refs" / "v1") << tagged_commit;
  for (const auto& commit : {main_commit, tagged_commit}) {
    const fs::path sub = repo / "snapshots" / commit / "sub";
    fs::create_directories(sub);
    const char* source = commit == main_commit ? "lora_linear" : "lora_rslora";
    for (const char* file : {"adapter_config.json", "adapter_model.safetensors"})
      fs::copy_file(fs::path(case_dir(source)) / file, sub / file);
  }
  ::setenv("HF_HUB_CACHE", (home / "hub").c_str(), 1);
  const auto main_sub = peftcpp({"inspect", "someone/adapters/sub", "--json"});
  const auto tagged = peftcpp({"inspect", "someone/adapters/sub@v1", "--json"});
  const auto option =
      peftcpp({"inspect", "someone/adapters", "--subfolder", "sub", "--revision", "v1", "--json"});
  const auto missing = peftcpp({"inspect", "someone/adapters/other"});
  ::unsetenv("HF_HUB_CACHE");
  ASSERT_EQ(main_sub.exit_code, 0) << main_sub.err;
  ASSERT_EQ(tagged.exit_code, 0) << tagged.err;
  ASSERT_EQ(option.exit_code, 0) << option.err;
  const auto folder = [](const testing::CommandResult& r) {
    return nlohmann::json::parse(r.out)["adapters"][0]["folder"].get<std::string>();
  };
  EXPECT_NE(folder(main_sub).find(main_commit), std::string::npos);
  EXPECT_NE(folder(tagged).find(tagged_commit), std::string::npos);
  EXPECT_EQ(folder(option), folder(tagged));
  // The path tried is the real one, with the commit the revision names.
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_NE(missing.err.find("snapshots/" + main_commit + "/other"), std::string::npos)
      << missing.err;
}

TEST(CliDefects, MergeOptionsThatDoNothingAreRefused) {
  const auto result =
      peftcpp({"merge", "--base", "b", "--adapter", "a", "--out", "o", "--combination", "svd"});
  EXPECT_EQ(result.exit_code, 2);
  EXPECT_NE(result.err.find("--weights"), std::string::npos) << result.err;
  const auto help = peftcpp({"unmerge", "--help"});
  EXPECT_EQ(help.out.find("merged in order"), std::string::npos);
}

}  // namespace
}  // namespace peft

namespace peft {
namespace {

TEST(CliValidate, WarningsPassUnlessStrictAndRepeatsAreGrouped) {
  testing::TempDir dir;
  const fs::path c(case_dir("tf_llama_lora"));
  fs::copy_file(c / "adapter_model.safetensors", dir / "adapter_model.safetensors");
  auto config = nlohmann::json::parse(testing::read_text(c / "adapter_config.json"));
  config["use_rslora"] = 0;  // an integer where a boolean belongs: a warning
  std::ofstream(dir / "adapter_config.json") << config.dump();
  auto result = peftcpp({"validate", dir.path().string()});
  EXPECT_EQ(result.exit_code, 0) << result.out;
  EXPECT_NE(result.out.find("warning"), std::string::npos) << result.out;
  EXPECT_EQ(peftcpp({"validate", dir.path().string(), "--strict"}).exit_code, 1);
  const auto json = nlohmann::json::parse(peftcpp({"validate", dir.path().string(), "--json"}).out);
  EXPECT_TRUE(json["passed"].get<bool>());
  EXPECT_FALSE(json["clean"].get<bool>());
  // The same rank mismatch on every module: one line naming the places.
  config["r"] = config["r"].get<int>() * 2;
  std::ofstream(dir / "adapter_config.json") << config.dump();
  result = peftcpp({"validate", dir.path().string()});
  EXPECT_EQ(result.exit_code, 1);
  const auto first = result.out.find("[rank_mismatch]");
  ASSERT_NE(first, std::string::npos) << result.out;
  EXPECT_EQ(result.out.find("[rank_mismatch]", first + 1), std::string::npos) << result.out;
  EXPECT_NE(result.out.find("4 places ("), std::string::npos) << result.out;
}

}  // namespace
}  // namespace peft
