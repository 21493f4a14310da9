#include "peft/file_format.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <vector>

#include "peft/error.hpp"
#include "peft/safetensors.hpp"
#include "peft/torch_file.hpp"

namespace peft {
namespace fs = std::filesystem;

namespace {

constexpr std::size_t kHeadBytes = 512;                     // enough for the tar magic at 257
constexpr std::size_t kZipEndRecord = 22;                   // without its comment
constexpr std::size_t kTailBytes = kZipEndRecord + 0xFFFF;  // the longest comment

std::uint64_t le_u64(std::span<const std::byte> b) {
  std::uint64_t v = 0;
  for (std::size_t i = 0; i < 8; ++i) v |= std::to_integer<std::uint64_t>(b[i]) << (8 * i);
  return v;
}

bool starts_with(std::span<const std::byte> b, std::string_view text) {
  return b.size() >= text.size() && std::memcmp(b.data(), text.data(), text.size()) == 0;
}

unsigned byte_at(std::span<const std::byte> b, std::size_t i) {
  return std::to_integer<unsigned>(b[i]);
}

bool is_safetensors(std::span<const std::byte> head, std::uint64_t size) {
  if (head.size() < 9 || size < 9) return false;
  const std::uint64_t n = le_u64(head);
  return n >= 2 && n <= size - 8 && byte_at(head, 8) == '{';
}

// The end-of-central-directory record must end the file exactly (its comment included).
bool has_zip_end_record(std::span<const std::byte> tail) {
  if (tail.size() < kZipEndRecord) return false;
  for (std::size_t at = tail.size() - kZipEndRecord + 1; at-- > 0;) {
    if (!starts_with(tail.subspan(at), "PK\x05\x06")) continue;
    const std::size_t comment = byte_at(tail, at + 20) | (byte_at(tail, at + 21) << 8);
    if (at + kZipEndRecord + comment == tail.size()) return true;
  }
  return false;
}

bool is_torch_zip(std::span<const std::byte> head, std::span<const std::byte> tail) {
  return (starts_with(head, "PK\x03\x04") || starts_with(head, "PK\x05\x06")) &&
         has_zip_end_record(tail);
}

// torch.save's legacy stream opens with pickle.dump(0x1950a86a20f9469cfc6c): PROTO n,
// (FRAME len for protocol >= 4), LONG1 of 10 little-endian bytes.
bool is_torch_legacy(std::span<const std::byte> head) {
  static constexpr std::array<unsigned, 12> kMagic = {0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46,
                                                      0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19};
  if (head.size() < 2 || byte_at(head, 0) != 0x80) return false;
  const unsigned protocol = byte_at(head, 1);
  if (protocol < 2 || protocol > 5) return false;
  std::size_t at = 2;
  if (head.size() > at && byte_at(head, at) == 0x95) at += 9;  // FRAME + 8-byte length
  if (head.size() < at + kMagic.size()) return false;
  for (std::size_t i = 0; i < kMagic.size(); ++i) {
    if (byte_at(head, at + i) != kMagic[i]) return false;
  }
  return true;
}

bool is_tar(std::span<const std::byte> head) {
  return head.size() >= 262 && starts_with(head.subspan(257), "ustar");
}

bool is_json(std::span<const std::byte> head) {
  std::size_t at = starts_with(head, "\xEF\xBB\xBF") ? 3 : 0;  // a UTF-8 byte order mark
  while (at < head.size() && std::strchr(" \t\r\n", static_cast<char>(byte_at(head, at))) &&
         byte_at(head, at) != 0)
    ++at;
  return at < head.size() && (byte_at(head, at) == '{' || byte_at(head, at) == '[');
}

// In order of how strongly the structure identifies the format.
std::vector<FileFormat> candidates(std::span<const std::byte> head, std::span<const std::byte> tail,
                                   std::uint64_t size) {
  std::vector<FileFormat> out;
  if (size == 0) return {FileFormat::Empty};
  if (is_safetensors(head, size)) out.push_back(FileFormat::Safetensors);
  if (is_torch_zip(head, tail)) out.push_back(FileFormat::TorchZip);
  if (is_torch_legacy(head)) out.push_back(FileFormat::TorchLegacy);
  if (starts_with(head, "GGUF")) out.push_back(FileFormat::Gguf);
  if (is_tar(head)) out.push_back(FileFormat::TorchTar);
  if (out.empty() && is_json(head)) out.push_back(FileFormat::Json);
  return out;
}

bool same_family(FileFormat a, FileFormat b) {
  const auto torch = [](FileFormat f) {
    return f == FileFormat::TorchZip || f == FileFormat::TorchLegacy || f == FileFormat::TorchTar;
  };
  return a == b || (torch(a) && torch(b));
}

// Reads up to `count` bytes at `offset`; short only at the end of the file.
std::vector<std::byte> read_at(int fd, std::uint64_t offset, std::size_t count,
                               const fs::path& path) {
  std::vector<std::byte> out(count);
  std::size_t got = 0;
  while (got < count) {
    const ssize_t n = ::pread(fd, out.data() + got, count - got, static_cast<off_t>(offset + got));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw Error(ErrorCode::Io, path.string(), std::strerror(errno));
    if (n == 0) break;
    got += static_cast<std::size_t>(n);
  }
  out.resize(got);
  return out;
}

struct Probe {
  std::vector<std::byte> head, tail;
  std::uint64_t size = 0;
};

Probe probe(const fs::path& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    throw Error(err == ENOENT ? ErrorCode::NotFound : ErrorCode::Io, path.string(),
                std::strerror(err));
  }
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  struct stat st {};
  if (::fstat(fd, &st) != 0) throw Error(ErrorCode::Io, path.string(), std::strerror(errno));
  if (S_ISDIR(st.st_mode)) throw Error(ErrorCode::InvalidArgument, path.string(), "is a folder");
  Probe out;
  out.size = static_cast<std::uint64_t>(st.st_size);
  out.head = read_at(fd, 0, kHeadBytes, path);
  if (starts_with(out.head, "PK")) {  // only a zip needs its end record looked at
    const std::uint64_t tail_at = out.size > kTailBytes ? out.size - kTailBytes : 0;
    out.tail = read_at(fd, tail_at, static_cast<std::size_t>(out.size - tail_at), path);
  }
  return out;
}

}  // namespace

std::string_view to_string(FileFormat format) noexcept {
  switch (format) {
    case FileFormat::Unknown:
      return "unknown";
    case FileFormat::Empty:
      return "empty";
    case FileFormat::Safetensors:
      return "safetensors";
    case FileFormat::TorchZip:
      return "torch.save (zip)";
    case FileFormat::TorchLegacy:
      return "torch.save (legacy)";
    case FileFormat::TorchTar:
      return "torch.save (tar, PyTorch <= 0.3)";
    case FileFormat::Gguf:
      return "GGUF";
    case FileFormat::Json:
      return "JSON";
  }
  return "unknown";
}

FileFormat format_from_extension(const fs::path& path) {
  const std::string ext = path.extension().string();
  if (ext == ".safetensors") return FileFormat::Safetensors;
  if (ext == ".bin" || ext == ".pt" || ext == ".pth") return FileFormat::TorchZip;
  if (ext == ".gguf") return FileFormat::Gguf;
  if (ext == ".json") return FileFormat::Json;
  return FileFormat::Unknown;
}

FileFormat detect_file_format(std::span<const std::byte> head, std::span<const std::byte> tail,
                              std::uint64_t file_size, const fs::path& name_hint) {
  const auto found = candidates(head, tail, file_size);
  if (found.empty()) return FileFormat::Unknown;
  const FileFormat named = format_from_extension(name_hint);
  for (const FileFormat f : found) {
    if (named != FileFormat::Unknown && same_family(f, named)) return f;
  }
  return found.front();
}

FileFormat detect_file_format(std::span<const std::byte> whole, const fs::path& name_hint) {
  const std::size_t tail = std::min(whole.size(), kTailBytes);
  return detect_file_format(whole.first(std::min(whole.size(), kHeadBytes)), whole.last(tail),
                            whole.size(), name_hint);
}

FileFormat detect_file_format(const fs::path& path) {
  const Probe p = probe(path);
  return detect_file_format(p.head, p.tail, p.size, path);
}

FileFormat weights_reader_for(const fs::path& path) {
  const Probe p = probe(path);
  FileFormat format = detect_file_format(p.head, p.tail, p.size, path);
  switch (format) {
    case FileFormat::Safetensors:
    case FileFormat::TorchZip:
    case FileFormat::TorchLegacy:
    case FileFormat::TorchTar:
      return format;
    case FileFormat::Json:
      throw Error(ErrorCode::UnsupportedFormat, path.string(),
                  "is a JSON file, not a weights file (for an adapter_config.json, pass the "
                  "folder that holds it)");
    case FileFormat::Gguf:
      throw Error(ErrorCode::UnsupportedFormat, path.string(),
                  "is a GGUF file; expected safetensors or torch.save weights");
    case FileFormat::Unknown:
    case FileFormat::Empty:
      break;
  }
  // No structure matched: the reader the name suggests explains what is wrong with the
  // file (empty, truncated, header too large...). Without a known name, the first bytes.
  format = format_from_extension(path);
  if (format == FileFormat::Safetensors || format == FileFormat::TorchZip) return format;
  const bool torch_like =
      starts_with(p.head, "PK") || (!p.head.empty() && byte_at(p.head, 0) == 0x80);
  return torch_like ? FileFormat::TorchZip : FileFormat::Safetensors;
}

StateDict read_weights_file(const fs::path& path, const WeightsReadOptions& options) {
  if (weights_reader_for(path) == FileFormat::Safetensors) {
    SafetensorsReadOptions read;
    read.use_mmap = options.use_mmap;
    return SafetensorsFile::open(path, read).state_dict();
  }
  TorchReadOptions read;
  read.use_mmap = options.use_mmap;
  read.verify_crc = options.verify_crc;
  return load_torch_file(path, read);
}

}  // namespace peft
