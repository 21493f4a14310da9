// libFuzzer target: a whole adapter folder (config + weights, see entry_points.hpp for
// the input layout) through load_peft_weights, inspect_adapters and validate_adapter_folder.
#include <cstddef>
#include <cstdint>

#include "entry_points.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  peft::fuzz::run_target("adapter_folder", {data, size});
  return 0;
}
