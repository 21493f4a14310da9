// libFuzzer target: the GGUF reader, then a metadata write/read round trip.
#include <cstddef>
#include <cstdint>

#include "entry_points.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  peft::fuzz::gguf_input({data, size});
  return 0;
}
