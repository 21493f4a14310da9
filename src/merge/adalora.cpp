// AdaLoRA: W += B @ (A * E) * lora_alpha / (ranknum + 1e-5). PEFT's ranknum is the initial
// rank (init_r) even after rank allocation shrank the saved factors.
#include "merge/plan.hpp"

namespace peft::merge {

void build_adalora(const ModuleInput& in, std::vector<Op>& ops) {
  const Tensor a = in.param("lora_A");
  const Tensor b = in.param("lora_B");
  const Tensor e = in.param("lora_E");
  const double scale =
      in.config().lora_alpha() / (static_cast<double>(in.config().get_int("init_r", 12)) + 1e-5);
  const bool fan_in_fan_out = in.config().fan_in_fan_out();
  const std::string origin = in.origin;
  Op op = in.op(in.weight_key());
  op.delta = [=](const Shape& shape) {
    Mat am = as_matrix(a);
    const Values ev = e.to_doubles();
    for (std::size_t k = 0; k < am.rows && k < ev.size(); ++k) {
      for (std::size_t i = 0; i < am.cols; ++i) am(k, i) *= ev[k];
    }
    Mat d = matmul(as_matrix(b), am);
    scale_values(d.v, scale);
    return delta_in_layout(d, shape, fan_in_fan_out, origin);
  };
  ops.push_back(std::move(op));
}

}  // namespace peft::merge
