// The safetensors header JSON: a parser for its one fixed schema and the reference
// writer's serialisation.
//
// Hand-written on purpose: a general JSON DOM collapses duplicate names silently
// and is several times slower than this on 20,000-tensor headers; the schema is
// tiny (one object of objects with three known members) and fully specified.
#pragma once

#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "peft/safetensors.hpp"

namespace peft::formats {

struct ParsedHeader {
  std::optional<Metadata> metadata;
  std::vector<SafetensorsTensorInfo> tensors;  // header order
};

// Throws peft::Error (InvalidHeaderUtf8 / InvalidHeaderJson / TooManyTensors /
// DuplicateKey) with `source` as the file name.
ParsedHeader parse_safetensors_header(std::string_view json, const std::string& source,
                                      const SafetensorsReadOptions& options);

// One tensor of a header being written.
struct HeaderEntry {
  std::string_view name;
  DType dtype;
  const Shape* shape;
  std::uint64_t bytes;
};

// The 8-byte length and the space-padded compact header the reference writer produces for
// `entries`, given in writer order (offsets follow from it). HeaderTooLarge, naming
// `target`, past the format's 100,000,000-byte limit. Shared by every safetensors writer.
std::string serialize_header(const std::optional<Metadata>& metadata,
                             std::span<const HeaderEntry> entries, const std::string& target);

// The reference writer's order, the one rule every safetensors writer here uses: dtype
// rank descending (dtype_rank: alignment, then name), then tensor name by bytes.
inline bool writes_before(unsigned rank_a, std::string_view name_a, unsigned rank_b,
                          std::string_view name_b) {
  return rank_a != rank_b ? rank_a > rank_b : name_a < name_b;
}

// Appends `text` as a JSON string the way serde_json writes it.
void append_json_string(std::string& out, std::string_view text);

}  // namespace peft::formats
