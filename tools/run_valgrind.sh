#!/usr/bin/env bash
# Run bpcore's kernel tests under valgrind memcheck and judge what it finds in
# bpcore's own compiled code (the _kernels*.so extensions).
#
#   tools/run_valgrind.sh [pytest args...]
#       default: tests/test_kernel_variants.py tests/test_gradients.py
#   VALGRIND_OMP_THREADS=2 tools/run_valgrind.sh      (default 1)
#   VALGRIND_LOG_DIR=DIR tools/run_valgrind.sh        (default: a new temp dir)
#
# Uses the bpcore installed in the active environment, run from outside the
# checkout (whose bpcore/ source folder would shadow it).  How it runs:
#
# * PYTHONMALLOC=malloc: CPython's small-object allocator off, so every Python
#   object is a malloc block memcheck tracks (and pymalloc's deliberate reads
#   of arena headers do not show).  Debian's CPython suppressions are added
#   when present.
# * valgrind cannot execute AVX-512, and the CPU it presents has none, so the
#   dispatcher picks the x86-64-v3 kernels; test_kernel_variants.py swaps in
#   every variant available, i.e. x86-64-v3 and baseline.
# * OMP_NUM_THREADS=1 by default: valgrind runs one thread at a time, so more
#   threads only make it slower.  Tests that ask a network for 2 or 3 threads
#   still start an OpenMP team of that size; VALGRIND_OMP_THREADS=2 makes every
#   default network use two as well.
# * --errors-for-leak-kinds=definite --error-exitcode=99: definite leaks count
#   as errors and any error makes valgrind exit with 99.  That always happens
#   for a Python process: the dynamic loader (strncmp in is_dst), glibc's AVX2
#   wmemcmp under unicode_compare, CPython's small-int lookup (maybe_small_long,
#   from int.from_bytes, int() of a string, bitwise ops) and the object
#   pointers taken from it, and objects CPython and NumPy allocate once at
#   import and never free are all reported.  None of that is bpcore's, so the
#   verdict is taken on the records whose stack passes through a _kernels*.so
#   (or _gemm.h, inlined into it): any error or definite/indirect leak there
#   fails the run.
# * "possibly lost" records through _kernels*.so are counted by cause and do
#   not fail: the objects the modules create when imported (the module, its
#   types, functions and constants, kept until exit; "possibly" because with
#   PYTHONMALLOC=malloc a tracked object is pointed to just past its GC header),
#   and the thread-local storage of each OpenMP worker thread, which libgomp
#   creates the first time a kernel opens a team of that size and keeps, idle,
#   for reuse until the process exits.  Any other such record is printed.
# * CPython before 3.12.5/3.13 loses the traceback records tracemalloc keeps for
#   traced blocks when tracing stops (gh-121390); a test that starts and stops
#   tracemalloc around a kernel call shows them as definitely lost through
#   _kernels*.so.  They are tracemalloc's own blocks (allocated in its
#   traceback_new), so they are counted apart and do not fail the run.
# * --child-silent-after-fork=yes: helpers that pytest's plugins fork (and that
#   exit without exec when a program is missing) would each add a leak report
#   of the whole interpreter.
#
# Exit status 0 when pytest passed and no error or leak goes through bpcore.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
logs="${VALGRIND_LOG_DIR:-$(mktemp -d)}"
mkdir -p "$logs"
tests=("$@")
[ ${#tests[@]} -gt 0 ] || tests=(tests/test_kernel_variants.py tests/test_gradients.py)
supp=()
for f in /usr/lib/valgrind/python3.supp /usr/lib/x86_64-linux-gnu/valgrind/python3.supp; do
    [ -f "$f" ] && supp=(--suppressions="$f") && break
done

cd "$(mktemp -d)"
set +e
PYTHONMALLOC=malloc OMP_NUM_THREADS="${VALGRIND_OMP_THREADS:-1}" \
valgrind --tool=memcheck --error-exitcode=99 --errors-for-leak-kinds=definite \
         --leak-check=full --show-leak-kinds=definite,indirect,possible --num-callers=40 \
         --child-silent-after-fork=yes \
         "${supp[@]}" --log-file="$logs/memcheck.%p.log" \
    python -m pytest -p no:cacheprovider -q --rootdir "$root" -c "$root/pyproject.toml" \
        "${tests[@]/#tests/$root/tests}" 2>&1 | tee "$logs/pytest.out"
status=${PIPESTATUS[0]}
set -e
echo
echo "valgrind exit status: $status (99: memcheck reported errors, mostly CPython's: see below)"
echo "logs: $logs"
python - "$logs" <<'EOF'
"""Summarise the memcheck logs; fail on records that pass through bpcore's kernels."""
import re
import sys
from pathlib import Path

logs = Path(sys.argv[1])
ours = re.compile(r"_kernels\w*\.(so|c|pyx)|_gemm\.h|_math\.pxd")
bad = 0
for log in sorted(logs.glob("memcheck.*.log")):
    text = log.read_text()
    command = re.search(r"== Command: (.*)", text)
    print(f"\n{log.name}: {command.group(1) if command else '?'}")
    for line in re.findall(r"== (ERROR SUMMARY: .*|\s+(?:definitely|indirectly|possibly) lost: .*)",
                           text):
        print("   ", line.strip())
    # a record is the block of lines between two "==PID== " blank lines
    records = re.split(r"\n==\d+== \n", text)
    counts = {"errors": 0, "definite/indirect leaks": 0,
              "leaks of tracemalloc's own tracebacks (CPython gh-121390)": 0,
              "possible leaks at import": 0, "possible leaks of OpenMP threads": 0,
              "other possible leaks": 0}
    for record in records:
        if not ours.search(record):
            continue
        head = re.sub(r"^==\d+== ", "", record.strip().splitlines()[0])
        if "possibly lost" in head:
            if re.search(r"__pyx_pymod_(create|exec)", record):
                counts["possible leaks at import"] += 1
            elif "pthread_create" in record and "GOMP_parallel" in record:
                counts["possible leaks of OpenMP threads"] += 1
            else:
                counts["other possible leaks"] += 1
                print(record)
        elif "lost in loss record" in head and re.search(r"traceback_new \(_tracemalloc\.c", record):
            counts["leaks of tracemalloc's own tracebacks (CPython gh-121390)"] += 1
        elif "lost in loss record" in head:
            counts["definite/indirect leaks"] += 1
            print(record)
        elif "bytes in" not in head:
            counts["errors"] += 1
            print(record)
    print("    records through bpcore's kernels:")
    for kind, n in counts.items():
        print(f"      {n:5d} {kind}")
    bad += counts["errors"] + counts["definite/indirect leaks"]
out = (logs / "pytest.out").read_text().strip().splitlines()
summary = out[-1] if out else ""
passed = "passed" in summary and not re.search(r"\b(failed|error)", summary)
print(f"\npytest: {summary}")
print("PASS" if passed and bad == 0 else "FAIL")
sys.exit(0 if passed and bad == 0 else 1)
EOF
