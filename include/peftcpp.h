/* peftcpp.h — the C API of peftcpp (C11; usable from C++, and from Python through ctypes).
 *
 * Everything is prefixed peftcpp_ / PEFTCPP_. docs/library.md is the guide; the rules:
 *
 * Status. Every function that can fail returns an int status: PEFTCPP_OK (0) on success,
 *   else the number of the peft::ErrorCode that the C++ API throws for the same input
 *   (include/peft/error.hpp and docs/cli.md list them; the hundreds digit is the category:
 *   1 io, 2 usage, 3 format, 4 tensor, 5 config, 6 model, 7 unsupported), or one of
 *   PEFTCPP_STATUS_OUT_OF_MEMORY / PEFTCPP_STATUS_INTERNAL. A NULL where a pointer is
 *   required is PEFTCPP_STATUS_INVALID_ARGUMENT (201), never a crash.
 * Messages. After a failure, peftcpp_last_error() returns the message on the calling thread,
 *   the same "<file>: <rule>: <detail>" line the C++ exception carries. It stays valid until
 *   the next failing peftcpp_ call on that thread. Successful calls leave it unchanged.
 * Exceptions. No C++ exception leaves a peftcpp_ function.
 * Ownership. Handles (peftcpp_adapter, peftcpp_problems) are opaque, created by one open/
 *   validate function and released by its close/free function, which takes the address of
 *   the handle and sets it to NULL: closing twice through the same variable, or closing
 *   NULL, is a no-op. Using a handle after it was closed (through another copy of the
 *   pointer) is undefined behaviour. Strings and arrays returned by a handle belong to it
 *   and stay valid until it is closed.
 * Threads. Every function may be called from any thread. An open handle is immutable: any
 *   number of threads may read it at once; closing it must not race with other calls on it.
 */
#ifndef PEFTCPP_H
#define PEFTCPP_H

#include <stddef.h>
#include <stdint.h>

#if defined(__GNUC__)
#define PEFTCPP_API __attribute__((visibility("default")))
#else
#define PEFTCPP_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* Status codes. Every other non-zero value is a peft::ErrorCode number. */
enum {
  PEFTCPP_OK = 0,
  PEFTCPP_STATUS_IO = 101,
  PEFTCPP_STATUS_NOT_FOUND = 102,
  PEFTCPP_STATUS_INVALID_ARGUMENT = 201,
  PEFTCPP_STATUS_INVALID_JSON = 501,
  PEFTCPP_STATUS_UNSUPPORTED = 701,
  PEFTCPP_STATUS_OUT_OF_MEMORY = 901, /* an allocation failed */
  PEFTCPP_STATUS_INTERNAL = 902       /* an unexpected exception: a bug, please report it */
};

/* The library's version, "MAJOR.MINOR.PATCH" (static storage). */
PEFTCPP_API const char* peftcpp_version(void);
/* The ABI version: the number in the SONAME libpeftcpp.so.N. */
PEFTCPP_API int peftcpp_abi_version(void);

/* The message of the last failure on this thread ("" when there was none). Valid until the
 * next failing peftcpp_ call on this thread. */
PEFTCPP_API const char* peftcpp_last_error(void);
/* The status of the last failure on this thread (PEFTCPP_OK when there was none). */
PEFTCPP_API int peftcpp_last_status(void);
/* The stable snake_case name of a status ("ok", "not_found", "invalid_header_json",
 * "out_of_memory", "internal"; "unknown" for a number that is no status). Static storage. */
PEFTCPP_API const char* peftcpp_status_name(int status);

/* ---- Adapters and weight files ---------------------------------------------------------- */

typedef struct peftcpp_adapter peftcpp_adapter;

/* One tensor: for peftcpp_adapter_tensor() a zero-copy view into the open adapter (valid
 * until it is closed); for peftcpp_save_adapter() the caller's description of one tensor. */
typedef struct peftcpp_tensor {
  const char* name;      /* NUL-terminated key, e.g. "base_model.model.q_proj.lora_A.weight" */
  const char* dtype;     /* safetensors name: "F32", "BF16", "I64", ... */
  size_t rank;           /* number of dimensions (0 for a scalar) */
  const uint64_t* shape; /* rank dimensions */
  const void* data;      /* little-endian, C-contiguous bytes; possibly unaligned; may be NULL
                            when nbytes is 0 */
  uint64_t nbytes;       /* byte size (dtype size x elements) */
} peftcpp_tensor;

/* Opens an adapter: `path` is an adapter folder (adapter_config.json plus
 * adapter_model.safetensors or .bin), a Hugging Face Hub id found in the local cache
 * ("org/name[/sub][@rev]"), or a single weights file (safetensors or torch.save, recognised
 * by content; it has no config). Weights are memory-mapped, not copied. On success *out is a
 * new handle to close with peftcpp_adapter_close(); on failure *out is NULL.
 * Errors: NOT_FOUND (no such path, no weights or no config in the folder), format errors
 * (3xx) for broken weights, config errors (5xx) for a broken adapter_config.json. */
PEFTCPP_API int peftcpp_adapter_open(const char* path, peftcpp_adapter** out);

/* Closes *adapter and sets it to NULL; every pointer obtained from it becomes invalid.
 * adapter == NULL or *adapter == NULL: nothing happens. */
PEFTCPP_API void peftcpp_adapter_close(peftcpp_adapter** adapter);

/* The adapter's adapter_config.json as JSON text (sorted keys, indent 2, as PEFT writes it),
 * NUL-terminated; *length (if length is not NULL) gets its length in bytes. Valid until
 * close. Errors: NOT_FOUND when the adapter was opened from a single weights file. */
PEFTCPP_API int peftcpp_adapter_config_json(const peftcpp_adapter* adapter, const char** json,
                                            size_t* length);

/* The number of tensors of the adapter. */
PEFTCPP_API int peftcpp_adapter_tensor_count(const peftcpp_adapter* adapter, size_t* count);

/* Fills *tensor with the tensor at `index` (0 <= index < count; the file's order). Every
 * pointer in it stays valid until the adapter is closed. Errors: INVALID_ARGUMENT for an
 * index out of range. */
PEFTCPP_API int peftcpp_adapter_tensor(const peftcpp_adapter* adapter, size_t index,
                                       peftcpp_tensor* tensor);

/* ---- Saving ----------------------------------------------------------------------------- */

enum {
  PEFTCPP_SAVE_OVERWRITE = 1, /* replace an adapter already in the folder */
  PEFTCPP_SAVE_BIN = 2,       /* adapter_model.bin (torch.save) instead of .safetensors */
  PEFTCPP_SAVE_DURABLE = 4    /* fsync the files and the folder */
};

/* Writes an adapter folder PEFT loads: `folder`/adapter_config.json from `config_json` (the
 * text of an adapter_config.json) and adapter_model.safetensors (or .bin) from `count`
 * tensors with saved keys (as peftcpp_adapter_tensor returns them; a tensor of an open
 * adapter may be passed as it is). The bytes are read during the call only. Before anything
 * is written, what `peftcpp validate` reports as errors is refused with INVALID_ARGUMENT
 * listing the problems (no tensor, ranks contradicting the config, untargeted modules...);
 * nothing is left behind on failure. `flags` is a combination of PEFTCPP_SAVE_*.
 * Errors: INVALID_ARGUMENT (NULL, unknown flag bits, unknown dtype, a byte count that does
 * not match dtype and shape, an existing adapter without PEFTCPP_SAVE_OVERWRITE), config
 * errors (5xx) for the JSON, IO. */
PEFTCPP_API int peftcpp_save_adapter(const char* folder, const char* config_json,
                                     const peftcpp_tensor* tensors, size_t count, unsigned flags);

/* ---- Validation ------------------------------------------------------------------------- */

typedef struct peftcpp_problems peftcpp_problems;

enum { PEFTCPP_SEVERITY_ERROR = 0, PEFTCPP_SEVERITY_WARNING = 1 };

/* One problem `peftcpp validate` reports. The strings belong to the problem list. */
typedef struct peftcpp_problem {
  const char* code;    /* stable identifier: "empty_weights", "rank_mismatch"... (docs/cli.md) */
  const char* where;   /* the file (and key) concerned */
  const char* message; /* what is wrong */
  const char* hint;    /* what to do ("" when there is no hint) */
  int severity;        /* PEFTCPP_SEVERITY_ERROR or PEFTCPP_SEVERITY_WARNING */
} peftcpp_problem;

/* Validates an adapter folder (its root and adapter sub folders) or a single file
 * (adapter_config.json or a weights file, by content), without the base model. A problem
 * found is not a failure: the status is PEFTCPP_OK and *out lists the problems (possibly
 * none); free it with peftcpp_problems_free(). Errors: NOT_FOUND (no such path), a file that
 * is neither a config nor weights (e.g. GGUF: UNSUPPORTED_FORMAT, 355). */
PEFTCPP_API int peftcpp_validate(const char* path, peftcpp_problems** out);

/* The number of problems in the list. */
PEFTCPP_API int peftcpp_problems_count(const peftcpp_problems* problems, size_t* count);

/* Fills *problem with the problem at `index`. Errors: INVALID_ARGUMENT out of range. */
PEFTCPP_API int peftcpp_problem_get(const peftcpp_problems* problems, size_t index,
                                    peftcpp_problem* problem);

/* Frees *problems and sets it to NULL; NULL or *problems == NULL: nothing happens. */
PEFTCPP_API void peftcpp_problems_free(peftcpp_problems** problems);

/* ---- Merging ---------------------------------------------------------------------------- */

enum {
  PEFTCPP_MERGE_FORCE = 1,      /* write into an existing non-empty output folder */
  PEFTCPP_MERGE_SAFE_MERGE = 2, /* PEFT's safe_merge */
  PEFTCPP_MERGE_NO_AUTOCAST = 4 /* the adapter was loaded with autocast_adapter_dtype=False */
};

/* What peftcpp_merge wrote. */
typedef struct peftcpp_merge_result {
  uint64_t tensors; /* tensors written */
  uint64_t changed; /* of those, tensors the adapters changed */
  uint64_t files;   /* weight files written (shards and index) */
  uint64_t bytes;   /* tensor bytes written */
} peftcpp_merge_result;

/* PEFT's merge_and_unload() on a checkpoint, as `peftcpp merge` does: merges the adapters
 * `adapters[0..count)` (folders or Hub ids in the cache; count >= 1), in order, into the
 * base checkpoint `base` (a .safetensors/.bin file, a folder with model.safetensors[.index.
 * json] or pytorch_model.bin[.index.json], or a Hub id in the cache), and writes the merged
 * checkpoint to the folder `out_dir` (the base's shard boundaries kept, its other files
 * copied), shard by shard with bounded memory. `dtype` (may be NULL) casts floating tensors
 * first ("bf16", "float16", "f32"...). `threads` 0 uses every core. `flags` combines
 * PEFTCPP_MERGE_*. `result` may be NULL. Not to be called concurrently with the same
 * `out_dir`. Errors: NOT_FOUND, INVALID_ARGUMENT (non-empty out_dir without FORCE, unknown
 * dtype or flags), MISSING_KEY (601: the adapter changes tensors the base lacks), SIZE_
 * MISMATCH (602), UNSUPPORTED (701: a method PEFT cannot merge). */
PEFTCPP_API int peftcpp_merge(const char* base, const char* const* adapters, size_t count,
                              const char* out_dir, const char* dtype, unsigned threads,
                              unsigned flags, peftcpp_merge_result* result);

#ifdef __cplusplus
}
#endif

#endif /* PEFTCPP_H */
