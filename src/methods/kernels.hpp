// The small numeric kernels the state-dict functions need (prompt encoders, VB-LoRA
// top-k). No BLAS: these run when adapters are read, and numeric libraries belong to the
// merge layer. Results are float32, as PyTorch's for float32 tensors.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "peft/tensor.hpp"

namespace peft::kernels {

// A row-major float32 matrix.
struct Matrix {
  std::size_t rows = 0;
  std::size_t cols = 0;
  std::vector<float> data;
  float& at(std::size_t r, std::size_t c) { return data[r * cols + c]; }
  float at(std::size_t r, std::size_t c) const { return data[r * cols + c]; }
};

// A 2-D tensor (any float dtype) as a float32 matrix; throws ShapeMismatch otherwise.
Matrix to_matrix(const Tensor& tensor, const char* what);

// x · weightᵀ + bias, as torch.nn.Linear: weight is [out, in], bias [out] or null.
Matrix linear(const Matrix& x, const Tensor& weight, const Tensor* bias);

void relu_inplace(Matrix& x);
void tanh_inplace(Matrix& x);

// The first `rows` rows of a 2-D tensor (an embedding lookup of ids 0..rows-1).
Matrix first_rows(const Tensor& table, std::size_t rows);

struct TopK {
  std::vector<float> values;          // [outer, k], descending along the last axis
  std::vector<std::int64_t> indices;  // [outer, k]
};
// torch.topk(x, k, dim=-1) of a tensor viewed as [outer, last].
TopK topk_last_dim(std::span<const float> x, std::size_t last, std::size_t k);

// softmax over the last axis of [outer, last], computed as PyTorch's CPU kernel does
// (subtract the max, exponentiate, divide by the sum).
std::vector<float> softmax_last_dim(std::span<const float> x, std::size_t last);

}  // namespace peft::kernels
