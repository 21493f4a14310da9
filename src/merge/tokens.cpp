// Rules that write trained values over base values instead of changing them: trainable
// tokens (rows of an embedding) and LN tuning (a whole LayerNorm). Neither can be undone
// from the merged weights.
#include <fmt/format.h>

#include "merge/plan.hpp"
#include "peft/error.hpp"

namespace peft::merge {
namespace {

// The token ids of this embedding: TRAINABLE_TOKENS' token_indices, or LoRA's
// trainable_token_indices (a list means the input embedding, the module holding it here;
// a dict is keyed by a suffix of the module name).
std::vector<std::int64_t> token_ids(const ModuleInput& in) {
  if (in.config().peft_type() == PeftType::TRAINABLE_TOKENS) return in.config().token_indices();
  const auto indices = in.config().trainable_token_indices();
  if (!indices) {
    throw Error(ErrorCode::MissingKey, in.config().source(),
                fmt::format("{}: the adapter stores trainable token rows but the config has no "
                            "trainable_token_indices",
                            in.origin));
  }
  if (const auto* list = std::get_if<std::vector<std::int64_t>>(&*indices)) return *list;
  for (const auto& [name, ids] : std::get<1>(*indices)) {
    if (in.module == name || in.module.ends_with("." + name)) return ids;
  }
  throw Error(ErrorCode::MissingKey, in.config().source(),
              fmt::format("{}: trainable_token_indices has no entry for this module", in.origin));
}

}  // namespace

void build_trainable_tokens(const ModuleInput& in, std::vector<Op>& ops) {
  const Tensor rows = in.param("trainable_tokens_delta");
  const auto ids = token_ids(in);
  if (rows.rank() != 2 || rows.shape()[0] != ids.size()) {
    throw Error(ErrorCode::ShapeMismatch, in.config().source(),
                fmt::format("{}: trainable_tokens_delta is {} for {} token ids", in.origin,
                            shape_to_string(rows.shape()), ids.size()));
  }
  const Values values = rows.to_doubles();
  const std::string origin = in.origin;
  Op op = in.op(in.weight_key());
  // Despite its name the tensor holds the new rows, which replace the old ones.
  op.transform = [=](Values& w, const Shape& shape) {
    const std::size_t dim = static_cast<std::size_t>(rows.shape()[1]);
    if (shape.size() != 2 || shape[1] != dim) {
      throw Error(ErrorCode::ShapeMismatch, "",
                  fmt::format("{}: token rows of width {} do not fit the embedding {}", origin, dim,
                              shape_to_string(shape)));
    }
    for (std::size_t j = 0; j < ids.size(); ++j) {
      if (ids[j] < 0 || static_cast<std::uint64_t>(ids[j]) >= shape[0]) {
        throw Error(ErrorCode::ShapeMismatch, "",
                    fmt::format("{}: token id {} is outside the embedding {}", origin, ids[j],
                                shape_to_string(shape)));
      }
      std::copy_n(
          values.begin() + static_cast<std::ptrdiff_t>(j * dim), dim,
          w.begin() + static_cast<std::ptrdiff_t>(ids[j]) * static_cast<std::ptrdiff_t>(dim));
    }
  };
  op.no_unmerge = "trainable tokens overwrite embedding rows; the original rows are not stored";
  ops.push_back(std::move(op));
}

void build_ln_tuning(const ModuleInput& in, std::vector<Op>& ops) {
  for (const auto& [name, tensor] : in.params) {
    const std::string prefix = "ln_tuning_layers.";
    if (!name.starts_with(prefix)) continue;
    Op op = in.op(in.module + "." + name.substr(prefix.size()));
    op.replacement = tensor;
    op.no_unmerge =
        "LN tuning replaces the LayerNorm with its trained copy; the original "
        "values are not stored";
    ops.push_back(std::move(op));
  }
}

}  // namespace peft::merge
