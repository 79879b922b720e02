#!/usr/bin/env bash
# Create or reuse the Python environment of this checkout, install the package into it, then run
# a command inside it:
#
#   bash tools/env.sh fphint reproduce                 # the README's first command
#   bash tools/env.sh --extras test,notebooks CMD...   # with optional dependencies
#   bash tools/env.sh --print-python                   # set up, then print the interpreter
#
# Which environment:
#   * an active conda environment or virtual environment (CONDA_PREFIX / VIRTUAL_ENV, or
#     python3 running inside one): used as it is;
#   * otherwise .venv/ in this checkout (FPHINT_VENV=DIR for another folder), created with
#     `python3 -m venv` (PYTHON=... for another interpreter) the first time, reused afterwards.
# Nothing is ever installed with pip outside such an environment (Debian's and Ubuntu's own
# python3 refuse that anyway, PEP 668).  The install is skipped when the environment already
# holds this checkout with the same pyproject.toml and extras (a stamp file in the environment).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore

extras=""
print_python=0
while [ $# -gt 0 ]; do
    case "$1" in
        --extras) extras="$2"; shift 2 ;;
        --extras=*) extras="${1#--extras=}"; shift ;;
        --print-python) print_python=1; shift ;;
        --) shift; break ;;
        *) break ;;
    esac
done

say() { echo "tools/env.sh: $*" >&2; }

base="${PYTHON:-python3}"
if ! command -v "$base" >/dev/null 2>&1; then
    say "no $base on the PATH: install Python 3.10 or newer (Debian/Ubuntu: apt-get install python3 python3-venv)"
    exit 1
fi
if ! "$base" -c 'import sys; sys.exit(sys.version_info < (3, 10))'; then
    say "$("$base" --version 2>&1) is too old: fphint needs Python 3.10 or newer"
    exit 1
fi

# an environment that is already active?
inside="$("$base" -c 'import os, sys
venv = sys.prefix != sys.base_prefix
conda = os.path.isdir(os.path.join(sys.prefix, "conda-meta"))
print(sys.prefix if (venv or conda) else "")')"
if [ -n "${FPHINT_VENV:-}" ]; then
    inside=""
fi
if [ -n "$inside" ]; then
    py="$(command -v "$base")"
    env_dir="$inside"
else
    env_dir="${FPHINT_VENV:-$ROOT/.venv}"
    py="$env_dir/bin/python"
    if [ -x "$py" ] && ! "$py" -c 'import sys' >/dev/null 2>&1; then
        say "$env_dir is broken (its Python is gone?): creating it anew"
        rm -rf "$env_dir"
    fi
    if [ ! -x "$py" ]; then
        if ! "$base" -c 'import ensurepip, venv' >/dev/null 2>&1; then
            if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
                pkg="python3-venv"
                ver="$("$base" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')"
                if apt-cache show "python$ver-venv" >/dev/null 2>&1; then pkg="python$ver-venv"; fi
                say "$base cannot create virtual environments: installing $pkg with apt-get"
                DEBIAN_FRONTEND=noninteractive apt-get update -qq
                DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$pkg" >/dev/null
            else
                say "$base cannot create virtual environments here: install python3-venv" \
                    "(sudo apt-get install python3-venv), or use conda (environment.yml)"
                exit 1
            fi
        fi
        say "creating the virtual environment $env_dir (once)"
        "$base" -m venv "$env_dir"
    fi
fi

# install this checkout (editable) unless the environment already has it as asked
stamp="$env_dir/.fphint-install"
want="$ROOT $("$py" -c 'import hashlib, sys; print(hashlib.sha256(open(sys.argv[1], "rb").read()).hexdigest()[:16])' "$ROOT/pyproject.toml")"
have_extras=""
if [ -f "$stamp" ] && [ "$(head -1 "$stamp")" = "$want" ]; then
    have_extras="$(sed -n 2p "$stamp")"
    have_extras="${have_extras:-,}"
fi
missing=0
if [ -z "$have_extras" ]; then
    missing=1
else
    for e in ${extras//,/ }; do
        case ",$have_extras," in *",$e,"*) ;; *) missing=1 ;; esac
    done
fi
if ! "$py" -c 'import fphint_kernels' >/dev/null 2>&1; then
    missing=1
fi
if [ "$missing" = 1 ]; then
    all="$(printf '%s\n' ${have_extras//,/ } ${extras//,/ } | sort -u | paste -sd, -)"
    target="$ROOT"
    [ -n "$all" ] && target="$ROOT[$all]"
    say "installing fphint${all:+ with [$all]} into $env_dir (from PyPI; a few minutes the first time)"
    "$py" -m pip install -q -e "$target"
    printf '%s\n%s\n' "$want" "$all" >"$stamp"
fi

if [ "$print_python" = 1 ]; then
    echo "$py"
fi
if [ $# -gt 0 ]; then
    export PATH="$(dirname "$py"):$PATH"
    if [ -z "$inside" ]; then
        export VIRTUAL_ENV="$env_dir"
    fi
    exec "$@"
fi
if [ "$print_python" = 0 ]; then
    if [ -n "$inside" ]; then
        say "ready: fphint is installed in the active environment $env_dir"
    else
        say "ready: $py  (source $env_dir/bin/activate to put fphint on your PATH)"
    fi
fi
