// save_adapter: a config and saved-key weights written as an adapter folder, checked first.
#include <fmt/format.h>

#include "formats/atomic_file.hpp"
#include "peft/convert.hpp"
#include "peft/error.hpp"
#include "peft/safetensors.hpp"
#include "peft/torch_file.hpp"
#include "peft/validate.hpp"

namespace peft {
namespace fs = std::filesystem;

namespace {

void refuse_existing(const fs::path& folder, bool overwrite) {
  std::error_code ec;
  if (fs::exists(folder, ec) && !fs::is_directory(folder, ec)) {
    throw Error(ErrorCode::InvalidArgument, folder.string(), "should be a folder, not a file");
  }
  if (overwrite) return;
  for (const char* name :
       {"adapter_config.json", "adapter_model.safetensors", "adapter_model.bin"}) {
    if (fs::exists(folder / name, ec)) {
      throw Error(ErrorCode::InvalidArgument, (folder / name).string(),
                  "exists already; pass overwrite (--force) to replace the adapter");
    }
  }
}

}  // namespace

void save_adapter(const fs::path& folder, const PeftConfig& config, const StateDict& weights,
                  const SaveAdapterOptions& options) {
  refuse_existing(folder, options.overwrite);
  std::vector<std::string> errors;
  for (const Problem& p : validate_adapter(config, weights, folder.string())) {
    if (p.severity == Severity::Error) {
      errors.push_back(fmt::format("{} [{}] {}", p.source, p.code, p.message));
    } else {
      report(options.warnings, p);
    }
  }
  if (!errors.empty()) {
    throw Error(ErrorCode::InvalidArgument, folder.string(),
                fmt::format("the weights do not make an adapter for this config, nothing written: "
                            "{}{}",
                            errors.front(),
                            errors.size() > 1 ? fmt::format(" (and {} more)", errors.size() - 1)
                                              : std::string()));
  }
  formats::OutputFolder guard(folder);
  if (options.safe_serialization) {
    SafetensorsWriteOptions write;
    write.copy_shared = true;
    write.durable = options.durable;
    save_safetensors(weights, folder / "adapter_model.safetensors", Metadata{{"format", "pt"}},
                     write);
  } else {
    save_torch_file(weights, folder / "adapter_model.bin");
  }
  PeftConfig written = config;
  written.mutable_json()["inference_mode"] = true;
  written.save(folder / "adapter_config.json");
  guard.commit();
}

}  // namespace peft
