// The output folder of a checkpoint write: refusing to clobber, removing stale shards, and
// carrying over the base's non-weight files (config, tokenizer, generation config...).
#include <regex>

#include <fmt/format.h>

#include "checkpoint/checkpoint_output.hpp"
#include "formats/mapped_file.hpp"
#include "formats/pickle.hpp"
#include "peft/error.hpp"
#include "pycompat/python_json.hpp"

namespace peft::detail {
namespace fs = std::filesystem;

namespace {

bool same_folder(const fs::path& a, const fs::path& b) {
  std::error_code ec;
  return !a.empty() && !b.empty() && fs::equivalent(a, b, ec);
}

// What transformers writes for torch_dtype ("bfloat16"): torch's own dtype name.
std::string torch_dtype_name(DType dtype) {
  const formats::TorchType* type = formats::torch_type_of(dtype);
  return std::string(type != nullptr ? type->dtype_name : dtype_name(dtype));
}

// Sets "torch_dtype" / "dtype" (transformers >= 4.56 writes the latter) where present, at
// the top level and in sub-configs such as "text_config".
void set_dtype_fields(nlohmann::json& config, const std::string& name, int depth) {
  for (const char* key : {"torch_dtype", "dtype"}) {
    if (const auto it = config.find(key); it != config.end() && it->is_string()) *it = name;
  }
  if (depth == 0) return;
  for (auto& [key, value] : config.items()) {
    if (value.is_object() && key.ends_with("_config")) set_dtype_fields(value, name, depth - 1);
  }
}

// Everything but weights and hidden files, sorted. Hub snapshots hold symlinks into
// blobs/: is_regular_file follows them.
void list_non_weight_files(const fs::path& folder, std::vector<fs::path>& files) {
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(folder, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.starts_with(".") || is_weight_file(name) || !entry.is_regular_file(ec)) continue;
    files.push_back(entry.path());
  }
  if (ec) {
    throw Error(ErrorCode::Io, folder.string(),
                fmt::format("cannot list the folder: {}", ec.message()));
  }
  std::sort(files.begin(), files.end());
}

}  // namespace

formats::OutputFolder prepare_output_folder(const fs::path& out, const CheckpointLayout* base,
                                            bool force) {
  std::error_code ec;
  if (fs::exists(out, ec) && !fs::is_directory(out, ec)) {
    throw Error(ErrorCode::InvalidArgument, out.string(), "exists and is not a folder");
  }
  if (base != nullptr) {
    const bool is_base = same_folder(out, base->folder) ||
                         std::any_of(base->shards.begin(), base->shards.end(), [&](const auto& s) {
                           return same_folder(out, s.path.parent_path());
                         });
    if (is_base) {
      throw Error(ErrorCode::InvalidArgument, out.string(),
                  "is the folder of the base checkpoint's weights; write to another folder");
    }
  }
  if (fs::is_directory(out, ec) && !fs::is_empty(out, ec) && !force) {
    throw Error(ErrorCode::InvalidArgument, out.string(),
                "exists and is not empty; pass force (--force) to write into it");
  }
  return formats::OutputFolder(out);
}

void remove_stale_weights(const fs::path& out, const std::vector<std::string>& written) {
  static const std::regex pattern(R"(model(-\d{5}-of-\d{5})?\.safetensors(\.index\.json)?)");
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(out, ec)) {
    const std::string name = entry.path().filename().string();
    if (!entry.is_regular_file(ec) || !std::regex_match(name, pattern)) continue;
    if (std::find(written.begin(), written.end(), name) != written.end()) continue;
    fs::remove(entry.path(), ec);
  }
}

std::vector<std::string> copy_non_weight_files(const CheckpointLayout& base, const fs::path& out,
                                               std::optional<DType> dtype, bool durable) {
  std::vector<std::string> copied;
  std::vector<fs::path> files;
  if (base.folder.empty()) {
    // A weights file with a name of its own: of its folder, only the model's config.json.
    if (base.config) files.push_back(*base.config);
  } else {
    list_non_weight_files(base.folder, files);
  }
  for (const auto& file : files) {
    const std::string name = file.filename().string();
    const formats::FileBytes bytes = formats::map_file(file);
    if (name == "config.json" && dtype) {
      const std::string text(reinterpret_cast<const char*>(bytes.bytes.data()), bytes.bytes.size());
      auto document = parse_python_json(text, file.string());
      if (document.value.is_object()) {
        set_dtype_fields(document.value, torch_dtype_name(*dtype), 1);
        // transformers writes config.json as json.dumps(indent=2, sort_keys=True) + "\n".
        formats::write_file_atomically(out / name, dump_python_json(document.value) + "\n",
                                       durable);
        copied.push_back(name);
        continue;
      }
    }
    formats::AtomicFile target(out / name, durable);
    target.write(bytes.bytes);
    target.commit();
    copied.push_back(name);
  }
  return copied;
}

}  // namespace peft::detail
