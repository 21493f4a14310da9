#include "formats/mapped_file.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <optional>
#include <vector>

#include <fmt/format.h>

#include "peft/error.hpp"

namespace peft::formats {
namespace {

// The live mappings, so that a SIGBUS handler can name the file whose page vanished (a
// file truncated while mapped). Fixed slots of atomics: the handler reads them without
// locks; a mapping made while every slot is taken is simply not named.
struct MappingSlot {
  std::atomic<std::uintptr_t> begin{0};
  std::atomic<std::size_t> length{0};
  std::atomic<int> fd{-1};  // the mapped file, open while the mapping lives (mapped_region)
  char path[512] = {};
};
std::array<MappingSlot, 64> g_mappings;

MappingSlot* register_mapping(const void* address, std::size_t length,
                              const std::filesystem::path& path, int fd) {
  for (auto& slot : g_mappings) {
    std::uintptr_t expected = 0;
    if (!slot.begin.compare_exchange_strong(expected, reinterpret_cast<std::uintptr_t>(address)))
      continue;
    const std::string& text = path.native();
    const std::size_t n = std::min(text.size(), sizeof slot.path - 1);
    std::memcpy(slot.path, text.data(), n);
    slot.path[n] = '\0';
    slot.fd.store(::fcntl(fd, F_DUPFD_CLOEXEC, 0));
    slot.length.store(length);
    return &slot;
  }
  return nullptr;
}

struct Mapping {
  void* address = nullptr;
  std::size_t length = 0;
  MappingSlot* slot = nullptr;
  Mapping(void* a, std::size_t n, MappingSlot* s) : address(a), length(n), slot(s) {}
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;
  ~Mapping() {
    if (slot != nullptr) {
      slot->length.store(0);
      const int fd = slot->fd.exchange(-1);
      if (fd >= 0) ::close(fd);
      slot->begin.store(0);
    }
    ::munmap(address, length);
  }
};

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  int get() const { return fd_; }

 private:
  int fd_;
};

[[noreturn]] void fail(const std::filesystem::path& path, const char* what, int err) {
  const ErrorCode code = (err == ENOENT || err == ENOTDIR) ? ErrorCode::NotFound : ErrorCode::Io;
  throw Error(code, path.string(), fmt::format("{}: {}", what, std::strerror(err)));
}

FileBytes read_whole(int fd, const std::filesystem::path& path, std::size_t size_hint) {
  auto buffer = std::make_shared<std::vector<std::byte>>();
  buffer->resize(size_hint);
  std::size_t filled = 0;
  for (;;) {
    if (filled == buffer->size()) buffer->resize(buffer->size() * 2 + 4096);
    const ssize_t got = ::read(fd, buffer->data() + filled, buffer->size() - filled);
    if (got < 0) {
      if (errno == EINTR) continue;
      fail(path, "read failed", errno);
    }
    if (got == 0) break;
    filled += static_cast<std::size_t>(got);
  }
  buffer->resize(filled);
  FileBytes out;
  out.bytes = std::span<const std::byte>(buffer->data(), buffer->size());
  out.owner = std::move(buffer);
  return out;
}

// Where `address` lies in the file of its registered mapping.
struct MappedRegion {
  int fd = -1;
  std::uint64_t offset = 0;
  const char* path = "";  // for messages; cut at 511 bytes
};

std::optional<MappedRegion> mapped_region(const void* address) noexcept {
  const auto at = reinterpret_cast<std::uintptr_t>(address);
  for (const auto& slot : g_mappings) {
    const std::uintptr_t begin = slot.begin.load();
    const std::size_t length = slot.length.load();
    const int fd = slot.fd.load();
    if (begin != 0 && at >= begin && at - begin < length && fd >= 0) {
      return MappedRegion{fd, at - begin, slot.path};
    }
  }
  return std::nullopt;
}

}  // namespace

FileBytes map_file(const std::filesystem::path& path, bool allow_mmap) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) fail(path, "cannot open", errno);
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) fail(path, "cannot stat", errno);
  if (S_ISDIR(st.st_mode)) throw Error(ErrorCode::Io, path.string(), "is a folder, not a file");

  const auto size = static_cast<std::size_t>(st.st_size);
  if (allow_mmap && S_ISREG(st.st_mode) && size > 0) {
    void* address = ::mmap(nullptr, size, PROT_READ, MAP_SHARED, fd.get(), 0);
    if (address != MAP_FAILED) {
      FileBytes out;
      out.bytes = std::span<const std::byte>(static_cast<const std::byte*>(address), size);
      out.owner =
          std::make_shared<Mapping>(address, size, register_mapping(address, size, path, fd.get()));
      out.mapped = true;
      return out;
    }
  }
  // Pipes, special files and file systems that refuse mmap are read instead.
  return read_whole(fd.get(), path, S_ISREG(st.st_mode) ? size : 0);
}

const char* mapped_file_containing(const void* address) noexcept {
  const auto at = reinterpret_cast<std::uintptr_t>(address);
  for (const auto& slot : g_mappings) {
    const std::uintptr_t begin = slot.begin.load();
    const std::size_t length = slot.length.load();
    if (begin != 0 && at >= begin && at - begin < length) return slot.path;
  }
  return nullptr;
}

bool read_mapped(std::span<const std::byte> mapped, std::span<std::byte> into) {
  if (into.size() < mapped.size()) {
    throw Error(ErrorCode::InvalidArgument, "",
                fmt::format("read_mapped: {} bytes do not fit in {}", mapped.size(), into.size()));
  }
  if (mapped.empty()) return true;
  const auto region = mapped_region(mapped.data());
  if (!region) return false;
  std::size_t got = 0;
  while (got < mapped.size()) {
    const ssize_t n = ::pread(region->fd, into.data() + got, mapped.size() - got,
                              static_cast<off_t>(region->offset + got));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0)
      throw Error(ErrorCode::Io, region->path,
                  fmt::format("read failed: {}", std::strerror(errno)));
    if (n == 0)
      throw Error(ErrorCode::Io, region->path, "the file was truncated while it was read");
    got += static_cast<std::size_t>(n);
  }
  return true;
}

}  // namespace peft::formats
