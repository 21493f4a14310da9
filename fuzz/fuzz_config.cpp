// libFuzzer target: PeftConfig::from_json_text, every accessor, validate() and a round trip.
#include <cstddef>
#include <cstdint>

#include "entry_points.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  peft::fuzz::config_input({data, size});
  return 0;
}
