#include "formats/json_file.hpp"

#include <fmt/format.h>

#include <fstream>
#include <sstream>

#include "peft/error.hpp"

namespace peft::formats {

nlohmann::json read_json_file(const std::filesystem::path& path) {
  std::error_code ec;
  const auto size = std::filesystem::file_size(path, ec);
  if (!ec && size > kMaxJsonFileBytes) {
    throw Error(ErrorCode::LimitExceeded, path.string(),
                fmt::format("{} bytes is too large for this JSON file (limit {})", size,
                            kMaxJsonFileBytes));
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(ErrorCode::Io, path.string(), "cannot be read");
  std::ostringstream text;
  text << in.rdbuf();
  if (!in && !in.eof()) throw Error(ErrorCode::Io, path.string(), "cannot be read");
  try {
    return nlohmann::json::parse(text.str());
  } catch (const nlohmann::json::parse_error& e) {
    throw Error(ErrorCode::InvalidJson, path.string(), fmt::format("not valid JSON: {}", e.what()));
  }
}

}  // namespace peft::formats
