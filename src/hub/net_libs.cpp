#include "hub/net_libs.hpp"

#include "core/shared_library.hpp"

#ifndef PEFTCPP_CURL_SONAME
#define PEFTCPP_CURL_SONAME "libcurl.so.4"
#endif
#ifndef PEFTCPP_CRYPTO_SONAME
#define PEFTCPP_CRYPTO_SONAME "libcrypto.so.3"
#endif

namespace peft::hub::net {
namespace {

constexpr LibrarySpec kCurl{"PEFTCPP_CURL_LIBRARY", PEFTCPP_CURL_SONAME, "libcurl4",
                            "downloading from the Hub (HTTP, libcurl)"};
constexpr LibrarySpec kCrypto{"PEFTCPP_CRYPTO_LIBRARY", PEFTCPP_CRYPTO_SONAME, "libssl3",
                              "checking downloads (sha256, libcrypto)"};

Curl load_curl() {
  const LoadedLibrary library(kCurl);
  Curl curl;
  library.bind("curl_global_init", curl.global_init);
  library.bind("curl_easy_init", curl.easy_init);
  library.bind("curl_easy_cleanup", curl.easy_cleanup);
  library.bind("curl_easy_setopt", curl.easy_setopt);
  library.bind("curl_easy_getinfo", curl.easy_getinfo);
  library.bind("curl_easy_perform", curl.easy_perform);
  library.bind("curl_easy_strerror", curl.easy_strerror);
  library.bind("curl_slist_append", curl.slist_append);
  library.bind("curl_slist_free_all", curl.slist_free_all);
  // Once per process, before any handle (curl_global_init is not thread-safe; the static
  // that holds this result makes it run once).
  curl.global_init(CURL_GLOBAL_DEFAULT);
  return curl;
}

Crypto load_crypto() {
  const LoadedLibrary library(kCrypto);
  Crypto crypto;
  library.bind("EVP_MD_CTX_new", crypto.md_ctx_new);
  library.bind("EVP_MD_CTX_free", crypto.md_ctx_free);
  library.bind("EVP_sha256", crypto.sha256);
  library.bind("EVP_DigestInit_ex", crypto.digest_init);
  library.bind("EVP_DigestUpdate", crypto.digest_update);
  library.bind("EVP_DigestFinal_ex", crypto.digest_final);
  return crypto;
}

}  // namespace

const Curl& curl() {
  static const Curl loaded = load_curl();
  return loaded;
}

const Crypto& crypto() {
  static const Crypto loaded = load_crypto();
  return loaded;
}

}  // namespace peft::hub::net
