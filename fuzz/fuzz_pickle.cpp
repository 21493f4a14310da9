// libFuzzer target: the restricted unpickler, then load_torch_bytes (the legacy format).
#include <cstddef>
#include <cstdint>

#include "entry_points.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  peft::fuzz::pickle_input({data, size});
  return 0;
}
