"""The C tools in tools/ build against the current kernel headers and run."""
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")


@pytest.fixture(scope="module")
def gemm_bench(tmp_path_factory):
    exe = tmp_path_factory.mktemp("tools") / "gemm_bench"
    build = subprocess.run(["gcc", "-O2", f"-I{ROOT / 'bpcore'}", str(ROOT / "tools" / "gemm_bench.c"),
                            "-o", str(exe), "-lm"], capture_output=True, text=True)
    assert build.returncode == 0, build.stderr
    return exe


@pytest.mark.parametrize("kind", ["f", "o", "t", "d", "g", "G", "p"])
def test_gemm_bench_times_every_product(gemm_bench, kind):
    run = subprocess.run([str(gemm_bench), kind, "12", "70", "30", "3"], capture_output=True,
                         text=True, env={"LD": "80"})
    assert run.returncode == 0, run.stderr
    m = re.match(rf"{kind} m=12 n_in=70 n_out=30 LD=80 \(.+\): ([0-9.]+) GFLOP/s", run.stdout)
    assert m and float(m.group(1)) > 0, run.stdout


def test_gemm_bench_refuses_a_stride_shorter_than_a_row(gemm_bench):
    run = subprocess.run([str(gemm_bench), "f", "12", "70", "30"], capture_output=True, text=True,
                         env={"LD": "50"})
    assert run.returncode == 2 and "LD" in run.stderr
