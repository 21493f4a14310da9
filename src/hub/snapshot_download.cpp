// snapshot_download: the revision's file list from the API, filtered by the patterns, each
// file fetched at the resolved commit (so a branch moving meanwhile cannot mix commits),
// up to settings.max_workers at once.
#include <atomic>
#include <exception>
#include <mutex>
#include <thread>

#include <fmt/format.h>

#include "hub/cache_writer.hpp"
#include "hub/file_download.hpp"
#include "hub/hub_errors.hpp"
#include "hub/hub_protocol.hpp"
#include "hub/hub_requests.hpp"
#include "peft/hub_cache.hpp"

namespace peft {
namespace fs = std::filesystem;

namespace {

// huggingface_hub's filter_repo_objects: a pattern ending in '/' selects that folder.
bool matches_any(const std::string& name, const std::vector<std::string>& patterns) {
  for (const auto& pattern : patterns) {
    if (fnmatch_case(name, pattern.ends_with("/") ? pattern + "*" : pattern)) return true;
  }
  return false;
}

std::vector<std::string> selected_files(const std::vector<std::string>& files,
                                        const HubSnapshotOptions& options) {
  std::vector<std::string> out;
  for (const auto& file : files) {
    if (!options.allow_patterns.empty() && !matches_any(file, options.allow_patterns)) continue;
    if (matches_any(file, options.ignore_patterns)) continue;
    out.push_back(file);
  }
  return out;
}

// The snapshot folder the cache has for `revision`, without any request.
std::optional<fs::path> cached_snapshot(const HubSnapshotOptions& options,
                                        const std::string& repo_id) {
  const HubCache cache(options.settings.cache_dir);
  const auto commit = cache.commit(repo_id, options.revision, options.repo_type);
  if (!commit || !hub::is_commit_hash(*commit)) return std::nullopt;
  const fs::path folder = cache.repo_folder(repo_id, options.repo_type) / "snapshots" / *commit;
  std::error_code ec;
  if (fs::is_directory(folder, ec)) return folder;
  return std::nullopt;
}

hub::RevisionInfo revision_info(const std::string& repo_id, const HubSnapshotOptions& options,
                                const hub::RequestSubject& subject) {
  const std::string url =
      fmt::format("{}/api/{}s/{}/revision/{}", options.settings.endpoint, options.repo_type,
                  repo_id, hub::url_quote(options.revision, ""));
  const hub::HttpResponse response = hub::get_api(options.settings, url, subject);
  if (response.status < 200 || response.status >= 300) hub::raise_for_status(response, subject);
  hub::RevisionInfo info = hub::parse_revision_info(response.body, subject.describe());
  if (!hub::is_commit_hash(info.sha)) {
    throw HubError(HubErrorKind::Protocol, subject.describe(),
                   fmt::format("the Hub's revision answer names the commit '{}', not 40 hex "
                               "digits",
                               info.sha.substr(0, 80)));
  }
  // A name that leaves the snapshot folder is refused before anything is written.
  for (const auto& file : info.files) {
    if (!hub::is_safe_repo_path(file)) {
      throw HubError(HubErrorKind::Protocol, subject.describe(),
                     fmt::format("the Hub lists the file '{}', which would leave the snapshot "
                                 "folder; refusing the whole snapshot",
                                 file.substr(0, 200)));
    }
  }
  return info;
}

// Runs download_file for each file on up to `workers` threads; the first failure stops
// the files not yet started and is rethrown once the running ones end.
void download_all(const std::string& repo_id, const std::vector<std::string>& files,
                  const HubDownloadOptions& per_file, int workers) {
  std::atomic<std::size_t> next{0};
  std::exception_ptr first;
  std::mutex mutex;
  const auto work = [&] {
    for (std::size_t i = next++; i < files.size(); i = next++) {
      {
        const std::lock_guard lock(mutex);
        if (first) return;
      }
      try {
        hub::download_file(repo_id, files[i], per_file);
      } catch (...) {
        const std::lock_guard lock(mutex);
        if (!first) first = std::current_exception();
      }
    }
  };
  const auto count =
      std::min<std::size_t>(files.size(), static_cast<std::size_t>(std::max(1, workers)));
  std::vector<std::jthread> threads;
  for (std::size_t t = 1; t < count; ++t) threads.emplace_back(work);
  work();
  threads.clear();  // joins
  if (first) std::rethrow_exception(first);
}

}  // namespace

fs::path snapshot_download(const std::string& repo_id, const HubSnapshotOptions& options) {
  hub::check_arguments(repo_id, options.revision, "");
  if (options.settings.offline) {
    if (auto cached = cached_snapshot(options, repo_id)) return *cached;
    hub::not_cached(options, repo_id, "", options.revision, "");
  }
  const hub::RequestSubject subject{repo_id, options.revision, "", options.settings.endpoint,
                                    !options.settings.token.empty()};
  hub::RevisionInfo info;
  try {
    info = revision_info(repo_id, options, subject);
  } catch (const HubError& e) {
    if (e.kind() != HubErrorKind::Network) throw;
    if (auto cached = cached_snapshot(options, repo_id)) return *cached;
    hub::not_cached(options, repo_id, "", options.revision, e.detail());
  }
  const fs::path folder = hub::repo_folder(options, repo_id);
  hub::write_ref(folder, options.revision, info.sha);
  HubDownloadOptions per_file = options;
  per_file.revision = info.sha;
  per_file.subfolder.clear();
  download_all(repo_id, selected_files(info.files, options), per_file,
               options.settings.max_workers);
  // Not created when no file was selected: huggingface_hub returns the same path without
  // creating it, and an empty folder would pass for a cached snapshot offline.
  return folder / "snapshots" / info.sha;
}

}  // namespace peft
