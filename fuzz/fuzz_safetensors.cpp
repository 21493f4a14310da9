// libFuzzer target: SafetensorsFile::from_bytes, every tensor read, and a write/read round trip.
#include <cstddef>
#include <cstdint>

#include "entry_points.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  peft::fuzz::safetensors_input({data, size});
  return 0;
}
