"""The one place where Numba options are chosen.

Caching and fastmath are opt-in through environment variables, never hard-coded in a kernel
(stumpy ``config.py``, numbagg ``_set_cache``): a stale on-disk cache or a fast-math reordering
must never change a published comparison without the user asking for it.

``FPHINT_NUMBA_CACHE=1``  cache compiled kernels on disk (off by default: numba#4807).
``FPHINT_FASTMATH=1``     allow fast-math (off by default; the kernels are integer code anyway).
``NUMBA_DISABLE_JIT=1``   (Numba's own switch) runs every kernel as plain Python, used by the
                          coverage pass of the test suite.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from numba import njit

CACHE = os.environ.get("FPHINT_NUMBA_CACHE", "0") == "1"
FASTMATH = os.environ.get("FPHINT_FASTMATH", "0") == "1"

#: Every dispatcher made by :func:`jit`, so that caching can be switched on after import.
DISPATCHERS = []


def jit(func=None, **options):
    """``numba.njit`` with the project's options (``@jit`` or ``@jit(inline="always")``)."""
    options = {"cache": CACHE, "fastmath": FASTMATH, "nogil": True, **options}

    def wrap(f):
        d = njit(**options)(f)
        DISPATCHERS.append(d)
        return d

    return wrap(func) if func is not None else wrap


KERNELS = Path(__file__).parent / "kernels"


def _kernels_stamp(folder: Path = KERNELS) -> str:
    """A short hash naming the cache of this version of the kernels: the content of every
    kernel source file (and of this module, which sets the compile options), and the
    versions of Python, NumPy, Numba and llvmlite.

    Numba checks a cached function against the modification time of its own file only, not
    of the files it calls: a constant changed in ``kernels/layout.py`` or ``kernels/rng.py``
    would leave it returning the old code's results.  Each version of the sources gets a
    cache folder of its own instead.  (Numba also unpickles a cache index before it checks
    that the index is stale, so an index written by another version whose signatures name a
    bundle type that no longer exists would raise instead of being recompiled.)
    """
    import sys

    import llvmlite
    import numba
    import numpy

    h = hashlib.sha1()
    versions = (sys.version, numpy.__version__, numba.__version__, llvmlite.__version__)
    h.update(repr(versions).encode())
    for path in [*sorted(Path(folder).glob("*.py")), Path(__file__)]:
        h.update(path.name.encode() + b"\0")
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def _cache_dir(cache_dir: str | None = None) -> str:
    """The cache folder of this version of the kernels (see :func:`enable_cache`)."""
    base = (
        cache_dir
        or os.environ.get("NUMBA_CACHE_DIR")
        or str(Path.home() / ".cache" / "fphint" / "numba")
    )
    return str(Path(base) / _kernels_stamp())


if CACHE:
    # the dispatchers made with cache=True take their cache folder when they are made:
    # point Numba at this version's folder first (NUMBA_CACHE_DIR itself would be shared by
    # every version of the kernels)
    from numba.core import config as _config

    if not _config.DISABLE_JIT:
        _config.CACHE_DIR = _cache_dir()


def enable_cache(cache_dir: str | None = None) -> bool:
    """Cache compiled kernels on disk from now on (used by the ``fphint`` command, where a cold
    compile of tens of seconds per invocation would make the tool unusable).

    ``cache_dir`` defaults to ``NUMBA_CACHE_DIR`` or ``~/.cache/fphint/numba``; the cache goes
    in a subdirectory named by a hash of the kernels' sources.  Returns False when the JIT is
    disabled (nothing to cache).
    """
    from numba.core import config

    if config.DISABLE_JIT:
        return False
    config.CACHE_DIR = _cache_dir(cache_dir)
    for d in DISPATCHERS:
        if getattr(d, "_cache", None) is None or type(d._cache).__name__ == "NullCache":
            d.enable_caching()
    return True
