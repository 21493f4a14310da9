#!/usr/bin/env python3
"""Every section reference ("docs/formats.md \u00a71.8") must point into a document of this repository.

Scans source, header, test, script and Markdown files (test data and build folders excluded). For each
section sign, the document is the nearest token ending in ".md" before it on the same line. A violation is:
a section sign with no document before it, a document that does not exist in the repository (looked up
from the repository root, then under docs/), a section sign without a section number, or a number that no
heading of the document carries ("## 2." or "### 2.3 ..."). Prints file:line for each and exits 1.

Usage: check_doc_refs.py [repository root]
"""
import os
import re
import sys

SECTION_SIGN = "\u00a7"
EXTENSIONS = (".cpp", ".hpp", ".h", ".md", ".py", ".sh")
# Skipped anywhere in the tree: version control, generated and third-party folders.
SKIP_DIRS = {".git", "_deps", "node_modules", "__pycache__"}
# Skipped relative to the root: test fixtures (copied from elsewhere) and build trees.
SKIP_PATHS = {os.path.join("tests", "data")}

DOCUMENT = re.compile(r"[A-Za-z0-9_./-]*[A-Za-z0-9_-]\.md(?![A-Za-z0-9_])")
NUMBER = re.compile(r"\d+(?:\.\d+)*")
HEADING = re.compile(r"#+\s+(\d+(?:\.\d+)*)\.?(?:\s|$)")


def is_build_dir(name):
    return name == "build" or name.startswith("build-") or name.startswith("cmake-build")


def source_files(root):
    for folder, dirs, files in os.walk(root):
        relative = os.path.relpath(folder, root)
        kept = []
        for name in sorted(dirs):
            path = os.path.normpath(os.path.join(relative, name))
            if name in SKIP_DIRS or path in SKIP_PATHS:
                continue
            if relative == "." and is_build_dir(name):
                continue
            kept.append(name)
        dirs[:] = kept
        for name in sorted(files):
            if name.endswith(EXTENSIONS):
                yield os.path.join(folder, name)


def resolve(root, name):
    """The repository file a document token names, or None."""
    real_root = os.path.realpath(root)
    candidates = [name]
    if "/" not in name:  # a bare "formats.md" may mean docs/formats.md
        candidates.append(os.path.join("docs", name))
    for candidate in candidates:
        path = os.path.realpath(os.path.join(root, candidate))
        inside = path == real_root or path.startswith(real_root + os.sep)
        if inside and os.path.isfile(path):
            return path
    return None


_headings = {}


def sections_of(path):
    if path not in _headings:
        numbers = set()
        with open(path, encoding="utf-8", errors="replace") as f:
            in_fence = False
            for line in f:
                if line.lstrip().startswith("```"):
                    in_fence = not in_fence
                    continue
                match = None if in_fence else HEADING.match(line)
                if match:
                    numbers.add(match.group(1))
        _headings[path] = numbers
    return _headings[path]


def check_line(root, line):
    """Problems of one line, as strings."""
    problems = []
    documents = [(m.start(), m.group(0)) for m in DOCUMENT.finditer(line)]
    start = 0
    while True:
        at = line.find(SECTION_SIGN, start)
        if at < 0:
            return problems
        start = at + 1
        before = [name for position, name in documents if position < at]
        number = NUMBER.match(line, at + 1)
        cited = number.group(0) if number else None
        label = SECTION_SIGN + (cited or "")
        if not before:
            problems.append(f"{label} names no document: write '<docs/name.md> {label}'")
            continue
        document = before[-1]
        path = resolve(root, document)
        if path is None:
            problems.append(f"{document} {label}: {document} is not a document of this repository")
            continue
        if cited is None:
            problems.append(f"{document} {SECTION_SIGN}: no section number")
            continue
        if cited not in sections_of(path):
            shown = os.path.relpath(path, root)
            problems.append(f"{document} {label}: {shown} has no heading numbered {cited}")


def main():
    default_root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    root = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else default_root)
    violations = 0
    checked = 0
    for path in source_files(root):
        with open(path, encoding="utf-8", errors="replace") as f:
            for number, line in enumerate(f, 1):
                if SECTION_SIGN not in line:
                    continue
                checked += line.count(SECTION_SIGN)
                for problem in check_line(root, line):
                    violations += 1
                    print(f"{os.path.relpath(path, root)}:{number}: {problem}")
    if violations:
        print(f"{violations} bad section reference(s) of {checked}; the documents are docs/*.md")
        return 1
    print(f"{checked} section references, all pointing to headings of the repository's documents")
    return 0


if __name__ == "__main__":
    sys.exit(main())
