#include "peft/dtype.hpp"

#include <array>
#include <bit>
#include <cmath>
#include <cstring>

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

std::uint16_t f32_to_bf16(float value) noexcept {
  // c10::BFloat16 round_to_nearest_even: NaN becomes the canonical quiet NaN 0x7FC0.
  if (std::isnan(value)) return 0x7FC0;
  const auto bits = std::bit_cast<std::uint32_t>(value);
  const std::uint32_t rounding_bias = 0x7FFFu + ((bits >> 16) & 1u);
  return static_cast<std::uint16_t>((bits + rounding_bias) >> 16);
}

float bf16_to_f32(std::uint16_t bits) noexcept {
  return std::bit_cast<float>(static_cast<std::uint32_t>(bits) << 16);
}

std::uint16_t f32_to_f16(float value) noexcept {
  // The branch-free algorithm of c10::detail::fp16_ieee_from_fp32_value (FP16 library):
  // scale into the half range so the FPU performs the rounding to nearest even.
  const float scale_to_inf = std::bit_cast<float>(std::uint32_t{0x77800000});
  const float scale_to_zero = std::bit_cast<float>(std::uint32_t{0x08800000});
  float base = (std::fabs(value) * scale_to_inf) * scale_to_zero;

  const auto w = std::bit_cast<std::uint32_t>(value);
  const std::uint32_t shl1_w = w + w;
  const std::uint32_t sign = w & 0x80000000u;
  std::uint32_t bias = shl1_w & 0xFF000000u;
  if (bias < 0x71000000u) bias = 0x71000000u;

  base = std::bit_cast<float>((bias >> 1) + 0x07800000u) + base;
  const auto result_bits = std::bit_cast<std::uint32_t>(base);
  const std::uint32_t exp_bits = (result_bits >> 13) & 0x00007C00u;
  const std::uint32_t mantissa_bits = result_bits & 0x00000FFFu;
  const std::uint32_t nonsign = exp_bits + mantissa_bits;
  return static_cast<std::uint16_t>((sign >> 16) | (shl1_w > 0xFF000000u ? 0x7E00u : nonsign));
}

float f16_to_f32(std::uint16_t h) noexcept {
  // c10::detail::fp16_ieee_to_fp32_value.
  const std::uint32_t w = static_cast<std::uint32_t>(h) << 16;
  const std::uint32_t sign = w & 0x80000000u;
  const std::uint32_t two_w = w + w;
  const std::uint32_t exp_offset = 0xE0u << 23;
  const float exp_scale = std::bit_cast<float>(std::uint32_t{0x7800000});
  const float normalized = std::bit_cast<float>((two_w >> 4) + exp_offset) * exp_scale;
  const std::uint32_t magic_mask = 126u << 23;
  const float magic_bias = 0.5f;
  const float denormalized = std::bit_cast<float>((two_w >> 17) | magic_mask) - magic_bias;
  const std::uint32_t denormalized_cutoff = 1u << 27;
  const std::uint32_t result =
      sign | (two_w < denormalized_cutoff ? std::bit_cast<std::uint32_t>(denormalized)
                                          : std::bit_cast<std::uint32_t>(normalized));
  return std::bit_cast<float>(result);
}

}  // namespace peft
