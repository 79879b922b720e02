"""Telling the user what takes time: the one-off compilation of the simulation kernels.

The first simulation of a Python process compiles the Numba kernels, about 30 s on a small
machine, and is silent otherwise.  Before that compilation the package logs one line,
:data:`COMPILING`, on its logger ``logging.getLogger("fphint_kernels")`` (level INFO, once per
process); the ``fphint`` command prints it on stderr and the explorer shows it in its status
line.  :func:`fphint_kernels.simulate.warm_up` compiles with one tiny run, so that progress bars started after it do not
count the compilation in their estimate.

Where nothing configured logging (no handler on the root logger: a plain script, a notebook),
the package logger prints its INFO messages on stderr as they are, the way PyMC does; once the
application configures logging (``logging.basicConfig``, pytest), its own handlers decide.
"""

from __future__ import annotations

import logging
import sys
import threading

__all__ = [
    "COMPILING", "LOGGER", "announce_compile", "kernels_cold", "mark_announced", "will_compile",
]  # fmt: skip

#: the package's logger (every module logs through it)
LOGGER = logging.getLogger("fphint_kernels")
#: the line said before the one-off compilation of the kernels
COMPILING = "compiling the simulation kernels (once, about 30 s)"

_announced = False
_lock = threading.Lock()


class _StderrHandler(logging.StreamHandler):
    """INFO and above to the current ``sys.stderr`` (looked up at each message, so pytest's and
    Jupyter's replacements of it are honoured), unless the application configured logging."""

    def __init__(self):
        super().__init__(sys.stderr)
        self.setLevel(logging.INFO)
        self.setFormatter(logging.Formatter("%(message)s"))

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value):  # StreamHandler.__init__ assigns it; sys.stderr is used instead
        pass

    def emit(self, record):
        if logging.getLogger().handlers:  # the application decides (its handlers get it)
            return
        super().emit(record)


if not any(isinstance(h, _StderrHandler) for h in LOGGER.handlers):
    LOGGER.addHandler(_StderrHandler())
if LOGGER.level == logging.NOTSET:
    LOGGER.setLevel(logging.INFO)


def kernels_cold() -> bool:
    """True while no simulation kernel has been compiled (or loaded from the cache) in this
    process: the next simulation starts with the one-off Numba compilation.  False when the JIT
    is disabled (``NUMBA_DISABLE_JIT=1``: nothing to compile)."""
    from ._numba import DISPATCHERS

    compiled = [getattr(d, "signatures", None) for d in DISPATCHERS]
    if not compiled or all(s is None for s in compiled):
        return False
    return not any(compiled)


def _cached_on_disk() -> bool:
    """The engine's main loop (the kernel ``run``) has an on-disk cache index: the next
    simulation loads compiled kernels (a few seconds) instead of compiling them."""
    from ._numba import DISPATCHERS

    for d in DISPATCHERS:
        if getattr(getattr(d, "py_func", None), "__name__", "") != "run":
            continue
        index = getattr(getattr(d, "_cache", None), "_cache_file", None)
        try:  # Numba's cache index: empty when missing or stale (its source changed)
            return bool(index is not None and index._load_index())
        except Exception:  # pragma: no cover - another Numba's internals: assume a compile
            return False
    return False


def will_compile() -> bool:
    """True when the next simulation of this process compiles the kernels (they are neither
    compiled in this process nor cached on disk)."""
    return kernels_cold() and not _cached_on_disk()


def announce_compile(write=None) -> bool:
    """Say :data:`COMPILING` once per process, before a compilation that is about to happen.

    Parameters
    ----------
    write : callable, optional
        ``write(text)`` says it (the ``fphint`` command prints on stderr); default: an INFO
        message on :data:`LOGGER`.

    Returns
    -------
    bool
        True if the line was said now.
    """
    global _announced
    with _lock:
        if _announced or not will_compile():
            return False
        _announced = True
    (write or LOGGER.info)(COMPILING)
    return True


def mark_announced() -> None:
    """The caller shows :data:`COMPILING` its own way (the explorer's status line)."""
    global _announced
    _announced = True
