#include "merge/dense.hpp"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include <fmt/format.h>

#include "peft/error.hpp"

namespace peft::merge {

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
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(a.rows),
              static_cast<int>(b.cols), static_cast<int>(a.cols), 1.0, a.v.data(),
              static_cast<int>(a.cols), b.v.data(), static_cast<int>(b.cols), 0.0, c.v.data(),
              static_cast<int>(c.cols));
  return c;
}

Mat inverse(const Mat& a) {
  if (a.rows != a.cols) {
    throw Error(ErrorCode::ShapeMismatch, "",
                fmt::format("cannot invert a non-square [{}, {}] matrix", a.rows, a.cols));
  }
  const std::size_t n = a.rows;
  Mat work = a;
  Mat inv = identity(n);
  for (std::size_t col = 0; col < n; ++col) {
    std::size_t pivot = col;
    for (std::size_t r = col + 1; r < n; ++r) {
      if (std::abs(work(r, col)) > std::abs(work(pivot, col))) pivot = r;
    }
    if (work(pivot, col) == 0.0) {
      throw Error(ErrorCode::InvalidArgument, "", "matrix is singular and cannot be inverted");
    }
    if (pivot != col) {
      for (std::size_t c = 0; c < n; ++c) {
        std::swap(work(pivot, c), work(col, c));
        std::swap(inv(pivot, c), inv(col, c));
      }
    }
    const double d = work(col, col);
    for (std::size_t c = 0; c < n; ++c) {
      work(col, c) /= d;
      inv(col, c) /= d;
    }
    for (std::size_t r = 0; r < n; ++r) {
      if (r == col || work(r, col) == 0.0) continue;
      const double f = work(r, col);
      for (std::size_t c = 0; c < n; ++c) {
        work(r, c) -= f * work(col, c);
        inv(r, c) -= f * inv(col, c);
      }
    }
  }
  return inv;
}

Mat solve_right(const Mat& b, const Mat& a) {
  return matmul(b, inverse(a));
}

void add_scaled(Mat& into, const Mat& m, double factor) {
  if (into.rows != m.rows || into.cols != m.cols) {
    throw Error(
        ErrorCode::ShapeMismatch, "",
        fmt::format("cannot add [{}, {}] to [{}, {}]", m.rows, m.cols, into.rows, into.cols));
  }
  for (std::size_t i = 0; i < into.v.size(); ++i) into.v[i] += factor * m.v[i];
}

namespace {

// One-sided Jacobi on the columns of `a` (rows >= cols): rotates column pairs until they
// are orthogonal; the column norms are then the singular values.
Svd jacobi_tall(const Mat& a) {
  const std::size_t m = a.rows;
  const std::size_t n = a.cols;
  Mat u = a;
  Mat v = identity(n);
  for (int sweep = 0; sweep < 100; ++sweep) {
    double off = 0.0;
    for (std::size_t p = 0; p + 1 < n; ++p) {
      for (std::size_t q = p + 1; q < n; ++q) {
        double alpha = 0.0, beta = 0.0, gamma = 0.0;
        for (std::size_t i = 0; i < m; ++i) {
          alpha += u(i, p) * u(i, p);
          beta += u(i, q) * u(i, q);
          gamma += u(i, p) * u(i, q);
        }
        if (gamma == 0.0) continue;
        off = std::max(off, std::abs(gamma) / std::sqrt(alpha * beta));
        const double zeta = (beta - alpha) / (2.0 * gamma);
        const double t = (zeta >= 0 ? 1.0 : -1.0) / (std::abs(zeta) + std::sqrt(1.0 + zeta * zeta));
        const double c = 1.0 / std::sqrt(1.0 + t * t);
        const double s = c * t;
        for (std::size_t i = 0; i < m; ++i) {
          const double up = u(i, p), uq = u(i, q);
          u(i, p) = c * up - s * uq;
          u(i, q) = s * up + c * uq;
        }
        for (std::size_t i = 0; i < n; ++i) {
          const double vp = v(i, p), vq = v(i, q);
          v(i, p) = c * vp - s * vq;
          v(i, q) = s * vp + c * vq;
        }
      }
    }
    if (off < 1e-15) break;
  }
  std::vector<double> s(n);
  for (std::size_t j = 0; j < n; ++j) {
    double norm = 0.0;
    for (std::size_t i = 0; i < m; ++i) norm += u(i, j) * u(i, j);
    s[j] = std::sqrt(norm);
    if (s[j] > 0.0) {
      for (std::size_t i = 0; i < m; ++i) u(i, j) /= s[j];
    }
  }
  std::vector<std::size_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](std::size_t x, std::size_t y) { return s[x] > s[y]; });
  Svd out{Mat(m, n), std::vector<double>(n), Mat(n, n)};
  for (std::size_t k = 0; k < n; ++k) {
    out.s[k] = s[order[k]];
    for (std::size_t i = 0; i < m; ++i) out.u(i, k) = u(i, order[k]);
    for (std::size_t i = 0; i < n; ++i) out.v(i, k) = v(i, order[k]);
  }
  return out;
}

}  // namespace

Svd svd(const Mat& a) {
  if (a.rows >= a.cols) return jacobi_tall(a);
  Svd t = jacobi_tall(transpose(a));
  return Svd{t.v, t.s, t.u};
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
