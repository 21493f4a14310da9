// HubSettings from the environment, with huggingface_hub's variable names and defaults.
#include <cctype>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "peft/hub_cache.hpp"
#include "peft/hub_download.hpp"

namespace peft {

namespace {

std::string env(const char* name) {
  const char* value = std::getenv(name);
  return value == nullptr ? std::string() : std::string(value);
}

std::string strip(std::string text) {
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) text.pop_back();
  std::size_t start = 0;
  while (start < text.size() && std::isspace(static_cast<unsigned char>(text[start]))) ++start;
  return text.substr(start);
}

// HF_HOME, else $XDG_CACHE_HOME/huggingface, else ~/.cache/huggingface: where the token
// file lives (independently of HF_HUB_CACHE).
std::string hf_home() {
  std::string home = env("HF_HOME");
  if (home.empty()) {
    const std::string xdg = env("XDG_CACHE_HOME");
    home = (xdg.empty() ? std::string("~/.cache") : xdg) + "/huggingface";
  }
  return expand_path(home);
}

// HF_TOKEN, else the file HF_TOKEN_PATH, else $HF_HOME/token; whitespace stripped.
std::string token_from_environment() {
  std::string token = strip(env("HF_TOKEN"));
  if (!token.empty()) return token;
  std::string path = env("HF_TOKEN_PATH");
  path = path.empty() ? hf_home() + "/token" : expand_path(path);
  std::ifstream in(path);
  if (!in) return {};
  std::stringstream buffer;
  buffer << in.rdbuf();
  return strip(buffer.str());
}

double seconds_from(const char* name, double fallback) {
  const std::string text = env(name);
  if (text.empty()) return fallback;
  char* end = nullptr;
  const double value = std::strtod(text.c_str(), &end);
  return (end != nullptr && *end == '\0' && value > 0) ? value : fallback;
}

}  // namespace

HubSettings HubSettings::from_environment() {
  HubSettings settings;
  std::string endpoint = strip(env("HF_ENDPOINT"));
  while (!endpoint.empty() && endpoint.back() == '/') endpoint.pop_back();
  if (!endpoint.empty()) settings.endpoint = endpoint;
  settings.token = token_from_environment();
  settings.cache_dir = HubCache::default_root();
  settings.offline = HubCache::offline_from_environment();
  settings.etag_timeout = seconds_from("HF_HUB_ETAG_TIMEOUT", 10);
  settings.download_timeout = seconds_from("HF_HUB_DOWNLOAD_TIMEOUT", 10);
  return settings;
}

}  // namespace peft
