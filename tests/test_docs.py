"""The documentation works: its code runs, and the site builds without a warning.

* Every ```python block of README.md and of each page under docs/ is executed, in
  order, one file at a time in a fresh interpreter whose working directory is a
  temporary directory (the README's quick start writes ``mnist.npz`` there), the
  blocks of one file sharing their names as they would in a reader's session.
  A block that imports an optional extra (matplotlib, scikit-learn, torch; also
  through ``bpcore.plot`` / ``bpcore.sklearn``) is skipped, with the rest of its
  file, only if that extra is not installed, and never under CI (``CI`` set), where
  the ``test`` extra installs them all.
* The Sphinx site (docs/conf.py) builds with warnings as errors; it needs the
  ``docs`` extra and is skipped without it, except under CI.
"""
from __future__ import annotations

import ast
import importlib.util
import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MARKDOWN = [ROOT / "README.md"] + sorted((ROOT / "docs").rglob("*.md"))
#: Files that must hold Python examples: an extractor that finds none is broken.
MUST_HAVE_CODE = [ROOT / "README.md", ROOT / "docs" / "tutorial.md"]

#: Optional top-level modules a documented example may need, by the extra providing them.
OPTIONAL = {"matplotlib": "plot", "sklearn": "sklearn", "torch": "bench", "onnx": "onnx",
            "onnxruntime": "test", "mpi4py": "mpi"}
#: bpcore modules that need an optional module.
NEEDS = {"bpcore.plot": "matplotlib", "bpcore.sklearn": "sklearn"}

IN_CI = os.environ.get("CI", "").lower() not in ("", "0", "false", "no")

_FENCE = re.compile(r"^(?P<indent> *)(?P<fence>`{3,}|~{3,})\s*(?P<info>[^`\s]*)")


def python_blocks(path: Path) -> list[tuple[int, str]]:
    """(first line number, code) of each fenced block whose info string is python."""
    blocks, lines = [], path.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        match = _FENCE.match(lines[i])
        if not match:
            i += 1
            continue
        fence, indent = match["fence"], len(match["indent"])
        body, j = [], i + 1
        while j < len(lines) and not (lines[j].strip().startswith(fence[0] * len(fence))
                                      and set(lines[j].strip()) == {fence[0]}):
            body.append(lines[j][indent:] if lines[j][:indent].isspace() else lines[j])
            j += 1
        if match["info"] in ("python", "py", "python3"):
            blocks.append((i + 2, textwrap.dedent("\n".join(body)) + "\n"))
        i = j + 1
    return blocks


def imported_modules(code: str) -> set[str]:
    """Every module a block imports, with its parents ("a.b.c" gives a, a.b, a.b.c)."""
    names = set()
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Import):
            found = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        for name in found:
            parts = name.split(".")
            names.update(".".join(parts[:k]) for k in range(1, len(parts) + 1))
    return names


def missing_extras(code: str) -> list[str]:
    """The optional modules a block needs that are not installed."""
    needed = set()
    for module in imported_modules(code):
        if module in OPTIONAL:
            needed.add(module)
        if module in NEEDS:
            needed.add(NEEDS[module])
    return sorted(m for m in needed if importlib.util.find_spec(m) is None)


# Runs in the fresh interpreter: execs each block in one namespace, so a failure
# names the file and line of the block in its traceback.
_DRIVER = """\
import json, sys
blocks = json.load(open(sys.argv[1], encoding="utf-8"))
namespace = {"__name__": "__main__"}
for block in blocks:
    print(f"--- {block['where']}", flush=True)
    exec(compile(block["code"], block["where"], "exec"), namespace)
"""


def _rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


@pytest.mark.parametrize("path", MUST_HAVE_CODE, ids=_rel)
def test_examples_are_found(path):
    assert python_blocks(path), f"no ```python block found in {_rel(path)}"


@pytest.mark.parametrize("path", [p for p in MARKDOWN if python_blocks(p)], ids=_rel)
def test_python_blocks_run(path, tmp_path):
    blocks = python_blocks(path)
    run, skipped = [], None
    for line, code in blocks:
        missing = missing_extras(code)
        if missing:
            extras = ", ".join(f"{m} (extra '{OPTIONAL[m]}')" for m in missing)
            if IN_CI:
                pytest.fail(f"{_rel(path)}:{line} needs {extras}, which CI must install")
            skipped = f"{_rel(path)}:{line} and the blocks after it need {extras}"
            break
        run.append({"where": f"{_rel(path)}:{line}", "code": code})
    if run:
        blocks_file = tmp_path / "blocks.json"
        blocks_file.write_text(json.dumps(run), encoding="utf-8")
        (tmp_path / "driver.py").write_text(_DRIVER, encoding="utf-8")
        work = tmp_path / "cwd"
        work.mkdir()
        env = dict(os.environ, MPLBACKEND="Agg")
        result = subprocess.run([sys.executable, str(tmp_path / "driver.py"), str(blocks_file)],
                                cwd=work, env=env, capture_output=True, text=True, timeout=900)
        assert result.returncode == 0, (
            f"an example of {_rel(path)} failed:\n{result.stdout[-4000:]}\n{result.stderr[-6000:]}")
    if skipped:
        pytest.skip(f"ran {len(run)} of {len(blocks)} blocks; {skipped}")


def test_site_builds_without_warnings(tmp_path):
    needed = ["sphinx", "myst_parser", "numpydoc", "furo"]
    missing = [m for m in needed if importlib.util.find_spec(m) is None]
    if missing:
        if IN_CI:
            pytest.fail(f"CI must install the 'docs' extra (missing: {', '.join(missing)})")
        pytest.skip(f"needs the 'docs' extra (missing: {', '.join(missing)})")
    result = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html",
         "-d", str(tmp_path / "doctrees"), str(ROOT / "docs"), str(tmp_path / "site")],
        cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"sphinx-build failed:\n{result.stdout}\n{result.stderr}"
    for page in ("index", "tutorial", "math", "threads-and-dtype", "design", "api/network"):
        assert (tmp_path / "site" / f"{page}.html").is_file(), page
    # The math page shows the README's table, and the API pages were generated.
    assert "equation (seeds)" in (tmp_path / "site" / "math.html").read_text(encoding="utf-8")
    assert "fit" in (tmp_path / "site" / "api" / "network.html").read_text(encoding="utf-8")
