// One HTTP request through libcurl, without following redirects: the callers decide which
// redirects to follow and which headers (the token) the next host may see.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace peft::hub {

// Response headers with lower-cased names, in the order received (the last block only,
// when a 1xx response came first).
struct HttpHeaders {
  std::vector<std::pair<std::string, std::string>> fields;
  // The value of the first field called `name` (lower case), or "" when absent.
  std::string get(std::string_view name) const;
  bool has(std::string_view name) const;
};

struct HttpRequest {
  std::string method = "GET";  // "GET" or "HEAD"
  std::string url;
  std::vector<std::string> headers;  // "Name: value"
  double timeout = 10;               // seconds to connect, and without a byte received
  // Receives the body of a 2xx response; returning false aborts the transfer. Unset: the
  // body is kept in HttpResponse::body (bounded). It may read the response's status and
  // headers, complete by the first byte.
  std::function<bool(std::string_view)> on_body;
};

struct HttpResponse {
  long status = 0;
  HttpHeaders headers;
  std::string body;  // non-2xx bodies and bodies without on_body (first kMaxKeptBody bytes)
};

inline constexpr std::size_t kMaxKeptBody = 64U << 20;

// Why a transfer failed before a complete response arrived.
struct TransportFailure {
  std::string what;          // curl's message
  bool aborted = false;      // on_body returned false
  bool unreachable = false;  // the host could not be resolved or connected to
};

// Performs the request. Returns false and fills `failure` when no complete response
// arrived (connection refused or cut, timeout, aborted); a complete HTTP error response
// (4xx, 5xx) is a successful transfer.
bool http_request(const HttpRequest& request, HttpResponse& response, TransportFailure& failure);

}  // namespace peft::hub
