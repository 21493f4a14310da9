#include "peft/tensor.hpp"

#include <cmath>
#include <cstring>
#include <limits>
#include <type_traits>

#include <fmt/format.h>

#include "peft/error.hpp"

namespace peft {
namespace {

// Tags for the two 16-bit float formats, which have no C++ type of their own.
struct Half {
  std::uint16_t bits;
};
struct BFloat {
  std::uint16_t bits;
};

template <class T>
T load(const std::byte* p) {
  T value;
  std::memcpy(&value, p, sizeof(T));
  return value;
}

template <class T>
void store(std::byte* p, T value) {
  std::memcpy(p, &value, sizeof(T));
}

// Calls f(T{}) with the C++ type that holds one element of `dtype`.
template <class F>
decltype(auto) visit_dtype(DType dtype, F&& f) {
  switch (dtype) {
    case DType::BOOL:
      return f(bool{});
    case DType::U8:
      return f(std::uint8_t{});
    case DType::I8:
      return f(std::int8_t{});
    case DType::I16:
      return f(std::int16_t{});
    case DType::U16:
      return f(std::uint16_t{});
    case DType::I32:
      return f(std::int32_t{});
    case DType::U32:
      return f(std::uint32_t{});
    case DType::I64:
      return f(std::int64_t{});
    case DType::U64:
      return f(std::uint64_t{});
    case DType::F16:
      return f(Half{});
    case DType::BF16:
      return f(BFloat{});
    case DType::F32:
      return f(float{});
    case DType::F64:
      return f(double{});
    default:
      throw Error(ErrorCode::UnsupportedDType, "",
                  fmt::format("no element conversion for dtype {}", dtype_name(dtype)));
  }
}

template <class T>
constexpr bool kIsFloat =
    std::is_same_v<T, Half> || std::is_same_v<T, BFloat> || std::is_floating_point_v<T>;

// Reads one element as the widest type of its kind (double for floats, the integer
// itself otherwise). bool is read as any non-zero byte, as PyTorch does.
template <class S>
auto read_element(const std::byte* p) {
  if constexpr (std::is_same_v<S, Half>) {
    return f16_to_f32(load<std::uint16_t>(p));
  } else if constexpr (std::is_same_v<S, BFloat>) {
    return bf16_to_f32(load<std::uint16_t>(p));
  } else if constexpr (std::is_same_v<S, bool>) {
    return static_cast<bool>(load<std::uint8_t>(p) != 0);
  } else {
    return load<S>(p);
  }
}

template <class T, class V>
void write_element(std::byte* p, V value) {
  if constexpr (std::is_same_v<T, bool>) {
    store<std::uint8_t>(p, value != V{} ? 1 : 0);
  } else if constexpr (std::is_same_v<T, Half> || std::is_same_v<T, BFloat>) {
    // c10 converts to Half/BFloat16 through float, also from double.
    const auto as_float = static_cast<float>(value);
    store<std::uint16_t>(p, std::is_same_v<T, Half> ? f32_to_f16(as_float) : f32_to_bf16(as_float));
  } else if constexpr (std::is_floating_point_v<T>) {
    store<T>(p, static_cast<T>(value));
  } else if constexpr (std::is_floating_point_v<V>) {
    // Float to integer: truncate toward zero; refuse what C++ (and PyTorch) leave undefined.
    // The bounds are exact powers of two: (double)INT64_MAX rounds up to 2^63, which
    // does not fit, so the upper bound is exclusive.
    const double truncated = std::trunc(static_cast<double>(value));
    const double limit = std::ldexp(1.0, std::numeric_limits<T>::digits);
    const double lowest = std::numeric_limits<T>::is_signed ? -limit : 0.0;
    if (!(truncated >= lowest && truncated < limit)) {
      throw Error(ErrorCode::ConversionOutOfRange, "",
                  fmt::format("value {} does not fit the integer target type", value));
    }
    store<T>(p, static_cast<T>(truncated));
  } else {
    // Integer to integer wraps modulo 2^bits, as PyTorch's casts do.
    store<T>(p, static_cast<T>(value));
  }
}

template <class S, class T>
void convert_all(const std::byte* src, std::byte* dst, std::uint64_t count) {
  for (std::uint64_t i = 0; i < count; ++i) {
    constexpr std::size_t kSrc = std::is_same_v<S, bool> ? 1 : sizeof(S);
    constexpr std::size_t kDst = std::is_same_v<T, bool> ? 1 : sizeof(T);
    write_element<T>(dst + i * kDst, read_element<S>(src + i * kSrc));
  }
}

void convert_bytes(DType from, const std::byte* src, DType to, std::byte* dst,
                   std::uint64_t count) {
  visit_dtype(from, [&](auto s) {
    visit_dtype(to, [&](auto t) { convert_all<decltype(s), decltype(t)>(src, dst, count); });
  });
}

template <class T>
std::vector<T> values_as(const Tensor& tensor, DType wide) {
  if (tensor.is_meta()) {
    throw Error(ErrorCode::InvalidArgument, "", "a meta tensor has no values to read");
  }
  std::vector<T> out(tensor.numel());
  convert_bytes(tensor.dtype(), tensor.bytes().data(), wide,
                reinterpret_cast<std::byte*>(out.data()), tensor.numel());
  return out;
}

}  // namespace

std::uint64_t shape_numel(const Shape& shape) {
  std::uint64_t n = 1;
  for (const auto dim : shape) {
    if (__builtin_mul_overflow(n, dim, &n)) {
      throw Error(ErrorCode::ValidationOverflow, "",
                  fmt::format("element count of shape {} overflows", shape_to_string(shape)));
    }
  }
  return n;
}

std::uint64_t byte_size(DType dtype, const Shape& shape) {
  std::uint64_t bits = 0;
  if (__builtin_mul_overflow(shape_numel(shape), std::uint64_t{dtype_bits(dtype)}, &bits)) {
    throw Error(
        ErrorCode::ValidationOverflow, "",
        fmt::format("byte size of {} {} overflows", dtype_name(dtype), shape_to_string(shape)));
  }
  if (bits % 8 != 0) {
    throw Error(ErrorCode::MisalignedSlice, "",
                fmt::format("{} elements of {} bits do not fill whole bytes",
                            shape_to_string(shape), dtype_bits(dtype)));
  }
  return bits / 8;
}

std::string shape_to_string(const Shape& shape) {
  return fmt::format("[{}]", fmt::join(shape, ", "));
}

Tensor::Tensor() : Tensor(DType::F32, Shape{0}, 0, {}, nullptr, false) {}

Tensor::Tensor(DType dtype, Shape shape, std::uint64_t numel, std::span<const std::byte> bytes,
               std::shared_ptr<const void> owner, bool writable)
    : dtype_(dtype),
      shape_(std::move(shape)),
      numel_(numel),
      bytes_(bytes),
      owner_(std::move(owner)),
      writable_(writable) {}

Tensor Tensor::view(DType dtype, Shape shape, std::span<const std::byte> bytes,
                    std::shared_ptr<const void> owner) {
  const std::uint64_t expected = byte_size(dtype, shape);
  if (expected != bytes.size()) {
    throw Error(ErrorCode::TensorInvalidInfo, "",
                fmt::format("{} {} needs {} bytes, got {}", dtype_name(dtype),
                            shape_to_string(shape), expected, bytes.size()));
  }
  const std::uint64_t numel = shape_numel(shape);
  return Tensor(dtype, std::move(shape), numel, bytes, std::move(owner), false);
}

Tensor Tensor::heap(DType dtype, Shape shape) {
  const std::uint64_t size = byte_size(dtype, shape);
  if (size > std::numeric_limits<std::size_t>::max() / 2) {
    throw Error(ErrorCode::ValidationOverflow, "", "tensor too large for this machine");
  }
  // value-initialised: zero-filled.
  std::shared_ptr<std::byte[]> buffer(new std::byte[size == 0 ? 1 : size]());
  const std::uint64_t numel = shape_numel(shape);
  std::span<const std::byte> bytes(buffer.get(), static_cast<std::size_t>(size));
  return Tensor(dtype, std::move(shape), numel, bytes, std::move(buffer), true);
}

Tensor Tensor::zeros(DType dtype, Shape shape) {
  return heap(dtype, std::move(shape));
}

Tensor Tensor::copy_of(DType dtype, Shape shape, std::span<const std::byte> bytes) {
  Tensor out = heap(dtype, std::move(shape));
  if (out.nbytes() != bytes.size()) {
    throw Error(ErrorCode::TensorInvalidInfo, "",
                fmt::format("{} {} needs {} bytes, got {}", dtype_name(dtype),
                            shape_to_string(out.shape()), out.nbytes(), bytes.size()));
  }
  if (!bytes.empty()) std::memcpy(out.mutable_bytes().data(), bytes.data(), bytes.size());
  return out;
}

namespace {
template <class V>
Tensor from_values(DType dtype, Shape shape, std::span<const V> values, DType source) {
  Tensor out = Tensor::zeros(dtype, std::move(shape));
  if (out.numel() != values.size()) {
    throw Error(
        ErrorCode::ShapeMismatch, "",
        fmt::format("{} values given for shape {}", values.size(), shape_to_string(out.shape())));
  }
  convert_bytes(source, reinterpret_cast<const std::byte*>(values.data()), dtype,
                out.mutable_bytes().data(), values.size());
  return out;
}
}  // namespace

Tensor Tensor::from_floats(DType dtype, Shape shape, std::span<const float> values) {
  return from_values(dtype, std::move(shape), values, DType::F32);
}
Tensor Tensor::from_doubles(DType dtype, Shape shape, std::span<const double> values) {
  return from_values(dtype, std::move(shape), values, DType::F64);
}
Tensor Tensor::from_ints(DType dtype, Shape shape, std::span<const std::int64_t> values) {
  return from_values(dtype, std::move(shape), values, DType::I64);
}

Tensor Tensor::meta(DType dtype, Shape shape) {
  const std::uint64_t numel = shape_numel(shape);
  Tensor out(dtype, std::move(shape), numel, {}, nullptr, false);
  out.meta_ = true;
  return out;
}

std::span<std::byte> Tensor::mutable_bytes() {
  if (!writable_) {
    throw Error(ErrorCode::InvalidArgument, "",
                "tensor is a read-only view of a file; clone() it before writing");
  }
  // NOLINTNEXTLINE(cppcoreguidelines-pro-type-const-cast): heap storage is ours to write.
  return {const_cast<std::byte*>(bytes_.data()), bytes_.size()};
}

std::vector<double> Tensor::to_doubles() const {
  return values_as<double>(*this, DType::F64);
}
std::vector<float> Tensor::to_floats() const {
  return values_as<float>(*this, DType::F32);
}
std::vector<std::int64_t> Tensor::to_ints() const {
  return values_as<std::int64_t>(*this, DType::I64);
}

Tensor Tensor::to(DType target) const {
  if (target == dtype_) return *this;
  if (meta_) return meta(target, shape_);
  Tensor out = heap(target, shape_);
  convert_bytes(dtype_, bytes_.data(), target, out.mutable_bytes().data(), numel_);
  return out;
}

Tensor Tensor::clone() const {
  return copy_of(dtype_, shape_, bytes_);
}

Tensor Tensor::reshaped(Shape shape) const {
  const std::uint64_t numel = shape_numel(shape);
  if (numel != numel_) {
    throw Error(ErrorCode::ShapeMismatch, "",
                fmt::format("cannot view {} elements as {}", numel_, shape_to_string(shape)));
  }
  return Tensor(dtype_, std::move(shape), numel, bytes_, owner_, writable_);
}

bool Tensor::equals(const Tensor& other) const noexcept {
  return dtype_ == other.dtype_ && shape_ == other.shape_ && bytes_.size() == other.bytes_.size() &&
         (bytes_.empty() || std::memcmp(bytes_.data(), other.bytes_.data(), bytes_.size()) == 0);
}

bool Tensor::overlaps(const Tensor& other) const noexcept {
  if (bytes_.empty() || other.bytes_.empty()) return false;
  const auto a = reinterpret_cast<std::uintptr_t>(bytes_.data());
  const auto b = reinterpret_cast<std::uintptr_t>(other.bytes_.data());
  return a < b + other.bytes_.size() && b < a + bytes_.size();
}

}  // namespace peft
