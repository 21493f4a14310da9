// The bodies of the libFuzzer targets, shared with tests/fuzz_regressions_test.cpp so
// that a checked-in input replays through exactly the code that found the bug.
//
// Every entry point feeds untrusted bytes to one parser and accepts exactly one outcome
// besides success: a peft::Error. Anything else (another exception, a sanitizer report,
// a broken round trip) is a finding: the entry point aborts so that libFuzzer keeps the
// input, and the regression test fails.
#pragma once

#include <cstdint>
#include <filesystem>
#include <span>
#include <string_view>

namespace peft::fuzz {

using Input = std::span<const std::uint8_t>;

// SafetensorsFile::from_bytes, every tensor read, then a write/read round trip.
void safetensors_input(Input data);
// ZipArchive::open and every entry's data; then load_torch_bytes (CRC checks off so that
// mutations reach the pickle and tensor layers).
void zip_input(Input data);
// unpickle with both persistent-id sizes, then load_torch_bytes (the legacy format).
void pickle_input(Input data);
// PeftConfig::from_json_text, every accessor, validate(), and a text round trip.
void config_input(Input data);

// The adapter-folder input: byte 0 holds flags (bit 0: weights as adapter_model.bin
// instead of .safetensors; bit 1: the same adapter again in a sub folder), bytes 1-2 the
// config length n (little-endian), then n bytes of adapter_config.json, then the weights.
// Writes them into `folder` (emptied first), then load_peft_weights, load_adapter_config,
// inspect_adapters (+ its JSON) and validate_adapter_folder.
void adapter_folder_input(Input data, const std::filesystem::path& folder);

// read_gguf, every tensor's bytes touched, then the metadata written and read back.
void gguf_input(Input data);

// The Hub's answers (src/hub/hub_protocol.hpp): byte 0 selects what the rest is — the
// revision JSON, a header block ("Name: value" lines) read as HEAD metadata, a
// Content-Range value, a redirect (base URL, NUL, Location) to resolve, or a file name
// and a pattern (NUL-separated) for fnmatch and the path checks.
void hub_protocol_input(Input data);

// The entry point of a target by its name ("safetensors", "zip", "pickle", "config",
// "adapter_folder"); the folder target uses a per-process temporary folder.
void run_target(std::string_view target, Input data);

}  // namespace peft::fuzz
