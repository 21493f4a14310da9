// Downloading one blob into blobs/<etag>: through <etag>.incomplete, resumed with a Range
// request when a previous attempt left bytes, retried on transient failures, checked
// against the announced size and (for sha256 etags) the sha256 of its bytes before the
// rename, so that a corrupt or partial download never enters the cache.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

#include "hub/hub_errors.hpp"
#include "peft/hub_download.hpp"

namespace peft::hub {

struct BlobRequest {
  std::string url;   // where the bytes are (the HEAD's redirect target, or the resolve URL)
  std::string etag;  // the blob's name
  std::optional<std::uint64_t> size;
  std::filesystem::path blob;  // blobs/<etag>
};

// The caller holds the blob's lock.
void download_blob(const HubSettings& settings, const BlobRequest& blob,
                   const RequestSubject& subject, const HubProgressCallback& progress);

}  // namespace peft::hub
