// The libraries of the hub layer (libcurl for HTTP, libcrypto for sha256), loaded on first use
// (core/shared_library.hpp): linked, libcurl and its twenty dependencies cost every process
// about 15 ms of start-up, although only downloads use them (docs/library.md §7).
//
// File names: libcurl.so.4 and libcrypto.so.3 (CMake cache variables PEFTCPP_CURL_SONAME,
// PEFTCPP_CRYPTO_SONAME), overridden at run time by PEFTCPP_CURL_LIBRARY and
// PEFTCPP_CRYPTO_LIBRARY.
#pragma once

// The calls go through function pointers, which curl's GCC type-checking macros cannot wrap.
#define CURL_DISABLE_TYPECHECK
#include <curl/curl.h>
#include <openssl/evp.h>

namespace peft::hub::net {

struct Curl {
  decltype(&curl_global_init) global_init = nullptr;
  decltype(&curl_easy_init) easy_init = nullptr;
  decltype(&curl_easy_cleanup) easy_cleanup = nullptr;
  decltype(&curl_easy_setopt) easy_setopt = nullptr;
  decltype(&curl_easy_getinfo) easy_getinfo = nullptr;
  decltype(&curl_easy_perform) easy_perform = nullptr;
  decltype(&curl_easy_strerror) easy_strerror = nullptr;
  decltype(&curl_slist_append) slist_append = nullptr;
  decltype(&curl_slist_free_all) slist_free_all = nullptr;
};

struct Crypto {
  decltype(&EVP_MD_CTX_new) md_ctx_new = nullptr;
  decltype(&EVP_MD_CTX_free) md_ctx_free = nullptr;
  decltype(&EVP_sha256) sha256 = nullptr;
  decltype(&EVP_DigestInit_ex) digest_init = nullptr;
  decltype(&EVP_DigestUpdate) digest_update = nullptr;
  decltype(&EVP_DigestFinal_ex) digest_final = nullptr;
};

// Loaded once per process (thread-safe); curl_global_init has run when curl() returns.
// Throw peft::Error (Unsupported) when the library or a function is missing.
const Curl& curl();
const Crypto& crypto();

}  // namespace peft::hub::net
