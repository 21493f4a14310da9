// The lock huggingface_hub takes around a download: filelock's UnixFileLock, i.e. flock(2)
// LOCK_EX on .locks/<repo folder>/<etag>.lock, never deleted. As huggingface_hub 1.x with
// filelock 4 does, the file is opened O_RDWR|O_CREAT|O_NOFOLLOW without O_TRUNC (a waiting
// process must not truncate the holder's file), and once the lock is held it is truncated and
// given mode 0664 (group-writable, so that users sharing a cache can wait on each other's
// locks). Taking the same lock the same way is what lets a Python and a C++ process download
// the same blob at once without corrupting it.
#pragma once

#include <filesystem>

namespace peft::hub {

// The mode of a lock file whatever the umask (huggingface_hub's WeakFileLock).
inline constexpr unsigned kLockFileMode = 0664;

class FileLock {
 public:
  // Blocks until the lock is held; throws Io when the lock file cannot be opened.
  explicit FileLock(const std::filesystem::path& path);
  FileLock(const FileLock&) = delete;
  FileLock& operator=(const FileLock&) = delete;
  ~FileLock();

 private:
  int fd_ = -1;
};

}  // namespace peft::hub
