// OSF: the merged weight is the top singular part of the *base* weight plus the trained
// low part stored in the file, W' = U_k S_k V_k^T + U_low diag(S_low) V_low, with
// k = min(out, in) - len(S_low). PEFT refuses to unmerge it.
#include <fmt/format.h>

#include "merge/plan.hpp"
#include "peft/error.hpp"

namespace peft::merge {

void build_osf(const ModuleInput& in, std::vector<Op>& ops) {
  const Values s_low = in.param("osf_svd_params.S_low").to_doubles();
  Mat u_low = as_matrix(in.param("osf_svd_params.U_low"));
  const Mat v_low = as_matrix(in.param("osf_svd_params.V_low"));
  for (std::size_t i = 0; i < u_low.rows; ++i) {
    for (std::size_t k = 0; k < u_low.cols && k < s_low.size(); ++k) u_low(i, k) *= s_low[k];
  }
  const Mat low = matmul(u_low, v_low);
  const std::string origin = in.origin;
  Op op = in.op(in.weight_key());
  op.transform = [=](Values& w, const Shape& shape) {
    const Layout layout = layout_for(shape, low.rows, low.cols, false, origin);
    const Svd d = svd(to_out_in(w, layout));
    const std::size_t k = d.s.size() - std::min(d.s.size(), s_low.size());
    Mat top = low;
    for (std::size_t i = 0; i < top.rows; ++i) {
      for (std::size_t j = 0; j < top.cols; ++j) {
        double sum = 0.0;
        for (std::size_t x = 0; x < k; ++x) sum += d.u(i, x) * d.s[x] * d.v(j, x);
        top(i, j) += sum;
      }
    }
    w = from_out_in(top, layout);
  };
  op.no_unmerge =
      "OSF replaces the weight's low singular directions with trained ones; the "
      "original ones are not stored (PEFT refuses to unmerge OSF too)";
  ops.push_back(std::move(op));
}

}  // namespace peft::merge
