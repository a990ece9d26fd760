"""Build of bpcore's compiled core.

Two source folders make one importable package ``bpcore``:

* ``python/``  -> the pure-Python layer (``Network`` wrapper, reference, data, CLI);
* ``bpcore/``  -> the Cython kernels, compiled into ``bpcore._kernels``.

OpenMP is detected by compiling *and running* a small probe with the flags of
the compiler in use (gcc/clang ``-fopenmp``, Apple clang ``-Xpreprocessor
-fopenmp -lomp``, MSVC ``/openmp``).  Without it the build warns and produces a
serial extension that gives the same results.

Environment switches (read at build time):

* ``BPCORE_DISABLE_OPENMP=1``  build the serial extension even if OpenMP works;
* ``BPCORE_DEBUG=1``           Cython bounds/wraparound/initialised checks on, -O0 -g;
* ``BPCORE_SANITIZE=1``        as BPCORE_DEBUG, plus AddressSanitizer and
                               UndefinedBehaviorSanitizer (GCC/Clang; run with the
                               ASan runtime preloaded: tools/run_sanitizers.sh);
* ``BPCORE_NATIVE=1``          add ``-march=native`` to the baseline module (opt-in only:
                               never in a wheel you share).

Instruction sets: on x86-64 with GCC or Clang the kernels are compiled three
times, into ``bpcore._kernels`` (baseline x86-64), ``bpcore._kernels_v3``
(``-march=x86-64-v3``: AVX2, FMA) and ``bpcore._kernels_v4`` (``-march=x86-64-v4``:
AVX-512); ``python/_dispatch.py`` picks the best one the CPU runs, once, at
import.  Elsewhere only the baseline module is built.

The variants are translated by Cython and compiled in parallel, one job per
usable core (``build_ext --parallel N``, or ``BPCORE_BUILD_JOBS=N``, sets
another count; 1 builds them one after another).
"""
from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
import tempfile
import textwrap
import warnings

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

OMP_PROBE = textwrap.dedent(r"""
    #include <omp.h>
    #include <stdio.h>
    int main(void) {
        int n = 0;
        #pragma omp parallel num_threads(2) reduction(+:n)
        n += 1;
        printf("%d\n", n);
        return n == 2 ? 0 : 1;
    }
""")


def _build_jobs() -> int:
    """Parallel jobs for translating and compiling the kernels: BPCORE_BUILD_JOBS, else
    the cores this process may run on."""
    text = os.environ.get("BPCORE_BUILD_JOBS", "").strip()
    if text:
        try:
            jobs = int(text)
        except ValueError:
            jobs = 0
        if jobs < 1:
            raise ValueError(f"BPCORE_BUILD_JOBS must be an integer >= 1, got {text!r}")
        return jobs
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no", "off")


def _openmp_flag_candidates(compiler) -> list[tuple[list[str], list[str]]]:
    """(compile args, link args) to try, by compiler family."""
    if compiler.compiler_type == "msvc":
        return [(["/openmp"], [])]
    if sys.platform == "darwin":
        return [(["-Xpreprocessor", "-fopenmp"], ["-lomp"]), (["-fopenmp"], ["-fopenmp"])]
    return [(["-fopenmp"], ["-fopenmp"])]


def _probe_openmp(compiler) -> tuple[list[str], list[str], str]:
    """Compile and run the probe; return (cflags, ldflags, reason)."""
    if _env_flag("BPCORE_DISABLE_OPENMP"):
        return [], [], "disabled by BPCORE_DISABLE_OPENMP"
    errors = []
    for cflags, ldflags in _openmp_flag_candidates(compiler):
        tmp = tempfile.mkdtemp(prefix="bpcore-omp-")
        try:
            src = os.path.join(tmp, "probe.c")
            with open(src, "w") as f:
                f.write(OMP_PROBE)
            objs = compiler.compile([src], output_dir=tmp, extra_postargs=cflags)
            exe = os.path.join(tmp, "probe")
            compiler.link_executable(objs, exe, extra_postargs=ldflags)
            if compiler.compiler_type == "msvc":
                exe += ".exe"
            subprocess.run([exe], check=True, capture_output=True, timeout=60)
            return cflags, ldflags, "probe compiled and ran with " + " ".join(cflags)
        except Exception as exc:  # noqa: BLE001 - any failure means "no OpenMP with these flags"
            errors.append(f"{' '.join(cflags)}: {type(exc).__name__}")
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return [], [], "probe failed (" + "; ".join(errors) + ")"


#: Extension-module suffix -> the -march of that variant of the kernels.
ISA_VARIANTS = {"_v3": "x86-64-v3", "_v4": "x86-64-v4"}


def _accepts_flag(compiler, flag: str) -> bool:
    """Whether the compiler compiles an empty C file with ``flag``."""
    tmp = tempfile.mkdtemp(prefix="bpcore-flag-")
    try:
        src = os.path.join(tmp, "empty.c")
        with open(src, "w") as f:
            f.write("int bp_empty(void) { return 0; }\n")
        compiler.compile([src], output_dir=tmp, extra_postargs=[flag])
        return True
    except Exception:  # noqa: BLE001 - any failure means "not accepted"
        return False
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


class BuildExt(build_ext):
    """build_ext that adds the OpenMP and optimisation flags it found to work, and
    compiles the extensions in parallel (setuptools' ``parallel`` option)."""

    def finalize_options(self):
        super().finalize_options()
        if self.parallel is None:
            self.parallel = _build_jobs()

    def build_extensions(self):
        cflags, ldflags, reason = _probe_openmp(self.compiler)
        if not cflags:
            warnings.warn(f"bpcore: building without OpenMP ({reason}); training runs on "
                          "one thread", stacklevel=1)
        msvc = self.compiler.compiler_type == "msvc"
        sanitize = [] if msvc or not _env_flag("BPCORE_SANITIZE") else [
            "-fsanitize=address,undefined", "-fno-sanitize-recover=undefined",
            "-fno-omit-frame-pointer"]
        if debug:
            opt = ["/Od", "/Zi"] if msvc else ["-O1" if sanitize else "-O0", "-g"]
        else:
            opt = ["/O2"] if msvc else ["-O3"]
        # OpenMP SIMD pragmas need no runtime; they work in the serial build too.
        simd = [] if msvc else ["-fopenmp-simd"]
        kept = []
        for ext in self.extensions:
            isa = []
            for suffix, march in ISA_VARIANTS.items():
                if ext.name.endswith(suffix):
                    isa = ["-march=" + march]
            if isa and not _accepts_flag(self.compiler, isa[0]):
                warnings.warn(f"bpcore: the compiler does not accept {isa[0]}; skipping "
                              f"{ext.name}", stacklevel=1)
                continue
            if not isa and _env_flag("BPCORE_NATIVE") and not msvc:
                isa = ["-march=native"]
            compile_args = opt + isa + simd + cflags + sanitize
            ext.extra_compile_args = compile_args + list(ext.extra_compile_args)
            ext.extra_link_args = ldflags + sanitize + list(ext.extra_link_args)
            ext.define_macros.append(("BPCORE_COMPILE_ARGS", '"' + " ".join(compile_args) + '"'))
            ext.define_macros.append(("BPCORE_OPENMP_REASON", '"' + reason.replace('"', "'") + '"'))
            kept.append(ext)
        self.extensions[:] = kept
        super().build_extensions()


debug = _env_flag("BPCORE_DEBUG") or _env_flag("BPCORE_SANITIZE")
x86_64 = platform.machine().lower() in ("x86_64", "amd64") and sys.platform != "win32"
extensions = [
    Extension(
        "bpcore._kernels" + suffix,
        [f"bpcore/_kernels{suffix}.pyx"],
        include_dirs=["bpcore", np.get_include()],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_9_API_VERSION")],
    )
    for suffix in [""] + (list(ISA_VARIANTS) if x86_64 else [])
]

setup(
    package_dir={"bpcore": "python"},
    packages=["bpcore", "bpcore.data"],
    package_data={"bpcore": ["py.typed"], "bpcore.data": ["mnist-subset/*.gz"]},
    ext_modules=cythonize(
        extensions,
        # Cython translates in worker processes; only where they fork, not re-run setup.py
        nthreads=_build_jobs() if len(extensions) > 1 and sys.platform == "linux" else 0,
        include_path=["bpcore"],
        compiler_directives={
            "language_level": 3,
            "boundscheck": debug,
            "wraparound": debug,
            "initializedcheck": debug,
            "cdivision": not debug,
            "embedsignature": True,
        },
    ),
    cmdclass={"build_ext": BuildExt},
)
