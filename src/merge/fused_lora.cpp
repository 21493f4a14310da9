#include "merge/fused_lora.hpp"

#include <algorithm>
#include <cstring>

#include "merge/numeric_libs.hpp"

namespace peft::merge {
namespace {

// About 128 KiB of float32 per tile: the delta block stays in L2 between the sgemm that
// writes it and the loop that adds it.
constexpr std::size_t kTileElements = std::size_t{32} << 10;

// The weight's element i as float, and a float rounded back (round to nearest even, as
// torch's in-place add rounds its float32 result).
template <DType D>
float load(const std::byte* p, std::size_t i) {
  if constexpr (D == DType::F32) {
    float v;
    std::memcpy(&v, p + 4 * i, 4);
    return v;
  } else {
    std::uint16_t bits;
    std::memcpy(&bits, p + 2 * i, 2);
    return D == DType::BF16 ? bf16_to_f32(bits) : f16_to_f32(bits);
  }
}

template <DType D>
void store(std::byte* p, std::size_t i, float v) {
  if constexpr (D == DType::F32) {
    std::memcpy(p + 4 * i, &v, 4);
  } else {
    const std::uint16_t bits = D == DType::BF16 ? f32_to_bf16(v) : f32_to_f16(v);
    std::memcpy(p + 2 * i, &bits, 2);
  }
}

// Compiled for AVX2 too (chosen at load time): the loop is memory-bound only once it is
// vectorised, and the build targets baseline x86-64.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define PEFT_VECTOR_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define PEFT_VECTOR_CLONES
#endif

template <DType D>
PEFT_VECTOR_CLONES void add_tile(const std::byte* in, std::byte* out, const float* tile,
                                 std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) store<D>(out, i, load<D>(in, i) + tile[i]);
}

// The tile buffer of this thread: allocated once per worker and reused for every tensor,
// since first-touch page faults of fresh buffers cost more than the arithmetic.
std::vector<float>& tile_buffer(std::size_t n) {
  thread_local std::vector<float> tile;
  if (tile.size() < n) tile.resize(n);
  return tile;
}

}  // namespace

bool fused_dtype(DType dtype) noexcept {
  return dtype == DType::F32 || dtype == DType::BF16 || dtype == DType::F16;
}

std::size_t fused_block_rows(const FloatFactors& f) noexcept {
  return std::clamp<std::size_t>(kTileElements / std::max<std::size_t>(f.cols, 1), 1,
                                 std::max<std::size_t>(f.rows, 1));
}

void fused_lora_add(DType dtype, std::span<const std::byte> in, std::span<std::byte> out,
                    const FloatFactors& f) {
  fused_lora_add_rows(dtype, in, out, f, 0);
}

void fused_lora_add_rows(DType dtype, std::span<const std::byte> in, std::span<std::byte> out,
                         const FloatFactors& f, std::size_t first_row) {
  const std::size_t size = dtype_size(dtype);
  const std::size_t block = fused_block_rows(f);
  const std::size_t end_row = std::min(f.rows, first_row + in.size() / (f.cols * size));
  std::vector<float>& tile = tile_buffer(block * f.cols);
  for (std::size_t row = first_row; row < end_row; row += block) {
    const std::size_t rows = std::min(block, end_row - row);
    numeric::blas().sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(rows),
                          static_cast<int>(f.cols), static_cast<int>(f.rank), f.scaling,
                          f.b.data() + row * f.rank, static_cast<int>(f.rank), f.a.data(),
                          static_cast<int>(f.cols), 0.0f, tile.data(), static_cast<int>(f.cols));
    const std::size_t offset = (row - first_row) * f.cols * size;
    const std::byte* src = in.data() + offset;
    std::byte* dst = out.data() + offset;
    const std::size_t n = rows * f.cols;
    switch (dtype) {
      case DType::BF16:
        add_tile<DType::BF16>(src, dst, tile.data(), n);
        break;
      case DType::F16:
        add_tile<DType::F16>(src, dst, tile.data(), n);
        break;
      default:
        add_tile<DType::F32>(src, dst, tile.data(), n);
        break;
    }
  }
}

}  // namespace peft::merge
