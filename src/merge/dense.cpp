#include "merge/dense.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include <fmt/format.h>

#include "merge/numeric_libs.hpp"
#include "peft/error.hpp"

namespace peft::merge {

// Not loaded yet: loading it sets one thread (merge/numeric_libs.cpp), nothing to lower.
SingleThreadedBlas::SingleThreadedBlas() {
  const numeric::Blas* blas = numeric::blas_if_loaded();
  if (blas == nullptr || blas->get_num_threads == nullptr || blas->set_num_threads == nullptr)
    return;
  const int threads = blas->get_num_threads();
  if (threads <= 1) return;  // raising it back would restart OpenBLAS's spinning pool
  previous_ = threads;
  blas->set_num_threads(1);
}
SingleThreadedBlas::~SingleThreadedBlas() {
  if (previous_ > 1) numeric::blas().set_num_threads(previous_);
}

Mat identity(std::size_t n) {
  Mat m(n, n);
  for (std::size_t i = 0; i < n; ++i) m(i, i) = 1.0;
  return m;
}

Mat as_matrix(const Tensor& tensor) {
  const std::size_t rows = tensor.rank() == 0 ? 1 : static_cast<std::size_t>(tensor.shape()[0]);
  const std::size_t cols = rows == 0 ? 0 : static_cast<std::size_t>(tensor.numel()) / rows;
  Mat m;
  m.rows = rows;
  m.cols = cols;
  m.v = tensor.to_doubles();
  return m;
}

Mat as_matrix(const Tensor& tensor, std::size_t rows, std::size_t cols, std::string_view what) {
  if (tensor.numel() != rows * cols) {
    throw Error(ErrorCode::ShapeMismatch, "",
                fmt::format("{} has shape {}, expected {} elements ([{}, {}])", what,
                            shape_to_string(tensor.shape()), rows * cols, rows, cols));
  }
  Mat m;
  m.rows = rows;
  m.cols = cols;
  m.v = tensor.to_doubles();
  return m;
}

Mat transpose(const Mat& m) {
  Mat t(m.cols, m.rows);
  for (std::size_t r = 0; r < m.rows; ++r) {
    for (std::size_t c = 0; c < m.cols; ++c) t(c, r) = m(r, c);
  }
  return t;
}

Mat matmul(const Mat& a, const Mat& b) {
  if (a.cols != b.rows) {
    throw Error(
        ErrorCode::ShapeMismatch, "",
        fmt::format("cannot multiply [{}, {}] by [{}, {}]", a.rows, a.cols, b.rows, b.cols));
  }
  Mat c(a.rows, b.cols);
  if (a.rows == 0 || b.cols == 0 || a.cols == 0) return c;
  numeric::blas().dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(a.rows),
                        static_cast<int>(b.cols), static_cast<int>(a.cols), 1.0, a.v.data(),
                        static_cast<int>(a.cols), b.v.data(), static_cast<int>(b.cols), 0.0,
                        c.v.data(), static_cast<int>(c.cols));
  return c;
}

namespace {

int lapack_size(std::size_t n) {
  if (n > static_cast<std::size_t>(std::numeric_limits<int>::max())) {
    throw Error(ErrorCode::LimitExceeded, "", fmt::format("matrix dimension {} is too large", n));
  }
  return static_cast<int>(n);
}

void require_square(const Mat& a, std::string_view what) {
  if (a.rows != a.cols) {
    throw Error(ErrorCode::ShapeMismatch, "",
                fmt::format("cannot {} a non-square [{}, {}] matrix", what, a.rows, a.cols));
  }
}

[[noreturn]] void singular() {
  throw Error(ErrorCode::InvalidArgument, "", "matrix is singular and cannot be inverted");
}

}  // namespace

Mat inverse(const Mat& a) {
  require_square(a, "invert");
  const int n = lapack_size(a.rows);
  if (n == 0) return a;
  Mat inv = a;
  std::vector<lapack_int> pivots(a.rows);
  if (numeric::lapack().dgetrf(LAPACK_ROW_MAJOR, n, n, inv.v.data(), n, pivots.data()) != 0)
    singular();
  if (numeric::lapack().dgetri(LAPACK_ROW_MAJOR, n, inv.v.data(), n, pivots.data()) != 0)
    singular();
  return inv;
}

// x a = b  <=>  a^T x^T = b^T, one LU solve (dgesv) for all of b's rows.
Mat solve_right(const Mat& b, const Mat& a) {
  require_square(a, "solve with");
  if (b.cols != a.rows) {
    throw Error(ErrorCode::ShapeMismatch, "",
                fmt::format("cannot solve x [{}, {}] = [{}, {}]", a.rows, a.cols, b.rows, b.cols));
  }
  const int n = lapack_size(a.rows);
  const int rhs = lapack_size(b.rows);
  if (n == 0 || rhs == 0) return Mat(b.rows, b.cols);
  Mat at = transpose(a);
  Mat bt = transpose(b);  // [n, rhs]
  std::vector<lapack_int> pivots(a.rows);
  if (numeric::lapack().dgesv(LAPACK_ROW_MAJOR, n, rhs, at.v.data(), n, pivots.data(), bt.v.data(),
                              rhs) != 0) {
    singular();
  }
  return transpose(bt);
}

void add_scaled(Mat& into, const Mat& m, double factor) {
  if (into.rows != m.rows || into.cols != m.cols) {
    throw Error(
        ErrorCode::ShapeMismatch, "",
        fmt::format("cannot add [{}, {}] to [{}, {}]", m.rows, m.cols, into.rows, into.cols));
  }
  for (std::size_t i = 0; i < into.v.size(); ++i) into.v[i] += factor * m.v[i];
}

// Thin SVD by LAPACK's divide and conquer (dgesdd), the routine torch.linalg.svd uses on CPU.
Svd svd(const Mat& a) {
  const std::size_t k = std::min(a.rows, a.cols);
  Svd out{Mat(a.rows, k), std::vector<double>(k), Mat(k, a.cols)};
  if (k == 0) {
    out.v = Mat(a.cols, 0);
    return out;
  }
  Mat work = a;  // dgesdd overwrites its input
  const int m = lapack_size(a.rows), n = lapack_size(a.cols), kk = lapack_size(k);
  const lapack_int info =
      numeric::lapack().dgesdd(LAPACK_ROW_MAJOR, 'S', m, n, work.v.data(), n, out.s.data(),
                               out.u.v.data(), kk, out.v.v.data(), n);
  if (info != 0) {
    throw Error(ErrorCode::InvalidArgument, "",
                fmt::format("the SVD of a [{}, {}] matrix did not converge (LAPACK dgesdd info {})",
                            a.rows, a.cols, info));
  }
  out.v = transpose(out.v);  // V^T [k, cols] -> V [cols, k]
  return out;
}

void round_to_dtype(std::vector<double>& values, DType dtype) {
  switch (dtype) {
    case DType::F64:
      return;
    case DType::F32:
      for (double& x : values) x = static_cast<double>(static_cast<float>(x));
      return;
    case DType::BF16:
      for (double& x : values) x = bf16_to_f32(f32_to_bf16(static_cast<float>(x)));
      return;
    case DType::F16:
      for (double& x : values) x = f16_to_f32(f32_to_f16(static_cast<float>(x)));
      return;
    default:
      throw Error(ErrorCode::UnsupportedDType, "",
                  fmt::format("cannot merge into a {} tensor: only F64, F32, F16 and BF16 "
                              "weights can hold a merged adapter",
                              dtype_name(dtype)));
  }
}

}  // namespace peft::merge
