#!/usr/bin/env python3
"""Writes the hostile-file corpus: tests/data/hostile/*, and its README.md.

usage: scripts/make_hostile_corpus.py [OUT_FOLDER]   (default tests/data/hostile)

Plain python3 (no pip package). Every file attacks one rule of a parser; README.md lists
each file with its target reader, the peft::ErrorCode expected from it ("ok" when the
attack must simply be absorbed: bounded time and memory, a normal result) and what it
attacks. tests/hostile_corpus_test.cpp reads that table and checks every file. The
output is deterministic: rerunning the script changes nothing.

Readers, by extension: .safetensors SafetensorsFile::open; .bin load_torch_file;
.pkl unpickle (zip-format persistent ids); .zip ZipArchive::open then every entry's data;
.json PeftConfig::load.
"""
import os
import struct
import sys
import zlib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CASES = []  # (file name, bytes, expected code, what it attacks)


def case(name, data, expected, what):
    CASES.append((name, bytes(data), expected, what))


# ---- safetensors -------------------------------------------------------------------------

def safetensors(header, data=b"", pad=True):
    raw = header.encode() if isinstance(header, str) else header
    if pad:
        raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw + data


def tensor(name, dtype, shape, begin, end):
    return (f'"{name}":{{"dtype":"{dtype}","shape":{list(shape)},'
            f'"data_offsets":[{begin},{end}]}}').replace(" ", "")


def good_safetensors():
    return safetensors("{" + tensor("a", "F32", [2], 0, 8) + "," + tensor("b", "F32", [2], 8, 16)
                       + "}", struct.pack("<4f", 1, 2, 3, 4))


def safetensors_cases():
    case("st_empty.safetensors", b"", "header_too_small", "empty file: no 8-byte header length")
    case("st_header_too_small.safetensors", b"\x10\x00\x00\x00", "header_too_small",
         "4 bytes: the header length itself is truncated")
    case("st_header_too_large.safetensors", struct.pack("<Q", 100_000_001) + b"{}      ",
         "header_too_large", "oversized header: length 100,000,001 > the 100 MB cap (no allocation)")
    case("st_header_length_u64_max.safetensors", b"\xff" * 8 + b"{}      ", "header_too_large",
         "header length 2^64-1: integer overflow of 8 + N")
    case("st_header_past_eof.safetensors", struct.pack("<Q", 4096) + b"{}      ",
         "invalid_header_length", "header length runs past the end of the file")
    case("st_header_not_utf8.safetensors", safetensors(b'{"\xff\xfe":{}}'), "invalid_header_utf8",
         "header bytes that are not UTF-8")
    case("st_header_not_json.safetensors", safetensors("{'a': 1}"), "invalid_header_json",
         "header that is not JSON")
    case("st_header_array.safetensors", safetensors("[]"), "invalid_header_json",
         "header that is JSON but not an object")
    case("st_deep_nesting.safetensors",
         safetensors('{"a":{"x":' + "[" * 10_000 + "]" * 10_000 + "}}"), "invalid_header_json",
         "10,000 nested arrays in an ignored member: recursion bomb")
    case("st_overlapping_offsets.safetensors",
         safetensors("{" + tensor("a", "F32", [2], 0, 8) + "," + tensor("b", "F32", [2], 4, 12)
                     + "}", bytes(12)), "invalid_offset",
         "two tensors whose data ranges overlap (aliasing)")
    case("st_same_offsets.safetensors",
         safetensors("{" + tensor("a", "F32", [2], 0, 8) + "," + tensor("b", "F32", [2], 0, 8)
                     + "}", bytes(8)), "invalid_offset",
         "two tensors sharing the same bytes")
    case("st_gap_offsets.safetensors",
         safetensors("{" + tensor("a", "F32", [1], 0, 4) + "," + tensor("b", "F32", [1], 8, 12)
                     + "}", bytes(12)), "invalid_offset",
         "a gap between tensors (hidden bytes)")
    case("st_reversed_offsets.safetensors",
         safetensors("{" + tensor("a", "F32", [0], 8, 0) + "}", bytes(8)), "invalid_offset",
         "data_offsets with end < begin (negative length)")
    case("st_offsets_past_eof.safetensors",
         safetensors("{" + tensor("a", "F32", [1024], 0, 4096) + "}", bytes(16)),
         "metadata_incomplete_buffer", "data_offsets beyond the end of the file (truncated file)")
    case("st_offset_u64_overflow.safetensors",
         safetensors("{" + tensor("a", "F32", [1], 0, 18446744073709551616) + "}", bytes(4)),
         "invalid_header_json", "a data offset of 2^64: does not fit 64 bits")
    case("st_offset_wraps.safetensors",
         safetensors("{" + tensor("a", "U8", [0], 0, 0) + ","
                     + tensor("b", "U8", [16], 18446744073709551608, 8) + "}", bytes(8)),
         "invalid_offset", "offsets chosen so that end - begin wraps around 2^64")
    case("st_numel_overflow.safetensors",
         safetensors("{" + tensor("a", "F32", [4294967296, 4294967296, 2], 0, 8) + "}", bytes(8)),
         "validation_overflow", "shape whose element count overflows 64 bits")
    case("st_bytes_overflow.safetensors",
         safetensors("{" + tensor("a", "F64", [2305843009213693952], 0, 8) + "}", bytes(8)),
         "validation_overflow", "shape whose byte size (2^61 x 8) overflows 64 bits")
    case("st_size_mismatch.safetensors",
         safetensors("{" + tensor("a", "F32", [2, 2], 0, 8) + "}", bytes(8)),
         "tensor_invalid_info", "shape needs 16 bytes but data_offsets span 8")
    case("st_rank_65.safetensors",
         safetensors("{" + tensor("a", "U8", [1] * 65, 0, 1) + "}", bytes(1)),
         "invalid_header_json", "rank 65 (more than the 64-dimension bound)")
    case("st_duplicate_name.safetensors",
         safetensors("{" + tensor("a", "F32", [1], 0, 4) + "," + tensor("a", "F32", [1], 4, 8)
                     + "}", bytes(8)), "duplicate_key",
         "the same tensor name twice (a JSON DOM would keep only one)")
    case("st_duplicate_metadata.safetensors",
         safetensors('{"__metadata__":{"a":"1"},"__metadata__":{"a":"2"}}'), "duplicate_key",
         "__metadata__ twice")
    case("st_metadata_not_string.safetensors", safetensors('{"__metadata__":{"a":1}}'),
         "invalid_header_json", "a metadata value that is not a string")
    case("st_unknown_dtype.safetensors",
         safetensors("{" + tensor("a", "F128", [1], 0, 16) + "}", bytes(16)),
         "invalid_header_json", "an unknown dtype")
    case("st_trailing_bytes.safetensors", good_safetensors() + b"hidden",
         "metadata_incomplete_buffer", "bytes after the last tensor (smuggled payload)")
    zip_payload = plain_zip([("payload/data.pkl", b"\x80\x02cos\nsystem\n.")])
    case("st_polyglot_zip_appended.safetensors", good_safetensors() + zip_payload,
         "metadata_incomplete_buffer",
         "polyglot: a valid safetensors file with a ZIP archive appended (opens as both)")
    case("st_polyglot_torch_zip.safetensors", torch_archive(pickle_one_tensor(), [bytes(8)]),
         "header_too_large", "polyglot: a torch.save ZIP archive named .safetensors")
    case("st_control_ok.safetensors", good_safetensors(), "ok",
         "control: a valid two-tensor file (the corpus is not refusing everything)")


# ---- pickle ------------------------------------------------------------------------------

def unicode(text):
    raw = text.encode("utf-8", "surrogatepass")
    return b"X" + struct.pack("<I", len(raw)) + raw


def glob(module, name):
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def program(body):
    return b"\x80\x02" + body + b"."


def pickle_one_tensor(storage_class="FloatStorage", numel=2, size=(2,), stride=(1,), offset=0,
                      key="w", storage_key="0"):
    count = (b"J" + struct.pack("<i", numel) if numel < 1 << 31
             else b"\x8a\x08" + struct.pack("<q", numel))

    def ints(values):
        return b"(" + b"".join(b"J" + struct.pack("<i", v) for v in values) + b"t"
    return program(b"}" + unicode(key) + glob("torch._utils", "_rebuild_tensor_v2") + b"("
                   + b"(" + unicode("storage") + glob("torch", storage_class)
                   + unicode(storage_key) + unicode("cpu") + count
                   + b"tQ" + b"J" + struct.pack("<i", offset) + ints(size) + ints(stride)
                   + b"\x89" + glob("collections", "OrderedDict") + b")Rt" + b"Rs")


def pickle_cases():
    case("pk_os_system.pkl", program(glob("os", "system") + unicode("echo pwned") + b"\x85R"),
         "forbidden_pickle", "GLOBAL os.system then REDUCE: the classic code-execution payload")
    case("pk_posix_system.pkl", program(glob("posix", "system") + unicode("id") + b"\x85R"),
         "forbidden_pickle", "the same through posix (what os.system pickles as on Linux)")
    case("pk_builtins_eval.pkl", program(glob("__builtin__", "eval") + unicode("1") + b"\x85R"),
         "forbidden_pickle", "builtins.eval under its Python 2 name")
    case("pk_stack_global_exec.pkl",
         program(unicode("builtins") + unicode("exec") + b"\x93" + unicode("1") + b"\x85R"),
         "forbidden_pickle", "STACK_GLOBAL builtins.exec (protocol 4 form)")
    case("pk_subprocess.pkl",
         program(glob("subprocess", "check_output") + b"]" + unicode("id") + b"a\x85R"),
         "forbidden_pickle", "subprocess.check_output")
    case("pk_torch_load_nested.pkl", program(glob("torch", "load") + unicode("x") + b"\x85R"),
         "forbidden_pickle", "a torch function that is not a tensor rebuild (torch.load)")
    case("pk_reduce_on_string.pkl", program(unicode("os.system") + b")R"), "forbidden_pickle",
         "REDUCE whose callable is a string, not an allowlisted global")
    case("pk_reduce_ordered_dict_args.pkl",
         program(glob("collections", "OrderedDict") + b"]" + b"\x85R"), "invalid_pickle",
         "reduce payload: OrderedDict called with arguments it never gets from torch.save")
    case("pk_reduce_rebuild_bad_args.pkl",
         program(glob("torch._utils", "_rebuild_tensor_v2") + b"(" + unicode("not a storage")
                 + b"K\x00))\x89}tR"), "invalid_pickle",
         "reduce payload: _rebuild_tensor_v2 with a string where the storage goes")
    case("pk_inst.pkl", program(b"(iposix\nsystem\n"), "forbidden_pickle",
         "INST opcode (builds any class)")
    case("pk_obj.pkl", program(b"(" + glob("collections", "OrderedDict") + b"o"),
         "forbidden_pickle", "OBJ opcode (builds any class)")
    case("pk_newobj_ex.pkl", program(glob("collections", "OrderedDict") + b")}\x92"),
         "forbidden_pickle", "NEWOBJ_EX opcode")
    case("pk_ext1.pkl", program(b"\x82\x01"), "forbidden_pickle",
         "EXT1 opcode (copyreg extension registry)")
    case("pk_newobj_ordered_dict.pkl", program(glob("collections", "OrderedDict") + b")\x81"),
         "forbidden_pickle", "NEWOBJ on a class other than torch.nn.Parameter")
    case("pk_build_on_list.pkl", program(b"]}b"), "forbidden_pickle",
         "BUILD (__setstate__) on a list")
    case("pk_persid_text.pkl", program(b"Pstorage\n"), "invalid_pickle",
         "text PERSID opcode")
    case("pk_persid_not_storage.pkl",
         program(b"(" + unicode("module") + glob("torch", "FloatStorage") + unicode("0")
                 + unicode("cpu") + b"K\x01tQ"), "invalid_pickle",
         "persistent id other than 'storage'")
    case("pk_binunicode_length_overflow.pkl", b"\x80\x02X\xff\xff\xff\xff" + b"abc.",
         "invalid_pickle", "BINUNICODE declaring 4 GiB: no allocation before the bound check")
    case("pk_binunicode8_length_u64_max.pkl", b"\x80\x02\x8d" + b"\xff" * 8 + b"abc.",
         "invalid_pickle", "BINUNICODE8 declaring 2^64-1 bytes: pos + n overflow")
    case("pk_binbytes8_length.pkl", b"\x80\x02\x8e" + struct.pack("<Q", 1 << 62) + b".",
         "invalid_pickle", "BINBYTES8 declaring 2^62 bytes")
    case("pk_frame_past_end.pkl", b"\x80\x04\x95" + struct.pack("<Q", 1 << 40) + b"N.",
         "invalid_pickle", "FRAME longer than the input")
    case("pk_negative_binstring.pkl", b"\x80\x02T\xff\xff\xff\xffabc.", "invalid_pickle",
         "BINSTRING with a negative length")
    case("pk_string_not_utf8.pkl", program(b"\x8c\x02\xc3\x28"), "invalid_pickle",
         "a string that is not UTF-8")
    case("pk_long4.pkl", b"\x80\x02\x8b\xff\xff\xff\x7f.", "invalid_pickle",
         "LONG4 (a 2 GiB integer) is not interpreted at all")
    case("pk_memo_get_unset.pkl", program(b"h\x07"), "invalid_pickle",
         "BINGET of a memo slot never stored")
    case("pk_stack_underflow.pkl", program(b"s"), "invalid_pickle",
         "SETITEM on an empty stack")
    case("pk_no_stop.pkl", b"\x80\x02N", "invalid_pickle", "no STOP opcode")
    case("pk_stack_bomb.pkl", program(b"N" * 100_001), "limit_exceeded",
         "100,001 values on the stack (bound: 100,000)")
    case("pk_mark_bomb.pkl", program(b"(" * 10_001), "limit_exceeded",
         "10,001 open MARKs (bound: 10,000)")
    key = b")"
    for _ in range(200):
        key += b"\x85"
    case("pk_deep_tuple_key.pkl", program(b"}" + key + b"Ns"), "limit_exceeded",
         "a dict key of 200 nested tuples (hash recursion bomb)")
    # Billion laughs: each level is a list holding the previous level ten times, through
    # the memo. Pointers are shared, so the result is 9 levels deep and tiny.
    laughs = b"]q\x00" + b"(" + b"N" * 10 + b"e0"
    for level in range(1, 10):
        laughs += b"]q" + bytes([level]) + b"(" + (b"h" + bytes([level - 1])) * 10 + b"e0"
    laughs += b"h\x09"
    case("pk_billion_laughs.pkl", program(laughs), "ok",
         "billion laughs: 10^10 leaves through memo references; must stay shared, not expand")
    # A set(list) REDUCE copies the list: 100 calls over a 100,000-item list copy 10^7 items.
    items = b"]q\x00(" + b"N" * 99_999 + b"e0"
    call = glob("builtins", "set") + b"q\x01" + b"h\x00\x85q\x02R0"
    again = b"h\x01h\x02R0"
    case("pk_set_copy_bomb.pkl", program(items + call + again * 101 + b"N"), "limit_exceeded",
         "set(list) REDUCE repeated on one memoised 100,000-item list: copy amplification")
    cycle = b"]q\x00h\x00a"
    case("pk_cyclic_list.pkl", program(cycle), "ok",
         "a list that contains itself (memo cycle): no infinite walk")


# ---- zip and torch.save --------------------------------------------------------------------

def local_header(name, data, method=0, flags=0, crc=None, size=None, extra=b""):
    crc = zlib.crc32(data) if crc is None else crc
    size = len(data) if size is None else size
    return (struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, flags, method, 0, 0, crc, len(data),
                        size, len(name), len(extra)) + name + extra)


def central_header(name, data, offset, method=0, flags=0, crc=None, size=None):
    crc = zlib.crc32(data) if crc is None else crc
    size = len(data) if size is None else size
    return struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, flags, method, 0, 0, crc,
                       len(data), size, len(name), 0, 0, 0, 0, 0, offset) + name


def end_record(count, cd_size, cd_offset):
    return struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, count, count, cd_size, cd_offset, 0)


def plain_zip(entries, method=0, flags=0, sizes=None):
    """Stored entries; `sizes` overrides the declared uncompressed sizes."""
    out = b""
    central = b""
    for i, (name, data) in enumerate(entries):
        name = name.encode() if isinstance(name, str) else name
        size = sizes[i] if sizes else None
        central += central_header(name, data, len(out), method, flags, size=size)
        out += local_header(name, data, method, flags, size=size) + data
    return out + central + end_record(len(entries), len(central), len(out))


def torch_archive(pickle, storages, extra=()):
    entries = [("archive/data.pkl", pickle), ("archive/byteorder", b"little")]
    entries += [(f"archive/data/{i}", s) for i, s in enumerate(storages)]
    entries += list(extra) + [("archive/version", b"3\n")]
    return plain_zip(entries)


def zip_cases():
    good = [("a/x", b"hello"), ("a/y", b"world")]
    case("zip_control_ok.zip", plain_zip(good), "ok", "control: a valid two-entry archive")
    case("zip_traversal_dotdot.zip", plain_zip([("a/../../etc/passwd", b"x")]), "invalid_zip",
         "entry name with '..' components (path traversal)")
    case("zip_traversal_absolute.zip", plain_zip([("/etc/passwd", b"x")]), "invalid_zip",
         "absolute entry name")
    case("zip_traversal_backslash.zip", plain_zip([("a\\..\\..\\x", b"x")]), "invalid_zip",
         "traversal with Windows separators")
    case("zip_traversal_drive.zip", plain_zip([("C:/windows/x", b"x")]), "invalid_zip",
         "entry name with a drive letter")
    case("zip_nul_in_name.zip", plain_zip([(b"a/x\x00.txt", b"x")]), "invalid_zip",
         "entry name with a NUL byte (truncates in C APIs)")
    case("zip_duplicate_names.zip", plain_zip([("a/x", b"1"), ("a/x", b"2")]), "invalid_zip",
         "the same name twice (readers disagree on which wins)")
    case("zip_crc_mismatch.zip", plain_zip([("a/x", b"hello")]).replace(b"hello", b"jello"),
         "invalid_zip", "data that does not match its CRC-32")
    bomb_data = zlib.compressobj(9, zlib.DEFLATED, -15)
    deflated = bomb_data.compress(bytes(10 << 20)) + bomb_data.flush()
    case("zip_deflate_bomb.zip", plain_zip([("a/x", deflated)], method=8, sizes=[10 << 20]),
         "unsupported_format",
         "zip bomb: a deflated entry of 10 KiB claiming 10 MiB; compressed entries are never "
         "inflated")
    case("zip_encrypted.zip", plain_zip([("a/x", b"secret")], flags=1), "unsupported_format",
         "an encrypted entry")
    # Overlapping entries (the "better zip bomb" construction): entry a's data covers
    # entry b's local header and data.
    inner = local_header(b"a/b", b"x") + b"x"
    data_a = inner
    out = local_header(b"a/a", data_a) + data_a
    central = (central_header(b"a/a", data_a, 0)
               + central_header(b"a/b", b"x", len(local_header(b"a/a", data_a))))
    case("zip_overlapping_entries.zip", out + central + end_record(2, len(central), len(out)),
         "invalid_zip", "overlapping entries: one entry's data contains another (zip bomb)")
    archive = plain_zip(good)
    end = archive[-22:]
    count_lie = end[:8] + struct.pack("<HH", 65535, 65535) + end[12:]
    case("zip_entry_count_lie.zip", archive[:-22] + count_lie, "invalid_zip",
         "end record declares 65,535 entries for a tiny central directory")
    cd_size, cd_offset = struct.unpack("<II", end[12:20])
    past = end[:16] + struct.pack("<I", 0x7FFFFFFF) + end[20:]
    case("zip_cd_offset_out_of_range.zip", archive[:-22] + past, "invalid_zip",
         "central directory offset past the end of the file")
    wrap = end[:12] + struct.pack("<II", 0xFFFFFFF0, 0x7FFFFFF0) + end[20:]
    case("zip_cd_size_wraps.zip", archive[:-22] + wrap, "invalid_zip",
         "central directory offset + size chosen to overflow 32 bits")
    # A ZIP64 end record declaring 2^40 entries.
    body = archive[:-22]
    zip64_at = len(body)
    zip64 = struct.pack("<IQHHIIQQQQ", 0x06064B50, 44, 45, 45, 0, 0, 1 << 40, 1 << 40, cd_size,
                        cd_offset)
    locator = struct.pack("<IIQI", 0x07064B50, 0, zip64_at, 1)
    case("zip64_entry_count_bomb.zip",
         body + zip64 + locator + end_record(0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF), "limit_exceeded",
         "ZIP64 end record declaring 2^40 entries (allocation bomb)")
    case("zip_truncated.zip", archive[: len(archive) // 2], "invalid_zip",
         "an archive cut in half (no end record)")
    case("zip_local_name_differs.zip",
         plain_zip([("a/x", b"1")]).replace(b"a/x\x31", b"a/y\x31", 1), "invalid_zip",
         "local header names a different file than the central directory")


def torch_cases():
    one = pickle_one_tensor()
    floats = struct.pack("<2f", 1.5, 2.5)
    case("pt_control_ok.bin", torch_archive(one, [floats]), "ok",
         "control: a valid torch.save archive with one tensor")
    case("pt_os_system.bin",
         torch_archive(program(glob("os", "system") + unicode("echo pwned") + b"\x85R"), []),
         "forbidden_pickle", "data.pkl calling os.system (what a malicious .bin does)")
    case("pt_traversal.bin",
         plain_zip([("archive/data.pkl", one), ("archive/../../evil", b"x"),
                    ("archive/data/0", floats), ("archive/version", b"3\n")]), "invalid_zip",
         "a torch archive with a traversal entry")
    case("pt_torchscript.bin",
         torch_archive(one, [floats], extra=[("archive/constants.pkl", program(b")"))]),
         "unsupported_format", "a TorchScript archive (torch.jit.save): code, not a state dict")
    case("pt_not_state_dict.bin", torch_archive(program(b"]"), []), "unsupported_format",
         "data.pkl that is a list, not a dict of tensors")
    case("pt_storage_too_small.bin", torch_archive(pickle_one_tensor(numel=1000), [floats]),
         "tensor_invalid_info", "a storage declaring 1,000 elements backed by 8 bytes")
    case("pt_storage_size_lie.bin",
         torch_archive(pickle_one_tensor(storage_class="DoubleStorage", numel=0x7FFFFFFF),
                       [floats]), "tensor_invalid_info",
         "a storage declaring 2^31 doubles (16 GiB) backed by 8 bytes: never allocated")
    case("pt_storage_numel_overflow.bin",
         torch_archive(pickle_one_tensor(storage_class="DoubleStorage", numel=(1 << 62) + 1),
                       [floats]), "validation_overflow",
         "a storage of 2^62+1 doubles: element count x 8 overflows 64 bits")
    case("pt_view_out_of_range.bin",
         torch_archive(pickle_one_tensor(size=(2,), stride=(1,), offset=5), [floats]),
         "invalid_offset", "a tensor view reaching past the end of its storage")
    case("pt_negative_stride.bin",
         torch_archive(pickle_one_tensor(size=(2,), stride=(-1,)), [floats]), "invalid_offset",
         "a negative stride (reads before the storage)")
    case("pt_view_extent_far.bin",
         torch_archive(pickle_one_tensor(size=(2, 2), stride=(0x7FFFFFFF, 0x7FFFFFFF),
                                         offset=0x7FFFFFFF), [floats]),
         "invalid_offset", "a view whose extent is far outside the storage")
    case("pt_stride0_expansion_bomb.bin",
         torch_archive(pickle_one_tensor(numel=1, size=(65536, 65536), stride=(0, 0)),
                       [floats[:4]]), "limit_exceeded",
         "stride-0 view of one float as 2^32 elements (16 GiB once copied)")
    case("pt_missing_storage.bin", torch_archive(one, []), "invalid_zip",
         "a storage with no data/ record")
    case("pt_bad_version.bin",
         plain_zip([("archive/data.pkl", one), ("archive/data/0", floats),
                    ("archive/version", b"99999999999\n")]), "unsupported_format",
         "version record that is huge (integer overflow in a naive parser)")
    case("pt_polyglot_safetensors.bin", good_safetensors(), "unsupported_format",
         "polyglot: a safetensors file named .bin")
    # Many transposed views of one 64 KiB storage: each is copied to C order; 4,200 of
    # them would take 270 MB out of a 0.3 MB file.
    n = 128
    storage = bytes(n * n * 4)
    entries = b""
    for i in range(4200):
        key = f"t{i}"
        if i == 0:
            entries += (unicode(key) + glob("torch._utils", "_rebuild_tensor_v2") + b"q\x01"
                        + b"((" + unicode("storage") + glob("torch", "FloatStorage")
                        + unicode("0") + unicode("cpu") + b"J" + struct.pack("<i", n * n)
                        + b"tQq\x02" + b"K\x00" + b"M" + struct.pack("<H", n) + b"M"
                        + struct.pack("<H", n) + b"\x86q\x03" + b"K\x01M"
                        + struct.pack("<H", n) + b"\x86q\x04" + b"\x89}q\x05tq\x06Rq\x07")
        else:
            entries += unicode(key) + b"h\x01h\x06R"
    gather = program(b"}(" + entries + b"u")
    case("pt_transposed_copy_bomb.bin", torch_archive(gather, [storage]), "limit_exceeded",
         "4,200 transposed views of one 64 KiB storage: each copied, 270 MB from 0.3 MB")


# ---- adapter_config.json ---------------------------------------------------------------------

def config_cases():
    good = b'{"peft_type": "LORA", "r": 8, "lora_alpha": 16, "target_modules": ["q_proj"]}'
    case("cfg_control_ok.json", good, "ok", "control: a minimal LoRA config")
    case("cfg_deep_nesting.json",
         b'{"peft_type": "LORA", "x": ' + b"[" * 10_000 + b"]" * 10_000 + b"}", "invalid_json",
         "10,000 nested arrays (recursion bomb; bound 512 levels)")
    case("cfg_huge_integer.json", b'{"peft_type": "LORA", "r": 1' + b"0" * 400 + b"}",
         "unsupported", "an integer of 401 digits (beyond 64 bits)")
    case("cfg_not_utf8.json", b'{"peft_type": "LORA", "x": "\xff"}', "invalid_json",
         "a string that is not UTF-8")
    case("cfg_not_object.json", b'["peft_type", "LORA"]', "not_a_peft_config",
         "a JSON array instead of an object")
    case("cfg_unknown_type.json", b'{"peft_type": "__import__(\'os\')"}', "unknown_peft_type",
         "a peft_type naming no PEFT method")
    case("cfg_truncated.json", good[:40], "invalid_json", "a config cut in the middle")
    case("cfg_lone_surrogate.json",
         b'{"peft_type": "LORA", "r": 8, "\\ud800": "\\udfff", "target_modules": ["a\\ud800"]}',
         "ok", "lone surrogate escapes (Python accepts them); inspect --json must not throw")


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "tests", "data", "hostile")
    safetensors_cases()
    pickle_cases()
    zip_cases()
    torch_cases()
    config_cases()
    os.makedirs(out, exist_ok=True)
    for name in os.listdir(out):
        if name != "README.md":
            os.remove(os.path.join(out, name))
    lines = ["# Hostile-file corpus",
             "",
             "Generated by `scripts/make_hostile_corpus.py` (do not edit by hand); checked by",
             "`tests/hostile_corpus_test.cpp`, which reads the table below. Reader by extension:",
             "`.safetensors` SafetensorsFile::open, `.bin` load_torch_file, `.pkl` unpickle,",
             "`.zip` ZipArchive::open + every entry's data, `.json` PeftConfig::load. `ok`: the",
             "attack must be absorbed (bounded time and memory, a normal result).",
             "",
             "| file | expected | what it attacks |",
             "|---|---|---|"]
    for name, data, expected, what in CASES:
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)
        lines.append(f"| `{name}` | `{expected}` | {what} |")
    with open(os.path.join(out, "README.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print(f"{len(CASES)} files in {out}")


if __name__ == "__main__":
    main()
