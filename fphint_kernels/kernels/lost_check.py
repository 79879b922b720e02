"""The nothing-lost check at switchover, over the final state of a completed migration."""

from __future__ import annotations

import numpy as np

from .._numba import jit
from .bitmap import ONE
from .buddy import page_is_free
from .layout import BM_HELD

__all__ = ["count_lost", "page_is_free"]


@jit
def count_lost(st, prm, g):
    """The nothing-lost check at switchover.

    A page the guest may read without writing it first must have reached the destination in
    its last version: every page in use (not free, not held by the balloon), and free pages
    too when the guest relies on their contents (page poisoning checks the pattern; with
    ``init_on_free`` the allocator hands freed pages out as zeroed without zeroing them again,
    ``free_pages_prezeroed``).
    Versions are compared for every page (two at a time); whether a stale page is free is
    looked up in the buddy allocator's per-order free bitmaps.

    Returns (lost, stale_free): stale pages the guest may read, and stale pages it may not.
    """
    ver_src = g.ver_src
    ver_dst = g.ver_dst
    held = g.bm[BM_HELD]
    poison = prm["poison"] | prm["init_on_free"]
    n = st["n"]
    lost = 0
    stale_free = 0
    half = n >> 1
    src2 = ver_src[: half * 2].view(np.uint64)
    dst2 = ver_dst[: half * 2].view(np.uint64)
    for i in range(half + (n & 1)):
        if i < half and src2[i] == dst2[i]:
            continue
        for p in range(2 * i, min(2 * i + 2, n)):
            if ver_src[p] == ver_dst[p]:
                continue
            relied = True
            if (held[p >> 6] >> np.uint64(p & 63)) & ONE:
                relied = False
            elif poison == 0 and page_is_free(g, n, p):
                relied = False
            if relied:
                lost += 1
            else:
                stale_free += 1
    return lost, stale_free
