// Methods whose merge rule is not written yet: they refuse clearly.
#include <fmt/format.h>

#include "merge/plan.hpp"
#include "peft/error.hpp"

namespace peft::merge {
namespace {
[[noreturn]] void pending(const ModuleInput& in) {
  throw Error(ErrorCode::Unsupported, in.config().source(),
              fmt::format("{}: merging this method is not implemented yet", in.origin));
}
}  // namespace

void build_waveft(const ModuleInput& in, std::vector<Op>&) {
  pending(in);
}

}  // namespace peft::merge
