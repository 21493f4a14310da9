// peftcpp merge / unmerge, run as a user runs them: every "ok" case of the peft-merge
// fixtures with one adapter merged by the binary and compared with PEFT's output, exit codes,
// sharded bases, several adapters.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <map>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "peft/checkpoint.hpp"
#include "peft/error.hpp"
#include "peft/merge.hpp"
#include "peft/safetensors.hpp"
#include "synthetic_model.hpp"
#include "test_support.hpp"

namespace peft {
namespace {
namespace fs = std::filesystem;
using json = nlohmann::ordered_json;

testing::CommandResult peftcpp(std::vector<std::string> args) {
  args.insert(args.begin(), testing::peftcpp_binary().string());
  return testing::run_command(args);
}

// --- the fixtures ----------------------------------------------------------------------

// One merge the CLI can express: the case's only adapter, merged as merge_and_unload().
struct FixtureMerge {
  std::string name;
  fs::path dir;
  std::string output;  // the expected file
  bool safe_merge = false;
  bool autocast = true;  // autocast_adapter_dtype when PEFT loaded the adapter
  double atol = 0, rtol = 0;
};

void PrintTo(const FixtureMerge& m, std::ostream* os) {
  *os << m.name;
}

std::vector<FixtureMerge> fixture_merges() {
  std::vector<FixtureMerge> out;
  std::error_code ec;
  const fs::path root = testing::peft_merge_root();
  if (!fs::is_directory(root, ec)) return out;
  for (const auto& entry : fs::directory_iterator(root)) {
    const fs::path dir = entry.path();
    if (!fs::exists(dir / "case.json") || !fs::exists(dir / "base_model.safetensors")) continue;
    const json spec = json::parse(testing::read_text(dir / "case.json"));
    if (spec.value("status", std::string()) != "ok" || spec["adapters"].size() != 1) continue;
    if (spec.contains("weighted") && !spec["weighted"].is_null()) continue;
    for (const auto& [file, record] : spec["outputs"].items()) {
      const json& args = record["merge_args"];
      if (args.value("kind", std::string()) != "merge_and_unload") continue;
      if (args.contains("adapter_names") && !args["adapter_names"].is_null()) continue;
      FixtureMerge m;
      m.name = dir.filename().string() + (file == "merged_model.safetensors" ? "" : "_" + file);
      std::replace_if(
          m.name.begin(), m.name.end(), [](char c) { return !std::isalnum(c) && c != '_'; }, '_');
      m.dir = dir;
      m.output = file;
      m.safe_merge = args.value("safe_merge", false);
      m.autocast = args.value("autocast_adapter_dtype_on_load", true);
      m.atol = record["suggested_tolerance"]["atol"].get<double>();
      m.rtol = record["suggested_tolerance"]["rtol"].get<double>();
      out.push_back(std::move(m));
    }
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
  return out;
}

std::string compare(const StateDict& ours, const StateDict& expected, double atol, double rtol) {
  auto a = ours.keys(), b = expected.keys();
  std::sort(a.begin(), a.end());
  std::sort(b.begin(), b.end());
  if (a != b) return "key sets differ";
  for (const auto& [key, want] : expected) {
    const Tensor& got = ours.at(key);
    if (got.dtype() != want.dtype()) return key + ": dtype differs";
    if (got.shape() != want.shape()) return key + ": shape differs";
    if (!is_floating(want.dtype())) {
      if (!got.equals(want)) return key + ": integer values differ";
      continue;
    }
    const auto g = got.to_doubles();
    const auto e = want.to_doubles();
    for (std::size_t i = 0; i < e.size(); ++i) {
      if (!(std::abs(g[i] - e[i]) <= atol + rtol * std::abs(e[i]))) {
        return fmt::format("{}[{}]: {} instead of {}", key, i, g[i], e[i]);
      }
    }
  }
  return {};
}

// Whether the library itself cannot merge the case yet (a known gap of the merge rules,
// reported by the conformance suite): then the CLI must refuse it the same way.
bool library_refuses(const FixtureMerge& m) {
  try {
    StateDict extras;
    if (fs::exists(m.dir / "reference_extras.safetensors")) {
      extras = SafetensorsFile::open(m.dir / "reference_extras.safetensors").state_dict();
    }
    MergeAdapter adapter{
        "default", PeftConfig::load(m.dir / "adapter"),
        SafetensorsFile::open(m.dir / "adapter" / "adapter_model.safetensors").state_dict(),
        extras};
    PreparedMerge prepared({adapter}, {});
    return false;
  } catch (const Error& e) {
    return e.code() == ErrorCode::Unsupported;
  }
}

class CliMergeFixture : public ::testing::TestWithParam<FixtureMerge> {};

TEST_P(CliMergeFixture, MatchesPeft) {
  const FixtureMerge& m = GetParam();
  testing::TempDir tmp;
  std::vector<std::string> args = {"merge",
                                   "--base",
                                   (m.dir / "base_model.safetensors").string(),
                                   "--adapter",
                                   (m.dir / "adapter").string(),
                                   "--out",
                                   (tmp / "out").string()};
  if (m.safe_merge) args.push_back("--safe-merge");
  if (!m.autocast) args.push_back("--no-autocast");
  if (fs::exists(m.dir / "reference_extras.safetensors")) {
    args.push_back("--extras");
    args.push_back((m.dir / "reference_extras.safetensors").string());
  }
  const auto result = peftcpp(args);
  if (result.exit_code == 1 && library_refuses(m)) {
    EXPECT_NE(result.err.find("unsupported"), std::string::npos) << result.err;
    GTEST_SKIP() << "the library cannot merge this case yet: " << result.err;
  }
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_TRUE(result.err.empty()) << result.err;  // no progress bar without a terminal
  const StateDict ours = SafetensorsFile::open(tmp / "out" / "model.safetensors").state_dict();
  const StateDict expected = SafetensorsFile::open(m.dir / m.output).state_dict();
  const std::string message = compare(ours, expected, m.atol, m.rtol);
  EXPECT_TRUE(message.empty()) << m.name << ": " << message;
}

INSTANTIATE_TEST_SUITE_P(Fixtures, CliMergeFixture, ::testing::ValuesIn(fixture_merges()),
                         [](const ::testing::TestParamInfo<FixtureMerge>& info) {
                           return info.param.name;
                         });
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(CliMergeFixture);

TEST(CliMerge, FixturesFound) {
  if (fixture_merges().empty()) GTEST_SKIP() << "no fixtures under " << testing::peft_merge_root();
  std::printf("peft-merge cases run through the CLI: %zu\n", fixture_merges().size());
}

// Every weighted case through `--weights`: its `weighted` fields as command-line options.
std::vector<fs::path> weighted_cases() {
  std::vector<fs::path> out;
  std::error_code ec;
  const fs::path root = testing::peft_merge_root();
  if (!fs::is_directory(root, ec)) return out;
  for (const auto& entry : fs::directory_iterator(root)) {
    if (!fs::exists(entry.path() / "case.json")) continue;
    const json spec = json::parse(testing::read_text(entry.path() / "case.json"));
    if (spec.value("status", std::string()) == "ok" && spec.contains("weighted")) {
      out.push_back(entry.path());
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<std::string> weighted_args(const fs::path& dir, const json& w) {
  std::vector<std::string> adapters, weights;
  for (const auto& name : w["adapters"]) {
    const std::string n = name.get<std::string>();
    adapters.push_back((n == "default" ? dir / "adapter" : dir / "adapter" / n).string());
  }
  for (const auto& x : w["weights"]) weights.push_back(fmt::format("{}", x.get<double>()));
  std::vector<std::string> args = {"--adapter", fmt::format("{}", fmt::join(adapters, ",")),
                                   "--weights", fmt::format("{}", fmt::join(weights, ","))};
  const std::map<std::string, std::string> flags = {
      {"combination_type", "--combination"},
      {"svd_rank", "--svd-rank"},
      {"density", "--density"},
      {"majority_sign_method", "--majority-sign-method"},
      {"torch_seed", "--seed"}};
  for (const auto& [field, value] : w.items()) {
    if (field == "adapters" || field == "weights" || field == "adapter_name") continue;
    const auto flag = flags.find(field);
    if (flag == flags.end()) throw std::runtime_error("no option for weighted." + field);
    args.push_back(flag->second);
    args.push_back(value.is_string() ? value.get<std::string>() : value.dump());
  }
  return args;
}

TEST(CliMerge, WeightedCasesMatchPeft) {
  const auto cases = weighted_cases();
  if (cases.empty()) GTEST_SKIP() << "no fixtures under " << testing::peft_merge_root();
  for (const auto& dir : cases) {
    SCOPED_TRACE(dir.filename().string());
    const json spec = json::parse(testing::read_text(dir / "case.json"));
    testing::TempDir tmp;
    std::vector<std::string> args = {"merge", "--base", (dir / "base_model.safetensors").string(),
                                     "--out", (tmp / "out").string()};
    for (auto& a : weighted_args(dir, spec["weighted"])) args.push_back(std::move(a));
    const auto result = peftcpp(args);
    ASSERT_EQ(result.exit_code, 0) << result.err;
    const auto& record = spec["outputs"]["merged_model.safetensors"];
    const std::string message =
        compare(SafetensorsFile::open(tmp / "out" / "model.safetensors").state_dict(),
                SafetensorsFile::open(dir / "merged_model.safetensors").state_dict(),
                record["suggested_tolerance"]["atol"].get<double>(),
                record["suggested_tolerance"]["rtol"].get<double>());
    EXPECT_TRUE(message.empty()) << message;
  }
}

// A DARE merge without --seed draws one and prints it; the same seed gives the same bytes.
TEST(CliMerge, DareSeedIsPrintedAndRepeats) {
  const auto cases = weighted_cases();
  const auto dare = std::find_if(cases.begin(), cases.end(), [](const fs::path& p) {
    return p.filename().string().find("dare_linear") != std::string::npos;
  });
  if (dare == cases.end())
    GTEST_SKIP() << "no dare_linear case under " << testing::peft_merge_root();
  json w = json::parse(testing::read_text(*dare / "case.json"))["weighted"];
  w.erase("torch_seed");
  testing::TempDir tmp;
  auto run = [&](const std::string& out, std::vector<std::string> extra) {
    std::vector<std::string> args = {"merge", "--base", (*dare / "base_model.safetensors").string(),
                                     "--out", (tmp / out).string()};
    for (auto& a : weighted_args(*dare, w)) args.push_back(std::move(a));
    for (auto& a : extra) args.push_back(std::move(a));
    return peftcpp(args);
  };
  const auto first = run("drawn", {});
  ASSERT_EQ(first.exit_code, 0) << first.err;
  const auto at = first.err.find("--seed ");
  ASSERT_NE(at, std::string::npos) << first.err;
  const std::string seed = first.err.substr(at + 7, first.err.find(' ', at + 7) - at - 7);
  const auto again = run("again", {"--seed", seed});
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_EQ(again.err.find("--seed "), std::string::npos) << again.err;
  EXPECT_EQ(testing::read_text(tmp / "drawn" / "model.safetensors"),
            testing::read_text(tmp / "again" / "model.safetensors"));
  const auto other = run("other", {"--seed", seed == "1" ? "2" : "1"});
  ASSERT_EQ(other.exit_code, 0) << other.err;
  EXPECT_NE(testing::read_text(tmp / "drawn" / "model.safetensors"),
            testing::read_text(tmp / "other" / "model.safetensors"));
}

// --module-order: the order the masks are drawn in. The fixture's own order (its modules'
// natural order) changes nothing; the reverse order draws other masks.
TEST(CliMerge, DareModuleOrderFile) {
  const auto cases = weighted_cases();
  const auto dare = std::find_if(cases.begin(), cases.end(), [](const fs::path& p) {
    return p.filename().string() == "lora_weighted_dare_linear";
  });
  if (dare == cases.end())
    GTEST_SKIP() << "no lora_weighted_dare_linear under " << testing::peft_merge_root();
  const json w = json::parse(testing::read_text(*dare / "case.json"))["weighted"];
  std::vector<std::string> modules;
  for (const auto& [key, unused] :
       SafetensorsFile::open(*dare / "combined_delta.safetensors").state_dict()) {
    modules.push_back(key.substr(0, key.rfind('.')));
  }
  std::sort(modules.begin(), modules.end());
  ASSERT_GE(modules.size(), 2u);
  testing::TempDir tmp;
  auto run = [&](const std::string& out, const std::vector<std::string>& order) {
    std::vector<std::string> args = {"merge", "--base", (*dare / "base_model.safetensors").string(),
                                     "--out", (tmp / out).string()};
    for (auto& a : weighted_args(*dare, w)) args.push_back(std::move(a));
    if (!order.empty()) {
      std::string text = "# model order\n";
      for (const auto& m : order) text += m + "\n";
      std::ofstream(tmp / (out + ".txt")) << text;
      args.push_back("--module-order");
      args.push_back((tmp / (out + ".txt")).string());
    }
    const auto r = peftcpp(args);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return testing::read_text(tmp / out / "model.safetensors");
  };
  const std::string natural = run("natural", {});
  EXPECT_EQ(run("given", modules), natural);
  EXPECT_NE(run("reversed", std::vector<std::string>(modules.rbegin(), modules.rend())), natural);
}

// --- synthetic checkpoints -------------------------------------------------------------

const std::vector<std::string> kTargets = {"q_proj", "v_proj", "down_proj"};

struct Workspace {
  testing::TempDir dir;
  StateDict state;
  MergeAdapter a, b;
  Workspace()
      : state(testing::synthetic_state({.layers = 3, .hidden = 16, .intermediate = 24})),
        a(testing::synthetic_lora(state, kTargets, 4, 8, 1)),
        b(testing::synthetic_lora(state, kTargets, 4, 16, 2, "b")) {
    save_checkpoint(state, dir / "base", state.total_bytes() / 3);
    testing::write_model_config(dir / "base", false);
    testing::save_adapter(a, dir / "a");
    testing::save_adapter(b, dir / "b");
  }
  std::string operator()(const std::string& name) const { return (dir / name).string(); }
};

void expect_same_bytes(const StateDict& ours, const StateDict& expected) {
  ASSERT_EQ(ours.size(), expected.size());
  for (const auto& [key, want] : expected) {
    ASSERT_TRUE(ours.contains(key)) << key;
    EXPECT_TRUE(ours.at(key).equals(want)) << key;
  }
}

StateDict read_checkpoint(const std::string& path) {
  return load_checkpoint(open_checkpoint(path));
}

TEST(CliMerge, ShardedBaseMergeAndUnmerge) {
  Workspace w;
  auto r = peftcpp(
      {"merge", "--base", w("base"), "--adapter", w("a"), "--out", w("merged"), "--threads", "2"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("merged: changed 9 of"), std::string::npos) << r.out;
  EXPECT_TRUE(r.err.empty()) << r.err;
  EXPECT_TRUE(fs::exists(w.dir / "merged" / "model.safetensors.index.json"));
  EXPECT_TRUE(fs::exists(w.dir / "merged" / "config.json"));
  {
    // The size reported is the files' (shards and index), not the tensors' bytes.
    std::uint64_t on_disk = 0;
    for (const auto& entry : fs::directory_iterator(w.dir / "merged")) {
      const std::string name = entry.path().filename().string();
      if (name.starts_with("model")) on_disk += fs::file_size(entry.path());
    }
    const std::string expected = on_disk < 1000 ? fmt::format("wrote {} B", on_disk)
                                                : fmt::format("wrote {:.1f} KB", on_disk / 1000.0);
    EXPECT_NE(r.out.find(expected), std::string::npos) << r.out << " expected " << expected;
  }
  expect_same_bytes(read_checkpoint(w("merged")), merge_adapters(w.state, {w.a}));

  r = peftcpp({"unmerge", "--merged", w("merged"), "--adapter", w("a"), "--out", w("restored")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  expect_same_bytes(read_checkpoint(w("restored")),
                    unmerge_adapters(read_checkpoint(w("merged")), {w.a}));

  r = peftcpp({"-q", "merge", "--base", w("base"), "--adapter", w("a"), "--out", w("one"),
               "--max-shard-size", "1GB", "--dtype", "f32"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(r.out.empty()) << r.out;
  const StateDict one = SafetensorsFile::open(w.dir / "one" / "model.safetensors").state_dict();
  EXPECT_EQ(one.at("model.layers.0.self_attn.q_proj.weight").dtype(), DType::F32);
}

TEST(CliMerge, SeveralAdaptersInOrderOrWeighted) {
  Workspace w;
  auto r = peftcpp(
      {"merge", "--base", w("base"), "--adapter", w("a") + "," + w("b"), "--out", w("both")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  MergeAdapter first = w.a;
  MergeAdapter second = w.b;
  MergeOptions both;
  both.adapter_names = {"default", "b"};
  expect_same_bytes(read_checkpoint(w("both")), merge_adapters(w.state, {first, second}, both));

  r = peftcpp({"merge", "--base", w("base"), "--adapter", w("a"), "--adapter", w("b"), "--weights",
               "0.7,0.3", "--combination", "linear", "--out", w("linear")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::vector<MergeAdapter> sources{w.a, w.b};
  const std::vector<double> weights{0.7, 0.3};
  MergeOptions combined;
  combined.adapter_names = {"combined"};
  expect_same_bytes(read_checkpoint(w("linear")),
                    merge_adapters(w.state,
                                   {w.a, w.b,
                                    add_weighted_adapter(sources, weights, "combined",
                                                         {.combination_type = "linear"})},
                                   combined));
}

// DARE draws its masks module by module in the model's order. For a family peftcpp knows, the
// base's config.json "model_type" gives each block's order (q, v before the MLP's down here),
// which natural order (mlp.* before self_attn.*) does not.
TEST(CliMerge, DareFollowsTheModelOrderOfKnownFamilies) {
  Workspace w;
  std::string order;
  for (int layer = 0; layer < 3; ++layer) {
    for (const char* m : {"self_attn.q_proj", "self_attn.v_proj", "mlp.down_proj"}) {
      order += fmt::format("base_model.model.model.layers.{}.{}\n", layer, m);
    }
  }
  std::ofstream(w.dir / "order.txt") << order;
  fs::copy(w.dir / "base", w.dir / "base-unknown", fs::copy_options::recursive);
  std::ofstream(w.dir / "base-unknown" / "config.json") << R"({"model_type": "unknown"})";
  const auto merge = [&](const std::string& base, const std::string& out,
                         std::vector<std::string> extra) {
    std::vector<std::string> args = {
        "merge", "--base",    w(base),   "--adapter",     w("a"),        "--adapter",
        w("b"),  "--weights", "0.6,0.4", "--combination", "dare_linear", "--density",
        "0.5",   "--seed",    "7",       "--out",         w(out)};
    args.insert(args.end(), extra.begin(), extra.end());
    const auto r = peftcpp(args);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return read_checkpoint(w(out));
  };
  const StateDict by_family = merge("base", "by-family", {});
  expect_same_bytes(by_family, merge("base", "given", {"--module-order", w("order.txt")}));
  const StateDict natural = merge("base-unknown", "natural", {});
  bool same = true;
  for (const auto& [key, tensor] : natural) same = same && tensor.equals(by_family.at(key));
  EXPECT_FALSE(same) << "natural order drew the same masks: the test shows nothing";
}

TEST(CliMerge, UsageErrorsExitTwo) {
  Workspace w;
  const std::vector<std::vector<std::string>> usage = {
      {"merge", "--base", w("base"), "--adapter", w("a")},  // no --out
      {"merge", "--adapter", w("a"), "--out", w("o")},      // no --base
      {"merge", "--base", w("base"), "--adapter", w("a"), "--out", w("o"), "--dtype", "f8"},
      {"merge", "--base", w("base"), "--adapter", w("a"), "--out", w("o"), "--max-shard-size",
       "5XiB"},
      {"merge", "--base", w("base"), "--adapter", w("a"), "--out", w("o"), "--svd-rank", "2"},
      {"merge", "--base", w("base"), "--adapter", w("a"), "--out", w("o"), "--combination", "ties"},
      {"merge", "--base", w("base"), "--adapter", w("a"), "--out", w("o"), "--density", "0.5"},
      {"merge", "--base", w("base"), "--adapter", w("a"), "--out", w("o"), "--seed", "1"},
      {"merge", "--base", w("base"), "--adapter", w("a") + "," + w("b"), "--weights", "1,1",
       "--combination", "tie", "--out", w("o")},
      {"merge", "--base", w("base"), "--adapter", w("a") + "," + w("b"), "--weights", "1,1",
       "--majority-sign-method", "most", "--out", w("o")},
      {"merge", "--base", w("base"), "--adapter", w("a") + "," + w("b"), "--weights", "1", "--out",
       w("o")},
      {"merge", "--base", w("base"), "--adapter", w("a"), "--out", w("o"), "--bogus"},
      {"unmerge", "--merged", w("base"), "--adapter", w("a"), "--out", w("o"), "--weights", "1"},
  };
  for (const auto& args : usage) {
    const auto r = peftcpp(args);
    EXPECT_EQ(r.exit_code, 2) << fmt::format("{}", fmt::join(args, " ")) << "\n" << r.err;
  }
  EXPECT_FALSE(fs::exists(w.dir / "o"));
}

TEST(CliMerge, InvalidInputExitsOneWithOneLine) {
  Workspace w;
  const StateDict other = testing::synthetic_state({.layers = 5});
  testing::save_adapter(testing::synthetic_lora(other, {"q_proj"}, 2, 2, 3), w.dir / "far");
  fs::create_directories(w.dir / "full");
  testing::write_model_config(w.dir / "full", false);
  const std::vector<std::pair<std::vector<std::string>, std::string>> invalid = {
      {{"merge", "--base", w("nowhere"), "--adapter", w("a"), "--out", w("o1")}, "not_found"},
      {{"merge", "--base", w("base"), "--adapter", w("nothing"), "--out", w("o2")}, "not_found"},
      {{"merge", "--base", w("base"), "--adapter", w("far"), "--out", w("o3")},
       "model.layers.4.self_attn.q_proj.weight"},
      {{"merge", "--base", w("base"), "--adapter", w("a"), "--out", w("full")}, "--force"},
      {{"unmerge", "--merged", w("base"), "--adapter", w("a"), "--out", w("base")}, "base"},
  };
  for (const auto& [args, fragment] : invalid) {
    const auto r = peftcpp(args);
    EXPECT_EQ(r.exit_code, 1) << fmt::format("{}", fmt::join(args, " "));
    EXPECT_NE(r.err.find(fragment), std::string::npos) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  }
}

// The numeric libraries are loaded when a merge needs them, libcurl and libcrypto when a
// download does, never at start-up (core/shared_library.hpp): the dynamic loader's own log
// (LD_DEBUG=files) lists what each command maps.
TEST(CliMerge, OptionalLibrariesLoadOnlyWhenACommandNeedsThem) {
  Workspace w;
  const auto loads = [](std::vector<std::string> args) {
    args.insert(args.begin(),
                {"/usr/bin/env", "LD_DEBUG=files", testing::peftcpp_binary().string()});
    const auto r = testing::run_command(args);
    EXPECT_EQ(r.exit_code, 0) << r.err.substr(r.err.size() > 2000 ? r.err.size() - 2000 : 0);
    return r.err;
  };
  const std::vector<std::string> optional = {"libopenblas", "liblapacke", "libfftw3", "libcurl",
                                             "libcrypto"};
  for (const auto& args : std::vector<std::vector<std::string>>{
           {"--version"},
           {"inspect", w("a")},
           {"validate", w("a")},
           {"convert", w("a") + "/adapter_model.safetensors", w("a.bin")}}) {
    const std::string log = loads(args);
    for (const auto& library : optional) {
      EXPECT_EQ(log.find(library), std::string::npos) << args[0] << " loaded " << library;
    }
  }
  const std::string merge_log =
      loads({"merge", "--base", w("base"), "--adapter", w("a"), "--out", w("merged")});
  EXPECT_NE(merge_log.find("libopenblas"), std::string::npos);
  EXPECT_EQ(merge_log.find("libcurl"), std::string::npos);
}

TEST(CliMerge, MissingNumericLibraryIsAClearError) {
  Workspace w;
  const std::string missing = w("no-such-dir/libopenblas.so.0");
  const auto r = testing::run_command({"/usr/bin/env", "PEFTCPP_BLAS_LIBRARY=" + missing,
                                       testing::peftcpp_binary().string(), "merge", "--base",
                                       w("base"), "--adapter", w("a"), "--out", w("merged")});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find(missing), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("PEFTCPP_BLAS_LIBRARY"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("libopenblas0"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(w.dir / "merged"));
}

TEST(CliMerge, HelpHasExamples) {
  for (const char* command : {"merge", "unmerge"}) {
    const auto r = peftcpp({command, "--help"});
    EXPECT_EQ(r.exit_code, 0);
    EXPECT_NE(r.out.find("Example"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("--max-shard-size"), std::string::npos);
  }
}

}  // namespace
}  // namespace peft
