#include "hub/hub_requests.hpp"

#include <algorithm>
#include <chrono>
#include <thread>

#include <fmt/format.h>

#include "hub/hub_protocol.hpp"
#include "peft/version.hpp"

namespace peft::hub {

namespace {

constexpr int kMaxRedirects = 10;

bool is_redirect(long status) {
  return status >= 300 && status < 400;
}

HubError bad_redirect(const RequestSubject& subject, const std::string& location) {
  return HubError(
      HubErrorKind::Protocol, subject.describe(),
      fmt::format("refusing a redirect to '{}': only http and https URLs are followed", location));
}

}  // namespace

std::vector<std::string> request_headers(const HubSettings& settings, const std::string& url) {
  std::vector<std::string> headers{
      fmt::format("User-Agent: peftcpp/{}; huggingface_hub-compatible", PEFTCPP_VERSION),
      "Accept-Encoding: identity"};
  if (!settings.token.empty() && url_scheme(url) == url_scheme(settings.endpoint) &&
      url_authority(url) == url_authority(settings.endpoint)) {
    headers.push_back("Authorization: Bearer " + settings.token);
  }
  return headers;
}

HttpResponse with_retries(const HubSettings& settings, const RequestSubject& subject,
                          const std::string& url,
                          const std::function<bool(HttpResponse&, TransportFailure&)>& attempt,
                          bool give_up_when_unreachable) {
  double delay = settings.retry_delay;
  for (int n = 0;; ++n) {
    HttpResponse response;
    TransportFailure failure;
    const bool ok = attempt(response, failure);
    const bool last =
        n >= settings.max_retries || (!ok && failure.unreachable && give_up_when_unreachable);
    if (ok && (!is_transient_status(response.status) || last)) return response;
    if (!ok && last) {
      throw HubError(
          HubErrorKind::Network, subject.describe(),
          fmt::format("cannot reach {}: {} (after {} attempts)", url, failure.what, n + 1));
    }
    std::this_thread::sleep_for(std::chrono::duration<double>(delay));
    delay = std::min(delay * 2, 8.0);
  }
}

namespace {

HttpResponse follow_relative(const HubSettings& settings, const std::string& method,
                             const std::string& url, const RequestSubject& subject) {
  std::string current = url;
  for (int hop = 0;; ++hop) {
    const std::string target = current;
    HttpResponse response = with_retries(
        settings, subject, target,
        [&](auto& r, auto& f) {
          HttpRequest request;
          request.method = method;
          request.url = target;
          request.headers = request_headers(settings, target);
          request.timeout = settings.etag_timeout;
          return http_request(request, r, f);
        },
        /*give_up_when_unreachable=*/true);
    const std::string location = response.headers.get("location");
    if (!is_redirect(response.status) || location.empty() || !is_relative_location(location) ||
        hop >= kMaxRedirects)
      return response;
    current = resolve_url(current, location);
    if (current.empty()) throw bad_redirect(subject, location);
  }
}

}  // namespace

HttpResponse head_file(const HubSettings& settings, const std::string& url,
                       const RequestSubject& subject) {
  return follow_relative(settings, "HEAD", url, subject);
}

HttpResponse get_api(const HubSettings& settings, const std::string& url,
                     const RequestSubject& subject) {
  return follow_relative(settings, "GET", url, subject);
}

bool get_following_redirects(const HubSettings& settings, const std::string& url,
                             const std::vector<std::string>& extra_headers,
                             const std::function<bool(std::string_view)>& on_body,
                             HttpResponse& response, TransportFailure& failure,
                             const RequestSubject& subject) {
  std::string current = url;
  for (int hop = 0;; ++hop) {
    const std::string scheme = url_scheme(current);
    if (scheme != "http" && scheme != "https") throw bad_redirect(subject, current);
    HttpRequest request;
    request.url = current;
    request.headers = request_headers(settings, current);
    request.headers.insert(request.headers.end(), extra_headers.begin(), extra_headers.end());
    request.timeout = settings.download_timeout;
    request.on_body = on_body;
    if (!http_request(request, response, failure)) return false;
    const std::string location = response.headers.get("location");
    if (!is_redirect(response.status) || location.empty()) return true;
    if (hop >= kMaxRedirects) {
      throw HubError(HubErrorKind::Protocol, subject.describe(),
                     fmt::format("more than {} redirects from {}", kMaxRedirects, url));
    }
    const std::string next = resolve_url(current, location);
    if (next.empty()) throw bad_redirect(subject, location);
    current = next;
  }
}

}  // namespace peft::hub
