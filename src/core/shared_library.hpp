// Libraries loaded with dlopen on first use instead of linked: BLAS, LAPACKE and FFTW for
// merging, libcurl and libcrypto for downloading. Linked, they were mapped and relocated by
// every program and command (libcurl alone pulls in some twenty libraries), although most
// never merge or download (docs/library.md §7).
#pragma once

#include <string>

namespace peft {

// What to load and what to tell a user who lacks it.
struct LibrarySpec {
  const char* env;      // a variable that overrides the file name (a path or a name)
  const char* soname;   // the file name loaded by default
  const char* package;  // the Debian package that installs it
  const char* purpose;  // what needs it, for messages: "merging (BLAS matrix products)"
};

// A library mapped until the process exits (functions taken from it may be in use on any
// thread; OpenBLAS in particular cannot be unloaded with its thread pool running).
class LoadedLibrary {
 public:
  // Throws peft::Error (Unsupported) naming the file, dlopen's reason, the package and the
  // variable when it cannot be loaded.
  explicit LoadedLibrary(const LibrarySpec& spec);

  // Sets `into` to the function `name`; throws like the constructor when it is missing and
  // `required`, else leaves it null.
  template <class Function>
  void bind(const char* name, Function& into, bool required = true) const {
    // POSIX guarantees that a function's address from dlsym converts to a function pointer.
    into = reinterpret_cast<Function>(symbol(name, required));
  }

 private:
  void* symbol(const char* name, bool required) const;

  const LibrarySpec& spec_;
  std::string file_;
  void* handle_ = nullptr;
};

}  // namespace peft
