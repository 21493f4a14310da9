// What the Hub's answers mean, as huggingface_hub 0.36 reads them: pure functions over
// headers, URLs and JSON text (fuzzed by fuzz/fuzz_hub_protocol.cpp).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "hub/http_client.hpp"

namespace peft::hub {

// The HEAD answer for one file.
struct FileMetadata {
  std::string commit;  // X-Repo-Commit ("" when absent)
  std::string etag;    // X-Linked-Etag else ETag, without W/ and quotes ("" when absent)
  std::optional<std::uint64_t> size;  // X-Linked-Size else Content-Length
  std::string location;               // Location ("" when absent)
};

FileMetadata parse_file_metadata(const HttpHeaders& headers);

// An ETag without its weak marker "W/" and its quotes.
std::string normalize_etag(std::string_view etag);

// A decimal header value; nullopt for anything else (sign, spaces inside, overflow).
std::optional<std::uint64_t> parse_size(std::string_view text);

// The revision answer of /api/models/{repo}/revision/{rev}: the commit and the file names.
struct RevisionInfo {
  std::string sha;
  std::vector<std::string> files;
};

// Throws HubError(Protocol) naming `source` when `json` is not such an answer.
RevisionInfo parse_revision_info(std::string_view json, const std::string& source);

// "bytes START-END/TOTAL" (TOTAL may be "*"): START, or nullopt when malformed.
std::optional<std::uint64_t> content_range_start(std::string_view value);

// 40 lower-case hexadecimal digits (a full commit sha).
bool is_commit_hash(std::string_view text);
// 64 lower-case hexadecimal digits (the sha256 etag of an LFS file).
bool is_sha256_hex(std::string_view text);
// An etag usable as a file name in blobs/: [A-Za-z0-9_.-], not "." or "..", at most 255.
bool is_safe_etag(std::string_view etag);
// A repository path that stays inside the snapshot folder: relative, no "." or ".."
// component, no empty component, no backslash or NUL.
bool is_safe_repo_path(std::string_view path);

// Python's urllib.parse.quote(text, safe): every byte but [A-Za-z0-9_.~-] and `safe`
// percent-encoded.
std::string url_quote(std::string_view text, std::string_view safe);

// The scheme ("http"), the authority ("host:port") of an absolute URL; "" when not absolute.
std::string url_scheme(std::string_view url);
std::string url_authority(std::string_view url);

// `location` resolved against `base`: absolute URLs unchanged, "/path" and "//host/path"
// and relative paths as a browser would. "" when it cannot be resolved.
std::string resolve_url(std::string_view base, std::string_view location);
// True when `location` names no host (the Hub's redirects of renamed repositories).
bool is_relative_location(std::string_view location);

}  // namespace peft::hub
