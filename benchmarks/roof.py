"""The machine a benchmark ran on: CPU model, and the cores' FMA rate (the roof).

The roof is what ``tools/fma_peak.c`` measures: independent multiply-adds on
registers, for each vector width the CPU has.  It is compiled here, at run time,
with ``gcc -O2 -march=native -fopenmp`` (so only the widths this CPU executes are
built) and run in the environment of a timed process.  The program counts
float32 lanes; a float64 FMA does half as many FLOP per instruction, so the
float64 roof is half the float32 one.  The roof of a thread count is the best
width's rate at that count.
"""
from __future__ import annotations

import contextlib
import os
import platform
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

FMA_SOURCE = Path(__file__).resolve().parents[1] / "tools" / "fma_peak.c"
_LINE = re.compile(r"(\d+)-bit, (\d+) thread\(s\): ([\d.]+) GFLOP/s")


def cpu_model(cpuinfo: str | None = None) -> str:
    """The first CPU's model name and, where /proc/cpuinfo gives them, its family and
    model numbers: virtual machines often report a bare "AMD EPYC", and only the
    numbers tell the kinds apart (family 25 is Zen 3 or Zen 4 by model, 26 Zen 5)."""
    if cpuinfo is None:
        cpuinfo = ""
        with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
            cpuinfo = f.read()
    fields: dict[str, str] = {}
    for line in cpuinfo.splitlines():
        if not line.strip():
            break  # the first CPU's block only
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    name = fields.get("model name") or platform.processor() or platform.machine()
    if "cpu family" in fields and "model" in fields:
        name += f" (family {fields['cpu family']} model {fields['model']})"
    return name


def cpu_flags() -> set[str]:
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    return set()


def fma_roof(threads: list[int], env: dict | None = None) -> dict:
    """{"widths": {bits: {threads: GFLOP/s}}, "float32": {threads: best}, "float64": ...}
    or {"error": why} when there is no gcc or the program does not build or run."""
    gcc = shutil.which("gcc")
    if gcc is None:
        return {"error": "no gcc on PATH: the FMA roof was not measured"}
    if not FMA_SOURCE.exists():
        return {"error": f"{FMA_SOURCE.name} not found beside the benchmarks"}
    with tempfile.TemporaryDirectory() as tmp:
        exe = os.path.join(tmp, "fma_peak")
        build = subprocess.run([gcc, "-O2", "-march=native", "-fopenmp", str(FMA_SOURCE), "-o",
                                exe], capture_output=True, text=True)
        if build.returncode != 0:
            return {"error": f"gcc could not build fma_peak.c: {build.stderr.strip()[-300:]}"}
        run = subprocess.run([exe, *map(str, threads)], capture_output=True, text=True, env=env)
    if run.returncode != 0:
        return {"error": f"fma_peak failed: {run.stderr.strip()[-300:]}"}
    widths: dict[int, dict[int, float]] = {}
    for bits, nt, gflops in _LINE.findall(run.stdout):
        widths.setdefault(int(bits), {})[int(nt)] = float(gflops)
    best = {t: max(w[t] for w in widths.values() if t in w) for t in threads}
    return {"widths": widths, "float32": best, "float64": {t: g / 2 for t, g in best.items()},
            "compiler": subprocess.run([gcc, "-dumpfullversion"], capture_output=True,
                                       text=True).stdout.strip()}
