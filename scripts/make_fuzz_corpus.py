#!/usr/bin/env python3
"""Seed corpora for the libFuzzer targets, generated from the test fixtures.

usage: scripts/make_fuzz_corpus.py OUT_FOLDER

Writes OUT_FOLDER/<target>/<sha1> for every target of fuzz/ (plain python3, no pip
package): safetensors files, torch.save archives, their data.pkl pickles (plus one
legacy-format file), adapter configs, and adapter folders packed as the folder target
reads them (see fuzz/entry_points.hpp). Files of tests/data/hostile join the matching
corpus. Inputs larger than 64 KiB are skipped: fuzzing small inputs is faster.
"""
import hashlib
import io
import os
import struct
import sys
import zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(ROOT, "tests", "data")
MAX_SIZE = 64 * 1024


def files_named(predicate):
    for folder, _, names in sorted(os.walk(DATA)):
        for name in sorted(names):
            if predicate(name):
                path = os.path.join(folder, name)
                if os.path.getsize(path) <= MAX_SIZE:
                    yield path


def read(path):
    with open(path, "rb") as f:
        return f.read()


def save(out, target, data):
    folder = os.path.join(out, target)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, hashlib.sha1(data).hexdigest()), "wb") as f:
        f.write(data)


def data_pkl(archive_bytes):
    try:
        with zipfile.ZipFile(io.BytesIO(archive_bytes)) as z:
            for name in z.namelist():
                if name.endswith("/data.pkl"):
                    return z.read(name)
    except (zipfile.BadZipFile, KeyError, ValueError):
        pass
    return None


def legacy_file():
    """A pre-1.6 torch.save file holding one float32 tensor of 2 elements."""
    def binunicode(text):
        raw = text.encode()
        return b"X" + struct.pack("<I", len(raw)) + raw

    magic = b"\x80\x02\x8a\x0a" + bytes.fromhex("6cfc9c46f9206aa85019") + b"."
    protocol = b"\x80\x02M\xe9\x03."
    sys_info = b"\x80\x02}" + binunicode("little_endian") + b"\x88s."
    main = (b"\x80\x02}" + binunicode("w") + b"ctorch._utils\n_rebuild_tensor_v2\n("
            + b"(" + binunicode("storage") + b"ctorch\nFloatStorage\n" + binunicode("0")
            + binunicode("cpu") + b"K\x02Ntq\x00QK\x00K\x02\x85K\x01\x85\x89"
            + b"ccollections\nOrderedDict\n)Rtq\x01Rs.")
    keys = b"\x80\x02]" + binunicode("0") + b"a."
    data = struct.pack("<Q", 2) + struct.pack("<ff", 1.0, 2.0)
    return magic + protocol + sys_info + main + keys + data


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    out = sys.argv[1]
    for path in files_named(lambda n: n.endswith(".safetensors")):
        save(out, "safetensors", read(path))
    for path in files_named(lambda n: n.endswith(".bin")):
        data = read(path)
        save(out, "zip", data)
        pickle = data_pkl(data)
        if pickle is not None:
            save(out, "pickle", pickle)
    save(out, "pickle", legacy_file())
    for path in files_named(lambda n: n == "adapter_config.json"):
        save(out, "config", read(path))
    for path in files_named(lambda n: n.endswith(".gguf")):
        save(out, "gguf", read(path))

    # The Hub's answers: byte 0 selects the parser (fuzz/entry_points.hpp).
    sha = b"a" * 40
    for seed in (b"\x00" + b'{"id":"org/x","sha":"' + sha + b'","siblings":[{"rfilename":"a.json"},'
                 b'{"rfilename":"sub/b c.bin"}]}',
                 b"\x01x-repo-commit: " + sha + b"\netag: W/\"abc\"\nx-linked-etag: \"" + b"f" * 64
                 + b"\"\nx-linked-size: 12345\ncontent-length: 1\nlocation: https://cdn/x\n",
                 b"\x02bytes 100-199/200", b"\x03http://127.0.0.1:8/org/x/resolve/main/f\x00/org/y/f",
                 b"\x04sub/dir/model-00001.safetensors\x00*.safetensors"):
        save(out, "hub_protocol", seed)

    for folder, _, names in sorted(os.walk(DATA)):
        if "adapter_config.json" not in names:
            continue
        config = read(os.path.join(folder, "adapter_config.json"))
        if len(config) > 0xFFFF:
            continue
        for flag, weights in ((0, "adapter_model.safetensors"), (1, "adapter_model.bin")):
            path = os.path.join(folder, weights)
            if weights in names and os.path.getsize(path) <= MAX_SIZE:
                for extra in (0, 2):
                    save(out, "adapter_folder",
                         bytes([flag | extra]) + struct.pack("<H", len(config)) + config
                         + read(path))

    hostile = os.path.join(DATA, "hostile")
    by_extension = {".safetensors": "safetensors", ".bin": "zip", ".zip": "zip",
                    ".pkl": "pickle", ".json": "config", ".gguf": "gguf"}
    if os.path.isdir(hostile):
        for name in sorted(os.listdir(hostile)):
            target = by_extension.get(os.path.splitext(name)[1])
            path = os.path.join(hostile, name)
            if target and os.path.getsize(path) <= MAX_SIZE:
                save(out, target, read(path))
    for target in sorted(os.listdir(out)):
        print(f"{target}: {len(os.listdir(os.path.join(out, target)))} seeds")


if __name__ == "__main__":
    main()
