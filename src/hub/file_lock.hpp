// The lock huggingface_hub takes around a download: filelock's UnixFileLock, i.e. flock(2)
// LOCK_EX on .locks/<repo folder>/<etag>.lock, opened O_RDWR|O_CREAT|O_TRUNC with mode 0644
// (minus the umask) and never deleted. Taking the same lock the same way is what lets a
// Python and a C++ process download the same blob at once without corrupting it.
#pragma once

#include <filesystem>

namespace peft::hub {

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
