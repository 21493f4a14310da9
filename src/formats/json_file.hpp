// Small JSON files next to the weights (config.json, model.safetensors.index.json), read
// whole and parsed with every failure naming the file.
#pragma once

#include <cstdint>
#include <filesystem>

#include <nlohmann/json.hpp>

namespace peft::formats {

// Larger files are refused (LimitExceeded) before they are read: these files are a few KB.
inline constexpr std::uintmax_t kMaxJsonFileBytes = 64U << 20;

// Throws Io (missing or unreadable) / LimitExceeded / InvalidJson naming `path`.
nlohmann::json read_json_file(const std::filesystem::path& path);

}  // namespace peft::formats
