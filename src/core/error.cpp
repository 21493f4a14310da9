#include "peft/error.hpp"

#include <array>
#include <utility>

namespace peft {
namespace {

struct CodeName {
  ErrorCode code;
  std::string_view name;
};

// In numeric order; a test checks that every code has a distinct name and the order.
constexpr std::array kCodeNames = {
    CodeName{ErrorCode::Io, "io"},
    CodeName{ErrorCode::NotFound, "not_found"},
    CodeName{ErrorCode::InvalidArgument, "invalid_argument"},
    CodeName{ErrorCode::SharedStorage, "shared_storage"},
    CodeName{ErrorCode::HeaderTooSmall, "header_too_small"},
    CodeName{ErrorCode::HeaderTooLarge, "header_too_large"},
    CodeName{ErrorCode::InvalidHeaderLength, "invalid_header_length"},
    CodeName{ErrorCode::InvalidHeaderUtf8, "invalid_header_utf8"},
    CodeName{ErrorCode::InvalidHeaderJson, "invalid_header_json"},
    CodeName{ErrorCode::DuplicateKey, "duplicate_key"},
    CodeName{ErrorCode::InvalidOffset, "invalid_offset"},
    CodeName{ErrorCode::ValidationOverflow, "validation_overflow"},
    CodeName{ErrorCode::MisalignedSlice, "misaligned_slice"},
    CodeName{ErrorCode::TensorInvalidInfo, "tensor_invalid_info"},
    CodeName{ErrorCode::MetadataIncompleteBuffer, "metadata_incomplete_buffer"},
    CodeName{ErrorCode::TooManyTensors, "too_many_tensors"},
    CodeName{ErrorCode::TensorNotFound, "tensor_not_found"},
    CodeName{ErrorCode::InvalidZip, "invalid_zip"},
    CodeName{ErrorCode::InvalidPickle, "invalid_pickle"},
    CodeName{ErrorCode::ForbiddenPickle, "forbidden_pickle"},
    CodeName{ErrorCode::LimitExceeded, "limit_exceeded"},
    CodeName{ErrorCode::UnsupportedFormat, "unsupported_format"},
    CodeName{ErrorCode::InvalidGguf, "invalid_gguf"},
    CodeName{ErrorCode::DTypeMismatch, "dtype_mismatch"},
    CodeName{ErrorCode::ConversionOutOfRange, "conversion_out_of_range"},
    CodeName{ErrorCode::UnsupportedDType, "unsupported_dtype"},
    CodeName{ErrorCode::ShapeMismatch, "shape_mismatch"},
    CodeName{ErrorCode::InvalidJson, "invalid_json"},
    CodeName{ErrorCode::NotAPeftConfig, "not_a_peft_config"},
    CodeName{ErrorCode::UnknownPeftType, "unknown_peft_type"},
    CodeName{ErrorCode::ConfigFieldType, "config_field_type"},
    CodeName{ErrorCode::InvalidConfigValue, "invalid_config_value"},
    CodeName{ErrorCode::MissingKey, "missing_key"},
    CodeName{ErrorCode::SizeMismatch, "size_mismatch"},
    CodeName{ErrorCode::Unsupported, "unsupported"},
};

std::string compose(ErrorCode code, const std::string& source, const std::string& detail) {
  std::string message;
  if (!source.empty()) {
    message += source;
    message += ": ";
  }
  message += to_string(code);
  message += ": ";
  message += detail;
  return message;
}

}  // namespace

constexpr auto kCodes = [] {
  std::array<ErrorCode, kCodeNames.size()> codes{};
  for (std::size_t i = 0; i < codes.size(); ++i) codes[i] = kCodeNames[i].code;
  return codes;
}();

std::span<const ErrorCode> all_error_codes() noexcept {
  return kCodes;
}

std::string_view to_string(ErrorCategory category) noexcept {
  switch (category) {
    case ErrorCategory::Io:
      return "io";
    case ErrorCategory::Usage:
      return "usage";
    case ErrorCategory::Format:
      return "format";
    case ErrorCategory::Tensor:
      return "tensor";
    case ErrorCategory::Config:
      return "config";
    case ErrorCategory::Model:
      return "model";
    case ErrorCategory::Unsupported:
      return "unsupported";
  }
  return "unknown";
}

std::string_view to_string(ErrorCode code) noexcept {
  for (const auto& entry : kCodeNames) {
    if (entry.code == code) return entry.name;
  }
  return "unknown_error";
}

Error::Error(ErrorCode code, std::string source, std::string detail)
    : std::runtime_error(compose(code, source, detail)),
      code_(code),
      source_(std::move(source)),
      detail_(std::move(detail)) {}

Error Error::with_source(std::string source) const {
  if (!source_.empty()) return *this;
  return Error(code_, std::move(source), detail_);
}

}  // namespace peft
