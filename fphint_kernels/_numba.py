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

import os
from functools import partial

from numba import njit

CACHE = os.environ.get("FPHINT_NUMBA_CACHE", "0") == "1"
FASTMATH = os.environ.get("FPHINT_FASTMATH", "0") == "1"

jit = partial(njit, cache=CACHE, fastmath=FASTMATH, nogil=True)
