#include "hub/sha256.hpp"

#include <new>

#include <fmt/format.h>

#include "hub/net_libs.hpp"

namespace peft::hub {

struct Sha256::State {
  const net::Crypto& crypto = net::crypto();
  EVP_MD_CTX* ctx = crypto.md_ctx_new();
  State() {
    if (ctx == nullptr || crypto.digest_init(ctx, crypto.sha256(), nullptr) != 1)
      throw std::bad_alloc();
  }
  State(const State&) = delete;
  State& operator=(const State&) = delete;
  ~State() { crypto.md_ctx_free(ctx); }
};

Sha256::Sha256() : state_(std::make_unique<State>()) {}
Sha256::Sha256(Sha256&&) noexcept = default;
Sha256& Sha256::operator=(Sha256&&) noexcept = default;
Sha256::~Sha256() = default;

void Sha256::update(std::string_view bytes) {
  state_->crypto.digest_update(state_->ctx, bytes.data(), bytes.size());
}

std::string Sha256::hex_digest() {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  state_->crypto.digest_final(state_->ctx, digest, &size);
  std::string out;
  out.reserve(std::size_t{2} * size);
  for (unsigned int i = 0; i < size; ++i) out += fmt::format("{:02x}", digest[i]);
  return out;
}

}  // namespace peft::hub
