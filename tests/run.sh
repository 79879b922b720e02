#!/usr/bin/env bash
# The whole test suite, from a fresh Debian machine with Python 3 and pip (run as root, or with
# sudo for the apt-get steps). This is the README's test command and what .ci/run calls.
#
#  1. install the package with its test and notebook extras, QEMU (real-migration test) and
#     Debian's chromium (browser test);
#  2. lint: ruff check, ruff format --check;
#  3. pytest with the JIT on and warnings as errors (every test, notebooks and browser included);
#  4. coverage pass: the same suite with NUMBA_DISABLE_JIT=1 (kernels run as plain Python, so
#     their lines are measured), long simulations skipped, fail_under from pyproject.toml.
set -euo pipefail
cd "$(dirname "$0")/.."
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore
python3 -m pip install -q -e ".[test,notebooks]"
bash .ci/install-qemu.sh >/dev/null || echo "tests/run.sh: QEMU could not be installed; its test will be skipped" >&2
bash .ci/install-browser.sh >/dev/null || echo "tests/run.sh: chromium could not be installed; the browser test will be skipped" >&2

# compiled kernels are cached for this run only (notebook kernels and Voila inherit this)
export FPHINT_NUMBA_CACHE=1
export NUMBA_CACHE_DIR="${NUMBA_CACHE_DIR:-$(mktemp -d -t fphint-numba-XXXXXX)}"
export MPLBACKEND=Agg

echo "== lint"
python3 -m ruff check .
python3 -m ruff format --check fphint_kernels tests benchmarks

echo "== tests (JIT)"
python3 -m pytest -q -p no:cacheprovider --durations=15 "$@"

echo "== coverage (NUMBA_DISABLE_JIT=1)"
NUMBA_DISABLE_JIT=1 python3 -m coverage run -m pytest -q -p no:cacheprovider \
    -m "not slow and not qemu and not browser" -k "not notebook" "$@"
python3 -m coverage report
