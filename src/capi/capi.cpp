// The C API (include/peftcpp.h): thin wrappers around the public C++ API. Every entry point
// runs its body through guarded(), which turns every exception into a status and a
// per-thread message, so nothing is thrown across the C boundary.
#include <exception>
#include <filesystem>
#include <memory>
#include <new>
#include <string>
#include <utility>
#include <vector>

#include "peft/adapter_io.hpp"
#include "peft/checkpoint.hpp"
#include "peft/config.hpp"
#include "peft/convert.hpp"
#include "peft/dtype.hpp"
#include "peft/error.hpp"
#include "peft/file_format.hpp"
#include "peft/merge.hpp"
#include "peft/state_dict.hpp"
#include "peft/tensor.hpp"
#include "peft/validate.hpp"
#include "peft/version.hpp"
#include "peftcpp.h"

namespace fs = std::filesystem;

struct peftcpp_adapter {
  peft::StateDict weights;
  bool has_config = false;
  std::string config_json;
  // Per tensor, in the state dict's order: what peftcpp_adapter_tensor hands out.
  std::vector<const std::string*> names;
  std::vector<peft::Tensor> tensors;
};

struct peftcpp_problems {
  std::vector<peft::Problem> problems;
};

namespace {

struct LastError {
  int status = PEFTCPP_OK;
  std::string message;
};

LastError& last_error() {
  thread_local LastError error;
  return error;
}

int fail(int status, std::string message) noexcept {
  try {
    auto& e = last_error();
    e.status = status;
    e.message = std::move(message);
  } catch (...) {
    // Out of memory while recording the message: the status still says what happened.
  }
  return status;
}

// An argument the caller got wrong (a NULL, an index out of range...): InvalidArgument with
// a message in the library's "<source>: <rule>: <detail>" form.
int invalid(const char* function, const std::string& detail) noexcept {
  try {
    return fail(PEFTCPP_STATUS_INVALID_ARGUMENT,
                peft::Error(peft::ErrorCode::InvalidArgument, function, detail).what());
  } catch (...) {
    return fail(PEFTCPP_STATUS_INVALID_ARGUMENT, {});
  }
}

template <class Body>
int guarded(Body&& body) noexcept {
  try {
    return std::forward<Body>(body)();
  } catch (const peft::Error& e) {
    return fail(static_cast<int>(e.code()), e.what());
  } catch (const std::bad_alloc&) {
    return fail(PEFTCPP_STATUS_OUT_OF_MEMORY, "peftcpp: out of memory");
  } catch (const std::exception& e) {
    return fail(PEFTCPP_STATUS_INTERNAL, std::string("peftcpp: internal error: ") + e.what());
  } catch (...) {
    return fail(PEFTCPP_STATUS_INTERNAL, "peftcpp: internal error: unknown exception");
  }
}

#define PEFTCPP_REQUIRE(function, argument)                                    \
  do {                                                                         \
    if ((argument) == nullptr) {                                               \
      return invalid(function, "'" #argument "' is NULL; expected a pointer"); \
    }                                                                          \
  } while (0)

}  // namespace

extern "C" {

const char* peftcpp_version(void) {
  return PEFTCPP_VERSION;
}

int peftcpp_abi_version(void) {
  return PEFTCPP_ABI_VERSION;
}

const char* peftcpp_last_error(void) {
  return last_error().message.c_str();
}

int peftcpp_last_status(void) {
  return last_error().status;
}

const char* peftcpp_status_name(int status) {
  switch (status) {
    case PEFTCPP_OK:
      return "ok";
    case PEFTCPP_STATUS_OUT_OF_MEMORY:
      return "out_of_memory";
    case PEFTCPP_STATUS_INTERNAL:
      return "internal";
    default:
      break;
  }
  for (const peft::ErrorCode code : peft::all_error_codes()) {
    // Every name is a string literal, so data() is NUL-terminated static storage.
    if (static_cast<int>(code) == status) return peft::to_string(code).data();
  }
  return "unknown";
}

int peftcpp_adapter_open(const char* path, peftcpp_adapter** out) {
  PEFTCPP_REQUIRE("peftcpp_adapter_open", out);
  *out = nullptr;
  PEFTCPP_REQUIRE("peftcpp_adapter_open", path);
  return guarded([&] {
    auto adapter = std::make_unique<peftcpp_adapter>();
    std::error_code ec;
    if (fs::is_regular_file(path, ec)) {
      adapter->weights = peft::read_weights_file(path);
    } else {
      adapter->weights = peft::load_peft_weights(path);
      adapter->config_json = peft::load_adapter_config(path).to_json_text();
      adapter->has_config = true;
    }
    adapter->names.reserve(adapter->weights.size());
    adapter->tensors.reserve(adapter->weights.size());
    for (const auto& [name, tensor] : adapter->weights) {
      adapter->names.push_back(&name);
      adapter->tensors.push_back(tensor);
    }
    *out = adapter.release();
    return PEFTCPP_OK;
  });
}

void peftcpp_adapter_close(peftcpp_adapter** adapter) {
  if (adapter == nullptr) return;
  delete *adapter;
  *adapter = nullptr;
}

int peftcpp_adapter_config_json(const peftcpp_adapter* adapter, const char** json, size_t* length) {
  PEFTCPP_REQUIRE("peftcpp_adapter_config_json", adapter);
  PEFTCPP_REQUIRE("peftcpp_adapter_config_json", json);
  if (!adapter->has_config) {
    return fail(PEFTCPP_STATUS_NOT_FOUND,
                peft::Error(peft::ErrorCode::NotFound, "peftcpp_adapter_config_json",
                            "the adapter was opened from a weights file, which has no "
                            "adapter_config.json; open its folder instead")
                    .what());
  }
  *json = adapter->config_json.c_str();
  if (length != nullptr) *length = adapter->config_json.size();
  return PEFTCPP_OK;
}

int peftcpp_adapter_tensor_count(const peftcpp_adapter* adapter, size_t* count) {
  PEFTCPP_REQUIRE("peftcpp_adapter_tensor_count", adapter);
  PEFTCPP_REQUIRE("peftcpp_adapter_tensor_count", count);
  *count = adapter->tensors.size();
  return PEFTCPP_OK;
}

int peftcpp_adapter_tensor(const peftcpp_adapter* adapter, size_t index, peftcpp_tensor* tensor) {
  PEFTCPP_REQUIRE("peftcpp_adapter_tensor", adapter);
  PEFTCPP_REQUIRE("peftcpp_adapter_tensor", tensor);
  if (index >= adapter->tensors.size()) {
    return invalid("peftcpp_adapter_tensor",
                   "index " + std::to_string(index) + " is out of range; the adapter has " +
                       std::to_string(adapter->tensors.size()) + " tensors");
  }
  const peft::Tensor& t = adapter->tensors[index];
  // dtype_name returns views of string literals: NUL-terminated static storage.
  *tensor = {adapter->names[index]->c_str(),
             peft::dtype_name(t.dtype()).data(),
             t.rank(),
             t.shape().data(),
             t.bytes().data(),
             t.nbytes()};
  return PEFTCPP_OK;
}

int peftcpp_save_adapter(const char* folder, const char* config_json, const peftcpp_tensor* tensors,
                         size_t count, unsigned flags) {
  constexpr const char* kFunction = "peftcpp_save_adapter";
  PEFTCPP_REQUIRE(kFunction, folder);
  PEFTCPP_REQUIRE(kFunction, config_json);
  if (tensors == nullptr && count != 0) {
    return invalid(kFunction, "'tensors' is NULL with count " + std::to_string(count));
  }
  constexpr unsigned kKnown = PEFTCPP_SAVE_OVERWRITE | PEFTCPP_SAVE_BIN | PEFTCPP_SAVE_DURABLE;
  if ((flags & ~kKnown) != 0) {
    return invalid(kFunction, "flags " + std::to_string(flags) +
                                  ": unknown bits; expected a combination of PEFTCPP_SAVE_*");
  }
  return guarded([&] {
    peft::StateDict weights;
    for (size_t i = 0; i < count; ++i) {
      const peftcpp_tensor& t = tensors[i];
      const std::string where = "tensors[" + std::to_string(i) + "]";
      if (t.name == nullptr)
        throw peft::Error(peft::ErrorCode::InvalidArgument, where, "'name' is NULL");
      const std::string source = where + " '" + t.name + "'";
      if (t.dtype == nullptr) {
        throw peft::Error(peft::ErrorCode::InvalidArgument, source, "'dtype' is NULL");
      }
      const auto dtype = peft::dtype_from_name(t.dtype);
      if (!dtype) {
        throw peft::Error(peft::ErrorCode::InvalidArgument, source,
                          std::string("dtype '") + t.dtype +
                              "' is unknown; expected a safetensors name (F32, BF16, I64...)");
      }
      if (t.shape == nullptr && t.rank != 0) {
        throw peft::Error(peft::ErrorCode::InvalidArgument, source,
                          "'shape' is NULL with rank " + std::to_string(t.rank));
      }
      if (t.data == nullptr && t.nbytes != 0) {
        throw peft::Error(peft::ErrorCode::InvalidArgument, source,
                          "'data' is NULL with nbytes " + std::to_string(t.nbytes));
      }
      if (weights.contains(t.name)) {
        throw peft::Error(peft::ErrorCode::DuplicateKey, source, "the name is given twice");
      }
      peft::Shape shape(t.shape, t.shape + t.rank);
      const std::uint64_t expected = peft::byte_size(*dtype, shape);
      if (expected != t.nbytes) {
        throw peft::Error(peft::ErrorCode::InvalidArgument, source,
                          "nbytes is " + std::to_string(t.nbytes) + "; expected " +
                              std::to_string(expected) + " for " + t.dtype + " " +
                              peft::shape_to_string(shape));
      }
      // A view: the caller's bytes are only read during this call.
      const auto* bytes = static_cast<const std::byte*>(t.data);
      weights.set(t.name, peft::Tensor::view(*dtype, std::move(shape),
                                             {bytes, static_cast<size_t>(t.nbytes)}, nullptr));
    }
    const auto config = peft::PeftConfig::from_json_text(config_json, "config_json");
    peft::SaveAdapterOptions options;
    options.overwrite = (flags & PEFTCPP_SAVE_OVERWRITE) != 0;
    options.safe_serialization = (flags & PEFTCPP_SAVE_BIN) == 0;
    options.durable = (flags & PEFTCPP_SAVE_DURABLE) != 0;
    peft::save_adapter(folder, config, weights, options);
    return PEFTCPP_OK;
  });
}

int peftcpp_validate(const char* path, peftcpp_problems** out) {
  PEFTCPP_REQUIRE("peftcpp_validate", out);
  *out = nullptr;
  PEFTCPP_REQUIRE("peftcpp_validate", path);
  return guarded([&] {
    auto list = std::make_unique<peftcpp_problems>();
    std::error_code ec;
    list->problems = fs::is_regular_file(path, ec)
                         ? peft::validate_file(path)
                         : peft::validate_adapter_folder(peft::resolve_adapter_folder(path));
    *out = list.release();
    return PEFTCPP_OK;
  });
}

int peftcpp_problems_count(const peftcpp_problems* problems, size_t* count) {
  PEFTCPP_REQUIRE("peftcpp_problems_count", problems);
  PEFTCPP_REQUIRE("peftcpp_problems_count", count);
  *count = problems->problems.size();
  return PEFTCPP_OK;
}

int peftcpp_problem_get(const peftcpp_problems* problems, size_t index, peftcpp_problem* problem) {
  PEFTCPP_REQUIRE("peftcpp_problem_get", problems);
  PEFTCPP_REQUIRE("peftcpp_problem_get", problem);
  if (index >= problems->problems.size()) {
    return invalid("peftcpp_problem_get",
                   "index " + std::to_string(index) + " is out of range; the list has " +
                       std::to_string(problems->problems.size()) + " problems");
  }
  const peft::Problem& p = problems->problems[index];
  *problem = {
      p.code.c_str(), p.source.c_str(), p.message.c_str(), p.hint.c_str(),
      p.severity == peft::Severity::Error ? PEFTCPP_SEVERITY_ERROR : PEFTCPP_SEVERITY_WARNING};
  return PEFTCPP_OK;
}

void peftcpp_problems_free(peftcpp_problems** problems) {
  if (problems == nullptr) return;
  delete *problems;
  *problems = nullptr;
}

int peftcpp_merge(const char* base, const char* const* adapters, size_t count, const char* out_dir,
                  const char* dtype, unsigned threads, unsigned flags,
                  peftcpp_merge_result* result) {
  constexpr const char* kFunction = "peftcpp_merge";
  PEFTCPP_REQUIRE(kFunction, base);
  PEFTCPP_REQUIRE(kFunction, adapters);
  PEFTCPP_REQUIRE(kFunction, out_dir);
  if (count == 0) return invalid(kFunction, "count is 0; expected at least one adapter");
  for (size_t i = 0; i < count; ++i) {
    if (adapters[i] == nullptr) {
      return invalid(kFunction, "adapters[" + std::to_string(i) + "] is NULL");
    }
  }
  constexpr unsigned kKnown =
      PEFTCPP_MERGE_FORCE | PEFTCPP_MERGE_SAFE_MERGE | PEFTCPP_MERGE_NO_AUTOCAST;
  if ((flags & ~kKnown) != 0) {
    return invalid(kFunction, "flags " + std::to_string(flags) +
                                  ": unknown bits; expected a combination of PEFTCPP_MERGE_*");
  }
  return guarded([&] {
    peft::CheckpointWriteOptions write;
    if (dtype != nullptr) {
      write.dtype = peft::floating_dtype_from_alias(dtype);
      if (!write.dtype) {
        throw peft::Error(peft::ErrorCode::InvalidArgument, kFunction,
                          std::string("dtype '") + dtype + "' is unknown; expected one of " +
                              std::string(peft::floating_dtype_aliases()));
      }
    }
    write.threads = threads;
    write.force = (flags & PEFTCPP_MERGE_FORCE) != 0;
    // The first adapter is "default", the others adapter1, adapter2...: the names only
    // select them, as in `peftcpp merge`.
    std::vector<peft::MergeAdapter> list;
    peft::MergeOptions options;
    for (size_t i = 0; i < count; ++i) {
      std::string name = i == 0 ? "default" : "adapter" + std::to_string(i);
      list.push_back(
          {name, peft::load_adapter_config(adapters[i]), peft::load_peft_weights(adapters[i]), {}});
      options.adapter_names.push_back(std::move(name));
    }
    options.safe_merge = (flags & PEFTCPP_MERGE_SAFE_MERGE) != 0;
    options.autocast_adapter_dtype = (flags & PEFTCPP_MERGE_NO_AUTOCAST) == 0;
    const auto layout = peft::open_checkpoint(base);
    const auto written = peft::merge_checkpoint(layout, std::move(list), options, out_dir, write);
    if (result != nullptr) {
      *result = {written.tensors, written.changed, written.files.size(), written.bytes};
    }
    return PEFTCPP_OK;
  });
}

}  // extern "C"
