#!/usr/bin/env bash
# Build bpcore with AddressSanitizer + UndefinedBehaviorSanitizer and Cython's
# bounds checks (BPCORE_SANITIZE=1) in a throw-away venv, then run the tests that
# exercise every kernel under it.  Any sanitizer report fails the run.
#   tools/run_sanitizers.sh [pytest args...]     (default: the kernel tests)
set -euo pipefail
cd "$(dirname "$0")/.."
venv="$(mktemp -d)/venv"
python3 -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --upgrade pip
BPCORE_SANITIZE=1 "$venv/bin/python" -m pip install --quiet ".[test]"
asan="$(${CC:-gcc} -print-file-name=libasan.so)"
ubsan="$(${CC:-gcc} -print-file-name=libubsan.so)"
tests=("$@")
[ ${#tests[@]} -gt 0 ] || tests=(tests/test_kernel_variants.py tests/test_gradients.py
                                 tests/test_training.py tests/test_save_load.py
                                 tests/test_concurrency.py -p no:cacheprovider -q
                                 # caps RLIMIT_AS, which ASan's shadow memory cannot live under
                                 -k "not checks_shapes_before_allocating")
# CPython's own allocations are not ours to judge: leak detection stays off;
# every other ASan/UBSan finding aborts the process and so fails pytest.
cd "$(mktemp -d)"
LD_PRELOAD="$asan:$ubsan" \
ASAN_OPTIONS=detect_leaks=0:abort_on_error=1:halt_on_error=1 \
UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
PYTHONMALLOC=malloc \
    "$venv/bin/python" -m pytest --rootdir "$OLDPWD" -c "$OLDPWD/pyproject.toml" \
        "${tests[@]/#tests/$OLDPWD/tests}"
