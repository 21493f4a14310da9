#!/usr/bin/env python3
"""Checks that every layer of peftcpp includes only layers below it (run by ctest).

The layers, lowest first, are the folders of src/ (and cli/ on top). A private header is
included by its layer folder's name ("formats/zip.hpp"); a public header (include/peft/)
belongs to the layer that implements it (PUBLIC below). Numeric libraries (BLAS, LAPACK,
FFTW) may be included by the merge layer only, so that reading and writing never link them.
Prints every violation as "file:line: what" and exits 1 when there is one.
"""
import pathlib
import re
import sys

LAYERS = ["core", "formats", "hub", "pycompat", "config", "methods", "engine", "merge",
          "checkpoint", "tools", "capi", "cli"]

# include/peft/<name>.hpp -> the layer whose sources implement it.
PUBLIC = {
    "dtype": "core", "error": "core", "diagnostic": "core", "tensor": "core", "state_dict": "core",
    "version": "core", "export": "core", "peft": "cli",  # the umbrella header includes everything
    "safetensors": "formats", "torch_file": "formats", "file_format": "formats",
    "signals": "formats",
    "hub_cache": "hub", "hub_download": "hub",
    "peft_type": "config", "config": "config", "module_match": "config", "peft_model": "config",
    # The option and result types of the state-dict functions are the vocabulary of the
    # methods' rules; the functions themselves are the engine's.
    "peft_state_dict": "methods",
    "adapter_io": "engine", "injection": "engine",
    "merge": "merge",
    "checkpoint": "checkpoint",
    "inspect": "tools", "validate": "tools", "convert": "tools", "gguf_export": "tools", "gguf": "tools",
}

NUMERIC_HEADERS = {"cblas.h", "lapacke.h", "fftw3.h", "openblas_config.h"}
NUMERIC_LAYERS = {"merge"}

INCLUDE = re.compile(r'^\s*#\s*include\s*([<"])([^>"]+)[>"]')


def layer_of_include(path: str, own: str):
    first = path.split("/", 1)[0]
    if first == "peft" and "/" in path:
        name = pathlib.Path(path).stem
        if name not in PUBLIC:
            return None, f'public header "{path}" has no layer in scripts/check_layers.py'
        return PUBLIC[name], None
    if first in LAYERS and "/" in path:
        return first, None
    return own, None  # a header next to the file


def check(root: pathlib.Path) -> list[str]:
    problems = []
    files = []
    for layer in LAYERS:
        folder = root / ("cli" if layer == "cli" else f"src/{layer}")
        files += [(f, layer) for f in sorted(folder.rglob("*")) if f.suffix in (".cpp", ".hpp")]
    for header in sorted((root / "include/peft").glob("*.hpp")):
        layer = PUBLIC.get(header.stem)
        if layer is None:
            problems.append(f"{header}: public header without a layer in scripts/check_layers.py")
            continue
        files.append((header, layer))
    for folder in sorted((root / "src").iterdir()):
        if folder.is_dir() and folder.name not in LAYERS:
            problems.append(f"{folder}: a source folder that is not a layer")
    for path, own in files:
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            match = INCLUDE.match(line)
            if not match:
                continue
            kind, target = match.groups()
            where = f"{path.relative_to(root)}:{number}"
            if kind == "<":
                if target in NUMERIC_HEADERS and own not in NUMERIC_LAYERS:
                    problems.append(f"{where}: <{target}> outside the merge layer")
                continue
            layer, error = layer_of_include(target, own)
            if error:
                problems.append(f"{where}: {error}")
            elif LAYERS.index(layer) > LAYERS.index(own):
                problems.append(f'{where}: layer {own} includes "{target}" of the higher layer {layer}')
    return problems


def main() -> int:
    root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else ".").resolve()
    problems = check(root)
    for p in problems:
        print(p)
    print(f"layers: {len(problems)} violation(s)" if problems else "layers: every include points down")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
