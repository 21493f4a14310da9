// libFuzzer target: the Hub's answers as the downloader reads them (headers, the revision
// JSON, Content-Range, redirects, file names and patterns).
#include <cstddef>
#include <cstdint>

#include "entry_points.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  peft::fuzz::hub_protocol_input({data, size});
  return 0;
}
