"""Fail if any line of a ``nogil`` kernel in bpcore/_kernels.pyx touches the Python C-API.

Runs ``cython -a`` with the release build's directives (setup.py) and reads the
score Cython gives each line of the annotated HTML: 0 (white) means pure C.
Every line inside a function declared ``nogil`` must score 0, except inside an
explicit ``with gil:`` block (the signal check, taken every 50 ms, not per
step); the Python-facing ``def`` wrappers outside them may touch Python.

    python tools/check_annotation.py      # prints offending lines, exit 1 if any
"""
from __future__ import annotations

import html
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "bpcore" / "_kernels.pyx"
RELEASE_DIRECTIVES = ["boundscheck=False", "wraparound=False", "initializedcheck=False",
                      "cdivision=True", "language_level=3"]


def nogil_lines(source: Path) -> set[int]:
    """1-based numbers of the lines inside functions whose signature says ``nogil``."""
    lines = source.read_text().splitlines()
    inside, result, indent, signature = False, set(), 0, ""
    gil_indent = None  # indentation of an open ``with gil:`` block
    for number, line in enumerate(lines, start=1):
        stripped = line.strip()
        current = len(line) - len(line.lstrip())
        if inside and stripped and current <= indent and not signature:
            inside = False
        if gil_indent is not None and stripped and current <= gil_indent:
            gil_indent = None
        if inside and stripped == "with gil:":
            gil_indent = current
        if gil_indent is not None:
            continue
        if re.match(r"(cdef|cpdef)\s.*\(", stripped) and not inside:
            signature, indent = stripped, current
        elif signature:
            signature += " " + stripped
        if signature and signature.endswith(":"):
            inside = "nogil" in signature
            signature = ""
            continue
        if inside and stripped:
            result.add(number)
    return result


def scores(source: Path) -> dict[int, tuple[int, str]]:
    """Line number -> (Cython's Python-interaction score, text), from ``cython -a``."""
    with tempfile.TemporaryDirectory() as tmp:
        out_c = Path(tmp) / "_kernels.c"
        args = [sys.executable, "-m", "cython", "-a", "-I", str(ROOT), "-o", str(out_c)]
        for directive in RELEASE_DIRECTIVES:
            args += ["-X", directive]
        subprocess.run(args + [str(source)], check=True, cwd=ROOT)
        report = out_c.with_suffix(".html").read_text()
    found = {}
    for m in re.finditer(r'<pre class="cython line score-(\d+)"[^>]*>(.*?)</pre>', report, re.S):
        text = html.unescape(re.sub("<[^>]+>", "", m.group(2)))
        number = re.match(r"\+?(\d+):", text.strip())
        if number:
            found[int(number.group(1))] = (int(m.group(1)), text.strip())
    return found


def main() -> int:
    kernel_lines = nogil_lines(SOURCE)
    line_scores = scores(SOURCE)
    bad = [(n, *line_scores[n]) for n in sorted(kernel_lines)
           if n in line_scores and line_scores[n][0] > 0]
    for number, score, text in bad:
        print(f"{SOURCE.name}:{number}: score {score}: {text}")
    print(f"{len(kernel_lines)} lines in nogil kernels, {len(bad)} touch Python")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
