// peft/hub_download.hpp — downloading from the Hugging Face Hub into the cache Python shares.
//
// hf_hub_download and snapshot_download write the cache exactly as huggingface_hub 0.36 does
// (docs/hub.md): blobs/<etag> (renamed from <etag>.incomplete once complete and verified),
// relative symlinks snapshots/<commit>/<path> -> ../../blobs/<etag>, refs/<branch or tag>,
// .no_exist/<commit>/<path> markers, and .locks/<repo folder>/<etag>.lock taken with flock(2)
// as Python's filelock does, so that a Python and a C++ process can download at once.
// Beyond huggingface_hub: interrupted downloads resume (Range), transient failures are
// retried with backoff, sha256-named blobs are verified before they enter the cache.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "peft/error.hpp"
#include "peft/export.hpp"

namespace peft {

// What went wrong talking to the Hub. Each kind also has an ErrorCode: NotFound for the
// *NotFound kinds and Offline, Io for the others (docs/hub.md lists them).
enum class HubErrorKind {
  RepoNotFound,      // X-Error-Code RepoNotFound (or a 401 without a code): wrong name or private
  RevisionNotFound,  // X-Error-Code RevisionNotFound
  EntryNotFound,     // X-Error-Code EntryNotFound (the file does not exist at that revision)
  GatedRepo,         // X-Error-Code GatedRepo: access must be requested on the Hub
  Unauthorized,      // the token was refused (401 without a code, 403)
  Offline,           // offline mode (or no network) and the cache does not have it
  Network,           // connection failures, timeouts, 5xx: still failing after the retries
  Integrity,         // the bytes do not match their sha256 name or their announced size
  Protocol,          // an answer the Hub never gives (missing headers, bad JSON, unsafe path)
};

PEFT_API std::string_view to_string(HubErrorKind kind) noexcept;

class PEFT_API HubError : public Error {
 public:
  HubError(HubErrorKind kind, std::string source, std::string detail);
  HubErrorKind kind() const noexcept { return kind_; }

 private:
  HubErrorKind kind_;
};

// Where and how to talk to the Hub. from_environment() reads HF_ENDPOINT, HF_TOKEN (else
// HF_TOKEN_PATH, else $HF_HOME/token), HF_HUB_OFFLINE, HF_HUB_ETAG_TIMEOUT,
// HF_HUB_DOWNLOAD_TIMEOUT and the cache folder (HubCache::default_root()). A
// default-constructed HubSettings has no token and an empty cache_dir (the current folder):
// start from from_environment() and change what differs.
struct PEFT_API HubSettings {
  std::string endpoint = "https://huggingface.co";
  std::string token;  // "" = none; sent only to the endpoint's host
  std::filesystem::path cache_dir;
  bool offline = false;
  double etag_timeout = 10;      // seconds, HEAD and API requests
  double download_timeout = 10;  // seconds without a byte while downloading
  int max_retries = 5;           // further attempts after a transient failure
  double retry_delay = 0.5;      // seconds before the first retry, doubled each time (max 8)
  int max_workers = 8;           // parallel files of a snapshot

  static HubSettings from_environment();
};

// Progress of one file; called from the downloading threads (must be thread-safe).
struct PEFT_API HubProgress {
  std::string file;  // the repository path
  std::uint64_t done = 0;
  std::uint64_t total = 0;  // 0 = unknown
  bool finished = false;
};
using HubProgressCallback = std::function<void(const HubProgress&)>;

// The callback used when HubDownloadOptions::progress is null (initially none), so that
// downloads made on behalf of other functions (load_peft_weights, open_checkpoint...) can
// show progress too: a program sets it once (the peftcpp CLI draws its progress line with
// it); null removes it. Thread-safe.
PEFT_API void set_default_hub_progress(HubProgressCallback callback);

struct PEFT_API HubDownloadOptions {
  std::string revision = "main";  // branch, tag or full commit sha
  std::string subfolder;          // prefixed to the file name
  std::string repo_type = "model";
  HubSettings settings = HubSettings::from_environment();
  HubProgressCallback progress;  // null: none
};

// The snapshot path of `filename` (in `subfolder`) at `revision`, downloaded unless cached.
// Offline (settings.offline, or the Hub unreachable) it is resolved from the cache only.
PEFT_API std::filesystem::path hf_hub_download(const std::string& repo_id,
                                               const std::string& filename,
                                               const HubDownloadOptions& options = {});

struct PEFT_API HubSnapshotOptions : HubDownloadOptions {
  // Python fnmatch patterns ('*' crosses '/'; a pattern ending in '/' means that folder).
  std::vector<std::string> allow_patterns;  // empty: every file
  std::vector<std::string> ignore_patterns;
};

// The snapshot folder of `revision` with every file the patterns select.
PEFT_API std::filesystem::path snapshot_download(const std::string& repo_id,
                                                 const HubSnapshotOptions& options = {});

// Python's fnmatch.fnmatchcase: '*', '?', '[seq]', '[!seq]'; '*' matches '/' too.
PEFT_API bool fnmatch_case(std::string_view name, std::string_view pattern);

}  // namespace peft
