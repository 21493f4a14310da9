// peft/error.hpp — the one exception type peftcpp throws for bad input.
//
// Every broken rule has a stable ErrorCode with a fixed number whose hundreds digit is its
// ErrorCategory. The message always names the file (or other source), the key or field
// concerned, and what was expected, in the form
//   "<source>: <rule>: <detail>"
// so that one line on stderr tells a user what to fix. No other exception type leaves
// the library for bad input (std::bad_alloc can, as from any C++ library).
#pragma once

#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>

#include "peft/export.hpp"

namespace peft {

// What kind of problem an error is: the hundreds digit of its code.
enum class ErrorCategory : int {
  Io = 1,           // the operating system refused or something does not exist
  Usage = 2,        // the caller asked for something that cannot work
  Format = 3,       // a file breaks the rules of its format (safetensors, zip, pickle)
  Tensor = 4,       // tensor contents that cannot be converted or combined
  Config = 5,       // adapter_config.json is not what PEFT accepts
  Model = 6,        // weights that do not fit the model or adapter they are loaded into
  Unsupported = 7,  // something PEFT itself does not do, or peftcpp does not yet
};

// Stable numeric values: never reused, never renumbered; a new code takes the next free
// value of its category. docs/cli.md lists them all.
enum class ErrorCode : int {
  // Io
  Io = 101,        // a system call failed (open, read, write, rename, mmap...)
  NotFound = 102,  // a file, folder, tensor or adapter that was asked for does not exist
  // Usage
  InvalidArgument = 201,  // the caller passed something that cannot work
  SharedStorage = 202,    // two tensors to be written alias the same bytes
  // Format: safetensors (docs/formats.md "Safetensors / Reader validation", plus the stricter
  // checks of a C++ reader)
  HeaderTooSmall = 301,
  HeaderTooLarge = 302,
  InvalidHeaderLength = 303,
  InvalidHeaderUtf8 = 304,
  InvalidHeaderJson = 305,
  DuplicateKey = 306,
  InvalidOffset = 307,
  ValidationOverflow = 308,
  MisalignedSlice = 309,
  TensorInvalidInfo = 310,
  MetadataIncompleteBuffer = 311,
  TooManyTensors = 312,
  TensorNotFound = 313,
  // Format: zip / pickle / torch.save, and files of other formats
  InvalidZip = 351,
  InvalidPickle = 352,
  ForbiddenPickle = 353,  // a pickle asks for something that would run code
  LimitExceeded = 354,    // a resource bound of a parser was reached
  UnsupportedFormat = 355,
  InvalidGguf = 356,  // a GGUF file that breaks its format or a bound of the reader
  // Tensor
  DTypeMismatch = 401,
  ConversionOutOfRange = 402,
  UnsupportedDType = 403,
  ShapeMismatch = 404,
  // Config
  InvalidJson = 501,
  NotAPeftConfig = 502,
  UnknownPeftType = 503,
  ConfigFieldType = 504,
  InvalidConfigValue = 505,
  // Model
  MissingKey = 601,
  SizeMismatch = 602,
  // Unsupported
  Unsupported = 701,
};

// Every code, in numeric order (for tests, documentation and tools).
PEFT_API std::span<const ErrorCode> all_error_codes() noexcept;

constexpr ErrorCategory category(ErrorCode code) noexcept {
  return static_cast<ErrorCategory>(static_cast<int>(code) / 100);
}

// "io", "usage", "format", "tensor", "config", "model", "unsupported".
PEFT_API std::string_view to_string(ErrorCategory category) noexcept;

// Stable snake_case name of a code, used in messages and in --json output.
PEFT_API std::string_view to_string(ErrorCode code) noexcept;

class PEFT_API Error : public std::runtime_error {
 public:
  Error(ErrorCode code, std::string source, std::string detail);

  ErrorCode code() const noexcept { return code_; }
  // The file (or other origin) the error is about; may be empty.
  const std::string& source() const noexcept { return source_; }
  // The message without the source and rule prefix.
  const std::string& detail() const noexcept { return detail_; }
  // This error naming `source` when it names none yet (else an unchanged copy).
  Error with_source(std::string source) const;

 private:
  ErrorCode code_;
  std::string source_;
  std::string detail_;
};

// Runs `body`; a peft::Error it throws without a source gets `source`. The public entry
// points wrap their work in it, so that every error a user sees says which file or
// adapter it is about, even when it comes from a helper that cannot know.
template <class Body>
decltype(auto) annotate_errors(const std::string& source, Body&& body) {
  try {
    return std::forward<Body>(body)();
  } catch (const Error& e) {
    if (!e.source().empty()) throw;
    throw e.with_source(source);
  }
}

}  // namespace peft
