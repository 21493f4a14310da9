#include "formats/atomic_file.hpp"

#include <fcntl.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <random>
#include <vector>

#include <fmt/format.h>

#include "peft/error.hpp"

namespace peft::formats {
namespace {

std::string random_suffix() {
  static thread_local std::mt19937_64 rng{std::random_device{}() ^
                                          static_cast<std::uint64_t>(::getpid())};
  return fmt::format("{:016x}", rng());
}

void fsync_folder(const std::filesystem::path& folder) {
  const int fd = ::open(folder.empty() ? "." : folder.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

}  // namespace

AtomicFile::AtomicFile(std::filesystem::path target, bool durable)
    : target_(std::move(target)), durable_(durable) {
  const auto folder = target_.parent_path();
  const std::string stem = target_.filename().string();
  if (stem.empty()) {
    throw Error(ErrorCode::InvalidArgument, target_.string(), "output path names no file");
  }
  for (int attempt = 0; attempt < 16; ++attempt) {
    temp_ = folder / fmt::format(".{}.tmp-{}", stem, random_suffix());
    // 0666 & ~umask, like any file an ordinary writer creates.
    fd_ = ::open(temp_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd_ >= 0) return;
    if (errno != EEXIST) break;
  }
  const int err = errno;
  throw Error(err == ENOENT ? ErrorCode::NotFound : ErrorCode::Io, target_.string(),
              fmt::format("cannot create a temporary file next to it: {}", std::strerror(err)));
}

AtomicFile::~AtomicFile() {
  if (fd_ >= 0) ::close(fd_);
  if (!committed_) ::unlink(temp_.c_str());
}

void AtomicFile::fail(const char* what, int err) {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  ::unlink(temp_.c_str());
  committed_ = true;  // nothing left to clean up
  throw Error(
      ErrorCode::Io, target_.string(),
      fmt::format("{}: {} (the previous file, if any, is unchanged)", what, std::strerror(err)));
}

void AtomicFile::write_at(std::uint64_t position, std::span<const std::byte> bytes) const {
  if (fd_ < 0) throw Error(ErrorCode::InvalidArgument, target_.string(), "file already closed");
  std::size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t wrote = ::pwrite(fd_, bytes.data() + done, bytes.size() - done,
                                   static_cast<off_t>(position + done));
    if (wrote < 0 && errno == EINTR) continue;
    if (wrote < 0) {
      throw Error(ErrorCode::Io, target_.string(),
                  fmt::format("write failed: {} (the previous file, if any, is unchanged)",
                              std::strerror(errno)));
    }
    done += static_cast<std::size_t>(wrote);
  }
}

void AtomicFile::skip(std::uint64_t length) {
  if (fd_ < 0) throw Error(ErrorCode::InvalidArgument, target_.string(), "file already closed");
  if (::lseek(fd_, static_cast<off_t>(length), SEEK_CUR) < 0) fail("seek failed", errno);
}

void AtomicFile::write(std::span<const std::byte> bytes) {
  const std::span<const std::byte> pieces[] = {bytes};
  write_all(pieces);
}

void AtomicFile::write(std::string_view text) {
  write(std::as_bytes(std::span<const char>(text.data(), text.size())));
}

void AtomicFile::write_all(std::span<const std::span<const std::byte>> pieces) {
  if (fd_ < 0) throw Error(ErrorCode::InvalidArgument, target_.string(), "file already closed");
  std::vector<iovec> batch;
  batch.reserve(std::min<std::size_t>(pieces.size(), IOV_MAX));
  std::size_t next = 0;
  while (next < pieces.size()) {
    batch.clear();
    while (next < pieces.size() && batch.size() < IOV_MAX) {
      if (!pieces[next].empty()) {
        // NOLINTNEXTLINE(cppcoreguidelines-pro-type-const-cast): writev does not write to it.
        batch.push_back({const_cast<std::byte*>(pieces[next].data()), pieces[next].size()});
      }
      ++next;
    }
    std::size_t first = 0;
    while (first < batch.size()) {
      const int count = static_cast<int>(batch.size() - first);
      const ssize_t wrote = ::writev(fd_, batch.data() + first, count);
      if (wrote < 0) {
        if (errno == EINTR) continue;
        fail("write failed", errno);
      }
      // Skip what was written; a partial write resumes inside a piece.
      auto left = static_cast<std::size_t>(wrote);
      while (first < batch.size() && left >= batch[first].iov_len) {
        left -= batch[first].iov_len;
        ++first;
      }
      if (left > 0) {
        batch[first].iov_base = static_cast<char*>(batch[first].iov_base) + left;
        batch[first].iov_len -= left;
      }
    }
  }
}

void AtomicFile::copy_from(int in_fd, std::uint64_t offset, std::uint64_t length,
                           const std::string& in_name) {
  if (fd_ < 0) throw Error(ErrorCode::InvalidArgument, target_.string(), "file already closed");
  auto in_offset = static_cast<off_t>(offset);
  bool kernel = true;
  std::vector<std::byte> buffer;
  while (length > 0) {
    const std::size_t chunk = static_cast<std::size_t>(std::min<std::uint64_t>(length, 1u << 30));
    ssize_t done = -1;
    if (kernel) {
      done = ::copy_file_range(in_fd, &in_offset, fd_, nullptr, chunk, 0);
      if (done < 0 && (errno == EXDEV || errno == ENOSYS || errno == EINVAL ||
                       errno == EOPNOTSUPP || errno == EBADF)) {
        kernel = false;  // another file system or an old kernel: copy through memory
        continue;
      }
    } else {
      if (buffer.empty()) buffer.resize(std::size_t{1} << 20);
      done = ::pread(in_fd, buffer.data(), std::min(chunk, buffer.size()), in_offset);
      if (done > 0) {
        write(std::span<const std::byte>(buffer.data(), static_cast<std::size_t>(done)));
        in_offset += done;
      }
    }
    if (done < 0 && errno == EINTR) continue;
    if (done < 0) fail(fmt::format("copying from {} failed", in_name).c_str(), errno);
    if (done == 0) {
      throw Error(ErrorCode::Io, in_name,
                  fmt::format("the file ended {} bytes early while it was copied", length));
    }
    length -= static_cast<std::uint64_t>(done);
  }
}

namespace {
constexpr std::size_t kCopyBelow = std::size_t{64} << 10;   // copy pieces smaller than this
constexpr std::size_t kFlushAbove = std::size_t{64} << 20;  // flush once this much is pending
}  // namespace

void GatheringWriter::write(std::span<const std::byte> bytes) {
  if (bytes.empty()) return;
  if (bytes.size() < kCopyBelow) {
    pieces_.push_back({{}, copies_.size(), bytes.size()});
    copies_.insert(copies_.end(), bytes.begin(), bytes.end());
  } else {
    pieces_.push_back({bytes, 0, bytes.size()});
  }
  pending_bytes_ += bytes.size();
  if (pending_bytes_ >= kFlushAbove) flush();
}

void GatheringWriter::flush() {
  std::vector<std::span<const std::byte>> spans;
  spans.reserve(pieces_.size());
  for (const auto& piece : pieces_) {
    spans.push_back(piece.referenced.empty() ? std::span<const std::byte>(copies_).subspan(
                                                   piece.copied_offset, piece.size)
                                             : piece.referenced);
  }
  file_.write_all(spans);
  pieces_.clear();
  copies_.clear();
  pending_bytes_ = 0;
}

void AtomicFile::commit() {
  if (fd_ < 0) throw Error(ErrorCode::InvalidArgument, target_.string(), "file already closed");
  if (durable_ && ::fsync(fd_) != 0) fail("fsync failed", errno);
  const int fd = fd_;
  fd_ = -1;
  if (::close(fd) != 0) {
    const int err = errno;
    ::unlink(temp_.c_str());
    committed_ = true;
    throw Error(
        ErrorCode::Io, target_.string(),
        fmt::format("close failed: {} (the previous file is unchanged)", std::strerror(err)));
  }
  if (::rename(temp_.c_str(), target_.c_str()) != 0) {
    const int err = errno;
    ::unlink(temp_.c_str());
    committed_ = true;
    throw Error(
        ErrorCode::Io, target_.string(),
        fmt::format("cannot rename the finished temporary file over it: {}", std::strerror(err)));
  }
  committed_ = true;
  if (durable_) fsync_folder(target_.parent_path());
}

void write_file_atomically(const std::filesystem::path& path, std::string_view content,
                           bool durable) {
  AtomicFile file(path, durable);
  file.write(content);
  file.commit();
}

OutputFolder::OutputFolder(const std::filesystem::path& folder) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::path absolute = fs::absolute(folder, ec);
  fs::path missing;  // the highest component that does not exist yet
  for (fs::path p = absolute.empty() ? folder : absolute.lexically_normal();
       !p.empty() && !fs::exists(p, ec); p = p.parent_path()) {
    missing = p;
    if (p == p.parent_path()) break;
  }
  fs::create_directories(folder, ec);
  if (ec) {
    throw Error(ErrorCode::Io, folder.string(), fmt::format("cannot create it: {}", ec.message()));
  }
  created_ = missing;
}

OutputFolder::OutputFolder(OutputFolder&& other) noexcept : created_(std::move(other.created_)) {
  other.created_.clear();
}

OutputFolder::~OutputFolder() {
  if (created_.empty()) return;
  std::error_code ec;
  std::filesystem::remove_all(created_, ec);  // best effort: never throw from here
}

}  // namespace peft::formats
