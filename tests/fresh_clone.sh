#!/usr/bin/env bash
# Follow the README's set-up on a fresh clone, as a new user of a stock Debian machine would:
# clone this repository (its committed HEAD) into a temporary folder, put Debian's own
# /usr/bin/python3 first on the PATH (it refuses system-wide pip installs, PEP 668), leave any
# active environment, run the README's two commands exactly as written there, and report.
#
#   bash tests/fresh_clone.sh            the two commands as the README writes them
#   bash tests/fresh_clone.sh --quick    the test command with --quick (no slow, QEMU and
#                                        browser tests, no coverage pass), as the README offers
#   FPHINT_KEEP=1 bash tests/fresh_clone.sh    keep the clone (default: removed at the end)
#
# The commands are read from the README (the first two lines of its first ```bash block), so
# the script checks what the README says, not a copy of it.
set -euo pipefail
SRC="$(cd "$(dirname "$0")/.." && git rev-parse --show-toplevel)"
quick=0
[ "${1:-}" = "--quick" ] && quick=1

mapfile -t commands < <(awk '/^```bash/{on=1; next} /^```/{if (on) exit} on' "$SRC/README.md" |
    sed 's/[[:space:]]*#.*$//' | grep -v '^[[:space:]]*$' | head -2)
if [ "${#commands[@]}" -ne 2 ]; then
    echo "fresh_clone: the README's first bash block should hold the two set-up commands" >&2
    exit 1
fi
main_cmd="${commands[0]}"
test_cmd="${commands[1]}"
[ "$quick" = 1 ] && test_cmd="$test_cmd --quick"

work="$(mktemp -d -t fphint-fresh-XXXXXX)"
if [ "${FPHINT_KEEP:-0}" != 1 ]; then
    trap 'rm -rf "$work"' EXIT
fi
echo "== fresh clone of $SRC ($(git -C "$SRC" rev-parse --short HEAD)) into $work/fphint"
git clone -q "$SRC" "$work/fphint"
git -C "$work/fphint" checkout -q "$(git -C "$SRC" rev-parse HEAD)"
cd "$work/fphint"

# a stock shell: Debian's python3 first, no active environment, nothing of this session's
unset VIRTUAL_ENV CONDA_PREFIX CONDA_DEFAULT_ENV PYTHONPATH PYTHONHOME NUMBA_CACHE_DIR \
    FPHINT_NUMBA_CACHE FPHINT_FAST FPHINT_DATA NUMBA_DISABLE_JIT MPLBACKEND || true
export PATH="/usr/bin:/bin:/usr/sbin:/sbin:$PATH"
echo "== python3 is $(command -v python3) ($(python3 --version 2>&1))"
if python3 -m pip install --dry-run --quiet fphint-not-a-package >/dev/null 2>&1; then
    echo "   (this python3 would accept system-wide installs)"
else
    echo "   (this python3 refuses system-wide pip installs, or has no pip: as on stock Debian)"
fi

status=0
run() {
    local what="$1" cmd="$2" t0 rc
    echo "== $what: $cmd"
    t0=$(date +%s)
    set +e
    bash -c "$cmd"
    rc=$?
    set -e
    echo "== $what: exit code $rc after $(($(date +%s) - t0)) s"
    [ "$rc" = 0 ] || status=1
}
run "main job" "$main_cmd"
if [ -f results/report.md ]; then
    echo "   results/: $(ls results | tr '\n' ' ')"
else
    echo "   no results/report.md"
    status=1
fi
run "tests" "$test_cmd"
left="$(git status --porcelain --untracked-files=normal | grep -v -E '^\?\? (\.venv|results)/$' || true)"
if [ -n "$left" ]; then
    echo "== the clone has changes besides .venv/ and results/:"
    echo "$left"
    status=1
fi
echo "== fresh clone: $([ "$status" = 0 ] && echo "both commands succeeded" || echo "FAILED")"
exit "$status"
