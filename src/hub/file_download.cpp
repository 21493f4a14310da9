#include "hub/file_download.hpp"

#include <mutex>

#include <fmt/format.h>

#include "hub/blob_download.hpp"
#include "hub/cache_writer.hpp"
#include "hub/file_lock.hpp"
#include "hub/hub_errors.hpp"
#include "hub/hub_protocol.hpp"
#include "hub/hub_requests.hpp"
#include "peft/hub_cache.hpp"

namespace peft::hub {
namespace fs = std::filesystem;

namespace {

std::mutex progress_mutex;
HubProgressCallback progress_default;  // guarded by progress_mutex

// A copy, so that a concurrent set_default_hub_progress cannot pull it from under a call.
HubProgressCallback default_progress() {
  const std::lock_guard lock(progress_mutex);
  return progress_default;
}

}  // namespace

fs::path repo_folder(const HubDownloadOptions& options, const std::string& repo_id) {
  return HubCache(options.settings.cache_dir).repo_folder(repo_id, options.repo_type);
}

std::optional<fs::path> cached_file(const HubDownloadOptions& options, const std::string& repo_id,
                                    const std::string& path, const std::string& revision) {
  const HubCache cache(options.settings.cache_dir);
  const auto commit = cache.commit(repo_id, revision, options.repo_type);
  if (!commit || !is_commit_hash(*commit)) return std::nullopt;
  const fs::path pointer =
      cache.repo_folder(repo_id, options.repo_type) / "snapshots" / *commit / path;
  std::error_code ec;
  if (fs::is_regular_file(pointer, ec)) return pointer;
  return std::nullopt;
}

void not_cached(const HubDownloadOptions& options, const std::string& repo_id,
                const std::string& path, const std::string& revision, const std::string& cause) {
  const std::string what = path.empty() ? std::string("the snapshot") : "'" + path + "'";
  throw HubError(
      HubErrorKind::Offline, RequestSubject{repo_id, revision, path, "", false}.describe(),
      cause.empty()
          ? fmt::format("offline mode (HF_HUB_OFFLINE) is on and {} of '{}' at revision '{}' is "
                        "not in the cache {}; unset HF_HUB_OFFLINE to download it",
                        what, repo_id, revision, options.settings.cache_dir.string())
          : fmt::format("{}, and {} of '{}' at revision '{}' is not in the cache {}", cause, what,
                        repo_id, revision, options.settings.cache_dir.string()));
}

std::string resolve_url_of(const HubDownloadOptions& options, const std::string& repo_id,
                           const std::string& revision, const std::string& path) {
  const std::string prefix = options.repo_type == "model" ? "" : options.repo_type + "s/";
  return fmt::format("{}/{}{}/resolve/{}/{}", options.settings.endpoint, prefix, repo_id,
                     url_quote(revision, ""), url_quote(path, "/"));
}

void check_arguments(const std::string& repo_id, const std::string& revision,
                     const std::string& path) {
  const auto ref = parse_hub_reference(repo_id);
  if (!ref || ref->repo_id != repo_id) {
    throw Error(ErrorCode::InvalidArgument, repo_id,
                "is not a Hub repository id ('name' or 'org/name' of [A-Za-z0-9_.-])");
  }
  if (!is_safe_repo_path(revision)) {
    throw Error(ErrorCode::InvalidArgument, repo_id + "@" + revision,
                "a revision may not be empty, absolute or contain '.' or '..' components");
  }
  if (!path.empty() && !is_safe_repo_path(path)) {
    throw Error(ErrorCode::InvalidArgument, repo_id + ":" + path,
                "a file path must be relative and may not contain '.' or '..' components");
  }
}

namespace {

// The HEAD answer, checked: a 2xx or a redirect carrying the commit and the etag.
FileMetadata checked_metadata(const HttpResponse& response, const RequestSubject& subject,
                              const fs::path& folder) {
  const bool answered = (response.status >= 200 && response.status < 300) ||
                        (response.status >= 300 && response.status < 400);
  if (!answered) {
    // The Hub says which commit it looked at: remember that the file does not exist there.
    const std::string commit = response.headers.get("x-repo-commit");
    if (response.headers.get("x-error-code") == "EntryNotFound" && is_commit_hash(commit)) {
      write_ref(folder, subject.revision, commit);
      write_no_exist(folder, commit, subject.file);
    }
    raise_for_status(response, subject);
  }
  FileMetadata meta = parse_file_metadata(response.headers);
  std::string missing;
  if (!is_commit_hash(meta.commit))
    missing = "a commit (X-Repo-Commit of 40 hex digits)";
  else if (!is_safe_etag(meta.etag))
    missing = "an ETag usable as a file name";
  if (!missing.empty()) {
    throw HubError(HubErrorKind::Protocol, subject.describe(),
                   fmt::format("the Hub's answer (HTTP {}) has no {}; is HF_ENDPOINT a Hugging "
                               "Face Hub?",
                               response.status, missing));
  }
  return meta;
}

// The blob is fetched under its lock; another process may have completed it meanwhile.
void fetch_blob(const HubDownloadOptions& options, const fs::path& folder, const std::string& url,
                const FileMetadata& meta, const RequestSubject& subject) {
  const fs::path blob = folder / "blobs" / meta.etag;
  std::error_code ec;
  if (fs::is_regular_file(blob, ec)) return;
  const fs::path lock_path =
      options.settings.cache_dir / ".locks" / folder.filename() / (meta.etag + ".lock");
  const FileLock lock(lock_path);
  if (fs::is_regular_file(blob, ec)) return;
  // A redirect target is fetched directly (one redirect less, and the exact bytes the HEAD
  // described); the token goes only to the endpoint's host (request_headers).
  const std::string source = meta.location.empty() ? url : resolve_url(url, meta.location);
  download_blob(options.settings,
                BlobRequest{source.empty() ? url : source, meta.etag, meta.size, blob}, subject,
                options.progress ? options.progress : default_progress());
}

}  // namespace

fs::path download_file(const std::string& repo_id, const std::string& path,
                       const HubDownloadOptions& options) {
  const std::string& revision = options.revision;
  check_arguments(repo_id, revision, path);
  if (options.settings.offline) {
    if (auto cached = cached_file(options, repo_id, path, revision)) return *cached;
    not_cached(options, repo_id, path, revision, "");
  }
  // A commit names immutable content: a cached file needs no request.
  if (is_commit_hash(revision)) {
    if (auto cached = cached_file(options, repo_id, path, revision)) return *cached;
  }
  const fs::path folder = repo_folder(options, repo_id);
  const std::string url = resolve_url_of(options, repo_id, revision, path);
  const RequestSubject subject{repo_id, revision, path, options.settings.endpoint,
                               !options.settings.token.empty()};
  HttpResponse response;
  try {
    response = head_file(options.settings, url, subject);
  } catch (const HubError& e) {
    // No network: as huggingface_hub does, fall back to what the cache has.
    if (e.kind() != HubErrorKind::Network) throw;
    if (auto cached = cached_file(options, repo_id, path, revision)) return *cached;
    not_cached(options, repo_id, path, revision, e.detail());
  }
  const FileMetadata meta = checked_metadata(response, subject, folder);
  write_cachedir_tag(options.settings.cache_dir);
  write_ref(folder, revision, meta.commit);
  fs::path pointer = folder / "snapshots" / meta.commit / path;
  std::error_code ec;
  if (fs::is_regular_file(pointer, ec)) return pointer;
  fetch_blob(options, folder, url, meta, subject);
  link_pointer(folder, meta.commit, path, meta.etag);
  return pointer;
}

}  // namespace peft::hub

namespace peft {

void set_default_hub_progress(HubProgressCallback callback) {
  const std::lock_guard lock(hub::progress_mutex);
  hub::progress_default = std::move(callback);
}

std::filesystem::path hf_hub_download(const std::string& repo_id, const std::string& filename,
                                      const HubDownloadOptions& options) {
  const std::string path =
      options.subfolder.empty() ? filename : options.subfolder + "/" + filename;
  return hub::download_file(repo_id, path, options);
}

}  // namespace peft
