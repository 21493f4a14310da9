// VeRA: per-layer lambdas plus the shared random projections (docs/peft-rules.md §2.5.2).
#include "methods/method_rules.hpp"
#include "peft/error.hpp"

namespace peft::methods {

StateDict select_vera(SaveContext& ctx) {
  StateDict out = select_by_prefix(ctx);
  if (!ctx.config.save_projection()) return out;
  for (const char* name : {"base_model.vera_A.", "base_model.vera_B."}) {
    const std::string key = name + ctx.adapter;
    const Tensor* projection = ctx.model.state.find(key);
    if (projection == nullptr) {
      throw Error(ErrorCode::MissingKey, ctx.config.source(),
                  "save_projection is true but the model holds no '" + key +
                      "': it was created with save_projection=false; set save_projection to false");
    }
    out.set(key, *projection);
  }
  return out;
}

StateDict remap_vera(LoadContext& ctx, StateDict state) {
  StateDict out = insert_adapter_names(ctx, std::move(state));
  // v0.18.0 checks the projections' presence but does not load them: they stay
  // unexpected keys and the model keeps the ones regenerated from projection_prng_key.
  const bool present = out.contains("base_model.vera_A");
  if (ctx.config.save_projection() && !present) {
    throw Error(ErrorCode::MissingKey, ctx.config.source(),
                "save_projection is true but the weights hold no 'base_model.vera_A' / "
                "'base_model.vera_B'");
  }
  if (!ctx.config.save_projection()) {
    ctx.warn("projections_regenerated",
             present
                 ? "Specified to not load vera_A and vera_B from state dictionary however they "
                   "are present in state dictionary! Consider using them to ensure checkpoint "
                   "loading is correct on all platforms using `peft_config.save_projection = True`"
                 : "Specified to not load vera_A and vera_B from state dictionary. This means we "
                   "will be relying on PRNG initialisation to restore these projections using "
                   "`config.projection_prng_key`, which may not be accurate on all system "
                   "configurations.");
  }
  return out;
}

}  // namespace peft::methods
