// Module inputs and the [out, in] views every merge rule works in.
#include <fmt/format.h>

#include "merge/plan.hpp"
#include "peft/error.hpp"
#include "pycompat/torch_random.hpp"

namespace peft::merge {

const Tensor* ModuleInput::find(std::string_view name) const {
  const auto it = params.find(name);
  return it == params.end() ? nullptr : &it->second;
}

const Tensor& ModuleInput::param(std::string_view name) const {
  if (const Tensor* t = find(name)) return *t;
  throw Error(ErrorCode::MissingKey, config().source(),
              fmt::format("{}: the adapter has no tensor 'base_model.model.{}.{}'", origin,
                          raw_module, name));
}

const Tensor& ModuleInput::shared_tensor(std::string_view name) const {
  if (const Tensor* t = shared->find(name)) return *t;
  throw Error(ErrorCode::MissingKey, config().source(),
              fmt::format("{}: the adapter has no shared tensor 'base_model.{}'", origin, name));
}

const Tensor& ModuleInput::extra(std::string_view name) const {
  const std::string key = module + "." + std::string(name);
  if (const Tensor* t = adapter->extras.find(key)) return *t;
  throw Error(ErrorCode::MissingKey, config().source(),
              fmt::format("{}: '{}' is needed but was not given: PEFT draws it from torch's "
                          "random generator at load time; pass it in MergeAdapter::extras",
                          origin, key));
}

const Tensor* ModuleInput::find_extra(std::string_view name) const {
  return adapter->extras.find(module + "." + std::string(name));
}

SpectrumPositions spectrum_positions(const ModuleInput& in, std::string_view extra_name) {
  SpectrumPositions out;
  if (const Tensor* given = in.find_extra(extra_name)) out.given = *given;
  out.seed = in.config().get_int("random_loc_seed", 777);
  out.what = in.module + "." + std::string(extra_name);
  out.origin = in.origin;
  return out;
}

std::vector<std::int64_t> SpectrumPositions::resolve(std::size_t n, std::size_t out,
                                                     std::size_t in) const {
  if (given) {
    auto positions = given->to_ints();
    if (positions.size() != 2 * n) {
      throw Error(ErrorCode::ShapeMismatch, "",
                  fmt::format("{}: {} must be [2, {}], got {}", origin, what, n,
                              shape_to_string(given->shape())));
    }
    return positions;
  }
  const auto flat = numeric::torch_randperm_prefix(static_cast<std::uint64_t>(out) * in,
                                                   static_cast<std::uint64_t>(seed), n);
  if (flat.size() != n) {
    throw Error(
        ErrorCode::ShapeMismatch, "",
        fmt::format("{}: {} spectrum values do not fit a [{}, {}] weight", origin, n, out, in));
  }
  std::vector<std::int64_t> positions(2 * n);
  const auto cols = static_cast<std::int64_t>(in);
  for (std::size_t k = 0; k < n; ++k) {
    positions[k] = flat[k] / cols;
    positions[n + k] = flat[k] % cols;
  }
  return positions;
}

Op ModuleInput::op(std::string key) const {
  Op o;
  o.key = std::move(key);
  o.origin = origin;
  return o;
}

namespace {

std::size_t tail_numel(const Shape& shape) {
  std::size_t n = 1;
  for (std::size_t i = 1; i < shape.size(); ++i) n *= static_cast<std::size_t>(shape[i]);
  return n;
}

}  // namespace

Layout natural_layout(const Shape& shape, bool fan_in_fan_out) {
  if (shape.size() == 2 && fan_in_fan_out) {
    return Layout{static_cast<std::size_t>(shape[1]), static_cast<std::size_t>(shape[0]), true};
  }
  const std::size_t out = shape.empty() ? 1 : static_cast<std::size_t>(shape[0]);
  return Layout{out, tail_numel(shape), false};
}

Layout layout_for(const Shape& shape, std::size_t out, std::size_t in, bool fan_in_fan_out,
                  const std::string& origin) {
  const bool plain_fits = !shape.empty() && shape[0] == out && tail_numel(shape) == in;
  const bool transposed_fits = shape.size() == 2 && shape[0] == in && shape[1] == out;
  if (transposed_fits && (fan_in_fan_out || !plain_fits)) return Layout{out, in, true};
  if (plain_fits) return Layout{out, in, false};
  throw Error(ErrorCode::ShapeMismatch, "",
              fmt::format("{}: the adapter changes an [{}, {}] weight but the base tensor is {}",
                          origin, out, in, shape_to_string(shape)));
}

Mat to_out_in(const Values& values, const Layout& layout) {
  if (!layout.transposed) {
    Mat m;
    m.rows = layout.out;
    m.cols = layout.in;
    m.v = values;
    return m;
  }
  Mat m(layout.out, layout.in);
  for (std::size_t i = 0; i < layout.in; ++i) {
    for (std::size_t o = 0; o < layout.out; ++o) m(o, i) = values[i * layout.out + o];
  }
  return m;
}

// By value: the common untransposed case moves the buffer instead of copying it.
Values from_out_in(Mat m, const Layout& layout) {
  if (!layout.transposed) return std::move(m.v);
  return transpose(m).v;
}

Values delta_in_layout(Mat delta, const Shape& shape, bool fan_in_fan_out,
                       const std::string& origin) {
  const Layout layout = layout_for(shape, delta.rows, delta.cols, fan_in_fan_out, origin);
  return from_out_in(std::move(delta), layout);
}

void scale_values(Values& values, double factor) {
  for (double& x : values) x *= factor;
}

double scalar_of(const Tensor& tensor, const std::string& what) {
  if (tensor.numel() != 1) {
    throw Error(
        ErrorCode::ShapeMismatch, "",
        fmt::format("{} must hold one value, got {}", what, shape_to_string(tensor.shape())));
  }
  return tensor.to_doubles()[0];
}

void right_multiply(Op& op, const Mat& m, bool fan_in_fan_out) {
  const std::string origin = op.origin;
  auto apply = [=](const Mat& factor, Values& w, const Shape& shape) {
    const Layout layout = layout_for(shape, natural_layout(shape, fan_in_fan_out).out, factor.rows,
                                     fan_in_fan_out, origin);
    w = from_out_in(matmul(to_out_in(w, layout), factor), layout);
  };
  const Mat inv = inverse(m);
  op.transform = [=](Values& w, const Shape& shape) { apply(m, w, shape); };
  op.inverse = [=](Values& w, const Shape& shape) { apply(inv, w, shape); };
}

}  // namespace peft::merge
