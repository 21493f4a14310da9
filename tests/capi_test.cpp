// The C API (include/peftcpp.h): every function, its results against the C++ API, and every
// error path: bad paths, corrupt files, NULL arguments, unknown flags, indices out of range,
// double close; messages per thread.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "peft/adapter_io.hpp"
#include "peft/convert.hpp"
#include "peft/error.hpp"
#include "peft/file_format.hpp"
#include "peft/validate.hpp"
#include "peft/version.hpp"
#include "peftcpp.h"
#include "test_support.hpp"

namespace peft {
namespace {
namespace fs = std::filesystem;

fs::path example() {
  return testing::test_data() / ".." / ".." / "examples" / "tf_llama_lora";
}

fs::path merge_case() {
  return testing::test_data() / "peft-merge" / "tf_llama_lora";
}

std::string last_error() {
  return peftcpp_last_error();
}

// Asserts a status and that the thread's message holds `fragment`.
#define EXPECT_STATUS(call, status, fragment)                               \
  do {                                                                      \
    const int status_ = (call);                                             \
    EXPECT_EQ(status_, status) << last_error();                             \
    EXPECT_EQ(peftcpp_last_status(), status);                               \
    EXPECT_NE(last_error().find(fragment), std::string::npos)               \
        << "message '" << last_error() << "' lacks '" << (fragment) << "'"; \
  } while (0)

struct Adapter {
  peftcpp_adapter* handle = nullptr;
  ~Adapter() { peftcpp_adapter_close(&handle); }
};

std::vector<peftcpp_tensor> tensors_of(const peftcpp_adapter* adapter) {
  size_t count = 0;
  EXPECT_EQ(peftcpp_adapter_tensor_count(adapter, &count), PEFTCPP_OK);
  std::vector<peftcpp_tensor> out(count);
  for (size_t i = 0; i < count; ++i) {
    EXPECT_EQ(peftcpp_adapter_tensor(adapter, i, &out[i]), PEFTCPP_OK) << last_error();
  }
  return out;
}

TEST(CApi, VersionAndStatusNames) {
  EXPECT_STREQ(peftcpp_version(), kVersion);
  EXPECT_EQ(peftcpp_abi_version(), PEFTCPP_ABI_VERSION);
  EXPECT_STREQ(peftcpp_status_name(PEFTCPP_OK), "ok");
  EXPECT_STREQ(peftcpp_status_name(PEFTCPP_STATUS_NOT_FOUND), "not_found");
  EXPECT_STREQ(peftcpp_status_name(PEFTCPP_STATUS_OUT_OF_MEMORY), "out_of_memory");
  EXPECT_STREQ(peftcpp_status_name(PEFTCPP_STATUS_INTERNAL), "internal");
  EXPECT_STREQ(peftcpp_status_name(-1), "unknown");
  EXPECT_STREQ(peftcpp_status_name(999), "unknown");
  // Every ErrorCode is a status of the same number and name.
  for (const ErrorCode code : all_error_codes()) {
    EXPECT_EQ(std::string(peftcpp_status_name(static_cast<int>(code))), to_string(code));
  }
  EXPECT_EQ(PEFTCPP_STATUS_IO, static_cast<int>(ErrorCode::Io));
  EXPECT_EQ(PEFTCPP_STATUS_INVALID_ARGUMENT, static_cast<int>(ErrorCode::InvalidArgument));
  EXPECT_EQ(PEFTCPP_STATUS_INVALID_JSON, static_cast<int>(ErrorCode::InvalidJson));
  EXPECT_EQ(PEFTCPP_STATUS_UNSUPPORTED, static_cast<int>(ErrorCode::Unsupported));
}

TEST(CApi, MessagesArePerThread) {
  peftcpp_adapter* handle = nullptr;
  EXPECT_STATUS(peftcpp_adapter_open("/nonexistent/peftcpp-capi", &handle),
                PEFTCPP_STATUS_NOT_FOUND, "/nonexistent/peftcpp-capi");
  std::string other_message = "unset";
  int other_status = -1;
  std::thread([&] {
    // A fresh thread has no failure yet...
    other_status = peftcpp_last_status();
    other_message = peftcpp_last_error();
    // ...and its failures do not touch this thread's message.
    peftcpp_adapter* h = nullptr;
    peftcpp_adapter_open(nullptr, &h);
  }).join();
  EXPECT_EQ(other_status, PEFTCPP_OK);
  EXPECT_EQ(other_message, "");
  EXPECT_EQ(peftcpp_last_status(), PEFTCPP_STATUS_NOT_FOUND);
  EXPECT_NE(last_error().find("/nonexistent/peftcpp-capi"), std::string::npos);
  // Success leaves the message of the last failure.
  size_t count = 0;
  Adapter a;
  ASSERT_EQ(peftcpp_adapter_open(example().c_str(), &a.handle), PEFTCPP_OK);
  ASSERT_EQ(peftcpp_adapter_tensor_count(a.handle, &count), PEFTCPP_OK);
  EXPECT_EQ(peftcpp_last_status(), PEFTCPP_STATUS_NOT_FOUND);
}

TEST(CApi, OpenFolderMatchesTheCppApi) {
  Adapter a;
  ASSERT_EQ(peftcpp_adapter_open(example().c_str(), &a.handle), PEFTCPP_OK) << last_error();
  ASSERT_NE(a.handle, nullptr);

  const StateDict expected = load_peft_weights(example().string());
  const auto tensors = tensors_of(a.handle);
  ASSERT_EQ(tensors.size(), expected.size());
  ASSERT_EQ(tensors.size(), 8u);
  const auto file_size = fs::file_size(example() / "adapter_model.safetensors");
  const auto* first = static_cast<const char*>(tensors[0].data);
  std::size_t i = 0;
  for (const auto& [name, tensor] : expected) {
    const peftcpp_tensor& t = tensors[i++];
    EXPECT_EQ(t.name, name);
    EXPECT_EQ(t.dtype, dtype_name(tensor.dtype()));
    ASSERT_EQ(t.rank, tensor.rank());
    EXPECT_EQ(Shape(t.shape, t.shape + t.rank), tensor.shape());
    ASSERT_EQ(t.nbytes, tensor.nbytes());
    EXPECT_EQ(std::memcmp(t.data, tensor.bytes().data(), t.nbytes), 0);
    // Zero-copy: every tensor lies in the one mapping of the file.
    const auto* p = static_cast<const char*>(t.data);
    EXPECT_LT(static_cast<std::uint64_t>(std::max(p - first, first - p)), file_size);
  }

  const char* json = nullptr;
  size_t length = 0;
  ASSERT_EQ(peftcpp_adapter_config_json(a.handle, &json, &length), PEFTCPP_OK);
  const std::string text = load_adapter_config(example().string()).to_json_text();
  EXPECT_EQ(std::string(json, length), text);
  EXPECT_EQ(std::strlen(json), length);
  json = nullptr;
  EXPECT_EQ(peftcpp_adapter_config_json(a.handle, &json, nullptr), PEFTCPP_OK);  // length optional
  EXPECT_EQ(std::string(json), text);
}

TEST(CApi, OpenWeightsFiles) {
  for (const char* file : {"adapter_model.safetensors", "adapter_model.bin"}) {
    SCOPED_TRACE(file);
    Adapter a;
    const auto path = example() / file;
    ASSERT_EQ(peftcpp_adapter_open(path.c_str(), &a.handle), PEFTCPP_OK) << last_error();
    const auto tensors = tensors_of(a.handle);
    const StateDict expected = read_weights_file(path);
    ASSERT_EQ(tensors.size(), expected.size());
    std::size_t i = 0;
    for (const auto& [name, tensor] : expected) {
      EXPECT_EQ(tensors[i].name, name);
      EXPECT_EQ(std::memcmp(tensors[i].data, tensor.bytes().data(), tensor.nbytes()), 0);
      ++i;
    }
    // A weights file has no config.
    const char* json = "unchanged";
    EXPECT_STATUS(peftcpp_adapter_config_json(a.handle, &json, nullptr), PEFTCPP_STATUS_NOT_FOUND,
                  "opened from a weights file");
    EXPECT_STREQ(json, "unchanged");
  }
}

TEST(CApi, OpenErrors) {
  testing::TempDir dir;
  peftcpp_adapter* handle = reinterpret_cast<peftcpp_adapter*>(&dir);  // overwritten with NULL
  // Bad path.
  const std::string missing = (dir / "missing").string();
  EXPECT_STATUS(peftcpp_adapter_open(missing.c_str(), &handle), PEFTCPP_STATUS_NOT_FOUND, missing);
  EXPECT_EQ(handle, nullptr);
  // Corrupt weights file: the same error as the C++ API.
  const auto corrupt = dir / "corrupt.safetensors";
  testing::write_bytes(corrupt, std::vector<std::byte>(16, std::byte{0xFF}));
  int cpp_code = 0;
  std::string cpp_message;
  try {
    read_weights_file(corrupt);
  } catch (const Error& e) {
    cpp_code = static_cast<int>(e.code());
    cpp_message = e.what();
  }
  ASSERT_NE(cpp_code, 0);
  EXPECT_EQ(cpp_code / 100, 3);  // a format error
  EXPECT_STATUS(peftcpp_adapter_open(corrupt.c_str(), &handle), cpp_code, cpp_message);
  EXPECT_EQ(handle, nullptr);
  EXPECT_NE(last_error().find(corrupt.string()), std::string::npos);
  // A folder whose config is broken JSON.
  fs::create_directories(dir / "broken");
  fs::copy_file(example() / "adapter_model.safetensors", dir / "broken/adapter_model.safetensors");
  std::ofstream(dir / "broken/adapter_config.json") << "{\"peft_type\": ";
  EXPECT_STATUS(peftcpp_adapter_open((dir / "broken").c_str(), &handle),
                PEFTCPP_STATUS_INVALID_JSON, "adapter_config.json");
  // A folder without weights.
  fs::create_directories(dir / "empty");
  EXPECT_STATUS(peftcpp_adapter_open((dir / "empty").c_str(), &handle), PEFTCPP_STATUS_NOT_FOUND,
                "adapter_model");
  // A truncated weights file inside a folder.
  fs::create_directories(dir / "truncated");
  fs::copy_file(example() / "adapter_config.json", dir / "truncated/adapter_config.json");
  auto bytes = testing::read_bytes(example() / "adapter_model.safetensors");
  bytes.resize(bytes.size() / 2);
  testing::write_bytes(dir / "truncated/adapter_model.safetensors", bytes);
  const int status = peftcpp_adapter_open((dir / "truncated").c_str(), &handle);
  EXPECT_EQ(status / 100, 3) << last_error();
  EXPECT_NE(last_error().find("adapter_model.safetensors"), std::string::npos) << last_error();
  // GGUF is recognised and refused.
  testing::write_bytes(dir / "model.gguf",
                       {std::byte{'G'}, std::byte{'G'}, std::byte{'U'}, std::byte{'F'},
                        std::byte{3}, std::byte{0}, std::byte{0}, std::byte{0}});
  EXPECT_STATUS(peftcpp_adapter_open((dir / "model.gguf").c_str(), &handle),
                static_cast<int>(ErrorCode::UnsupportedFormat), "model.gguf");
  // NULL arguments.
  EXPECT_STATUS(peftcpp_adapter_open(nullptr, &handle), PEFTCPP_STATUS_INVALID_ARGUMENT,
                "peftcpp_adapter_open: invalid_argument: 'path' is NULL");
  EXPECT_EQ(handle, nullptr);
  EXPECT_STATUS(peftcpp_adapter_open(example().c_str(), nullptr), PEFTCPP_STATUS_INVALID_ARGUMENT,
                "'out' is NULL");
}

TEST(CApi, CloseIsSafeTwiceAndOnNull) {
  peftcpp_adapter* handle = nullptr;
  ASSERT_EQ(peftcpp_adapter_open(example().c_str(), &handle), PEFTCPP_OK);
  peftcpp_adapter_close(&handle);
  EXPECT_EQ(handle, nullptr);
  peftcpp_adapter_close(&handle);  // double close through the same variable: no-op
  peftcpp_adapter_close(nullptr);
  EXPECT_EQ(handle, nullptr);
}

TEST(CApi, AccessorErrors) {
  Adapter a;
  ASSERT_EQ(peftcpp_adapter_open(example().c_str(), &a.handle), PEFTCPP_OK);
  size_t count = 0;
  const char* json = nullptr;
  peftcpp_tensor tensor{};
  EXPECT_STATUS(peftcpp_adapter_tensor_count(nullptr, &count), PEFTCPP_STATUS_INVALID_ARGUMENT,
                "'adapter' is NULL");
  EXPECT_STATUS(peftcpp_adapter_tensor_count(a.handle, nullptr), PEFTCPP_STATUS_INVALID_ARGUMENT,
                "'count' is NULL");
  EXPECT_STATUS(peftcpp_adapter_config_json(nullptr, &json, nullptr),
                PEFTCPP_STATUS_INVALID_ARGUMENT, "'adapter' is NULL");
  EXPECT_STATUS(peftcpp_adapter_config_json(a.handle, nullptr, nullptr),
                PEFTCPP_STATUS_INVALID_ARGUMENT, "'json' is NULL");
  EXPECT_STATUS(peftcpp_adapter_tensor(nullptr, 0, &tensor), PEFTCPP_STATUS_INVALID_ARGUMENT,
                "'adapter' is NULL");
  EXPECT_STATUS(peftcpp_adapter_tensor(a.handle, 0, nullptr), PEFTCPP_STATUS_INVALID_ARGUMENT,
                "'tensor' is NULL");
  EXPECT_STATUS(peftcpp_adapter_tensor(a.handle, 8, &tensor), PEFTCPP_STATUS_INVALID_ARGUMENT,
                "index 8 is out of range; the adapter has 8 tensors");
  EXPECT_STATUS(peftcpp_adapter_tensor(a.handle, static_cast<size_t>(-1), &tensor),
                PEFTCPP_STATUS_INVALID_ARGUMENT, "out of range");
}

TEST(CApi, SaveAdapterRoundTrip) {
  testing::TempDir dir;
  Adapter a;
  ASSERT_EQ(peftcpp_adapter_open(example().c_str(), &a.handle), PEFTCPP_OK);
  const char* json = nullptr;
  ASSERT_EQ(peftcpp_adapter_config_json(a.handle, &json, nullptr), PEFTCPP_OK);
  const auto tensors = tensors_of(a.handle);
  const auto out = dir / "copy";
  ASSERT_EQ(peftcpp_save_adapter(out.c_str(), json, tensors.data(), tensors.size(), 0), PEFTCPP_OK)
      << last_error();
  EXPECT_TRUE(compare_adapters(example(), out).identical());
  EXPECT_TRUE(fs::exists(out / "adapter_model.safetensors"));
  // An existing adapter is refused unless overwritten.
  EXPECT_STATUS(peftcpp_save_adapter(out.c_str(), json, tensors.data(), tensors.size(), 0),
                PEFTCPP_STATUS_INVALID_ARGUMENT, out.string());
  EXPECT_EQ(peftcpp_save_adapter(out.c_str(), json, tensors.data(), tensors.size(),
                                 PEFTCPP_SAVE_OVERWRITE | PEFTCPP_SAVE_DURABLE),
            PEFTCPP_OK)
      << last_error();
  // torch.save output.
  const auto bin = dir / "bin";
  ASSERT_EQ(
      peftcpp_save_adapter(bin.c_str(), json, tensors.data(), tensors.size(), PEFTCPP_SAVE_BIN),
      PEFTCPP_OK)
      << last_error();
  EXPECT_TRUE(fs::exists(bin / "adapter_model.bin"));
  EXPECT_EQ(detect_file_format(bin / "adapter_model.bin"), FileFormat::TorchZip);
  Adapter b;
  ASSERT_EQ(peftcpp_adapter_open(bin.c_str(), &b.handle), PEFTCPP_OK) << last_error();
  const auto reread = tensors_of(b.handle);
  ASSERT_EQ(reread.size(), tensors.size());
  for (std::size_t i = 0; i < reread.size(); ++i) {
    EXPECT_STREQ(reread[i].name, tensors[i].name);
    ASSERT_EQ(reread[i].nbytes, tensors[i].nbytes);
    EXPECT_EQ(std::memcmp(reread[i].data, tensors[i].data, tensors[i].nbytes), 0);
  }
}

TEST(CApi, SaveAdapterErrors) {
  testing::TempDir dir;
  Adapter a;
  ASSERT_EQ(peftcpp_adapter_open(example().c_str(), &a.handle), PEFTCPP_OK);
  const char* json = nullptr;
  ASSERT_EQ(peftcpp_adapter_config_json(a.handle, &json, nullptr), PEFTCPP_OK);
  auto tensors = tensors_of(a.handle);
  const std::string out = (dir / "out").string();
  const auto save = [&](const std::vector<peftcpp_tensor>& list, unsigned flags = 0,
                        const char* config = nullptr) {
    return peftcpp_save_adapter(out.c_str(), config ? config : json, list.data(), list.size(),
                                flags);
  };
  EXPECT_STATUS(peftcpp_save_adapter(nullptr, json, tensors.data(), tensors.size(), 0),
                PEFTCPP_STATUS_INVALID_ARGUMENT, "'folder' is NULL");
  EXPECT_STATUS(peftcpp_save_adapter(out.c_str(), nullptr, tensors.data(), tensors.size(), 0),
                PEFTCPP_STATUS_INVALID_ARGUMENT, "'config_json' is NULL");
  EXPECT_STATUS(peftcpp_save_adapter(out.c_str(), json, nullptr, 3, 0),
                PEFTCPP_STATUS_INVALID_ARGUMENT, "'tensors' is NULL with count 3");
  EXPECT_STATUS(save(tensors, 8), PEFTCPP_STATUS_INVALID_ARGUMENT, "flags 8: unknown bits");
  // No tensor: refused as validate refuses it, nothing written.
  EXPECT_STATUS(peftcpp_save_adapter(out.c_str(), json, nullptr, 0, 0),
                PEFTCPP_STATUS_INVALID_ARGUMENT, "empty_weights");
  EXPECT_FALSE(fs::exists(out));
  // Broken config JSON: the config error of the C++ API.
  EXPECT_STATUS(save(tensors, 0, "{\"peft_type\": \"LORA\""), PEFTCPP_STATUS_INVALID_JSON,
                "config_json");
  EXPECT_STATUS(save(tensors, 0, "{\"peft_type\": \"NOPE\"}"),
                static_cast<int>(ErrorCode::UnknownPeftType), "NOPE");
  // Tensor descriptions.
  auto bad = tensors;
  bad[1].name = nullptr;
  EXPECT_STATUS(save(bad), PEFTCPP_STATUS_INVALID_ARGUMENT, "tensors[1]: invalid_argument: 'name'");
  bad = tensors;
  bad[2].dtype = "F33";
  EXPECT_STATUS(save(bad), PEFTCPP_STATUS_INVALID_ARGUMENT, "dtype 'F33' is unknown");
  bad[2].dtype = nullptr;
  EXPECT_STATUS(save(bad), PEFTCPP_STATUS_INVALID_ARGUMENT, "'dtype' is NULL");
  bad = tensors;
  bad[0].nbytes -= 4;
  EXPECT_STATUS(save(bad), PEFTCPP_STATUS_INVALID_ARGUMENT, "expected");
  bad = tensors;
  bad[0].shape = nullptr;
  EXPECT_STATUS(save(bad), PEFTCPP_STATUS_INVALID_ARGUMENT, "'shape' is NULL with rank 2");
  bad = tensors;
  bad[0].data = nullptr;
  EXPECT_STATUS(save(bad), PEFTCPP_STATUS_INVALID_ARGUMENT, "'data' is NULL");
  bad = tensors;
  bad[1].name = bad[0].name;
  EXPECT_STATUS(save(bad), static_cast<int>(ErrorCode::DuplicateKey), "given twice");
  // Shapes that contradict the config's rank: validate's error, nothing written.
  bad = tensors;
  const std::uint64_t wrong_shape[2] = {2, 16};  // the same 32 values, but r = 4 in the config
  bad[0].shape = wrong_shape;
  EXPECT_STATUS(save(bad), PEFTCPP_STATUS_INVALID_ARGUMENT, "rank");
  EXPECT_FALSE(fs::exists(out));
}

TEST(CApi, Validate) {
  testing::TempDir dir;
  peftcpp_problems* problems = nullptr;
  ASSERT_EQ(peftcpp_validate(example().c_str(), &problems), PEFTCPP_OK) << last_error();
  size_t count = 99;
  ASSERT_EQ(peftcpp_problems_count(problems, &count), PEFTCPP_OK);
  EXPECT_EQ(count, validate_adapter_folder(example()).size());
  peftcpp_problems_free(&problems);
  EXPECT_EQ(problems, nullptr);
  peftcpp_problems_free(&problems);  // twice: no-op
  peftcpp_problems_free(nullptr);

  // An empty weights file: one error with code, where, message and hint.
  fs::create_directories(dir / "empty");
  fs::copy_file(example() / "adapter_config.json", dir / "empty/adapter_config.json");
  std::ofstream(dir / "empty/adapter_model.safetensors").close();
  ASSERT_EQ(peftcpp_validate((dir / "empty").c_str(), &problems), PEFTCPP_OK) << last_error();
  ASSERT_EQ(peftcpp_problems_count(problems, &count), PEFTCPP_OK);
  const auto expected = validate_adapter_folder(dir / "empty");
  ASSERT_EQ(count, expected.size());
  ASSERT_GE(count, 1u);
  bool found = false;
  for (size_t i = 0; i < count; ++i) {
    peftcpp_problem p{};
    ASSERT_EQ(peftcpp_problem_get(problems, i, &p), PEFTCPP_OK);
    EXPECT_EQ(p.code, expected[i].code);
    EXPECT_EQ(p.where, expected[i].source);
    EXPECT_EQ(p.message, expected[i].message);
    EXPECT_EQ(p.hint, expected[i].hint);
    EXPECT_EQ(p.severity, expected[i].severity == Severity::Error ? PEFTCPP_SEVERITY_ERROR
                                                                  : PEFTCPP_SEVERITY_WARNING);
    found = found || std::string(p.code) == "empty_weights";
  }
  EXPECT_TRUE(found);
  peftcpp_problem p{};
  EXPECT_STATUS(peftcpp_problem_get(problems, count, &p), PEFTCPP_STATUS_INVALID_ARGUMENT,
                "out of range");
  EXPECT_STATUS(peftcpp_problem_get(problems, 0, nullptr), PEFTCPP_STATUS_INVALID_ARGUMENT,
                "'problem' is NULL");
  EXPECT_STATUS(peftcpp_problem_get(nullptr, 0, &p), PEFTCPP_STATUS_INVALID_ARGUMENT,
                "'problems' is NULL");
  EXPECT_STATUS(peftcpp_problems_count(nullptr, &count), PEFTCPP_STATUS_INVALID_ARGUMENT,
                "'problems' is NULL");
  EXPECT_STATUS(peftcpp_problems_count(problems, nullptr), PEFTCPP_STATUS_INVALID_ARGUMENT,
                "'count' is NULL");
  peftcpp_problems_free(&problems);

  // A single file: a config, then a weights file.
  ASSERT_EQ(peftcpp_validate((example() / "adapter_config.json").c_str(), &problems), PEFTCPP_OK);
  peftcpp_problems_free(&problems);
  ASSERT_EQ(peftcpp_validate((example() / "adapter_model.bin").c_str(), &problems), PEFTCPP_OK);
  peftcpp_problems_free(&problems);

  // Errors: no such path, a file that is neither, NULL arguments.
  problems = reinterpret_cast<peftcpp_problems*>(&dir);
  const std::string missing = (dir / "missing").string();
  EXPECT_STATUS(peftcpp_validate(missing.c_str(), &problems), PEFTCPP_STATUS_NOT_FOUND, missing);
  EXPECT_EQ(problems, nullptr);
  testing::write_bytes(
      dir / "x.gguf", {std::byte{'G'}, std::byte{'G'}, std::byte{'U'}, std::byte{'F'}, std::byte{3},
                       std::byte{0}, std::byte{0}, std::byte{0}});
  EXPECT_STATUS(peftcpp_validate((dir / "x.gguf").c_str(), &problems),
                static_cast<int>(ErrorCode::UnsupportedFormat), "x.gguf");
  EXPECT_STATUS(peftcpp_validate(nullptr, &problems), PEFTCPP_STATUS_INVALID_ARGUMENT,
                "'path' is NULL");
  EXPECT_STATUS(peftcpp_validate(example().c_str(), nullptr), PEFTCPP_STATUS_INVALID_ARGUMENT,
                "'out' is NULL");
}

TEST(CApi, Merge) {
  testing::TempDir dir;
  const std::string base = (merge_case() / "base_model.safetensors").string();
  const std::string adapter = (merge_case() / "adapter").string();
  const char* adapters[] = {adapter.c_str()};
  const std::string out = (dir / "merged").string();
  peftcpp_merge_result result{};
  ASSERT_EQ(peftcpp_merge(base.c_str(), adapters, 1, out.c_str(), nullptr, 1, 0, &result),
            PEFTCPP_OK)
      << last_error();
  EXPECT_EQ(result.files, 1u);
  EXPECT_GT(result.changed, 0u);
  EXPECT_GE(result.tensors, result.changed);
  EXPECT_GT(result.bytes, 0u);
  CompareOptions tolerance;
  tolerance.atol = 1e-6;
  EXPECT_TRUE(compare_adapters(dir / "merged/model.safetensors",
                               merge_case() / "merged_model.safetensors", tolerance)
                  .tensors.empty());

  // The output exists now: refused without FORCE, written with it (result may be NULL).
  EXPECT_STATUS(peftcpp_merge(base.c_str(), adapters, 1, out.c_str(), nullptr, 0, 0, nullptr),
                PEFTCPP_STATUS_INVALID_ARGUMENT, out);
  EXPECT_EQ(peftcpp_merge(base.c_str(), adapters, 1, out.c_str(), "bf16", 0,
                          PEFTCPP_MERGE_FORCE | PEFTCPP_MERGE_SAFE_MERGE, nullptr),
            PEFTCPP_OK)
      << last_error();
  const std::string out2 = (dir / "o2").string();
  EXPECT_STATUS(peftcpp_merge(base.c_str(), adapters, 1, out2.c_str(), "int3", 0, 0, nullptr),
                PEFTCPP_STATUS_INVALID_ARGUMENT, "dtype 'int3' is unknown");
  EXPECT_STATUS(peftcpp_merge(base.c_str(), adapters, 1, out2.c_str(), nullptr, 0, 64, nullptr),
                PEFTCPP_STATUS_INVALID_ARGUMENT, "flags 64: unknown bits");
  EXPECT_STATUS(peftcpp_merge(base.c_str(), adapters, 0, out2.c_str(), nullptr, 0, 0, nullptr),
                PEFTCPP_STATUS_INVALID_ARGUMENT, "count is 0");
  const char* with_null[] = {adapter.c_str(), nullptr};
  EXPECT_STATUS(peftcpp_merge(base.c_str(), with_null, 2, out2.c_str(), nullptr, 0, 0, nullptr),
                PEFTCPP_STATUS_INVALID_ARGUMENT, "adapters[1] is NULL");
  EXPECT_STATUS(peftcpp_merge(nullptr, adapters, 1, out2.c_str(), nullptr, 0, 0, nullptr),
                PEFTCPP_STATUS_INVALID_ARGUMENT, "'base' is NULL");
  EXPECT_STATUS(peftcpp_merge(base.c_str(), nullptr, 1, out2.c_str(), nullptr, 0, 0, nullptr),
                PEFTCPP_STATUS_INVALID_ARGUMENT, "'adapters' is NULL");
  EXPECT_STATUS(peftcpp_merge(base.c_str(), adapters, 1, nullptr, nullptr, 0, 0, nullptr),
                PEFTCPP_STATUS_INVALID_ARGUMENT, "'out_dir' is NULL");
  const std::string missing = (dir / "missing").string();
  EXPECT_STATUS(peftcpp_merge(missing.c_str(), adapters, 1, out2.c_str(), nullptr, 0, 0, nullptr),
                PEFTCPP_STATUS_NOT_FOUND, missing);
  const char* missing_adapter[] = {missing.c_str()};
  EXPECT_STATUS(
      peftcpp_merge(base.c_str(), missing_adapter, 1, out2.c_str(), nullptr, 0, 0, nullptr),
      PEFTCPP_STATUS_NOT_FOUND, missing);
  // A base without the tensors the adapter changes.
  const std::string other_base =
      (testing::test_data() / "peft-merge" / "lora_linear" / "base_model.safetensors").string();
  EXPECT_STATUS(
      peftcpp_merge(other_base.c_str(), adapters, 1, out2.c_str(), nullptr, 0, 0, nullptr),
      static_cast<int>(ErrorCode::MissingKey), "");
  EXPECT_FALSE(fs::exists(out2) && !fs::is_empty(out2));
}

}  // namespace
}  // namespace peft
