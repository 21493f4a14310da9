// Small dense float64 linear algebra for the merge rules. Every rule computes in float64
// and rounds once to the base dtype, which stays within the fixtures' tolerance of PEFT's
// float32 arithmetic (their tolerance is measured against a float64 reference). Products
// go through BLAS (dgemm), inverses, solves and SVDs through LAPACKE, both loaded on first use
// (merge/numeric_libs.hpp).
#pragma once

#include <cstddef>
#include <string_view>
#include <vector>

#include "peft/tensor.hpp"

namespace peft::merge {

// A row-major float64 matrix.
struct Mat {
  std::size_t rows = 0;
  std::size_t cols = 0;
  std::vector<double> v;

  Mat() = default;
  Mat(std::size_t r, std::size_t c) : rows(r), cols(c), v(r * c, 0.0) {}
  double& operator()(std::size_t r, std::size_t c) { return v[r * cols + c]; }
  double operator()(std::size_t r, std::size_t c) const { return v[r * cols + c]; }
};

// OpenBLAS limited to the calling thread while an object lives: the streamed merge runs
// tensors in parallel itself, and OpenBLAS's idle workers spin in sched_yield on the same
// cores (a third of the time of a one-thread merge on two cores).
class SingleThreadedBlas {
 public:
  SingleThreadedBlas();
  ~SingleThreadedBlas();
  SingleThreadedBlas(const SingleThreadedBlas&) = delete;
  SingleThreadedBlas& operator=(const SingleThreadedBlas&) = delete;

 private:
  int previous_ = 0;  // the count to restore; 0: nothing to restore
};

Mat identity(std::size_t n);
// A tensor's values as a [rows, numel/rows] matrix (rows = first dimension).
Mat as_matrix(const Tensor& tensor);
// The values of `tensor` as a matrix of the given size; throws ShapeMismatch naming `what`
// when the element count differs.
Mat as_matrix(const Tensor& tensor, std::size_t rows, std::size_t cols, std::string_view what);
Mat transpose(const Mat& m);
// a @ b (a is [n, k], b is [k, m]); ShapeMismatch when the inner sizes differ.
Mat matmul(const Mat& a, const Mat& b);
// a^{-1} by LU with partial pivoting (dgetrf/dgetri); InvalidArgument when singular.
Mat inverse(const Mat& a);
// x with x @ a = b, i.e. b @ a^{-1}.
Mat solve_right(const Mat& b, const Mat& a);
void add_scaled(Mat& into, const Mat& m, double factor);

// Thin singular value decomposition a = U diag(s) V^T, singular values in descending order.
struct Svd {
  Mat u;  // [rows, k]
  std::vector<double> s;
  Mat v;  // [cols, k]
};
Svd svd(const Mat& a);

// Rounds every value to what `dtype` can store (round to nearest even straight from
// float64, as torch's .to() does); F64 is left alone.
void round_to_dtype(std::vector<double>& values, DType dtype);

}  // namespace peft::merge
