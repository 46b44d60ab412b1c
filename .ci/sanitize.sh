#!/usr/bin/env bash
# CI: build fusedopt's native core with AddressSanitizer + UndefinedBehaviorSanitizer in
# its own build directory and run the whole test suite against it. Any sanitizer report,
# in pytest or in a subprocess a test starts, fails the run.
#
# Works from a fresh clone where `pip install ".[test]"` has run: the build tools that
# pip's isolated build used (pybind11, cmake, ninja) are installed here explicitly. The
# installed package is not touched: the sanitized extension and a copy of
# python/fusedopt are staged in build/asan/pkg and put first on PYTHONPATH.
#
#   .ci/sanitize.sh [pytest args...]      (default: the whole tests/ directory)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PY=${PYTHON:-python}
BUILD=$ROOT/build/asan
STAGE=$BUILD/pkg
LOGS=$BUILD/reports

"$PY" -m pip install --quiet --disable-pip-version-check "pybind11>=2.12" "cmake>=3.18" ninja "numpy>=2.0"

# -- build: -O3 and the instruction-set targets as shipped (the same vector code; the
# tests force each target the CPU runs), -g for readable reports, no LTO (a faster build)
cmake -S "$ROOT" -B "$BUILD" -G Ninja \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DFUSEDOPT_SANITIZE=ON -DFUSEDOPT_NATIVE=OFF -DCMAKE_INTERPROCEDURAL_OPTIMIZATION=OFF \
  -DPython_EXECUTABLE="$(command -v "$PY")" \
  -Dpybind11_DIR="$("$PY" -m pybind11 --cmakedir)" >/dev/null
cmake --build "$BUILD" --parallel 2

# -- stage: the package's Python files and the sanitized _core
rm -rf "$STAGE" "$LOGS"
mkdir -p "$STAGE" "$LOGS"
cp -r "$ROOT/python/fusedopt" "$STAGE/fusedopt"
rm -f "$STAGE"/fusedopt/_core*.so "$STAGE"/fusedopt/_core*.pyd
cp "$BUILD"/_core*.so "$STAGE/fusedopt/"
# On a developer's machine an editable install's import hook would win over PYTHONPATH:
# drop it (in every Python process of the run, subprocesses included).
cat >"$STAGE/sitecustomize.py" <<'PYEOF'
import sys

sys.meta_path[:] = [
    f for f in sys.meta_path
    if not ("_editable" in type(f).__module__ and "fusedopt" in type(f).__module__)
]
PYEOF

# -- run: the ASan runtime first in the process, Python's allocator off so that ASan sees
# every allocation, leaks not reported (the interpreter never frees everything), the
# first error fatal, every report also written to $LOGS (subprocesses included).
# libstdc++ is preloaded with it: ASan intercepts __cxa_throw only if the C++ runtime is
# there when ASan starts (Python itself is C), else the first C++ exception aborts.
CXX_BIN=${CXX:-g++}
ASAN_RT=$("$CXX_BIN" -print-file-name=libasan.so)
CXX_RT=$("$CXX_BIN" -print-file-name=libstdc++.so)
export LD_PRELOAD="$ASAN_RT $CXX_RT"
export PYTHONMALLOC=malloc
export ASAN_OPTIONS="detect_leaks=0:halt_on_error=1:abort_on_error=0:exitcode=86:allocator_may_return_null=1:log_path=$LOGS/asan"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:exitcode=87:log_path=$LOGS/ubsan"
export PYTHONPATH="$STAGE${PYTHONPATH:+:$PYTHONPATH}"
export FUSEDOPT_SANITIZED=1  # the tests keep their example counts and sizes modest

"$PY" - <<'PYEOF'
import fusedopt
info = fusedopt.build_info()
assert info["sanitizers"], f"not the sanitized build: {fusedopt.__file__}"
print("sanitized fusedopt:", fusedopt.__file__)
PYEOF

status=0
"$PY" -m pytest -p no:cacheprovider -q "${@:-tests}" || status=$?

if compgen -G "$LOGS/*" >/dev/null; then
  echo "sanitizer reports:" >&2
  cat "$LOGS"/* >&2
  exit 1
fi
exit "$status"
