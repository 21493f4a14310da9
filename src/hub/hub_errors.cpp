#include "hub/hub_errors.hpp"

#include <array>

#include <fmt/format.h>

#include "peft/hub_download.hpp"

namespace peft {

namespace {

constexpr std::array kKindNames = {"repo_not_found", "revision_not_found", "entry_not_found",
                                   "gated_repo",     "unauthorized",       "offline",
                                   "network",        "integrity",          "protocol"};

ErrorCode code_of(HubErrorKind kind) {
  switch (kind) {
    case HubErrorKind::RepoNotFound:
    case HubErrorKind::RevisionNotFound:
    case HubErrorKind::EntryNotFound:
    case HubErrorKind::Offline:
      return ErrorCode::NotFound;
    default:
      return ErrorCode::Io;
  }
}

}  // namespace

std::string_view to_string(HubErrorKind kind) noexcept {
  const auto i = static_cast<std::size_t>(kind);
  return i < kKindNames.size() ? kKindNames[i] : "unknown";
}

HubError::HubError(HubErrorKind kind, std::string source, std::string detail)
    : Error(code_of(kind), std::move(source), fmt::format("{}: {}", to_string(kind), detail)),
      kind_(kind) {}

namespace hub {

std::string RequestSubject::describe() const {
  std::string out = fmt::format("{}@{}", repo_id, revision);
  if (!file.empty()) out += ":" + file;
  return out;
}

bool is_transient_status(long status) {
  return status >= 500 || status == 429;
}

namespace {

std::string server_says(const HttpResponse& response) {
  const std::string message = response.headers.get("x-error-message");
  return message.empty() ? std::string() : fmt::format(" (the Hub says: {})", message);
}

}  // namespace

void raise_for_status(const HttpResponse& response, const RequestSubject& subject) {
  const std::string code = response.headers.get("x-error-code");
  const std::string says = server_says(response);
  const std::string source = subject.describe();
  const std::string login = subject.sent_token
                                ? "check that your token's account can see it"
                                : "if it is private, log in (set HF_TOKEN or write $HF_HOME/token)";
  if (code == "RevisionNotFound") {
    throw HubError(HubErrorKind::RevisionNotFound, source,
                   fmt::format("revision '{}' does not exist in '{}': check the branch, tag or "
                               "commit{}",
                               subject.revision, subject.repo_id, says));
  }
  if (code == "EntryNotFound") {
    throw HubError(HubErrorKind::EntryNotFound, source,
                   fmt::format("'{}' does not exist in '{}' at revision '{}'{}", subject.file,
                               subject.repo_id, subject.revision, says));
  }
  if (code == "GatedRepo") {
    throw HubError(
        HubErrorKind::GatedRepo, source,
        fmt::format("'{}' is gated: request access at {}/{} and {}{}", subject.repo_id,
                    subject.endpoint, subject.repo_id,
                    subject.sent_token ? "wait until it is granted to your token's account"
                                       : "log in with a token of an account that has it "
                                         "(HF_TOKEN)",
                    says));
  }
  if (code == "RepoNotFound" || (response.status == 401 && code.empty() && !subject.sent_token)) {
    throw HubError(HubErrorKind::RepoNotFound, source,
                   fmt::format("repository '{}' not found: check the name; {}{}", subject.repo_id,
                               login, says));
  }
  if (response.status == 401 || response.status == 403) {
    throw HubError(HubErrorKind::Unauthorized, source,
                   fmt::format("the Hub refused the token (HTTP {}): check HF_TOKEN or the token "
                               "file and its permissions{}",
                               response.status, says));
  }
  if (response.status == 404) {
    throw HubError(HubErrorKind::EntryNotFound, source,
                   fmt::format("not found (HTTP 404) at {} revision '{}'{}", subject.repo_id,
                               subject.revision, says));
  }
  throw HubError(
      is_transient_status(response.status) ? HubErrorKind::Network : HubErrorKind::Protocol, source,
      fmt::format("the Hub answered HTTP {}{}", response.status, says));
}

}  // namespace hub
}  // namespace peft
