// peft/error.hpp — the one exception type peftcpp throws for bad input.
//
// Every broken rule has a stable ErrorCode. The message always names the file (or
// other source), the key or field concerned, and what was expected, in the form
//   "<source>: <rule>: <detail>"
// so that one line on stderr tells a user what to fix.
#pragma once

#include <stdexcept>
#include <string>
#include <string_view>

namespace peft {

enum class ErrorCode {
  // I/O
  Io,               // a system call failed (open, read, write, rename, mmap...)
  NotFound,         // a file, folder, tensor or adapter that was asked for does not exist
  InvalidArgument,  // the caller passed something that cannot work
  // safetensors (formats.md §1.8, plus the stricter checks of a C++ reader)
  HeaderTooSmall,
  HeaderTooLarge,
  InvalidHeaderLength,
  InvalidHeaderUtf8,
  InvalidHeaderJson,
  DuplicateKey,
  InvalidOffset,
  ValidationOverflow,
  MisalignedSlice,
  TensorInvalidInfo,
  MetadataIncompleteBuffer,
  TooManyTensors,
  TensorNotFound,
  SharedStorage,  // two tensors to be written alias the same bytes
  // tensors
  DTypeMismatch,
  ConversionOutOfRange,
  UnsupportedDType,
  ShapeMismatch,
  // zip / pickle / torch.save
  InvalidZip,
  InvalidPickle,
  ForbiddenPickle,  // a pickle asks for something that would run code
  LimitExceeded,    // a resource bound of a parser was reached
  UnsupportedFormat,
  // configs and PEFT semantics
  InvalidJson,
  NotAPeftConfig,
  UnknownPeftType,
  ConfigFieldType,
  InvalidConfigValue,
  MissingKey,
  SizeMismatch,
  Unsupported,
};

// Stable snake_case name of a code, used in messages and in --json output.
std::string_view to_string(ErrorCode code) noexcept;

class Error : public std::runtime_error {
 public:
  Error(ErrorCode code, std::string source, std::string detail);

  ErrorCode code() const noexcept { return code_; }
  // The file (or other origin) the error is about; may be empty.
  const std::string& source() const noexcept { return source_; }
  // The message without the source and rule prefix.
  const std::string& detail() const noexcept { return detail_; }

 private:
  ErrorCode code_;
  std::string source_;
  std::string detail_;
};

}  // namespace peft
