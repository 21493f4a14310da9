#include "peft/dtype.hpp"

#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <limits>

namespace peft {
namespace {

TEST(DType, NamesRoundTripAndSizes) {
  for (std::size_t i = 0; i < kDTypeCount; ++i) {
    const auto dtype = static_cast<DType>(i);
    const auto parsed = dtype_from_name(dtype_name(dtype));
    ASSERT_TRUE(parsed.has_value()) << dtype_name(dtype);
    EXPECT_EQ(*parsed, dtype);
  }
  EXPECT_EQ(dtype_size(DType::F32), 4u);
  EXPECT_EQ(dtype_size(DType::BF16), 2u);
  EXPECT_EQ(dtype_size(DType::C64), 8u);
  EXPECT_EQ(dtype_size(DType::F4), 0u);
  EXPECT_EQ(dtype_bits(DType::F6_E2M3), 6u);
  EXPECT_FALSE(dtype_from_name("f32").has_value());
  EXPECT_FALSE(dtype_from_name("FLOAT").has_value());
}

TEST(DType, WriterRankPutsWideTypesFirst) {
  // docs/formats.md "Safetensors / Writer": U64, I64, F64, C64, F32, U32, I32, BF16, F16, U16, I16,
  // ...
  EXPECT_GT(dtype_rank(DType::U64), dtype_rank(DType::I64));
  EXPECT_GT(dtype_rank(DType::I64), dtype_rank(DType::F64));
  EXPECT_GT(dtype_rank(DType::C64), dtype_rank(DType::F32));
  EXPECT_GT(dtype_rank(DType::BF16), dtype_rank(DType::F16));
  EXPECT_GT(dtype_rank(DType::I16), dtype_rank(DType::F8_E5M2FNUZ));
  EXPECT_GT(dtype_rank(DType::F8_E8M0), dtype_rank(DType::F8_E4M3));
  EXPECT_GT(dtype_rank(DType::U8), dtype_rank(DType::F6_E3M2));
  EXPECT_GT(dtype_rank(DType::F4), dtype_rank(DType::BOOL));
}

TEST(DType, Bf16RoundsToNearestEven) {
  EXPECT_EQ(f32_to_bf16(1.0f), 0x3F80);
  // 1 + 2^-8 is exactly halfway between two bf16 values: ties go to even (1.0).
  EXPECT_EQ(f32_to_bf16(std::bit_cast<float>(0x3F808000u)), 0x3F80);
  // 1 + 3*2^-8 is halfway, the even neighbour is above.
  EXPECT_EQ(f32_to_bf16(std::bit_cast<float>(0x3F818000u)), 0x3F82);
  EXPECT_EQ(f32_to_bf16(std::bit_cast<float>(0x3F808001u)), 0x3F81);
  EXPECT_EQ(f32_to_bf16(std::numeric_limits<float>::infinity()), 0x7F80);
  EXPECT_EQ(f32_to_bf16(-std::numeric_limits<float>::infinity()), 0xFF80);
  EXPECT_EQ(f32_to_bf16(std::numeric_limits<float>::quiet_NaN()), 0x7FC0);
  // Every NaN, whatever its sign and payload, becomes the canonical quiet NaN (torch does too).
  for (const std::uint32_t nan :
       {0x7F800001u, 0xFF800001u, 0x7FFFFFFFu, 0xFFC00000u, 0x7FBFFFFFu}) {
    EXPECT_EQ(f32_to_bf16(std::bit_cast<float>(nan)), 0x7FC0) << std::hex << nan;
  }
  // The largest float rounds up to infinity, as in PyTorch.
  EXPECT_EQ(f32_to_bf16(std::numeric_limits<float>::max()), 0x7F80);
  EXPECT_EQ(bf16_to_f32(0x3F80), 1.0f);
  EXPECT_TRUE(std::isnan(bf16_to_f32(0x7FC1)));
}

TEST(DType, F16RoundsToNearestEvenAndKeepsSpecials) {
  EXPECT_EQ(f32_to_f16(1.0f), 0x3C00);
  EXPECT_EQ(f32_to_f16(-2.0f), 0xC000);
  EXPECT_EQ(f32_to_f16(65504.0f), 0x7BFF);
  EXPECT_EQ(f32_to_f16(65520.0f), 0x7C00);  // halfway to the next binade: infinity
  EXPECT_EQ(f32_to_f16(65519.0f), 0x7BFF);
  EXPECT_EQ(f32_to_f16(1.0f + 1.0f / 2048.0f), 0x3C00);  // tie to even
  EXPECT_EQ(f32_to_f16(1.0f + 3.0f / 2048.0f), 0x3C02);
  EXPECT_EQ(f32_to_f16(5.960464477539063e-08f), 0x0001);   // smallest subnormal
  EXPECT_EQ(f32_to_f16(2.9802322387695312e-08f), 0x0000);  // half of it: tie to even zero
  EXPECT_EQ(f32_to_f16(std::numeric_limits<float>::infinity()), 0x7C00);
  EXPECT_EQ(f32_to_f16(std::numeric_limits<float>::quiet_NaN()), 0x7E00);
  EXPECT_EQ(f32_to_f16(-std::numeric_limits<float>::quiet_NaN()), 0xFE00);
  for (std::uint32_t bits = 0; bits < 0x10000; ++bits) {
    const auto h = static_cast<std::uint16_t>(bits);
    const float f = f16_to_f32(h);
    if (std::isnan(f)) continue;
    ASSERT_EQ(f32_to_f16(f), h) << "half bits " << bits;
  }
  EXPECT_EQ(f16_to_f32(0x0001), 5.960464477539063e-08f);
}

TEST(DType, FloatingAliasesAsPyTorchSpellsThem) {
  for (const char* name : {"f32", "fp32", "float32", "float", "FLOAT32", "torch.float32"})
    EXPECT_EQ(floating_dtype_from_alias(name), DType::F32) << name;
  for (const char* name : {"f16", "fp16", "float16", "half", "torch.float16"})
    EXPECT_EQ(floating_dtype_from_alias(name), DType::F16) << name;
  for (const char* name : {"bf16", "bfloat16", "BF16", "torch.bfloat16"})
    EXPECT_EQ(floating_dtype_from_alias(name), DType::BF16) << name;
  for (const char* name : {"", "f8", "int8", "double", "torch."})
    EXPECT_FALSE(floating_dtype_from_alias(name).has_value()) << name;
}

}  // namespace
}  // namespace peft
