// IA3: a learned vector rescales the output features (W rows and the bias) or, for
// feed-forward modules, the input features (W columns). Unmerging divides by ia3_l + 1e-8
// as PEFT does.
#include <fmt/format.h>

#include "merge/plan.hpp"
#include "peft/error.hpp"
#include "pycompat/python_regex.hpp"

namespace peft::merge {
namespace {

// PEFT's membership test: a list is a plain suffix test (no dot boundary), a string a
// regex that must match the whole name.
bool is_feedforward(const ModuleInput& in) {
  const TargetModules ff = in.config().feedforward_modules();
  switch (ff.kind) {
    case TargetModules::Kind::None:
      return false;
    case TargetModules::Kind::Regex:
      return detail::python_regex_matches(ff.regex, in.module, detail::RegexMode::FullMatch);
    case TargetModules::Kind::List:
      for (const auto& name : ff.names) {
        if (in.module.ends_with(name)) return true;
      }
      return false;
  }
  return false;
}

// Multiplies (or divides) the output rows or the input channels of a weight.
void rescale(Values& w, const Shape& shape, const Values& l, bool columns, bool fan_in_fan_out,
             bool divide, const std::string& origin) {
  const Layout layout = natural_layout(shape, fan_in_fan_out);
  Mat m = to_out_in(w, layout);
  // Conv weights: the input channel of a flattened column is column / prod(kernel).
  const std::size_t channels = columns ? l.size() : m.rows;
  if (l.size() != channels || (columns && (channels == 0 || m.cols % channels != 0)) ||
      (!columns && l.size() != m.rows)) {
    throw Error(ErrorCode::ShapeMismatch, "",
                fmt::format("{}: ia3_l has {} values, which does not fit the weight {}", origin,
                            l.size(), shape_to_string(shape)));
  }
  const std::size_t per_channel = columns ? m.cols / channels : 1;
  for (std::size_t o = 0; o < m.rows; ++o) {
    for (std::size_t i = 0; i < m.cols; ++i) {
      const double f = columns ? l[i / per_channel] : l[o];
      m(o, i) = divide ? m(o, i) / (f + 1e-8) : m(o, i) * f;
    }
  }
  w = from_out_in(m, layout);
}

}  // namespace

void build_ia3(const ModuleInput& in, std::vector<Op>& ops) {
  const Values l = in.param("ia3_l").to_doubles();
  const bool ff = is_feedforward(in);
  const bool fan_in_fan_out = in.config().fan_in_fan_out();
  const std::string origin = in.origin;
  Op weight = in.op(in.weight_key());
  weight.transform = [=](Values& w, const Shape& s) {
    rescale(w, s, l, ff, fan_in_fan_out, false, origin);
  };
  weight.inverse = [=](Values& w, const Shape& s) {
    rescale(w, s, l, ff, fan_in_fan_out, true, origin);
  };
  ops.push_back(std::move(weight));
  if (ff) return;
  Op bias = in.op(in.bias_key());
  bias.optional = true;
  bias.transform = [=](Values& b, const Shape& s) {
    rescale(b, s, l, false, false, false, origin);
  };
  bias.inverse = [=](Values& b, const Shape& s) { rescale(b, s, l, false, false, true, origin); };
  ops.push_back(std::move(bias));
}

}  // namespace peft::merge
