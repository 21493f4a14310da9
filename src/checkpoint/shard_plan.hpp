// How a checkpoint is cut into shards, as huggingface_hub does it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace peft {

// huggingface_hub's split_state_dict_into_shards: walks the sizes in state-dict order and
// starts a new shard when the next tensor would exceed `max_shard_size`; a tensor larger
// than the limit gets a shard of its own, placed before the shard being filled. Returns the
// indices of each shard.
std::vector<std::vector<std::size_t>> plan_shards(const std::vector<std::uint64_t>& sizes,
                                                  std::uint64_t max_shard_size);

}  // namespace peft
