#include "peft/signals.hpp"

#include <signal.h>
#include <unistd.h>

#include <cstring>

#include "formats/mapped_file.hpp"

namespace peft {
namespace {

volatile sig_atomic_t g_exit_code = 1;

void write_text(const char* text) {
  // write(2) is async-signal-safe; stdio is not.
  const std::size_t n = std::strlen(text);
  if (::write(STDERR_FILENO, text, n) < 0) return;
}

void on_sigbus(int signal, siginfo_t* info, void* /*context*/) {
  const char* path = formats::mapped_file_containing(info->si_addr);
  if (path == nullptr) {
    // Not ours: the default action (terminate with SIGBUS).
    ::signal(signal, SIG_DFL);
    ::raise(signal);
    return;
  }
  write_text("peftcpp: error: ");
  write_text(path);
  write_text(
      ": io: the file was truncated or replaced in place while it was being read (SIGBUS); "
      "run again once no other program is writing it, or read without mmap\n");
  ::_exit(g_exit_code);
}

}  // namespace

void install_sigbus_handler(int exit_code) {
  g_exit_code = exit_code;
  struct sigaction action {};
  action.sa_sigaction = on_sigbus;
  action.sa_flags = SA_SIGINFO;
  sigemptyset(&action.sa_mask);
  ::sigaction(SIGBUS, &action, nullptr);
}

}  // namespace peft
