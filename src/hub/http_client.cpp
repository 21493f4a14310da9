#include "hub/http_client.hpp"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <memory>

#include "hub/net_libs.hpp"

namespace peft::hub {

std::string HttpHeaders::get(std::string_view name) const {
  for (const auto& [key, value] : fields) {
    if (key == name) return value;
  }
  return {};
}

bool HttpHeaders::has(std::string_view name) const {
  return std::any_of(fields.begin(), fields.end(), [&](const auto& f) { return f.first == name; });
}

namespace {

struct Transfer {
  const HttpRequest* request;
  HttpResponse* response;
  CURL* curl;
  bool aborted = false;
};

std::string trim(std::string_view text) {
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.front())))
    text.remove_prefix(1);
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back())))
    text.remove_suffix(1);
  return std::string(text);
}

std::size_t on_header(char* data, std::size_t size, std::size_t count, void* user) {
  auto* transfer = static_cast<Transfer*>(user);
  const std::string_view line(data, size * count);
  // A status line starts a new block (after a 100 Continue): keep only the last one.
  if (line.starts_with("HTTP/")) {
    transfer->response->headers.fields.clear();
    return line.size();
  }
  const auto colon = line.find(':');
  if (colon == std::string_view::npos) return line.size();
  std::string name(line.substr(0, colon));
  std::transform(name.begin(), name.end(), name.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  transfer->response->headers.fields.emplace_back(trim(name), trim(line.substr(colon + 1)));
  return line.size();
}

std::size_t on_data(char* data, std::size_t size, std::size_t count, void* user) {
  auto* transfer = static_cast<Transfer*>(user);
  const std::string_view chunk(data, size * count);
  // The status is known once the body starts: on_body may look at it.
  long& status = transfer->response->status;
  net::curl().easy_getinfo(transfer->curl, CURLINFO_RESPONSE_CODE, &status);
  const bool success = status >= 200 && status < 300;
  if (success && transfer->request->on_body) {
    if (!transfer->request->on_body(chunk)) {
      transfer->aborted = true;
      return CURL_WRITEFUNC_ERROR;
    }
    return chunk.size();
  }
  std::string& body = transfer->response->body;
  body.append(
      chunk.substr(0, std::min(chunk.size(), kMaxKeptBody - std::min(kMaxKeptBody, body.size()))));
  return chunk.size();
}

// The CA bundle variables requests and curl honour; libcurl reads the proxy variables itself.
void set_ca_bundle(CURL* curl) {
  for (const char* name : {"REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE"}) {
    const char* value = std::getenv(name);
    if (value != nullptr && *value != '\0') {
      net::curl().easy_setopt(curl, CURLOPT_CAINFO, value);
      return;
    }
  }
}

}  // namespace

bool http_request(const HttpRequest& request, HttpResponse& response, TransportFailure& failure) {
  const net::Curl& lib = net::curl();  // loads libcurl on the first request
  response = HttpResponse{};
  const std::unique_ptr<CURL, decltype(lib.easy_cleanup)> curl(lib.easy_init(), lib.easy_cleanup);
  if (!curl) {
    failure.what = "curl_easy_init failed";
    return false;
  }
  Transfer transfer{&request, &response, curl.get()};
  curl_slist* list = nullptr;
  for (const auto& header : request.headers) list = lib.slist_append(list, header.c_str());
  const std::unique_ptr<curl_slist, decltype(lib.slist_free_all)> headers(list, lib.slist_free_all);
  CURL* c = curl.get();
  lib.easy_setopt(c, CURLOPT_URL, request.url.c_str());
  lib.easy_setopt(c, CURLOPT_HTTPHEADER, list);
  lib.easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
  lib.easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
  lib.easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  if (request.method == "HEAD") lib.easy_setopt(c, CURLOPT_NOBODY, 1L);
  const auto timeout = static_cast<long>(std::max(1.0, request.timeout + 0.5));
  lib.easy_setopt(c, CURLOPT_CONNECTTIMEOUT, timeout);
  // A read timeout as requests has it: fail when nothing arrives for `timeout` seconds.
  lib.easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
  lib.easy_setopt(c, CURLOPT_LOW_SPEED_TIME, timeout);
  lib.easy_setopt(c, CURLOPT_HEADERFUNCTION, &on_header);
  lib.easy_setopt(c, CURLOPT_HEADERDATA, &transfer);
  lib.easy_setopt(c, CURLOPT_WRITEFUNCTION, &on_data);
  lib.easy_setopt(c, CURLOPT_WRITEDATA, &transfer);
  lib.easy_setopt(c, CURLOPT_BUFFERSIZE, 512L * 1024L);
  set_ca_bundle(c);
  const CURLcode code = lib.easy_perform(c);
  lib.easy_getinfo(c, CURLINFO_RESPONSE_CODE, &response.status);
  if (code != CURLE_OK) {
    failure.what = lib.easy_strerror(code);
    failure.aborted = transfer.aborted;
    failure.unreachable = code == CURLE_COULDNT_RESOLVE_HOST ||
                          code == CURLE_COULDNT_RESOLVE_PROXY || code == CURLE_COULDNT_CONNECT;
    return false;
  }
  return true;
}

}  // namespace peft::hub
