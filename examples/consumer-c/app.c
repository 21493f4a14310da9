/* Lists an adapter's tensors and validates it through the C API:
 *   cc -std=c11 app.c $(pkg-config --cflags --libs peftcpp) -o app         (shared library)
 *   cc -std=c11 app.c $(pkg-config --static --cflags --libs peftcpp) -o app (static library)
 *   ./app ADAPTER_FOLDER_OR_WEIGHTS_FILE */
#include <peftcpp.h>
#include <stdio.h>

int main(int argc, char** argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s ADAPTER\n", argv[0]);
    return 2;
  }
  peftcpp_adapter* adapter = NULL;
  if (peftcpp_adapter_open(argv[1], &adapter) != PEFTCPP_OK) {
    fprintf(stderr, "error %d (%s): %s\n", peftcpp_last_status(),
            peftcpp_status_name(peftcpp_last_status()), peftcpp_last_error());
    return 1;
  }
  size_t count = 0;
  peftcpp_adapter_tensor_count(adapter, &count);
  printf("peftcpp %s (ABI %d): %zu tensors\n", peftcpp_version(), peftcpp_abi_version(), count);
  for (size_t i = 0; i < count; ++i) {
    peftcpp_tensor t;
    if (peftcpp_adapter_tensor(adapter, i, &t) != PEFTCPP_OK) return 1;
    printf("  %s %s [", t.name, t.dtype);
    for (size_t d = 0; d < t.rank; ++d)
      printf(d ? ", %llu" : "%llu", (unsigned long long)t.shape[d]);
    printf("] %llu bytes\n", (unsigned long long)t.nbytes);
  }
  peftcpp_adapter_close(&adapter);
  peftcpp_adapter_close(&adapter); /* a second close is a no-op */

  peftcpp_problems* problems = NULL;
  if (peftcpp_validate(argv[1], &problems) != PEFTCPP_OK) {
    fprintf(stderr, "error: %s\n", peftcpp_last_error());
    return 1;
  }
  peftcpp_problems_count(problems, &count);
  for (size_t i = 0; i < count; ++i) {
    peftcpp_problem p;
    peftcpp_problem_get(problems, i, &p);
    printf("%s [%s] %s\n", p.where, p.code, p.message);
  }
  printf("%zu problem(s)\n", count);
  peftcpp_problems_free(&problems);
  return 0;
}
