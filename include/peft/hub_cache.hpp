// peft/hub_cache.hpp — the Hugging Face Hub cache, shared with Python's huggingface_hub.
//
// Layout (docs/formats.md "Hugging Face Hub cache"):
//   <cache>/models--<org>--<name>/refs/<revision>          the commit hash of a branch or tag
//   <cache>/models--<org>--<name>/snapshots/<commit>/<path> relative symlinks into blobs/ (or
//   copies) <cache>/models--<org>--<name>/blobs/<etag>             file contents
//   <cache>/models--<org>--<name>/.no_exist/<commit>/<path> "known not to exist" markers
// The cache folder is $HF_HUB_CACHE, else $HUGGINGFACE_HUB_CACHE, else $HF_HOME/hub, else
// $XDG_CACHE_HOME/huggingface/hub, else ~/.cache/huggingface/hub ("~" and "$VAR" expanded).
// This class only reads; peft/hub_download.hpp fills the cache (docs/hub.md).
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

#include "peft/export.hpp"

namespace peft {

class PEFT_API HubCache {
 public:
  // The cache of the environment (see above).
  HubCache();
  explicit HubCache(std::filesystem::path root);

  const std::filesystem::path& root() const noexcept { return root_; }

  // "models--org--name" under the root; repo_type is "model", "dataset" or "space".
  std::filesystem::path repo_folder(std::string_view repo_id,
                                    std::string_view repo_type = "model") const;
  // The commit a revision names: itself when it is 40 lower-case hex digits, else the
  // content of refs/<revision>. nullopt when the cache does not know the revision.
  std::optional<std::string> commit(std::string_view repo_id, std::string_view revision = "main",
                                    std::string_view repo_type = "model") const;
  // The cached file (following the snapshot's symlink), or nullopt. `path` may contain a
  // sub folder ("sub/adapter_model.safetensors"); ".." components are refused.
  std::optional<std::filesystem::path> find(std::string_view repo_id, std::string_view path,
                                            std::string_view revision = "main",
                                            std::string_view repo_type = "model") const;
  // True when a .no_exist marker says the file does not exist at that revision.
  bool known_missing(std::string_view repo_id, std::string_view path,
                     std::string_view revision = "main",
                     std::string_view repo_type = "model") const;

  // $HF_HUB_OFFLINE, else $TRANSFORMERS_OFFLINE (the first non-empty one): 1/ON/YES/TRUE.
  static bool offline_from_environment();
  // The cache folder the environment designates.
  static std::filesystem::path default_root();

 private:
  std::filesystem::path root_;
};

// A Hub reference as users write it: "org/name", "org/name@revision",
// "org/name/sub/folder" or "org/name/sub/folder@revision" (the revision may itself
// contain '/', e.g. "refs/pr/1"; repository ids cannot contain '@').
struct PEFT_API HubReference {
  std::string repo_id;    // "org/name" (or a canonical "name")
  std::string subfolder;  // "" = the repository's root
  std::optional<std::string> revision;
};

// Parses `text` as above; nullopt when its repository part is not a valid Hub id
// (huggingface_hub's rule: [A-Za-z0-9_.-] names of at most 96 characters, no "--" or
// "..", not starting or ending with '-' or '.').
PEFT_API std::optional<HubReference> parse_hub_reference(std::string_view text);

// Expands a leading "~" and "$VAR" / "${VAR}" as Python's expanduser + expandvars do.
PEFT_API std::string expand_path(std::string_view text);

}  // namespace peft
