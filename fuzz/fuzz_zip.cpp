// libFuzzer target: the ZIP reader (every entry's data), then load_torch_bytes on the same bytes.
#include <cstddef>
#include <cstdint>

#include "entry_points.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  peft::fuzz::zip_input({data, size});
  return 0;
}
