#include "peft/hub_cache.hpp"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <vector>

#include <fmt/format.h>

#include "peft/error.hpp"

namespace peft {
namespace fs = std::filesystem;

namespace {

std::string env(const char* name) {
  const char* value = std::getenv(name);
  return value == nullptr ? std::string() : std::string(value);
}

bool is_commit_hash(std::string_view text) {
  if (text.size() != 40) return false;
  for (const char c : text) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

// A repository path must stay inside the snapshot: no absolute paths, no "..".
void check_relative(std::string_view path) {
  const fs::path p(path);
  if (p.is_absolute()) {
    throw Error(ErrorCode::InvalidArgument, std::string(path),
                "a repository path must be relative");
  }
  for (const auto& part : p) {
    if (part == "..") {
      throw Error(ErrorCode::InvalidArgument, std::string(path),
                  "a repository path may not contain '..' (it would leave the snapshot)");
    }
  }
}

}  // namespace

namespace {

bool valid_repo_name(std::string_view name) {
  if (name.empty() || name.size() > 96) return false;
  if (name.find("--") != std::string_view::npos || name.find("..") != std::string_view::npos)
    return false;
  if (name.front() == '-' || name.front() == '.' || name.back() == '-' || name.back() == '.')
    return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.';
  });
}

}  // namespace

std::optional<HubReference> parse_hub_reference(std::string_view text) {
  HubReference out;
  const auto at = text.find('@');
  if (at != std::string_view::npos) {
    if (at + 1 == text.size()) return std::nullopt;
    out.revision = std::string(text.substr(at + 1));
    text = text.substr(0, at);
  }
  std::vector<std::string_view> parts;
  for (std::size_t start = 0;;) {
    const auto slash = text.find('/', start);
    parts.push_back(text.substr(start, slash == std::string_view::npos ? slash : slash - start));
    if (slash == std::string_view::npos) break;
    start = slash + 1;
  }
  const std::size_t repo_parts = std::min<std::size_t>(parts.size(), 2);
  for (std::size_t i = 0; i < parts.size(); ++i) {
    if (i < repo_parts ? !valid_repo_name(parts[i]) : (parts[i].empty() || parts[i] == ".."))
      return std::nullopt;
  }
  out.repo_id = std::string(repo_parts == 2 ? text.substr(0, parts[0].size() + 1 + parts[1].size())
                                            : parts[0]);
  if (parts.size() > 2) out.subfolder = std::string(text.substr(out.repo_id.size() + 1));
  return out;
}

std::string expand_path(std::string_view text) {
  std::string out(text);
  if (out.starts_with("~") && (out.size() == 1 || out[1] == '/')) out = env("HOME") + out.substr(1);
  std::string expanded;
  for (std::size_t i = 0; i < out.size(); ++i) {
    if (out[i] != '$') {
      expanded += out[i];
      continue;
    }
    std::size_t start = i + 1, end = start;
    const bool braced = start < out.size() && out[start] == '{';
    if (braced) {
      end = out.find('}', start);
      if (end == std::string::npos) {
        expanded += out.substr(i);
        break;
      }
      const std::string name = out.substr(start + 1, end - start - 1);
      // Python keeps unknown variables as written.
      expanded += std::getenv(name.c_str()) ? env(name.c_str()) : out.substr(i, end - i + 1);
      i = end;
      continue;
    }
    while (end < out.size() &&
           (std::isalnum(static_cast<unsigned char>(out[end])) || out[end] == '_'))
      ++end;
    if (end == start) {
      expanded += '$';
      continue;
    }
    const std::string name = out.substr(start, end - start);
    expanded += std::getenv(name.c_str()) ? env(name.c_str()) : out.substr(i, end - i);
    i = end - 1;
  }
  return expanded;
}

fs::path HubCache::default_root() {
  for (const char* name : {"HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"}) {
    if (!env(name).empty()) return expand_path(env(name));
  }
  std::string home = env("HF_HOME");
  if (home.empty()) {
    const std::string xdg = env("XDG_CACHE_HOME");
    home = (xdg.empty() ? std::string("~/.cache") : xdg) + "/huggingface";
  }
  return fs::path(expand_path(home)) / "hub";
}

bool HubCache::offline_from_environment() {
  std::string value = env("HF_HUB_OFFLINE");
  if (value.empty()) value = env("TRANSFORMERS_OFFLINE");
  for (auto& c : value) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return value == "1" || value == "ON" || value == "YES" || value == "TRUE";
}

HubCache::HubCache() : root_(default_root()) {}
HubCache::HubCache(fs::path root) : root_(std::move(root)) {}

fs::path HubCache::repo_folder(std::string_view repo_id, std::string_view repo_type) const {
  if (repo_id.empty() || repo_id.find("..") != std::string_view::npos || repo_id.starts_with("/")) {
    throw Error(ErrorCode::InvalidArgument, std::string(repo_id), "is not a valid repository id");
  }
  std::string folder = std::string(repo_type) + "s--";
  for (const char c : repo_id) {
    if (c == '/') {
      folder += "--";
    } else {
      folder += c;
    }
  }
  return root_ / folder;
}

std::optional<std::string> HubCache::commit(std::string_view repo_id, std::string_view revision,
                                            std::string_view repo_type) const {
  if (is_commit_hash(revision)) return std::string(revision);
  check_relative(revision);
  std::ifstream in(repo_folder(repo_id, repo_type) / "refs" / std::string(revision));
  if (!in) return std::nullopt;
  std::stringstream buffer;
  buffer << in.rdbuf();
  std::string hash = buffer.str();
  while (!hash.empty() && std::isspace(static_cast<unsigned char>(hash.back()))) hash.pop_back();
  return hash;
}

std::optional<fs::path> HubCache::find(std::string_view repo_id, std::string_view path,
                                       std::string_view revision,
                                       std::string_view repo_type) const {
  check_relative(path);
  const auto hash = commit(repo_id, revision, repo_type);
  if (!hash) return std::nullopt;
  const fs::path candidate =
      repo_folder(repo_id, repo_type) / "snapshots" / *hash / std::string(path);
  std::error_code ec;
  if (fs::is_regular_file(candidate, ec)) return candidate;  // follows the symlink
  return std::nullopt;
}

bool HubCache::known_missing(std::string_view repo_id, std::string_view path,
                             std::string_view revision, std::string_view repo_type) const {
  check_relative(path);
  const auto hash = commit(repo_id, revision, repo_type);
  if (!hash) return false;
  std::error_code ec;
  return fs::exists(repo_folder(repo_id, repo_type) / ".no_exist" / *hash / std::string(path), ec);
}

}  // namespace peft
