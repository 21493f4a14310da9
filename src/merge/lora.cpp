// LoRA (PEFT tuners/lora): W += s * B @ A with s = alpha / r (alpha / sqrt(r) for rsLoRA),
// in every layer flavour PEFT merges: Linear (and GPT-2 Conv1D through fan_in_fan_out),
// Embedding, ConvNd, nn.MultiheadAttention, target_parameters (incl. 3-D expert weights);
// plus DoRA's magnitude rescaling and lora_bias.

#include <cmath>
#include <memory>

#include <fmt/format.h>

#include "merge/numeric_libs.hpp"
#include "merge/plan.hpp"
#include "peft/error.hpp"
#include "peft/module_match.hpp"

namespace peft::merge {
namespace {

constexpr std::string_view kDoraNoUnmerge =
    "DoRA rescales each merged row to the trained magnitude; the norms of the unscaled weight "
    "are not stored, so the base weight cannot be recovered from the merged one";

// The name PEFT gives the LoRA layer (an MHA's out_proj belongs to the MHA layer).
std::string layer_name(const ModuleInput& in) {
  const auto at = in.raw_module.find(".base_layer");
  return at == std::string::npos ? in.raw_module : in.raw_module.substr(0, at);
}

double lora_scaling(const ModuleInput& in) {
  const std::string name = layer_name(in);
  const double r = rank_for(in.config(), name);
  const double alpha = alpha_for(in.config(), name);
  return in.config().use_rslora() ? alpha / std::sqrt(r) : alpha / r;
}

// B @ A with conv kernels flattened: [out, in * prod(kernel)].
Mat lora_product(const ModuleInput& in, const Tensor& a, const Tensor& b) {
  const std::size_t r = static_cast<std::size_t>(a.shape().at(0));
  Mat am = as_matrix(a, r, static_cast<std::size_t>(a.numel()) / r, in.origin + ": lora_A");
  const std::size_t out = static_cast<std::size_t>(b.shape().at(0));
  const std::size_t b_cols = static_cast<std::size_t>(b.numel()) / out;
  if (b_cols != r && a.rank() > 2 && b_cols != 0 && r % b_cols == 0) {
    throw Error(ErrorCode::Unsupported, in.config().source(),
                fmt::format("{}: LoRA on a grouped convolution (lora_B takes {} of the {} "
                            "ranks per group) cannot be merged; PEFT refuses it too",
                            in.origin, b_cols, r));
  }
  Mat bm = as_matrix(b, out, b_cols, in.origin + ": lora_B");
  return matmul(bm, am);
}

void scale(Mat& m, double s) {
  for (double& x : m.v) x *= s;
}

// W' = V * m / ||V|| with V = W + delta; norms per output row of the [out, in] view.
void dora_rows(Values& w, const Shape& shape, const Mat& delta, const Values& magnitude,
               bool fan_in_fan_out, const std::string& origin) {
  const Layout layout = layout_for(shape, delta.rows, delta.cols, fan_in_fan_out, origin);
  Mat v = to_out_in(w, layout);
  add_scaled(v, delta, 1.0);
  if (magnitude.size() != v.rows) {
    throw Error(ErrorCode::ShapeMismatch, "",
                fmt::format("{}: lora_magnitude_vector has {} values for {} output features",
                            origin, magnitude.size(), v.rows));
  }
  for (std::size_t o = 0; o < v.rows; ++o) {
    double norm = 0.0;
    for (std::size_t i = 0; i < v.cols; ++i) norm += v(o, i) * v(o, i);
    const double factor = magnitude[o] / std::sqrt(norm);
    for (std::size_t i = 0; i < v.cols; ++i) v(o, i) *= factor;
  }
  w = from_out_in(v, layout);
}

// Embedding DoRA: one norm per embedding dimension, taken over the vocabulary.
void dora_columns(Values& w, const Shape& shape, const Mat& delta, const Values& magnitude,
                  const std::string& origin) {
  if (shape.size() != 2 || shape[0] != delta.rows || shape[1] != delta.cols ||
      magnitude.size() != delta.cols) {
    throw Error(
        ErrorCode::ShapeMismatch, "",
        fmt::format("{}: DoRA embedding update [{}, {}] with {} magnitudes does not fit "
                    "the base tensor {}",
                    origin, delta.rows, delta.cols, magnitude.size(), shape_to_string(shape)));
  }
  Mat v(delta.rows, delta.cols);
  v.v = w;
  add_scaled(v, delta, 1.0);
  for (std::size_t c = 0; c < v.cols; ++c) {
    double norm = 0.0;
    for (std::size_t r = 0; r < v.rows; ++r) norm += v(r, c) * v(r, c);
    const double factor = magnitude[c] / std::sqrt(norm);
    for (std::size_t r = 0; r < v.rows; ++r) v(r, c) *= factor;
  }
  w = v.v;
}

// A 3-D expert parameter [E, in, out]: expert e uses rows e*r.. of A and the interleaved
// columns k*E + e of B; P[e] += s * (B_e @ A_e)^T.
Values expert_delta(const Mat& a, const Mat& b, double s, const Shape& shape,
                    const std::string& origin) {
  const std::size_t experts = static_cast<std::size_t>(shape[0]);
  const std::size_t in = static_cast<std::size_t>(shape[1]);
  const std::size_t out = static_cast<std::size_t>(shape[2]);
  if (experts == 0 || a.rows % experts != 0 || a.cols != in || b.rows != out || b.cols != a.rows) {
    throw Error(ErrorCode::ShapeMismatch, "",
                fmt::format("{}: lora_A [{}, {}] and lora_B [{}, {}] do not fit the expert "
                            "parameter {}",
                            origin, a.rows, a.cols, b.rows, b.cols, shape_to_string(shape)));
  }
  const std::size_t r = a.rows / experts;
  Values out_values(experts * in * out, 0.0);
  for (std::size_t e = 0; e < experts; ++e) {
    for (std::size_t o = 0; o < out; ++o) {
      for (std::size_t i = 0; i < in; ++i) {
        double sum = 0.0;
        for (std::size_t k = 0; k < r; ++k) sum += b(o, k * experts + e) * a(e * r + k, i);
        out_values[(e * in + i) * out + o] = s * sum;
      }
    }
  }
  return out_values;
}

// The base parameter a target_parameters LoRA wraps on this module, if any.
std::optional<std::string> target_parameter(const ModuleInput& in) {
  const auto params = in.config().target_parameters();
  if (!params) return std::nullopt;
  for (const auto& entry : *params) {
    const auto dot = entry.rfind('.');
    const std::string name = dot == std::string::npos ? entry : entry.substr(dot + 1);
    if (is_parameter_targeted(in.config(), in.module + "." + name)) return name;
  }
  return std::nullopt;
}

bool is_mha(const ModuleInput& in) {
  return in.adapter->weights.contains("base_model.model." + in.raw_module +
                                      ".base_layer.out_proj.lora_A.weight");
}

bool is_mha_out_proj(const ModuleInput& in) {
  return in.raw_module.ends_with(".base_layer.out_proj");
}

void build_embedding(const ModuleInput& in, double s, std::vector<Op>& ops) {
  const Tensor a = in.param("lora_embedding_A");
  const Tensor b = in.param("lora_embedding_B");
  const std::string origin = in.origin;
  auto delta = [=] {
    Mat d = transpose(lora_product(in, a, b));
    scale(d, s);
    return d;
  };
  Op op = in.op(in.weight_key());
  if (const Tensor* m = in.find("lora_magnitude_vector")) {
    const Values magnitude = m->to_doubles();
    op.transform = [=](Values& w, const Shape& shape) {
      dora_columns(w, shape, delta(), magnitude, origin);
    };
    op.no_unmerge = std::string(kDoraNoUnmerge);
  } else {
    op.delta = [=](const Shape& shape) { return delta_in_layout(delta(), shape, false, origin); };
  }
  ops.push_back(std::move(op));
}

}  // namespace

void build_lora(const ModuleInput& in, std::vector<Op>& ops) {
  const double s = lora_scaling(in);
  if (in.find("lora_embedding_A") != nullptr) return build_embedding(in, s, ops);
  const Tensor a = in.param("lora_A.weight");
  const Tensor b = in.param("lora_B.weight");
  const std::string origin = in.origin;
  const bool fan_in_fan_out = in.config().fan_in_fan_out();
  // PEFT applies an MHA's out_proj delta twice (in forward and in merge).
  const double factor = is_mha_out_proj(in) ? 2.0 * s : s;
  auto delta = [=] {
    Mat d = lora_product(in, a, b);
    scale(d, factor);
    return d;
  };

  std::string key = in.weight_key();
  const auto parameter = target_parameter(in);
  if (parameter) key = in.module + "." + *parameter;
  if (is_mha(in)) key = in.module + ".in_proj_weight";
  Op op = in.op(key);
  if (const Tensor* m = in.find("lora_magnitude_vector")) {
    const Values magnitude = m->to_doubles();
    op.transform = [=](Values& w, const Shape& shape) {
      dora_rows(w, shape, delta(), magnitude, fan_in_fan_out, origin);
    };
    op.no_unmerge = std::string(kDoraNoUnmerge);
  } else if (parameter) {
    op.delta = [=](const Shape& shape) {
      if (shape.size() != 3) return delta_in_layout(delta(), shape, false, origin);
      const std::size_t r = static_cast<std::size_t>(a.shape().at(0));
      const std::size_t out = static_cast<std::size_t>(b.shape().at(0));
      return expert_delta(as_matrix(a, r, a.numel() / r, origin + ": lora_A"),
                          as_matrix(b, out, b.numel() / out, origin + ": lora_B"), s, shape,
                          origin);
    };
  } else {
    op.delta = [=](const Shape& shape) {
      return delta_in_layout(delta(), shape, fan_in_fan_out, origin);
    };
    // float32 factors for the fused path, converted once here rather than per tensor.
    auto floats = std::make_shared<FloatFactors>();
    floats->rank = static_cast<std::size_t>(a.shape().at(0));
    floats->rows = static_cast<std::size_t>(b.shape().at(0));
    floats->cols = floats->rank == 0 ? 0 : static_cast<std::size_t>(a.numel()) / floats->rank;
    floats->scaling = static_cast<float>(factor);
    const bool float_factors = a.dtype() != DType::F64 && b.dtype() != DType::F64;
    if (float_factors && floats->rank > 0 && floats->rows > 0 &&
        static_cast<std::size_t>(b.numel()) / floats->rows == floats->rank) {
      const auto av = a.to_floats();
      const auto bv = b.to_floats();
      floats->a.assign(av.begin(), av.end());
      floats->b.assign(bv.begin(), bv.end());
      op.float_factors = [=](const Shape& shape) -> const FloatFactors* {
        const Layout layout = layout_for(shape, floats->rows, floats->cols, fan_in_fan_out, origin);
        return layout.transposed ? nullptr : floats.get();
      };
    }
    // w += factor · B·A in one GEMM when the weight is stored [out, in].
    op.add_into = [=](Values& w, const Shape& shape) {
      const std::size_t r = static_cast<std::size_t>(a.shape().at(0));
      const std::size_t out = static_cast<std::size_t>(b.shape().at(0));
      const std::size_t in_features = static_cast<std::size_t>(a.numel()) / r;
      if (static_cast<std::size_t>(b.numel()) / out != r) return false;  // grouped conv: slow path
      const Layout layout = layout_for(shape, out, in_features, fan_in_fan_out, origin);
      if (layout.transposed || w.size() != out * in_features) return false;
      const Mat am = as_matrix(a, r, in_features, origin + ": lora_A");
      const Mat bm = as_matrix(b, out, r, origin + ": lora_B");
      numeric::blas().dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(out),
                            static_cast<int>(in_features), static_cast<int>(r), factor, bm.v.data(),
                            static_cast<int>(r), am.v.data(), static_cast<int>(in_features), 1.0,
                            w.data(), static_cast<int>(in_features));
      return true;
    };
  }
  ops.push_back(std::move(op));

  if (const Tensor* bias = in.find("lora_B.bias")) {
    const Values values = bias->to_doubles();
    Op bias_op = in.op(in.bias_key());
    bias_op.delta = [=](const Shape&) {
      Values d = values;
      for (double& x : d) x *= s;
      return d;
    };
    ops.push_back(std::move(bias_op));
  }
}

}  // namespace peft::merge
