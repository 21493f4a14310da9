// peft/signals.hpp — a weights file truncated while it is mapped.
//
// Weights are read zero-copy through a shared memory mapping by default. If another
// program truncates (or replaces in place) a file while it is mapped, the next touch of
// a page past the file's new end raises SIGBUS, and by default the process dies without
// a word. Two ways out:
//   - read without mapping (SafetensorsReadOptions / TorchReadOptions / LoadWeightsOptions
//     `use_mmap = false`): the bytes are copied into memory once and nothing can vanish;
//   - in a command-line program, install_sigbus_handler(): a SIGBUS inside a mapping made
//     by peftcpp prints one line naming the file and exits (the data being read is gone,
//     so there is nothing to return to). Any other SIGBUS keeps its default action.
// Writers in peftcpp never truncate in place: they write a temporary file and rename it
// over the old one, so readers holding the old file keep its bytes.
#pragma once

#include "peft/export.hpp"

namespace peft {

// Installs the handler described above; `exit_code` is the status the process exits with.
PEFT_API void install_sigbus_handler(int exit_code = 1);

}  // namespace peft
