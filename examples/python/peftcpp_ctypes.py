#!/usr/bin/env python3
"""The peftcpp C API from Python through ctypes (standard library only).

    peftcpp_ctypes.py --lib /prefix/lib/libpeftcpp.so.0 ADAPTER [--json]

Lists the tensors of an adapter folder or weights file: name, dtype, shape, byte size and the
first bytes of each (read zero-copy from the mapping the library holds open).
"""
import argparse
import ctypes
import json
import sys


class Tensor(ctypes.Structure):
    _fields_ = [
        ("name", ctypes.c_char_p),
        ("dtype", ctypes.c_char_p),
        ("rank", ctypes.c_size_t),
        ("shape", ctypes.POINTER(ctypes.c_uint64)),
        ("data", ctypes.c_void_p),
        ("nbytes", ctypes.c_uint64),
    ]


class PeftcppError(Exception):
    def __init__(self, status, message):
        super().__init__(f"{message} (status {status})")
        self.status = status


class Library:
    def __init__(self, path):
        lib = ctypes.CDLL(path)
        lib.peftcpp_version.restype = ctypes.c_char_p
        lib.peftcpp_last_error.restype = ctypes.c_char_p
        lib.peftcpp_adapter_open.argtypes = [ctypes.c_char_p, ctypes.POINTER(ctypes.c_void_p)]
        lib.peftcpp_adapter_close.argtypes = [ctypes.POINTER(ctypes.c_void_p)]
        lib.peftcpp_adapter_close.restype = None
        lib.peftcpp_adapter_tensor_count.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_size_t)]
        lib.peftcpp_adapter_tensor.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.POINTER(Tensor)]
        lib.peftcpp_adapter_config_json.argtypes = [
            ctypes.c_void_p, ctypes.POINTER(ctypes.c_char_p), ctypes.POINTER(ctypes.c_size_t)]
        self.lib = lib

    def check(self, status):
        if status != 0:
            raise PeftcppError(status, self.lib.peftcpp_last_error().decode("utf-8", "replace"))

    def version(self):
        return self.lib.peftcpp_version().decode()


class Adapter:
    """An open adapter; its tensors' bytes are valid until close()."""

    def __init__(self, library, path):
        self.library = library
        self.handle = ctypes.c_void_p()
        library.check(library.lib.peftcpp_adapter_open(path.encode(), ctypes.byref(self.handle)))

    def close(self):
        self.library.lib.peftcpp_adapter_close(ctypes.byref(self.handle))  # sets it to NULL

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def tensors(self):
        lib = self.library.lib
        count = ctypes.c_size_t()
        self.library.check(lib.peftcpp_adapter_tensor_count(self.handle, ctypes.byref(count)))
        for i in range(count.value):
            t = Tensor()
            self.library.check(lib.peftcpp_adapter_tensor(self.handle, i, ctypes.byref(t)))
            yield {
                "name": t.name.decode("utf-8", "replace"),
                "dtype": t.dtype.decode(),
                "shape": [t.shape[d] for d in range(t.rank)],
                "nbytes": t.nbytes,
                "head": ctypes.string_at(t.data, min(t.nbytes, 8)).hex() if t.nbytes else "",
            }

    def config(self):
        text = ctypes.c_char_p()
        self.library.check(self.library.lib.peftcpp_adapter_config_json(
            self.handle, ctypes.byref(text), None))
        return json.loads(text.value.decode())


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lib", required=True, help="path of libpeftcpp.so")
    parser.add_argument("adapter")
    parser.add_argument("--json", action="store_true", help="print the tensors as JSON")
    args = parser.parse_args()
    library = Library(args.lib)
    try:
        with Adapter(library, args.adapter) as adapter:
            tensors = list(adapter.tensors())
    except PeftcppError as e:
        print(f"peftcpp_ctypes: error: {e}", file=sys.stderr)
        return 1
    if args.json:
        json.dump(tensors, sys.stdout, indent=1)
        print()
    else:
        print(f"peftcpp {library.version()}: {len(tensors)} tensors")
        for t in tensors:
            print(f"  {t['name']} {t['dtype']} {t['shape']} {t['nbytes']} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
