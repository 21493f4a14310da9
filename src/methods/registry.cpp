// The registry lookups and the generic state-dict rules (select by prefix, insert the
// adapter name) with the small per-method rules that need no file of their own.
#include <fmt/format.h>

#include "methods/registry.hpp"
#include "peft/error.hpp"

namespace peft::methods {
namespace {

[[noreturn]] void refuse_unknown(PeftType type, std::string_view source) {
  throw Error(ErrorCode::Unsupported, std::string(source),
              fmt::format("state-dict rules for {} are not implemented: the type was added after "
                          "PEFT 0.18.0, whose file format peftcpp follows",
                          to_string(type)));
}

}  // namespace

const StateDictRules& state_dict_rules(PeftType type, std::string_view source) {
  const MethodDescriptor& row = method(type);
  if (row.state_dict.select == nullptr) refuse_unknown(type, source);
  return row.state_dict;
}

std::string_view prefix_of(PeftType type, std::string_view source) {
  const MethodDescriptor& row = method(type);
  if (row.prefix.empty()) refuse_unknown(type, source);
  return row.prefix;
}

StateDict select_containing(const StateDict& state, std::string_view needle) {
  StateDict out;
  for (const auto& [key, tensor] : state) {
    if (key.find(needle) != std::string::npos) out.set(key, tensor);
  }
  return out;
}

StateDict select_by_prefix(SaveContext& ctx) {
  return select_containing(ctx.model.state, prefix_of(ctx.config.peft_type()));
}

StateDict insert_adapter_names(LoadContext& ctx, StateDict state) {
  const std::string_view prefix = prefix_of(ctx.config.peft_type());
  StateDict out;
  for (auto& [key, tensor] : state) out.set(insert_adapter_name(key, ctx.adapter, prefix), tensor);
  return out;
}

StateDict keep_as_is(LoadContext& /*ctx*/, StateDict state) {
  return state;
}

StateDict select_adaption_prompt(SaveContext& ctx) {
  StateDict out;
  for (const auto& [key, tensor] : ctx.model.state) {
    const auto dot = key.rfind('.');
    const std::string_view last =
        dot == std::string::npos ? std::string_view(key) : std::string_view(key).substr(dot + 1);
    if (last.starts_with("adaption_")) out.set(key, tensor);
  }
  return out;
}

StateDict select_xlora(SaveContext& ctx) {
  return select_containing(ctx.model.state, "internal_xlora_classifier");
}

StateDict remap_oft(LoadContext& ctx, StateDict state) {
  StateDict out = insert_adapter_names(ctx, std::move(state));
  for (const auto& [key, tensor] : out) {
    if (key.find(".oft_r.") != std::string::npos) {
      throw Error(ErrorCode::Unsupported, "",
                  fmt::format("'{}' is from an OFT adapter of PEFT <= 0.15.2, whose format is no "
                              "longer supported; load it with PEFT <= 0.15.2 or train a new one",
                              key));
    }
  }
  return out;
}

}  // namespace peft::methods
