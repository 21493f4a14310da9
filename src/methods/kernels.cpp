#include "methods/kernels.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>

#include <fmt/format.h>

#include "peft/error.hpp"

namespace peft::kernels {

Matrix to_matrix(const Tensor& tensor, const char* what) {
  if (tensor.rank() != 2) {
    throw Error(ErrorCode::ShapeMismatch, "",
                fmt::format("{} must be 2-D, got {}", what, shape_to_string(tensor.shape())));
  }
  Matrix m;
  m.rows = static_cast<std::size_t>(tensor.shape()[0]);
  m.cols = static_cast<std::size_t>(tensor.shape()[1]);
  m.data = tensor.to_floats();
  return m;
}

Matrix linear(const Matrix& x, const Tensor& weight, const Tensor* bias) {
  const Matrix w = to_matrix(weight, "a linear weight");
  if (w.cols != x.cols) {
    throw Error(ErrorCode::ShapeMismatch, "",
                fmt::format("linear layer expects {} inputs, got {}", w.cols, x.cols));
  }
  Matrix y;
  y.rows = x.rows;
  y.cols = w.rows;
  y.data.assign(y.rows * y.cols, 0.0f);
  if (bias != nullptr) {
    const std::vector<float> b = bias->to_floats();
    if (b.size() != y.cols) {
      throw Error(ErrorCode::ShapeMismatch, "",
                  fmt::format("linear bias has {} entries, expected {}", b.size(), y.cols));
    }
    for (std::size_t r = 0; r < y.rows; ++r)
      std::copy(b.begin(), b.end(), y.data.begin() + r * y.cols);
  }
  // A plain product on purpose: prompt encoders take a few thousand multiply-adds at load
  // time, and calling BLAS here would link BLAS into every program that reads adapters
  // (numeric libraries belong to the merge layer). Accumulated in double, rounded once.
  for (std::size_t r = 0; r < y.rows; ++r) {
    const float* xr = x.data.data() + r * x.cols;
    for (std::size_t c = 0; c < y.cols; ++c) {
      const float* wc = w.data.data() + c * w.cols;
      double sum = 0;
      for (std::size_t k = 0; k < x.cols; ++k) sum += double{xr[k]} * double{wc[k]};
      float& out = y.data[r * y.cols + c];
      out = static_cast<float>(sum + double{out});  // `out` holds the bias (or 0)
    }
  }
  return y;
}

void relu_inplace(Matrix& x) {
  for (float& v : x.data) v = v > 0.0f ? v : 0.0f;
}

void tanh_inplace(Matrix& x) {
  for (float& v : x.data) v = std::tanh(v);
}

Matrix first_rows(const Tensor& table, std::size_t rows) {
  Matrix all = to_matrix(table, "an embedding table");
  if (rows > all.rows) {
    throw Error(ErrorCode::ShapeMismatch, "",
                fmt::format("embedding table has {} rows, {} needed", all.rows, rows));
  }
  all.data.resize(rows * all.cols);
  all.rows = rows;
  return all;
}

TopK topk_last_dim(std::span<const float> x, std::size_t last, std::size_t k) {
  TopK out;
  if (last == 0) return out;
  const std::size_t outer = x.size() / last;
  k = std::min(k, last);
  out.values.reserve(outer * k);
  out.indices.reserve(outer * k);
  std::vector<std::int64_t> order(last);
  for (std::size_t o = 0; o < outer; ++o) {
    const float* row = x.data() + o * last;
    std::iota(order.begin(), order.end(), 0);
    // Largest first; NaN counts as largest, as in PyTorch; ties keep the lower index.
    std::partial_sort(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(k), order.end(),
                      [row](std::int64_t a, std::int64_t b) {
                        const float va = row[a], vb = row[b];
                        if (std::isnan(va) != std::isnan(vb)) return std::isnan(va);
                        if (va != vb) return va > vb;
                        return a < b;
                      });
    for (std::size_t i = 0; i < k; ++i) {
      out.indices.push_back(order[i]);
      out.values.push_back(row[order[i]]);
    }
  }
  return out;
}

std::vector<float> softmax_last_dim(std::span<const float> x, std::size_t last) {
  std::vector<float> out(x.begin(), x.end());
  if (last == 0) return out;
  for (std::size_t start = 0; start + last <= out.size(); start += last) {
    float* row = out.data() + start;
    const float max = *std::max_element(row, row + last);
    float sum = 0.0f;
    for (std::size_t i = 0; i < last; ++i) {
      row[i] = std::exp(row[i] - max);
      sum += row[i];
    }
    for (std::size_t i = 0; i < last; ++i) row[i] /= sum;
  }
  return out;
}

}  // namespace peft::kernels
