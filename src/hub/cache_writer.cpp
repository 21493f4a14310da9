#include "hub/cache_writer.hpp"

#include <atomic>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>

#include "formats/atomic_file.hpp"
#include "hub/hub_protocol.hpp"
#include "peft/error.hpp"

namespace peft::hub {
namespace fs = std::filesystem;

namespace {

// A name no other thread or process uses at the same time.
std::string unique_suffix() {
  static std::atomic<unsigned> counter{0};
  return fmt::format("{}.{}.{}", ::getpid(),
                     std::hash<std::thread::id>{}(std::this_thread::get_id()), counter++);
}

void make_parents(const fs::path& path) {
  std::error_code ec;
  fs::create_directories(path.parent_path(), ec);
  if (ec) throw Error(ErrorCode::Io, path.parent_path().string(), "cannot create: " + ec.message());
}

std::string read_small(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

}  // namespace

void write_ref(const fs::path& repo_folder, const std::string& revision,
               const std::string& commit) {
  if (revision == commit || is_commit_hash(revision)) return;
  const fs::path ref = repo_folder / "refs" / revision;
  std::error_code ec;
  if (fs::is_regular_file(ref, ec) && read_small(ref) == commit) return;
  make_parents(ref);
  formats::AtomicFile file(ref);
  file.write(commit);
  file.commit();
}

void link_pointer(const fs::path& repo_folder, const std::string& commit, const std::string& path,
                  const std::string& etag) {
  const fs::path pointer = repo_folder / "snapshots" / commit / path;
  make_parents(pointer);
  std::string target = "../../";
  for (const char c : path) {
    if (c == '/') target += "../";
  }
  target += "blobs/" + etag;
  // Made under a temporary name and renamed over the pointer: readers see the old link or
  // the new one, never none.
  const fs::path temp = pointer.parent_path() / (".tmp." + unique_suffix());
  if (::symlink(target.c_str(), temp.c_str()) != 0) {
    throw Error(ErrorCode::Io, pointer.string(),
                std::string("cannot create the snapshot symlink: ") + std::strerror(errno));
  }
  if (::rename(temp.c_str(), pointer.c_str()) != 0) {
    const int err = errno;
    ::unlink(temp.c_str());
    throw Error(ErrorCode::Io, pointer.string(),
                std::string("cannot place the snapshot symlink: ") + std::strerror(err));
  }
}

void write_no_exist(const fs::path& repo_folder, const std::string& commit,
                    const std::string& path) {
  const fs::path marker = repo_folder / ".no_exist" / commit / path;
  make_parents(marker);
  const int fd = ::open(marker.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0666);
  if (fd < 0) {
    throw Error(ErrorCode::Io, marker.string(),
                std::string("cannot create the .no_exist marker: ") + std::strerror(errno));
  }
  ::close(fd);
}

void write_cachedir_tag(const fs::path& cache_dir) {
  const fs::path tag = cache_dir / "CACHEDIR.TAG";
  std::error_code ec;
  if (fs::exists(tag, ec) || ec) return;
  fs::create_directories(cache_dir, ec);
  try {
    formats::AtomicFile file(tag);
    // The first line is what the specification requires; the rest is a comment.
    file.write(
        "Signature: 8a477f597d28d172789f06886806bc55\n"
        "# The Hugging Face cache (written by peftcpp, shared with huggingface_hub): backup\n"
        "# tools may skip it. The specification: https://bford.info/cachedir/\n");
    file.commit();
  } catch (const Error&) {
    // A read-only cache still serves what it holds.
  }
}

void chmod_and_move(const fs::path& file, const fs::path& target) {
  const fs::path probe = target.parent_path().parent_path() / ("tmp_" + unique_suffix());
  const int fd = ::open(probe.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
  mode_t mode = 0644;
  if (fd >= 0) {
    struct stat st {};
    if (::fstat(fd, &st) == 0) mode = st.st_mode & 07777;
    ::close(fd);
    ::unlink(probe.c_str());
  }
  if (::chmod(file.c_str(), mode) != 0 || ::rename(file.c_str(), target.c_str()) != 0) {
    throw Error(ErrorCode::Io, target.string(),
                std::string("cannot move the downloaded blob into place: ") + std::strerror(errno));
  }
}

}  // namespace peft::hub
