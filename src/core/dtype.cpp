#include "peft/dtype.hpp"

#include <array>
#include <bit>
#include <cctype>
#include <cmath>
#include <cstring>
#include <string>

namespace peft {
namespace {

struct DTypeInfo {
  std::string_view name;
  unsigned bits;
};

// Indexed by the enumerator value.
constexpr std::array<DTypeInfo, kDTypeCount> kInfo = {{
    {"BOOL", 8},        {"F4", 4},      {"F6_E2M3", 6}, {"F6_E3M2", 6}, {"U8", 8},
    {"I8", 8},          {"F8_E5M2", 8}, {"F8_E4M3", 8}, {"F8_E8M0", 8}, {"F8_E4M3FNUZ", 8},
    {"F8_E5M2FNUZ", 8}, {"I16", 16},    {"U16", 16},    {"F16", 16},    {"BF16", 16},
    {"I32", 32},        {"U32", 32},    {"F32", 32},    {"C64", 64},    {"F64", 64},
    {"I64", 64},        {"U64", 64},
}};

const DTypeInfo& info(DType dtype) {
  return kInfo[static_cast<std::size_t>(dtype)];
}

}  // namespace

std::string_view dtype_name(DType dtype) noexcept {
  return info(dtype).name;
}

std::optional<DType> dtype_from_name(std::string_view name) noexcept {
  for (std::size_t i = 0; i < kInfo.size(); ++i) {
    if (kInfo[i].name == name) return static_cast<DType>(i);
  }
  return std::nullopt;
}

namespace {

struct DTypeAlias {
  std::string_view name;
  DType dtype;
};
constexpr std::array<DTypeAlias, 10> kFloatingAliases{{
    {"f32", DType::F32},
    {"fp32", DType::F32},
    {"float32", DType::F32},
    {"float", DType::F32},
    {"f16", DType::F16},
    {"fp16", DType::F16},
    {"float16", DType::F16},
    {"half", DType::F16},
    {"bf16", DType::BF16},
    {"bfloat16", DType::BF16},
}};

}  // namespace

std::optional<DType> floating_dtype_from_alias(std::string_view text) noexcept {
  if (text.starts_with("torch.")) text.remove_prefix(6);
  std::string lower(text);
  for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  for (const auto& alias : kFloatingAliases) {
    if (alias.name == lower) return alias.dtype;
  }
  return std::nullopt;
}

std::string_view floating_dtype_aliases() noexcept {
  return "f32/fp32/float32/float, f16/fp16/float16/half, bf16/bfloat16";
}

unsigned dtype_bits(DType dtype) noexcept {
  return info(dtype).bits;
}

std::size_t dtype_size(DType dtype) noexcept {
  const unsigned bits = info(dtype).bits;
  return bits % 8 == 0 ? bits / 8 : 0;
}

bool is_floating(DType dtype) noexcept {
  switch (dtype) {
    case DType::F4:
    case DType::F6_E2M3:
    case DType::F6_E3M2:
    case DType::F8_E5M2:
    case DType::F8_E4M3:
    case DType::F8_E8M0:
    case DType::F8_E4M3FNUZ:
    case DType::F8_E5M2FNUZ:
    case DType::F16:
    case DType::BF16:
    case DType::F32:
    case DType::F64:
      return true;
    default:
      return false;
  }
}

bool is_integral(DType dtype) noexcept {
  switch (dtype) {
    case DType::U8:
    case DType::I8:
    case DType::I16:
    case DType::U16:
    case DType::I32:
    case DType::U32:
    case DType::I64:
    case DType::U64:
      return true;
    default:
      return false;
  }
}

bool is_convertible(DType dtype) noexcept {
  return is_integral(dtype) || dtype == DType::BOOL || dtype == DType::F16 ||
         dtype == DType::BF16 || dtype == DType::F32 || dtype == DType::F64;
}

}  // namespace peft
