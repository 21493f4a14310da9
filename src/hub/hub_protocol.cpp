#include "hub/hub_protocol.hpp"

#include <algorithm>
#include <cctype>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "peft/hub_download.hpp"

namespace peft::hub {

namespace {

bool all_lower_hex(std::string_view text) {
  return std::all_of(text.begin(), text.end(),
                     [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

}  // namespace

std::string normalize_etag(std::string_view etag) {
  if (etag.starts_with("W/")) etag.remove_prefix(2);
  while (!etag.empty() && etag.front() == '"') etag.remove_prefix(1);
  while (!etag.empty() && etag.back() == '"') etag.remove_suffix(1);
  return std::string(etag);
}

std::optional<std::uint64_t> parse_size(std::string_view text) {
  if (text.empty() || text.size() > 19) return std::nullopt;
  std::uint64_t value = 0;
  for (const char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    value = value * 10 + static_cast<std::uint64_t>(c - '0');
  }
  return value;
}

FileMetadata parse_file_metadata(const HttpHeaders& headers) {
  FileMetadata out;
  out.commit = headers.get("x-repo-commit");
  const std::string linked = headers.get("x-linked-etag");
  out.etag = normalize_etag(linked.empty() ? headers.get("etag") : linked);
  const std::string linked_size = headers.get("x-linked-size");
  out.size = parse_size(linked_size.empty() ? headers.get("content-length") : linked_size);
  out.location = headers.get("location");
  return out;
}

RevisionInfo parse_revision_info(std::string_view json, const std::string& source) {
  const auto refuse = [&](const std::string& why) {
    return HubError(
        HubErrorKind::Protocol, source,
        fmt::format("the Hub's revision answer {}; is HF_ENDPOINT a Hugging Face Hub?", why));
  };
  const auto doc = nlohmann::json::parse(json, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_object()) throw refuse("is not a JSON object");
  const auto sha = doc.find("sha");
  if (sha == doc.end() || !sha->is_string()) throw refuse("has no \"sha\" string");
  RevisionInfo out;
  out.sha = sha->get<std::string>();
  const auto siblings = doc.find("siblings");
  if (siblings == doc.end() || siblings->is_null()) return out;
  if (!siblings->is_array()) throw refuse("has a \"siblings\" that is not a list");
  for (const auto& sibling : *siblings) {
    const auto name = sibling.is_object() ? sibling.find("rfilename") : sibling.end();
    if (!sibling.is_object() || name == sibling.end() || !name->is_string())
      throw refuse("has a sibling without an \"rfilename\" string");
    out.files.push_back(name->get<std::string>());
  }
  return out;
}

std::optional<std::uint64_t> content_range_start(std::string_view value) {
  if (!value.starts_with("bytes ")) return std::nullopt;
  value.remove_prefix(6);
  const auto dash = value.find('-');
  const auto slash = value.find('/');
  if (dash == std::string_view::npos || slash == std::string_view::npos || slash < dash)
    return std::nullopt;
  const auto start = parse_size(value.substr(0, dash));
  const auto end = parse_size(value.substr(dash + 1, slash - dash - 1));
  const auto total = value.substr(slash + 1);
  if (!start || !end || *end < *start || (total != "*" && !parse_size(total))) return std::nullopt;
  return start;
}

bool is_commit_hash(std::string_view text) {
  return text.size() == 40 && all_lower_hex(text);
}

bool is_sha256_hex(std::string_view text) {
  return text.size() == 64 && all_lower_hex(text);
}

bool is_safe_etag(std::string_view etag) {
  if (etag.empty() || etag.size() > 255 || etag == "." || etag == "..") return false;
  return std::all_of(etag.begin(), etag.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '-';
  });
}

bool is_safe_repo_path(std::string_view path) {
  if (path.empty() || path.size() > 4096 || path.front() == '/') return false;
  if (path.find('\\') != std::string_view::npos || path.find('\0') != std::string_view::npos)
    return false;
  std::size_t start = 0;
  while (true) {
    const auto slash = path.find('/', start);
    const auto part = path.substr(start, slash == std::string_view::npos ? slash : slash - start);
    if (part.empty() || part == "." || part == "..") return false;
    if (slash == std::string_view::npos) return true;
    start = slash + 1;
  }
}

std::string url_quote(std::string_view text, std::string_view safe) {
  std::string out;
  for (const char c : text) {
    const auto u = static_cast<unsigned char>(c);
    if (std::isalnum(u) || c == '_' || c == '.' || c == '~' || c == '-' ||
        safe.find(c) != std::string_view::npos) {
      out += c;
    } else {
      out += fmt::format("%{:02X}", u);
    }
  }
  return out;
}

std::string url_scheme(std::string_view url) {
  const auto colon = url.find("://");
  if (colon == std::string_view::npos || colon == 0) return {};
  std::string scheme(url.substr(0, colon));
  for (auto& c : scheme) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  const bool valid = std::all_of(scheme.begin(), scheme.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '+' || c == '-' || c == '.';
  });
  return valid ? scheme : std::string();
}

std::string url_authority(std::string_view url) {
  if (url_scheme(url).empty()) return {};
  url.remove_prefix(url.find("://") + 3);
  const auto end = url.find_first_of("/?#");
  std::string authority(url.substr(0, end));
  // userinfo is not part of the host a token may be sent to
  const auto at = authority.rfind('@');
  if (at != std::string::npos) authority.erase(0, at + 1);
  for (auto& c : authority) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return authority;
}

bool is_relative_location(std::string_view location) {
  return url_scheme(location).empty() && !location.starts_with("//");
}

std::string resolve_url(std::string_view base, std::string_view location) {
  if (location.empty()) return {};
  if (!url_scheme(location).empty()) return std::string(location);
  const std::string scheme = url_scheme(base);
  if (scheme.empty()) return {};
  if (location.starts_with("//")) return scheme + ":" + std::string(location);
  const std::string origin =
      scheme + "://" +
      std::string(base.substr(scheme.size() + 3)
                      .substr(0, base.substr(scheme.size() + 3).find_first_of("/?#")));
  if (location.front() == '/') return origin + std::string(location);
  // a relative path replaces the last segment of the base's path
  std::string_view path = base.substr(origin.size());
  path = path.substr(0, path.find_first_of("?#"));
  const auto slash = path.rfind('/');
  const std::string dir =
      slash == std::string_view::npos ? "/" : std::string(path.substr(0, slash + 1));
  return origin + dir + std::string(location);
}

}  // namespace peft::hub
