// Loads an adapter folder with the C++ API, prints its type, rank and tensors, then
// validates it: peftcpp_consumer ADAPTER_FOLDER
#include <peft/adapter_io.hpp>
#include <peft/error.hpp>
#include <peft/validate.hpp>
#include <peft/version.hpp>

#include <cstdio>
#include <exception>
#include <string>

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s ADAPTER_FOLDER\n", argv[0]);
    return 2;
  }
  try {
    const peft::PeftConfig config = peft::load_adapter_config(argv[1]);
    const peft::StateDict weights = peft::load_peft_weights(argv[1]);
    std::printf("peftcpp %s: %s, %zu tensors, %llu bytes\n", peft::kVersion,
                config.json().value("peft_type", "?").c_str(), weights.size(),
                static_cast<unsigned long long>(weights.total_bytes()));
    for (const auto& [name, tensor] : weights) {
      std::printf("  %s %s %s\n", name.c_str(),
                  std::string(peft::dtype_name(tensor.dtype())).c_str(),
                  peft::shape_to_string(tensor.shape()).c_str());
    }
    const auto problems = peft::validate_adapter_folder(argv[1]);
    std::printf("%zu problem(s)\n", problems.size());
    return 0;
  } catch (const peft::Error& e) {
    std::fprintf(stderr, "error %d (%s): %s\n", static_cast<int>(e.code()),
                 std::string(peft::to_string(e.code())).c_str(), e.what());
    return 1;
  }
}
