// SHA-256, incremental: the Hub names large files by the sha256 of their bytes, and a
// download is hashed while it arrives so that verifying costs no second read. OpenSSL's
// libcrypto computes it (with the CPU's SHA extensions where present: a plain C version
// ran at a third of the download speed of a local server).
#pragma once

#include <memory>
#include <string>
#include <string_view>

namespace peft::hub {

class Sha256 {
 public:
  Sha256();
  Sha256(Sha256&&) noexcept;
  Sha256& operator=(Sha256&&) noexcept;
  ~Sha256();
  void update(std::string_view bytes);
  // The digest as 64 lower-case hex digits; the object must not be updated afterwards.
  std::string hex_digest();

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace peft::hub
