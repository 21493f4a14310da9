// Orthogonal fine-tuning: the weight is rotated on its input side, W' = W @ M, with
//   OFT:  M = blockdiag(R_i)^T, R_i the (Neumann-approximated) Cayley transform of a
//         skew-symmetric block stored as its strict upper triangle;
//   BOFT: M = T^T with T = M_{L-1} ... M_0, M_l = P_l blockdiag(B) P_l^T (butterfly
//         permutations), then the output rows are scaled by boft_s;
//   HRA:  M = a product of Householder reflections (or I - 2 U U^T after Gram-Schmidt).
// Conv weights are viewed as [out, in * prod(kernel)]. Unmerging multiplies by M^{-1}.
#include <cmath>

#include <fmt/format.h>

#include "merge/plan.hpp"
#include "peft/error.hpp"

namespace peft::merge {
namespace {

Mat block_diagonal(const std::vector<Mat>& blocks) {
  std::size_t n = 0;
  for (const auto& b : blocks) n += b.rows;
  Mat out(n, n);
  std::size_t at = 0;
  for (const auto& b : blocks) {
    for (std::size_t r = 0; r < b.rows; ++r) {
      for (std::size_t c = 0; c < b.cols; ++c) out(at + r, at + c) = b(r, c);
    }
    at += b.rows;
  }
  return out;
}

// (I - S)(I + S)^{-1}, the exact Cayley transform.
Mat cayley(const Mat& s) {
  Mat minus = identity(s.rows);
  Mat plus = identity(s.rows);
  add_scaled(minus, s, -1.0);
  add_scaled(plus, s, 1.0);
  return solve_right(minus, plus);
}

// PEFT's truncated series I + 2Q + 2Q^2 + ... + 2Q^(m-1) + Q^m for `terms` terms.
Mat cayley_neumann(const Mat& q, std::int64_t terms) {
  Mat r = identity(q.rows);
  if (terms <= 1) return r;
  add_scaled(r, q, 2.0);
  if (terms == 2) return r;
  Mat power = matmul(q, q);
  add_scaled(r, power, 2.0);
  for (std::int64_t i = 3; i < terms - 1; ++i) {
    power = matmul(power, q);
    add_scaled(r, power, 2.0);
  }
  power = matmul(power, q);
  add_scaled(r, power, 1.0);
  return r;
}

// b from b(b-1)/2 = n.
std::size_t block_size_for(std::size_t n, const std::string& origin) {
  std::size_t b = 1;
  while (b * (b - 1) / 2 < n) ++b;
  if (b * (b - 1) / 2 != n) {
    throw Error(
        ErrorCode::ShapeMismatch, "",
        fmt::format("{}: oft_R rows of {} values are not a strict upper triangle", origin, n));
  }
  return b;
}

Mat oft_block(const Values& row, std::size_t b, bool neumann, std::int64_t terms) {
  Mat q(b, b);
  std::size_t k = 0;
  for (std::size_t i = 0; i < b; ++i) {
    for (std::size_t j = i + 1; j < b; ++j) {
      q(i, j) = row[k];
      q(j, i) = -row[k];
      ++k;
    }
  }
  return neumann ? cayley_neumann(q, terms) : cayley(q);
}

// PEFT's block_butterfly_perm: within every group of n/blocks indices, the runs of length
// r are reordered evens first, then odds.
std::vector<std::size_t> butterfly_perm(std::size_t n, std::size_t blocks, std::size_t r) {
  std::vector<std::size_t> perm(n);
  for (std::size_t i = 0; i < n; ++i) perm[i] = i;
  const std::size_t group = n / blocks;
  const std::size_t runs = group / r;
  std::vector<std::size_t> order;
  for (std::size_t start : {std::size_t{0}, std::size_t{1}}) {
    for (std::size_t pos = start; pos < runs; pos += 2) {
      for (std::size_t k = 0; k < r; ++k) order.push_back(pos * r + k);
    }
  }
  for (std::size_t g = 0; g + group <= n; g += group) {
    for (std::size_t i = 0; i < order.size(); ++i) perm[g + i] = g + order[i];
  }
  return perm;
}

// T for BOFT from boft_R [levels, blocks, b, b].
Mat boft_rotation(const Tensor& boft_r, const std::string& origin) {
  if (boft_r.rank() != 4 || boft_r.shape()[2] != boft_r.shape()[3]) {
    throw Error(ErrorCode::ShapeMismatch, "",
                fmt::format("{}: boft_R must be [levels, blocks, b, b], got {}", origin,
                            shape_to_string(boft_r.shape())));
  }
  const std::size_t levels = boft_r.shape()[0];
  const std::size_t blocks = boft_r.shape()[1];
  const std::size_t b = boft_r.shape()[2];
  const std::size_t n = blocks * b;
  const Values v = boft_r.to_doubles();
  Mat total = identity(n);
  for (std::size_t level = 0; level < levels; ++level) {
    std::vector<Mat> rotations;
    for (std::size_t k = 0; k < blocks; ++k) {
      Mat s(b, b);
      const std::size_t base = (level * blocks + k) * b * b;
      for (std::size_t i = 0; i < b; ++i) {
        for (std::size_t j = 0; j < b; ++j) {
          s(i, j) = 0.5 * (v[base + i * b + j] - v[base + j * b + i]);
        }
      }
      rotations.push_back(cayley(s));
    }
    Mat m = block_diagonal(rotations);
    if (levels > 1) {
      const auto perm = butterfly_perm(n, blocks >> level, b / 2);
      Mat p(n, n);
      for (std::size_t i = 0; i < n; ++i) p(i, perm[i]) = 1.0;
      m = matmul(matmul(p, m), transpose(p));
    }
    total = matmul(m, total);
  }
  return total;
}

// Multiplies every output row i by s[i] (or divides).
void scale_rows(Values& w, const Shape& shape, const Values& s, bool divide,
                const std::string& origin) {
  const Layout layout = natural_layout(shape, false);
  if (s.size() != layout.out) {
    throw Error(
        ErrorCode::ShapeMismatch, "",
        fmt::format("{}: boft_s has {} values for {} output rows", origin, s.size(), layout.out));
  }
  for (std::size_t o = 0; o < layout.out; ++o) {
    for (std::size_t i = 0; i < layout.in; ++i) {
      w[o * layout.in + i] = divide ? w[o * layout.in + i] / s[o] : w[o * layout.in + i] * s[o];
    }
  }
}

}  // namespace

void build_oft(const ModuleInput& in, std::vector<Op>& ops) {
  const Tensor& r = in.param("oft_R.weight");
  const Mat rows = as_matrix(r);
  const std::size_t b = block_size_for(rows.cols, in.origin);
  const bool neumann = in.config().get_bool("use_cayley_neumann", true);
  const std::int64_t terms = in.config().get_int("num_cayley_neumann_terms", 5);
  const bool share = in.config().get_bool("block_share", false);
  Op op = in.op(in.weight_key());
  std::vector<Mat> blocks;
  for (std::size_t k = 0; k < rows.rows; ++k) {
    blocks.push_back(
        oft_block(Values(rows.v.begin() + static_cast<std::ptrdiff_t>(k * b * (b - 1) / 2),
                         rows.v.begin() + static_cast<std::ptrdiff_t>((k + 1) * b * (b - 1) / 2)),
                  b, neumann, terms));
  }
  if (share) {
    // One block repeated: how many is only known from the weight, so build lazily.
    const Mat block = blocks.at(0);
    const std::string origin = in.origin;
    auto rotation = [=](const Shape& shape) {
      const std::size_t n = natural_layout(shape, false).in;
      if (n % b != 0) {
        throw Error(ErrorCode::ShapeMismatch, "",
                    fmt::format("{}: blocks of {} do not tile {} inputs", origin, b, n));
      }
      return transpose(block_diagonal(std::vector<Mat>(n / b, block)));
    };
    op.transform = [=](Values& w, const Shape& shape) {
      const Layout layout = natural_layout(shape, false);
      w = from_out_in(matmul(to_out_in(w, layout), rotation(shape)), layout);
    };
    op.inverse = [=](Values& w, const Shape& shape) {
      const Layout layout = natural_layout(shape, false);
      w = from_out_in(matmul(to_out_in(w, layout), inverse(rotation(shape))), layout);
    };
  } else {
    right_multiply(op, transpose(block_diagonal(blocks)), false);
  }
  ops.push_back(std::move(op));
}

void build_boft(const ModuleInput& in, std::vector<Op>& ops) {
  const Values s = in.param("boft_s").to_doubles();
  const std::string origin = in.origin;
  Op op = in.op(in.weight_key());
  right_multiply(op, transpose(boft_rotation(in.param("boft_R"), in.origin)), false);
  auto rotate = op.transform;
  auto unrotate = op.inverse;
  op.transform = [=](Values& w, const Shape& shape) {
    rotate(w, shape);
    scale_rows(w, shape, s, false, origin);
  };
  op.inverse = [=](Values& w, const Shape& shape) {
    scale_rows(w, shape, s, true, origin);
    unrotate(w, shape);
  };
  ops.push_back(std::move(op));
}

void build_hra(const ModuleInput& in, std::vector<Op>& ops) {
  Mat u = as_matrix(in.param("hra_u"));  // [in', r]
  const std::size_t n = u.rows;
  Mat h = identity(n);
  if (in.config().get_bool("apply_GS", false)) {
    // Gram-Schmidt on the columns, then H = I - 2 U U^T.
    for (std::size_t k = 0; k < u.cols; ++k) {
      for (std::size_t j = 0; j < k; ++j) {
        double dot = 0.0;
        for (std::size_t i = 0; i < n; ++i) dot += u(i, j) * u(i, k);
        for (std::size_t i = 0; i < n; ++i) u(i, k) -= dot * u(i, j);
      }
      double norm = 0.0;
      for (std::size_t i = 0; i < n; ++i) norm += u(i, k) * u(i, k);
      norm = std::sqrt(norm);
      for (std::size_t i = 0; i < n; ++i) u(i, k) /= norm;
    }
    add_scaled(h, matmul(u, transpose(u)), -2.0);
  } else {
    for (std::size_t k = 0; k < u.cols; ++k) {
      double norm = 0.0;
      for (std::size_t i = 0; i < n; ++i) norm += u(i, k) * u(i, k);
      Mat reflection = identity(n);
      for (std::size_t i = 0; i < n; ++i) {
        for (std::size_t j = 0; j < n; ++j) reflection(i, j) -= 2.0 * u(i, k) * u(j, k) / norm;
      }
      h = matmul(h, reflection);
    }
  }
  Op op = in.op(in.weight_key());
  right_multiply(op, std::move(h), false);
  ops.push_back(std::move(op));
}

}  // namespace peft::merge
