// The Hub's HTTP error answers turned into HubErrors that say what to do, as
// huggingface_hub's hf_raise_for_status classifies them (X-Error-Code first).
#pragma once

#include <string>

#include "hub/http_client.hpp"

namespace peft::hub {

// What a request was about, for messages: "org/name@rev:file".
struct RequestSubject {
  std::string repo_id, revision, file;  // file "" for revision requests
  std::string endpoint;
  bool sent_token = false;
  std::string describe() const;
};

// True for a status worth retrying: 5xx and 429.
bool is_transient_status(long status);

// Throws the HubError that a non-2xx (and non-redirect) `response` means.
[[noreturn]] void raise_for_status(const HttpResponse& response, const RequestSubject& subject);

}  // namespace peft::hub
