// peft/dtype.hpp — every element type a safetensors file can hold.
//
// The enumerators are declared in the safetensors crate's order (its "alignment"
// rank, HEAD version with the two FNUZ float8 types), because the reference writer
// sorts tensors by that rank, largest first. Sub-byte types (F4, F6_*) pack several
// elements per byte; their byte size is only defined when the element count times
// the bit width is a multiple of 8.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

#include "peft/export.hpp"

namespace peft {

enum class DType : std::uint8_t {
  BOOL,
  F4,
  F6_E2M3,
  F6_E3M2,
  U8,
  I8,
  F8_E5M2,
  F8_E4M3,
  F8_E8M0,
  F8_E4M3FNUZ,
  F8_E5M2FNUZ,
  I16,
  U16,
  F16,
  BF16,
  I32,
  U32,
  F32,
  C64,
  F64,
  I64,
  U64,
};

inline constexpr std::size_t kDTypeCount = 22;

// The safetensors name ("F32", "BF16", ...).
PEFT_API std::string_view dtype_name(DType dtype) noexcept;
// Parses a safetensors name; nullopt for anything else (names are case-sensitive).
PEFT_API std::optional<DType> dtype_from_name(std::string_view name) noexcept;
// The floating dtypes a user may ask a conversion for, as PyTorch and safetensors spell
// them: f32/fp32/float32/float, f16/fp16/float16/half, bf16/bfloat16 (any case, with or
// without "torch."). nullopt for anything else. Every dtype option of the CLI uses it.
PEFT_API std::optional<DType> floating_dtype_from_alias(std::string_view text) noexcept;
// "f32, fp32, float32, float, f16, ..." for messages.
PEFT_API std::string_view floating_dtype_aliases() noexcept;
// Bits per element: 4, 6, 8, 16, 32 or 64.
PEFT_API unsigned dtype_bits(DType dtype) noexcept;
// Bytes per element for byte-sized types; 0 for the sub-byte ones.
PEFT_API std::size_t dtype_size(DType dtype) noexcept;
// The writer's sort rank (higher is written first).
inline unsigned dtype_rank(DType dtype) noexcept {
  return static_cast<unsigned>(dtype);
}

PEFT_API bool is_floating(DType dtype) noexcept;
PEFT_API bool is_integral(DType dtype) noexcept;  // BOOL excluded
// Types peftcpp converts between: F64, F32, F16, BF16, BOOL and the integer types.
PEFT_API bool is_convertible(DType dtype) noexcept;

// Element conversions exactly as PyTorch performs them (c10::Half / c10::BFloat16):
// round to nearest even, NaN and infinities preserved. Inline: they run per element in
// every conversion and merge loop.
inline std::uint16_t f32_to_bf16(float value) noexcept {
  // c10::BFloat16 round_to_nearest_even: NaN becomes the canonical quiet NaN 0x7FC0. Written
  // without a branch (NaN: magnitude bits above infinity's) so that loops over it vectorise.
  const auto bits = std::bit_cast<std::uint32_t>(value);
  const std::uint32_t rounded = (bits + 0x7FFFu + ((bits >> 16) & 1u)) >> 16;
  return static_cast<std::uint16_t>((bits & 0x7FFFFFFFu) > 0x7F800000u ? 0x7FC0u : rounded);
}

inline float bf16_to_f32(std::uint16_t bits) noexcept {
  return std::bit_cast<float>(static_cast<std::uint32_t>(bits) << 16);
}

inline std::uint16_t f32_to_f16(float value) noexcept {
  // The branch-free algorithm of c10::detail::fp16_ieee_from_fp32_value (FP16 library):
  // scale into the half range so the FPU performs the rounding to nearest even.
  const float scale_to_inf = std::bit_cast<float>(std::uint32_t{0x77800000});
  const float scale_to_zero = std::bit_cast<float>(std::uint32_t{0x08800000});
  const auto w = std::bit_cast<std::uint32_t>(value);
  float base = (std::bit_cast<float>(w & 0x7FFFFFFFu) * scale_to_inf) * scale_to_zero;
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

inline float f16_to_f32(std::uint16_t h) noexcept {
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
