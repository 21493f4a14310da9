#include "formats/gguf.hpp"
#include "formats/mapped_file.hpp"
#include "peft/gguf.hpp"

namespace peft {

GgufSummary inspect_gguf_file(const std::filesystem::path& file) {
  const formats::FileBytes bytes = formats::map_file(file);
  const formats::GgufContents contents = formats::read_gguf(bytes.bytes, file.string());
  GgufSummary out;
  out.file = file;
  out.version = contents.version;
  out.file_bytes = bytes.bytes.size();
  for (const auto& entry : contents.metadata) out.metadata.emplace_back(entry.key, entry.value);
  for (const auto& info : contents.tensors) {
    out.tensors.push_back(
        {info.name, std::string(formats::ggml_type_name(info.type)), info.ne, info.nbytes});
  }
  return out;
}

nlohmann::json to_json(const GgufSummary& summary, bool with_tensors) {
  nlohmann::json metadata = nlohmann::json::object();
  for (const auto& [key, value] : summary.metadata) metadata[key] = value;
  nlohmann::json out = {
      {"file", summary.file.string()},   {"format", "gguf"},
      {"version", summary.version},      {"bytes", summary.file_bytes},
      {"metadata", std::move(metadata)}, {"tensor_count", summary.tensors.size()}};
  if (with_tensors) {
    nlohmann::json tensors = nlohmann::json::array();
    for (const auto& t : summary.tensors) {
      tensors.push_back({{"name", t.name}, {"type", t.type}, {"ne", t.ne}, {"bytes", t.bytes}});
    }
    out["tensors"] = std::move(tensors);
  }
  // Strings from the file may hold bytes that are not UTF-8: dump() would throw on them.
  return nlohmann::json::parse(out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
}

}  // namespace peft
