#include "merge/weighted_draws.hpp"

#include <variant>

#include <fmt/format.h>

#include "peft/error.hpp"

namespace peft::merge {
namespace {

enum class Init : std::uint8_t { None, KaimingAgain, Gaussian };

Init init_of(const PeftConfig& config) {
  const auto init = config.init_lora_weights();
  if (const bool* flag = std::get_if<bool>(&init)) {
    return *flag ? Init::KaimingAgain : Init::None;
  }
  const auto& name = std::get<std::string>(init);
  if (name == "gaussian") return Init::Gaussian;
  throw Error(ErrorCode::Unsupported, config.source(),
              fmt::format("add_weighted_adapter: DARE masks after init_lora_weights='{}' are not "
                          "reproduced (PEFT runs that initialisation on the combined adapter "
                          "first); use sources saved with init_lora_weights true, false or "
                          "\"gaussian\"",
                          name));
}

void skip(numeric::TorchGenerator& generator, std::uint64_t outputs) {
  for (std::uint64_t i = 0; i < outputs; ++i) generator.random();
}

// tensor.normal_() on a float32 tensor of n elements. From 16 elements torch fills it 16 at
// a time from one output each and redraws the last 16 when n is not a multiple of 16.
// Below 16 it draws pairs of doubles (two 64-bit values, four outputs, per pair) and keeps
// the second value of a pair for the next such call; `cached` carries that value.
void skip_normal(numeric::TorchGenerator& generator, std::uint64_t n, bool& cached) {
  if (n >= 16) {
    skip(generator, n + (n % 16 == 0 ? 0 : 16));
    return;
  }
  for (std::uint64_t i = 0; i < n; ++i) {
    if (cached) {
      cached = false;
    } else {
      skip(generator, 4);
      cached = true;
    }
  }
}

}  // namespace

void skip_creation_draws(numeric::TorchGenerator& generator, const PeftConfig& first_source,
                         std::span<const CreatedModule> modules) {
  const Init init = init_of(first_source);
  bool cached_normal = false;  // torch.manual_seed clears it
  for (const auto& m : modules) {
    if (m.embedding) {
      throw Error(ErrorCode::Unsupported, first_source.source(),
                  fmt::format("add_weighted_adapter: DARE masks are not reproduced for the "
                              "embedding '{}' (PEFT draws its new factors with torch.randn)",
                              m.path));
    }
    const std::uint64_t n_a = m.rank * m.in_features;
    // lora_A and lora_B are built as bias-free nn.Linear/nn.Conv layers: their default
    // kaiming-uniform init takes one output per element.
    skip(generator, n_a + m.out_features * m.rank);
    if (init == Init::KaimingAgain) skip(generator, n_a);  // lora_A again; lora_B zeroed
    if (init == Init::Gaussian) skip_normal(generator, n_a, cached_normal);
  }
}

}  // namespace peft::merge
