// Requests to the Hub with huggingface_hub's headers and redirect rules, plus bounded
// retries of transient failures (connection errors, timeouts, 5xx, 429).
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "hub/http_client.hpp"
#include "hub/hub_errors.hpp"
#include "peft/hub_download.hpp"

namespace peft::hub {

// User-Agent and Accept-Encoding: identity, plus the token when `url` is on the
// endpoint's host (scheme, host and port): never to a host a redirect points to.
std::vector<std::string> request_headers(const HubSettings& settings, const std::string& url);

// Runs `attempt` up to 1 + settings.max_retries times, sleeping with exponential backoff
// after a transport failure or a transient status. `attempt` returns false with `failure`
// filled on a transport failure. Throws HubError(Network) when the last attempt failed in
// transport; returns the last response otherwise (its status may be an error). With
// `give_up_when_unreachable`, an unresolvable or refusing host is not retried: the caller
// falls back to the cache at once, as huggingface_hub does without a network.
HttpResponse with_retries(const HubSettings& settings, const RequestSubject& subject,
                          const std::string& url,
                          const std::function<bool(HttpResponse&, TransportFailure&)>& attempt,
                          bool give_up_when_unreachable = false);

// HEAD of a file, following relative redirects only (renamed repositories); an absolute
// redirect (a large file on a CDN) is returned as it is.
HttpResponse head_file(const HubSettings& settings, const std::string& url,
                       const RequestSubject& subject);

// GET of a small JSON answer (API), following relative redirects.
HttpResponse get_api(const HubSettings& settings, const std::string& url,
                     const RequestSubject& subject);

// One GET attempt of a download, following redirects (at most 10, http and https only,
// the token dropped on another host). `on_body` sees the body of the final 2xx response
// only (it may read `response.headers`, complete by then).
bool get_following_redirects(const HubSettings& settings, const std::string& url,
                             const std::vector<std::string>& extra_headers,
                             const std::function<bool(std::string_view)>& on_body,
                             HttpResponse& response, TransportFailure& failure,
                             const RequestSubject& subject);

}  // namespace peft::hub
