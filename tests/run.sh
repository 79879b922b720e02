#!/usr/bin/env bash
# The whole test suite, from a fresh Debian 12 or Ubuntu 24.04 machine with python3 (and its
# venv module), or from an active conda environment.  This is the README's test command and
# what .ci/run calls.
#
#   bash tests/run.sh            lint, every test with the JIT on and, beside it, the coverage pass
#   bash tests/run.sh --quick    lint and the tests with the JIT on, without the slow, QEMU and
#                                browser tests and without the coverage pass (a few minutes)
#   bash tests/run.sh ARGS...    further arguments go to pytest
#
# What it changes on the machine (printed before it does anything):
#   * .venv/ in this checkout (or the active environment): the package with its test and
#     notebook extras, from PyPI (tools/env.sh; reused when it is already there);
#   * as root, with apt-get, only what is missing: qemu-system-x86 busybox-static cpio gcc
#     libc6-dev (the real-migration test, .ci/install-qemu.sh) and chromium with two font
#     packages (the browser test, .ci/install-browser.sh);
#   * the real-migration test downloads Debian's guest kernel package (about 77 MB) into
#     ~/.cache/fphint/qemu once and builds the test guest there;
#   * compiled kernels and the tests' files go to one temporary folder, removed at the end.
# Without root the apt-get steps are skipped: the QEMU and browser tests then skip and say why
# (pytest's summary lists them), unless QEMU and chromium are already installed.
set -euo pipefail
cd "$(dirname "$0")/.."

quick=0
if [ "${1:-}" = "--quick" ]; then
    quick=1
    shift
fi

QEMU_PKGS=(qemu-system-x86 busybox-static cpio gcc libc6-dev)
BROWSER_PKGS=(chromium fonts-dejavu-core fonts-liberation)
missing_pkgs() {
    command -v dpkg-query >/dev/null 2>&1 || { echo "$@"; return; }
    local out=()
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" ||
            out+=("$pkg")
    done
    echo "${out[@]:-}"
}
root=0
[ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1 && root=1
need_qemu="$(missing_pkgs "${QEMU_PKGS[@]}")"
need_browser="$(missing_pkgs "${BROWSER_PKGS[@]}")"
guest_cache="${FPHINT_QEMU_CACHE:-$HOME/.cache/fphint/qemu}"

echo "== tests/run.sh$([ "$quick" = 1 ] && echo " --quick"): what this changes on the machine"
echo "  - the Python environment (tools/env.sh): the active conda or virtual environment, or else"
echo "    .venv/ in this checkout (created if missing, about 1.1 GB); the package with its test and"
echo "    notebook extras is installed into it from PyPI unless it is there already"
if [ "$quick" = 1 ]; then
    echo "  - nothing else: the QEMU and browser tests are left out (--quick)"
elif [ "$root" = 1 ]; then
    if [ -n "$need_qemu$need_browser" ]; then
        echo "  - apt-get install ${need_qemu:+$need_qemu }$need_browser (about 600 MB with dependencies)"
    else
        echo "  - apt-get: nothing to install (QEMU, busybox, gcc and chromium are there)"
    fi
elif [ -n "$need_qemu$need_browser" ]; then
    echo "  - no apt-get (not root): ${need_qemu:+$need_qemu }$need_browser missing; the tests that"
    echo "    need them will skip and say why"
else
    echo "  - no apt-get (not root): QEMU, busybox, gcc and chromium are already installed"
fi
if [ "$quick" = 0 ]; then
    if compgen -G "$guest_cache/kernel-*" >/dev/null; then
        echo "  - the test guest in $guest_cache: already built"
    else
        echo "  - downloads Debian's guest kernel package (about 77 MB) into $guest_cache and builds the test guest there (once)"
    fi
fi
echo "  - compiled kernels and test files in one temporary folder, removed at the end"

PY="$(bash tools/env.sh --extras test,notebooks --print-python)"
export PATH="$(dirname "$PY"):$PATH"
if [ -z "${CONDA_PREFIX:-}" ] && [ "$PY" = "$PWD/.venv/bin/python" ]; then
    export VIRTUAL_ENV="$PWD/.venv"
fi
echo "== python: $PY ($("$PY" --version 2>&1))"

if [ "$quick" = 0 ] && [ "$root" = 1 ]; then
    bash .ci/install-qemu.sh >/dev/null ||
        echo "tests/run.sh: QEMU could not be installed; its test will be skipped" >&2
    bash .ci/install-browser.sh >/dev/null ||
        echo "tests/run.sh: chromium could not be installed; the browser test will be skipped" >&2
fi

# one temporary folder for this run, removed at the end: compiled kernels (cached for this run
# only; notebook kernels and Voila inherit this), pytest's tmp_path folders, anything made with
# Python's tempfile
run_tmp="$(mktemp -d -t fphint-tests-XXXXXX)"
trap 'rm -rf "$run_tmp"' EXIT
mkdir -p "$run_tmp/tmp"
export TMPDIR="$run_tmp/tmp"
export FPHINT_NUMBA_CACHE=1
export NUMBA_CACHE_DIR="${NUMBA_CACHE_DIR:-$run_tmp/numba}"
export MPLBACKEND=Agg

echo "== lint"
"$PY" -m ruff check .
"$PY" -m ruff format --check fphint_kernels tests benchmarks

if [ "$quick" = 1 ]; then
    echo "== tests (JIT, quick: not slow, not qemu, not browser)"
    "$PY" -m pytest -q -p no:cacheprovider --basetemp="$run_tmp/pytest" --durations=10 \
        -m "not slow and not qemu and not browser" "$@"
    exit 0
fi

# the two passes run side by side, one per core: the JIT pass here, the coverage pass (pure
# Python, NUMBA_DISABLE_JIT=1) in the background, its output shown when both are done
echo "== tests (JIT), and beside it the coverage pass (NUMBA_DISABLE_JIT=1)"
(
    rc=0
    NUMBA_DISABLE_JIT=1 "$PY" -m coverage run -m pytest -q -p no:cacheprovider \
        --basetemp="$run_tmp/pytest-coverage" -m "not slow and not qemu and not browser" \
        -k "not notebook" "$@" >"$run_tmp/coverage.log" 2>&1 || rc=$?
    echo "$rc" >"$run_tmp/coverage.rc"
) &
cov_pid=$!
jit_rc=0
"$PY" -m pytest -q -p no:cacheprovider --basetemp="$run_tmp/pytest" --durations=15 "$@" ||
    jit_rc=$?
wait "$cov_pid" || true
echo "== coverage (NUMBA_DISABLE_JIT=1)"
cat "$run_tmp/coverage.log"
cov_rc="$(cat "$run_tmp/coverage.rc" 2>/dev/null || echo 1)"
report_rc=0
"$PY" -m coverage report || report_rc=$?
if [ "$jit_rc" != 0 ] || [ "$cov_rc" != 0 ] || [ "$report_rc" != 0 ]; then
    echo "tests/run.sh: failed (JIT pass $jit_rc, coverage pass $cov_rc, coverage report $report_rc)" >&2
    exit 1
fi
