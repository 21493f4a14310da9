#include "peft/tensor.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "peft/state_dict.hpp"
#include "test_support.hpp"

namespace peft {
namespace {

TEST(Tensor, ZerosHaveTheRightSize) {
  const Tensor t = Tensor::zeros(DType::BF16, {3, 4});
  EXPECT_EQ(t.numel(), 12u);
  EXPECT_EQ(t.nbytes(), 24u);
  for (auto b : t.bytes()) EXPECT_EQ(b, std::byte{0});
  const Tensor scalar = Tensor::zeros(DType::F64, {});
  EXPECT_EQ(scalar.numel(), 1u);
  EXPECT_EQ(scalar.nbytes(), 8u);
  const Tensor empty = Tensor::zeros(DType::F32, {0, 5});
  EXPECT_EQ(empty.numel(), 0u);
  EXPECT_EQ(empty.nbytes(), 0u);
}

TEST(Tensor, ViewChecksByteCount) {
  std::vector<std::byte> bytes(12);
  EXPECT_PEFT_ERROR(Tensor::view(DType::F32, {4}, bytes, nullptr), ErrorCode::TensorInvalidInfo,
                    "needs 16 bytes");
  EXPECT_PEFT_ERROR(Tensor::view(DType::F4, {3}, {}, nullptr), ErrorCode::MisalignedSlice,
                    "whole bytes");
  EXPECT_PEFT_ERROR(Tensor::zeros(DType::F32, {1ull << 40, 1ull << 40}),
                    ErrorCode::ValidationOverflow, "overflows");
}

TEST(Tensor, ConversionsFollowPyTorch) {
  const std::vector<float> values = {1.0f, -2.5f, 3.75f, 0.0f};
  const Tensor f32 = Tensor::from_floats(DType::F32, {2, 2}, values);
  EXPECT_EQ(f32.to_floats(), values);
  EXPECT_EQ(f32.to(DType::BF16).to_floats(), values);
  EXPECT_EQ(f32.to(DType::F16).to(DType::F64).to_floats(), values);
  // float to integer truncates toward zero
  EXPECT_EQ(f32.to(DType::I32).to_ints(), (std::vector<std::int64_t>{1, -2, 3, 0}));
  EXPECT_EQ(f32.to(DType::BOOL).to_ints(), (std::vector<std::int64_t>{1, 1, 1, 0}));
  // integer narrowing wraps
  const Tensor big = Tensor::from_ints(DType::I64, {2}, std::vector<std::int64_t>{300, -1});
  EXPECT_EQ(big.to(DType::U8).to_ints(), (std::vector<std::int64_t>{44, 255}));
  EXPECT_EQ(big.to(DType::I8).to_ints(), (std::vector<std::int64_t>{44, -1}));
  // double to half goes through float (double rounding, as c10 does)
  const double tricky = 1.0 + 1.0 / 2048.0 + 1.0 / (1ull << 40);
  const Tensor d = Tensor::from_doubles(DType::F16, {1}, std::vector<double>{tricky});
  EXPECT_EQ(d.to_floats()[0], 1.0f);
}

TEST(Tensor, FloatToIntegerOutOfRangeIsAnError) {
  const Tensor nan = Tensor::from_floats(
      DType::F32, {1}, std::vector<float>{std::numeric_limits<float>::quiet_NaN()});
  EXPECT_PEFT_ERROR(nan.to(DType::I32), ErrorCode::ConversionOutOfRange, "does not fit");
  const Tensor big = Tensor::from_floats(DType::F32, {1}, std::vector<float>{1e10f});
  EXPECT_PEFT_ERROR(big.to(DType::I16), ErrorCode::ConversionOutOfRange, "does not fit");
  // 2^63 is just past INT64_MAX although (double)INT64_MAX compares equal to it.
  const Tensor edge =
      Tensor::from_doubles(DType::F64, {1}, std::vector<double>{9223372036854775808.0});
  EXPECT_PEFT_ERROR(edge.to(DType::I64), ErrorCode::ConversionOutOfRange, "does not fit");
  const Tensor below =
      Tensor::from_doubles(DType::F64, {2}, std::vector<double>{-9223372036854775808.0, -0.5});
  EXPECT_EQ(below.to(DType::I64).to_ints(), (std::vector<std::int64_t>{INT64_MIN, 0}));
  EXPECT_EQ(below.to(DType::I64).to_ints()[1], 0);
  const Tensor unsigned_edge = Tensor::from_doubles(DType::F64, {1}, std::vector<double>{256.0});
  EXPECT_PEFT_ERROR(unsigned_edge.to(DType::U8), ErrorCode::ConversionOutOfRange, "does not fit");
}

TEST(Tensor, UnsupportedConversionIsAnError) {
  const Tensor f8 = Tensor::zeros(DType::F8_E4M3, {2});
  EXPECT_PEFT_ERROR(f8.to(DType::F32), ErrorCode::UnsupportedDType, "F8_E4M3");
}

TEST(Tensor, ViewsAreReadOnlyAndCloneIsWritable) {
  auto storage = std::make_shared<std::vector<std::byte>>(8);
  Tensor view = Tensor::view(DType::F32, {2}, *storage, storage);
  EXPECT_PEFT_ERROR(view.mutable_bytes(), ErrorCode::InvalidArgument, "read-only");
  Tensor copy = view.clone();
  copy.mutable_bytes()[0] = std::byte{1};
  EXPECT_EQ((*storage)[0], std::byte{0});
  EXPECT_FALSE(copy.overlaps(view));
  EXPECT_TRUE(view.overlaps(view.reshaped({1, 2})));
}

TEST(Tensor, ViewOutlivesItsOwnerHandle) {
  Tensor view;
  {
    auto storage = std::make_shared<std::vector<std::byte>>(4, std::byte{7});
    view = Tensor::view(DType::U8, {4}, *storage, storage);
  }
  EXPECT_EQ(view.to_ints(), (std::vector<std::int64_t>{7, 7, 7, 7}));
}

TEST(StateDict, KeepsInsertionOrderAndReplacesInPlace) {
  StateDict sd;
  sd.set("b", Tensor::zeros(DType::F32, {1}));
  sd.set("a", Tensor::zeros(DType::F32, {2}));
  sd.set("c", Tensor::zeros(DType::F32, {3}));
  sd.set("a", Tensor::zeros(DType::F32, {4}));
  EXPECT_EQ(sd.keys(), (std::vector<std::string>{"b", "a", "c"}));
  EXPECT_EQ(sd.at("a").numel(), 4u);
  ASSERT_TRUE(sd.erase("b"));
  EXPECT_FALSE(sd.erase("b"));
  EXPECT_EQ(sd.keys(), (std::vector<std::string>{"a", "c"}));
  sd.set("b", Tensor::zeros(DType::F32, {1}));
  EXPECT_EQ(sd.keys(), (std::vector<std::string>{"a", "c", "b"}));
  EXPECT_PEFT_ERROR(sd.at("zzz"), ErrorCode::TensorNotFound, "zzz");
  StateDict copy = sd;
  copy.erase("a");
  EXPECT_TRUE(sd.contains("a"));
  EXPECT_FALSE(copy.contains("a"));
  EXPECT_EQ(copy.keys(), (std::vector<std::string>{"c", "b"}));
}

}  // namespace
}  // namespace peft
