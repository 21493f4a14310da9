// GGUF: the writer against the format (header, metadata types, alignment, tensor order),
// round-tripped through the reader; the reader's refusals; and export_gguf on the
// reference Llama LoRA cases: names, shapes in GGUF order, the q/k row permutation, and
// scales that give back PEFT's delta.
#include "formats/gguf.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <map>

#include <fmt/format.h>

#include "peft/adapter_io.hpp"
#include "peft/error.hpp"
#include "peft/gguf.hpp"
#include "peft/gguf_export.hpp"
#include "peft/module_match.hpp"
#include "peft/safetensors.hpp"
#include "test_support.hpp"

namespace peft {
namespace {

namespace fs = std::filesystem;
using formats::GgmlType;
using formats::GgufValueType;

std::vector<std::byte> read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::vector<char> chars((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<std::byte> out(chars.size());
  std::memcpy(out.data(), chars.data(), chars.size());
  return out;
}

TEST(Gguf, WriterRoundTripsThroughTheReader) {
  const std::vector<float> values = {1, 2, 3, 4, 5, 6};
  const auto* raw = reinterpret_cast<const std::byte*>(values.data());
  const std::vector<formats::GgufKeyValue> metadata = {
      {"general.architecture", GgufValueType::String, "llama"},
      {"adapter.lora.alpha", GgufValueType::Float32, 16.0},
      {"some.count", GgufValueType::UInt32, 7},
      {"some.flag", GgufValueType::Bool, true},
      {"some.list", GgufValueType::Array, nlohmann::json::array({"a", "bc"}),
       GgufValueType::String},
  };
  const std::vector<formats::GgufTensor> tensors = {
      {"first", GgmlType::F32, {3, 2}, {raw, 24}},
      {"second", GgmlType::F32, {1}, {raw, 4}},
  };
  const auto bytes = formats::serialize_gguf(metadata, tensors);
  ASSERT_GE(bytes.size(), 24U);
  EXPECT_EQ(std::memcmp(bytes.data(), "GGUF", 4), 0);

  const auto contents = formats::read_gguf(bytes, "mem.gguf");
  EXPECT_EQ(contents.version, 3U);
  ASSERT_EQ(contents.metadata.size(), metadata.size());
  for (std::size_t i = 0; i < metadata.size(); ++i) {
    EXPECT_EQ(contents.metadata[i].key, metadata[i].key);
    EXPECT_EQ(contents.metadata[i].type, metadata[i].type);
    EXPECT_EQ(contents.metadata[i].value, metadata[i].value) << metadata[i].key;
  }
  EXPECT_EQ(contents.metadata[4].element_type, GgufValueType::String);
  ASSERT_EQ(contents.tensors.size(), 2U);
  EXPECT_EQ(contents.tensors[0].name, "first");
  EXPECT_EQ(contents.tensors[0].ne, (std::vector<std::uint64_t>{3, 2}));
  EXPECT_EQ(contents.tensors[0].offset, 0U);
  EXPECT_EQ(contents.tensors[1].offset, 32U);  // 24 bytes padded to the alignment
  EXPECT_EQ(contents.data_offset % 32, 0U);
  EXPECT_EQ(std::memcmp(bytes.data() + contents.data_offset, raw, 24), 0);
  EXPECT_EQ(std::memcmp(bytes.data() + contents.data_offset + 32, raw, 4), 0);
  EXPECT_EQ(bytes.size() % 32, 0U);
}

TEST(Gguf, WriterRefusesValuesAndBytesThatDoNotFit) {
  const std::vector<std::byte> three(3);
  EXPECT_PEFT_ERROR(formats::serialize_gguf({}, {{"t", GgmlType::F32, {1}, three}}),
                    ErrorCode::InvalidArgument, "3 bytes");
  EXPECT_PEFT_ERROR(formats::serialize_gguf({{"k", GgufValueType::UInt8, 300}}, {}),
                    ErrorCode::InvalidArgument, "UINT8");
  EXPECT_PEFT_ERROR(formats::serialize_gguf({{"k", GgufValueType::String, 1}}, {}),
                    ErrorCode::InvalidArgument, "STRING");
}

TEST(Gguf, ReaderRefusesEveryTruncation) {
  const float value = 1;
  const auto bytes = formats::serialize_gguf(
      {{"general.architecture", GgufValueType::String, "llama"}},
      {{"t", GgmlType::F32, {1}, {reinterpret_cast<const std::byte*>(&value), 4}}});
  for (std::size_t size = 0; size < bytes.size() - 31; ++size) {
    EXPECT_THROW(formats::read_gguf(std::span(bytes).first(size), "cut.gguf"), Error) << size;
  }
  EXPECT_NO_THROW(formats::read_gguf(bytes, "whole.gguf"));
}

TEST(Gguf, ReaderRefusesHugeCountsBeforeAllocating) {
  std::vector<std::byte> bytes(24);
  const std::uint32_t magic = 0x46554747U, version = 3;
  const std::uint64_t tensors = 0, kvs = ~0ULL;
  std::memcpy(bytes.data(), &magic, 4);
  std::memcpy(bytes.data() + 4, &version, 4);
  std::memcpy(bytes.data() + 8, &tensors, 8);
  std::memcpy(bytes.data() + 16, &kvs, 8);
  EXPECT_PEFT_ERROR(formats::read_gguf(bytes, "huge.gguf"), ErrorCode::InvalidGguf, "huge.gguf");
}

TEST(Gguf, Q8ZeroMatchesGgmlsReference) {
  std::vector<float> values(32);
  for (std::size_t i = 0; i < values.size(); ++i) values[i] = static_cast<float>(i) - 10.5F;
  const auto block = formats::quantize_q8_0(values);
  ASSERT_EQ(block.size(), 34U);
  std::uint16_t half;
  std::memcpy(&half, block.data(), 2);
  const float d = f16_to_f32(half);
  EXPECT_NEAR(d, 20.5F / 127.0F, 1e-4);  // max |x| = 31 - 10.5
  for (std::size_t i = 0; i < values.size(); ++i) {
    const auto q = static_cast<std::int8_t>(block[2 + i]);
    EXPECT_EQ(q, std::lround(values[i] * (1.0F / (20.5F / 127.0F)))) << i;
  }
}

// --- export_gguf on the reference Llama cases ----------------------------------------

// config.json of the case's base model, as transformers writes it.
fs::path write_base_config(const fs::path& case_dir, const fs::path& into) {
  std::ifstream in(case_dir / "case.json");
  const auto c = nlohmann::json::parse(in);
  auto config = c["base_model"]["transformers_config"];
  const std::string cls = c["base_model"]["class"].get<std::string>();
  config["architectures"] = nlohmann::json::array({cls.substr(cls.rfind('.') + 1)});
  fs::create_directories(into);
  std::ofstream(into / "config.json") << config.dump();
  return into;
}

std::vector<float> floats_of(const std::vector<std::byte>& file,
                             const formats::GgufContents& contents, const std::string& name) {
  for (const auto& t : contents.tensors) {
    if (t.name != name) continue;
    EXPECT_EQ(t.type, 0U);  // F32
    std::vector<float> out(t.nbytes / 4);
    std::memcpy(out.data(), file.data() + contents.data_offset + t.offset, t.nbytes);
    return out;
  }
  ADD_FAILURE() << "no tensor " << name;
  return {};
}

TEST(GgufExport, LlamaLoraGivesBackPeftsDelta) {
  const fs::path adapter = testing::peft_ref_root() / "tf_llama_lora";
  if (!fs::exists(adapter))
    GTEST_SKIP() << "no tf_llama_lora case under " << testing::peft_ref_root();
  testing::TempDir dir;
  const fs::path base = write_base_config(adapter, dir / "base");
  const GgufExportResult result = export_gguf(adapter.string(), base.string(), dir / "a.gguf");
  EXPECT_EQ(result.architecture, "llama");

  const auto file = read_file(dir / "a.gguf");
  const auto contents = formats::read_gguf(file, "a.gguf");
  EXPECT_EQ(contents.find("general.type")->value, "adapter");
  EXPECT_EQ(contents.find("adapter.type")->value, "lora");
  EXPECT_EQ(contents.find("adapter.lora.alpha")->type, GgufValueType::Float32);
  EXPECT_EQ(contents.find("general.architecture")->value, "llama");

  const PeftConfig config = load_adapter_config(adapter.string());
  const StateDict weights = load_peft_weights(adapter.string());
  std::ifstream in(adapter / "case.json");
  const auto base_config = nlohmann::json::parse(in)["base_model"]["transformers_config"];
  const auto heads = base_config["num_attention_heads"].get<std::size_t>();
  const auto kv_heads = base_config.value("num_key_value_heads", heads);
  const std::map<std::string, std::string> names = {
      {"self_attn.q_proj", "attn_q"}, {"self_attn.k_proj", "attn_k"},
      {"self_attn.v_proj", "attn_v"}, {"self_attn.o_proj", "attn_output"},
      {"mlp.gate_proj", "ffn_gate"},  {"mlp.up_proj", "ffn_up"},
      {"mlp.down_proj", "ffn_down"}};
  std::size_t modules = 0;
  for (const auto& [key, a_tensor] : weights) {
    if (!key.ends_with(".lora_A.weight")) continue;
    const std::string module = key.substr(17, key.size() - 17 - 14);  // strip root and suffix
    if (!module.starts_with("model.layers.")) continue;
    const Tensor& b_tensor = weights.at(key.substr(0, key.size() - 14) + ".lora_B.weight");
    const std::string rest = module.substr(13);
    const std::string layer = rest.substr(0, rest.find('.'));
    const std::string inner = rest.substr(rest.find('.') + 1);
    ASSERT_TRUE(names.count(inner)) << module;
    const std::string gguf = fmt::format("blk.{}.{}.weight", layer, names.at(inner));
    const bool permuted = inner == "self_attn.q_proj" || inner == "self_attn.k_proj";
    const std::size_t groups = inner == "self_attn.q_proj" ? heads : kv_heads;
    const auto a = floats_of(file, contents, gguf + ".lora_a");
    auto b = floats_of(file, contents, gguf + ".lora_b");
    ASSERT_EQ(a, a_tensor.to_floats()) << gguf;  // lora_a is never permuted or scaled
    const std::size_t r = a_tensor.shape()[0], out = b_tensor.shape()[0];
    const double llama_scale = result.alpha / static_cast<double>(r);
    const double peft_scale = alpha_for(config, module) / rank_for(config, module);
    const auto expected_b = b_tensor.to_floats();
    for (std::size_t row = 0; row < out; ++row) {
      // Undo llama.cpp's rotary permutation of q's rows.
      std::size_t from = row;
      if (permuted) {
        const std::size_t half = out / groups / 2, h = row / (2 * half), in_head = row % (2 * half);
        from = h * 2 * half + (in_head % 2) * half + in_head / 2;
      }
      for (std::size_t c = 0; c < r; ++c) {
        EXPECT_NEAR(b[from * r + c] * llama_scale, expected_b[row * r + c] * peft_scale, 1e-6)
            << gguf << " row " << row;
      }
    }
    ++modules;
  }
  EXPECT_GT(modules, 0U);
  EXPECT_EQ(contents.tensors.size(), 2 * modules);

  // What peftcpp inspect shows of the file.
  const GgufSummary summary = inspect_gguf_file(dir / "a.gguf");
  EXPECT_EQ(summary.version, 3U);
  EXPECT_EQ(summary.file_bytes, file.size());
  ASSERT_EQ(summary.tensors.size(), contents.tensors.size());
  EXPECT_EQ(summary.tensors[0].type, "F32");
  EXPECT_EQ(to_json(summary, true)["metadata"]["adapter.type"], "lora");
}

TEST(GgufExport, RefusesWhatLlamaCppCannotHold) {
  testing::TempDir dir;
  const fs::path llama = testing::peft_ref_root() / "tf_llama_lora";
  if (!fs::exists(llama)) GTEST_SKIP() << "no tf_llama_lora case";
  const fs::path base = write_base_config(llama, dir / "base");
  const fs::path dora = testing::peft_ref_root() / "tf_llama_dora_bias_all";
  if (fs::exists(dora)) {
    EXPECT_PEFT_ERROR(export_gguf(dora.string(), base.string(), dir / "d.gguf"),
                      ErrorCode::Unsupported, "peftcpp merge");
    EXPECT_FALSE(fs::exists(dir / "d.gguf"));
  }
  // An embedding LoRA on a base whose embeddings are tied.
  auto config = nlohmann::json::parse(std::ifstream(base / "config.json"));
  config["tie_word_embeddings"] = true;
  std::ofstream(base / "config.json") << config.dump();
  const auto vocab = config["vocab_size"].get<std::uint64_t>();
  const auto hidden = config["hidden_size"].get<std::uint64_t>();
  fs::create_directories(dir / "embed");
  std::ofstream(dir / "embed" / "adapter_config.json")
      << R"({"peft_type": "LORA", "r": 2, "lora_alpha": 2, "target_modules": ["embed_tokens"]})";
  StateDict embed;
  embed.set("base_model.model.model.embed_tokens.lora_embedding_A",
            Tensor::zeros(DType::F32, {2, vocab}));
  embed.set("base_model.model.model.embed_tokens.lora_embedding_B",
            Tensor::zeros(DType::F32, {hidden, 2}));
  save_safetensors(embed, dir / "embed" / "adapter_model.safetensors");
  EXPECT_PEFT_ERROR(export_gguf((dir / "embed").string(), base.string(), dir / "e.gguf"),
                    ErrorCode::Unsupported, "tied to the output");
  EXPECT_FALSE(fs::exists(dir / "e.gguf"));
  std::ofstream(dir / "base" / "config.json") << R"({"architectures": ["GPT2LMHeadModel"]})";
  EXPECT_PEFT_ERROR(export_gguf(llama.string(), base.string(), dir / "g.gguf"),
                    ErrorCode::Unsupported, "GPT2LMHeadModel");
  EXPECT_FALSE(fs::exists(dir / "g.gguf"));
}

}  // namespace
}  // namespace peft

namespace peft {
namespace {

testing::CommandResult peftcpp(std::vector<std::string> args) {
  args.insert(args.begin(), testing::peftcpp_binary().string());
  return testing::run_command(args);
}

TEST(GgufCli, ExportThenInspect) {
  const fs::path adapter = testing::peft_ref_root() / "tf_llama_lora";
  if (!fs::exists(adapter)) GTEST_SKIP() << "no tf_llama_lora case";
  testing::TempDir dir;
  const fs::path base = write_base_config(adapter, dir / "base");
  const std::string out = (dir / "a.gguf").string();
  auto result = peftcpp({"export-gguf", adapter.string(), "--base", base.string(), "--out", out,
                         "--outtype", "bf16"});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_NE(result.out.find("llama"), std::string::npos) << result.out;
  // An existing output is kept unless --force.
  EXPECT_EQ(
      peftcpp({"export-gguf", adapter.string(), "--base", base.string(), "--out", out}).exit_code,
      1);
  result = peftcpp({"inspect", out, "--json", "--tensors"});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  const auto json = nlohmann::json::parse(result.out);
  EXPECT_EQ(json["format"], "gguf");
  EXPECT_EQ(json["metadata"]["general.type"], "adapter");
  ASSERT_FALSE(json["tensors"].empty());
  EXPECT_EQ(json["tensors"][0]["type"], "BF16");
  EXPECT_EQ(peftcpp({"export-gguf", adapter.string(), "--base", base.string(), "--out", out,
                     "--outtype", "f8"})
                .exit_code,
            2);
}

}  // namespace
}  // namespace peft
