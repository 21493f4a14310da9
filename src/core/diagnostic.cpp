#include "peft/diagnostic.hpp"

#include <utility>

namespace peft {

std::string to_text(const Diagnostic& diagnostic) {
  std::string out;
  for (const std::string* part : {&diagnostic.source, &diagnostic.code, &diagnostic.message}) {
    if (part->empty()) continue;
    if (!out.empty()) out += ": ";
    out += *part;
  }
  return out;
}

void report(Diagnostics* sink, Diagnostic diagnostic) {
  if (sink != nullptr) sink->push_back(std::move(diagnostic));
}

void report_warning(Diagnostics* sink, std::string code, std::string message, std::string source) {
  report(sink,
         Diagnostic{std::move(code), Severity::Warning, std::move(source), std::move(message), {}});
}

}  // namespace peft
