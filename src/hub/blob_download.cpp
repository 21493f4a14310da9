#include "hub/blob_download.hpp"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>

#include "hub/cache_writer.hpp"
#include "hub/hub_protocol.hpp"
#include "hub/hub_requests.hpp"
#include "hub/sha256.hpp"

namespace peft::hub {
namespace fs = std::filesystem;

namespace {

[[noreturn]] void io_failure(const fs::path& path, const char* what) {
  throw Error(ErrorCode::Io, path.string(), fmt::format("{}: {}", what, std::strerror(errno)));
}

// The .incomplete file, open for appending, with the sha256 of the bytes it holds.
class PartialFile {
 public:
  explicit PartialFile(fs::path path) : path_(std::move(path)) {
    fd_ = ::open(path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0666);
    if (fd_ < 0) io_failure(path_, "cannot open the partial download");
    rehash();
  }
  PartialFile(const PartialFile&) = delete;
  PartialFile& operator=(const PartialFile&) = delete;
  ~PartialFile() {
    if (fd_ >= 0) ::close(fd_);
  }

  std::uint64_t size() const { return size_; }
  void append(std::string_view bytes) {
    while (!bytes.empty()) {
      const ssize_t n = ::pwrite(fd_, bytes.data(), bytes.size(), static_cast<off_t>(size_));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) io_failure(path_, "cannot write the download");
      hasher_.update(bytes.substr(0, static_cast<std::size_t>(n)));
      size_ += static_cast<std::uint64_t>(n);
      bytes.remove_prefix(static_cast<std::size_t>(n));
    }
  }
  void truncate() {
    if (::ftruncate(fd_, 0) != 0) io_failure(path_, "cannot truncate the partial download");
    size_ = 0;
    hasher_ = Sha256();
  }
  // No fsync, as huggingface_hub: the rename after the checks keeps a crashed process from
  // leaving a partial blob; flushing 2 GB to disk would double the time of a download.
  std::string finish() {
    ::close(fd_);
    fd_ = -1;
    return hasher_.hex_digest();
  }

 private:
  // Hashes the bytes an earlier attempt (or process) left, so that resuming costs no
  // second pass at the end.
  void rehash() {
    std::string buffer(1U << 20, '\0');
    for (;;) {
      const ssize_t n = ::pread(fd_, buffer.data(), buffer.size(), static_cast<off_t>(size_));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) io_failure(path_, "cannot read the partial download");
      if (n == 0) return;
      hasher_.update(std::string_view(buffer.data(), static_cast<std::size_t>(n)));
      size_ += static_cast<std::uint64_t>(n);
    }
  }

  fs::path path_;
  int fd_ = -1;
  std::uint64_t size_ = 0;
  Sha256 hasher_;
};

enum class Attempt { Done, Retry };

// One GET from the current end of `file`. Throws for answers that retrying cannot fix.
Attempt fetch_once(const HubSettings& settings, const BlobRequest& blob,
                   const RequestSubject& subject, PartialFile& file,
                   const HubProgressCallback& progress, std::string& why) {
  const std::uint64_t start = file.size();
  std::vector<std::string> extra;
  if (start > 0) extra.push_back(fmt::format("Range: bytes={}-", start));
  HttpResponse response;
  TransportFailure failure;
  bool checked = false;
  const std::uint64_t total = blob.size.value_or(0);
  const auto on_body = [&](std::string_view bytes) {
    if (!checked) {
      checked = true;
      if (response.status == 206) {
        // Only the continuation of our bytes may be appended.
        if (content_range_start(response.headers.get("content-range")) != start) return false;
      } else if (start > 0) {
        file.truncate();  // the server ignored the range: its answer is the whole file
      }
    }
    if (blob.size && file.size() + bytes.size() > *blob.size) return false;
    file.append(bytes);
    if (progress) progress(HubProgress{subject.file, file.size(), total, false});
    return true;
  };
  const bool ok =
      get_following_redirects(settings, blob.url, extra, on_body, response, failure, subject);
  if (!ok) {
    why = failure.what;
    return Attempt::Retry;
  }
  if (response.status == 416 && start > 0) {
    file.truncate();  // our partial file is not a prefix the server knows
    why = "the server refused to resume (HTTP 416)";
    return Attempt::Retry;
  }
  if (response.status < 200 || response.status >= 300) {
    if (is_transient_status(response.status)) {
      why = fmt::format("HTTP {}", response.status);
      return Attempt::Retry;
    }
    raise_for_status(response, subject);
  }
  if (!checked && response.status == 200 && start > 0) file.truncate();  // an empty file
  if (blob.size && file.size() < *blob.size) {
    why = fmt::format("the answer ended after {} of {} bytes", file.size(), *blob.size);
    return Attempt::Retry;
  }
  return Attempt::Done;
}

void verify(const BlobRequest& blob, const RequestSubject& subject, std::uint64_t size,
            const std::string& digest, const fs::path& partial) {
  std::string why;
  if (blob.size && size != *blob.size) {
    why = fmt::format("{} bytes arrived where the Hub announced {}", size, *blob.size);
  } else if (is_sha256_hex(blob.etag) && digest != blob.etag) {
    why =
        fmt::format("the bytes' sha256 is {}, not the {} the Hub named them by", digest, blob.etag);
  }
  if (why.empty()) return;
  std::error_code ec;
  fs::remove(partial, ec);
  throw HubError(HubErrorKind::Integrity, subject.describe(),
                 why + "; the download was discarded, nothing entered the cache");
}

}  // namespace

void download_blob(const HubSettings& settings, const BlobRequest& blob,
                   const RequestSubject& subject, const HubProgressCallback& progress) {
  const fs::path partial = blob.blob.string() + ".incomplete";
  std::error_code ec;
  fs::create_directories(blob.blob.parent_path(), ec);
  PartialFile file(partial);
  if (blob.size && file.size() > *blob.size) file.truncate();
  double delay = settings.retry_delay;
  for (int n = 0;; ++n) {
    std::string why;
    // A complete partial file (a process died before the rename) needs no request.
    const bool complete = blob.size && *blob.size > 0 && file.size() == *blob.size;
    if (complete || fetch_once(settings, blob, subject, file, progress, why) == Attempt::Done)
      break;
    if (n >= settings.max_retries) {
      throw HubError(HubErrorKind::Network, subject.describe(),
                     fmt::format("downloading {} failed: {} (after {} attempts; the {} bytes "
                                 "received are kept in {} and the next download resumes there)",
                                 blob.url, why, n + 1, file.size(), partial.string()));
    }
    std::this_thread::sleep_for(std::chrono::duration<double>(delay));
    delay = std::min(delay * 2, 8.0);
  }
  const std::uint64_t size = file.size();
  const std::string digest = file.finish();
  verify(blob, subject, size, digest, partial);
  if (progress) progress(HubProgress{subject.file, size, size, true});
  chmod_and_move(partial, blob.blob);
}

}  // namespace peft::hub
