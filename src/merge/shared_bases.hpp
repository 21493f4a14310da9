// Projections PEFT does not save but draws at load time (VeRA, RandLoRA with
// save_projection=False), regenerated for merging.
#pragma once

#include "peft/merge.hpp"

namespace peft {

// A VeRA adapter saved with save_projection=False holds no vera_A / vera_B: PEFT draws them
// at load time from projection_prng_key, sized by the largest targeted base weight. Adds
// them to `adapter.weights` exactly as PEFT draws them (torch's CPU generator reproduced);
// does nothing for other methods or when the projections are saved. merge_adapters and
// unmerge_adapters call it themselves.
void regenerate_vera_projections(MergeAdapter& adapter, const BaseShapes& base_shapes);
// The same for RandLoRA's randlora_A / randlora_B (dense, sparse or very_sparse bases).
void regenerate_randlora_projections(MergeAdapter& adapter, const BaseShapes& base_shapes);

}  // namespace peft
