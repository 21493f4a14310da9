#!/usr/bin/env python3
"""Every namespace-scope function and class of include/peft/*.hpp carries PEFT_API (run by ctest).

libpeftcpp is compiled with hidden visibility: a public declaration without PEFT_API
(include/peft/export.hpp) links in a static build but is missing from libpeftcpp.so. This
check lists such declarations (file:line) and exits 1. With --fix it adds the macro (and
the #include "peft/export.hpp") instead; run clang-format on the changed headers afterwards.
Inline, constexpr and template functions need no export and are left alone.

Usage: check_exports.py [--fix] [repository root]
"""
import pathlib, re, sys
args = [a for a in sys.argv[1:] if a != "--fix"]
fix = "--fix" in sys.argv[1:]
root = pathlib.Path(args[0] if args else pathlib.Path(__file__).resolve().parent.parent)
missing = []
SKIP = {"export.hpp", "peft.hpp", "version.hpp"}
changed = {}
for h in sorted((root / "include/peft").glob("*.hpp")):
    if h.name in SKIP: continue
    lines = h.read_text().split("\n")
    depth = 0  # brace depth relative to namespace scope
    ns_depth = 0
    out = []
    n = 0
    in_decl = False  # continuing a multi-line declaration
    for line in lines:
        stripped = line.strip()
        new = line
        at_ns_scope = depth == ns_depth and ns_depth > 0
        if at_ns_scope and not in_decl and not stripped.startswith(("//", "#", "}", "using ", "namespace", "template", "inline", "constexpr", "enum", "static_assert", "extern", "friend")) and stripped:
            m = re.match(r"^(class|struct)\s+(\w+)(\s*(final)?\s*(:[^{]*)?\{)", stripped)
            if m:
                missing.append(f"{h.relative_to(root)}:{len(out) + 1}: {stripped}")
                new = line.replace(f"{m.group(1)} {m.group(2)}", f"{m.group(1)} PEFT_API {m.group(2)}", 1)
                n += 1
            elif re.match(r"^(class|struct)\s+\w+;", stripped):
                pass
            elif "(" in stripped and not stripped.startswith("PEFT_API"):
                # a function declaration (not a variable): something followed by name(
                if re.match(r"^[\w:<>,\s\*&\[\]]+?[\s\*&]~?\w+\s*\(", stripped) or re.match(r"^[\w:]+<.*>\s+\w+\s*\(", stripped) or re.match(r"^[\w:<>, ]+\s+operator", stripped):
                    missing.append(f"{h.relative_to(root)}:{len(out) + 1}: {stripped}")
                    indent = line[:len(line) - len(line.lstrip())]
                    new = indent + "PEFT_API " + line.lstrip()
                    n += 1
        # Track continuation: a declaration statement continues until ';' or '{' at depth.
        code = re.sub(r"//.*", "", line)
        code = re.sub(r'"([^"\\]|\\.)*"', '""', code)
        if at_ns_scope and stripped and not stripped.startswith(("//", "#")):
            in_decl = not (code.rstrip().endswith(";") or "{" in code or code.rstrip().endswith("}"))
        for ch in code:
            if ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
        if stripped.startswith("namespace") and "{" in code and ns_depth == 0:
            ns_depth = depth
        out.append(new)
    if n and fix:
        text = "\n".join(out)
        # include the export header after #pragma once's include block: first "#include" line
        inc = '#include "peft/export.hpp"'
        if inc not in text:
            # put it before the first #include "peft/..." or after the last system include
            ls = text.split("\n")
            idx = next((i for i, l in enumerate(ls) if l.startswith('#include "peft/')), None)
            if idx is None:
                last = max(i for i, l in enumerate(ls) if l.startswith("#include") or l.startswith("#pragma once"))
                ls[last+1:last+1] = ["", inc]
            else:
                ls.insert(idx, inc)
                # keep sorted order within the block
                j = idx
                while j + 1 < len(ls) and ls[j+1].startswith('#include "peft/') and ls[j+1] < ls[j]:
                    ls[j], ls[j+1] = ls[j+1], ls[j]; j += 1
            text = "\n".join(ls)
        h.write_text(text)
    if n:
        changed[h.name] = n
if fix:
    print(f"PEFT_API added: {changed}" if changed else "nothing to add")
    sys.exit(0)
for m in missing:
    print(f"{m}  <- without PEFT_API")
print(f"exports: {len(missing)} public declaration(s) without PEFT_API (fix: scripts/check_exports.py --fix)"
      if missing else "exports: every public declaration carries PEFT_API")
sys.exit(1 if missing else 0)
