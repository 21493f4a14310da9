// peft/dtype.hpp — every element type a safetensors file can hold.
//
// The enumerators are declared in the safetensors crate's order (its "alignment"
// rank, HEAD version with the two FNUZ float8 types), because the reference writer
// sorts tensors by that rank, largest first. Sub-byte types (F4, F6_*) pack several
// elements per byte; their byte size is only defined when the element count times
// the bit width is a multiple of 8.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

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
std::string_view dtype_name(DType dtype) noexcept;
// Parses a safetensors name; nullopt for anything else (names are case-sensitive).
std::optional<DType> dtype_from_name(std::string_view name) noexcept;
// Bits per element: 4, 6, 8, 16, 32 or 64.
unsigned dtype_bits(DType dtype) noexcept;
// Bytes per element for byte-sized types; 0 for the sub-byte ones.
std::size_t dtype_size(DType dtype) noexcept;
// The writer's sort rank (higher is written first).
inline unsigned dtype_rank(DType dtype) noexcept {
  return static_cast<unsigned>(dtype);
}

bool is_floating(DType dtype) noexcept;
bool is_integral(DType dtype) noexcept;  // BOOL excluded
// Types peftcpp converts between: F64, F32, F16, BF16, BOOL and the integer types.
bool is_convertible(DType dtype) noexcept;

// Element conversions exactly as PyTorch performs them (c10::Half / c10::BFloat16):
// round to nearest even, NaN and infinities preserved.
std::uint16_t f32_to_bf16(float value) noexcept;
std::uint16_t f32_to_f16(float value) noexcept;
float bf16_to_f32(std::uint16_t bits) noexcept;
float f16_to_f32(std::uint16_t bits) noexcept;

}  // namespace peft
