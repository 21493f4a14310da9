// hf_hub_download's steps, shared with snapshot_download (which calls it per file at the
// resolved commit).
#pragma once

#include <filesystem>
#include <optional>
#include <string>

#include "peft/hub_download.hpp"

namespace peft::hub {

// The pointer snapshots/<commit>/<path> of `revision` when the cache has it (a regular
// file behind it), without any request.
std::optional<std::filesystem::path> cached_file(const HubDownloadOptions& options,
                                                 const std::string& repo_id,
                                                 const std::string& path,
                                                 const std::string& revision);

// Throws HubError(Offline) saying what is missing from the cache; `cause` explains why
// the Hub was not asked ("" for offline mode).
[[noreturn]] void not_cached(const HubDownloadOptions& options, const std::string& repo_id,
                             const std::string& path, const std::string& revision,
                             const std::string& cause);

// "models--org--name" under the cache, refusing ids that would leave it.
std::filesystem::path repo_folder(const HubDownloadOptions& options, const std::string& repo_id);

// The URL {endpoint}/[datasets/|spaces/]{repo}/resolve/{revision}/{path}, quoted as
// huggingface_hub quotes it.
std::string resolve_url_of(const HubDownloadOptions& options, const std::string& repo_id,
                           const std::string& revision, const std::string& path);

// Checks the repository id, the revision and the path before anything is asked or written.
void check_arguments(const std::string& repo_id, const std::string& revision,
                     const std::string& path);

// Downloads `path` (sub folder included) at `revision` unless cached.
std::filesystem::path download_file(const std::string& repo_id, const std::string& path,
                                    const HubDownloadOptions& options);

}  // namespace peft::hub
