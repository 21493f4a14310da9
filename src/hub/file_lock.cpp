#include "hub/file_lock.hpp"

#include <cerrno>
#include <cstring>

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "peft/error.hpp"

namespace peft::hub {

FileLock::FileLock(const std::filesystem::path& path) {
  std::error_code ec;
  std::filesystem::create_directories(path.parent_path(), ec);
  for (;;) {
    fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, kLockFileMode);
    if (fd_ < 0) {
      throw Error(ErrorCode::Io, path.string(),
                  std::string("cannot open the download lock: ") + std::strerror(errno));
    }
    while (::flock(fd_, LOCK_EX) != 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      ::close(fd_);
      throw Error(ErrorCode::Io, path.string(), std::string("cannot lock: ") + std::strerror(err));
    }
    // The file may have been removed between the open and the flock: a lock on a deleted
    // inode excludes nobody, so start again with the file now at that path.
    struct stat st {};
    if (::fstat(fd_, &st) == 0 && st.st_nlink == 0) {
      ::close(fd_);
      continue;
    }
    break;
  }
  // Only the holder truncates and sets the mode; a lock file of another user may refuse.
  (void)::ftruncate(fd_, 0);
  (void)::fchmod(fd_, kLockFileMode);
}

FileLock::~FileLock() {
  ::flock(fd_, LOCK_UN);
  ::close(fd_);
}

}  // namespace peft::hub
