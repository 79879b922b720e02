"""A binary buddy allocator over page frame numbers, orders 0..MAX_ORDER.

Follows Linux ``mm/page_alloc.c``: ``__rmqueue_smallest`` takes a block of the smallest order
>= the request that has a free block and splits it with ``expand()``, which keeps the lower half
and puts each upper half back on the free list of its order; ``__free_one_page`` merges a freed
block with its buddy (``pfn ^ (1 << order)``) while the buddy is a free block of the same order.

Simplification (documented in docs/model.md): the free lists are kept as one bitmap per order
(one bit per aligned block) and a block is taken from one end of a list, the guest kernel's:
Linux takes the list head; after boot, ``memblock`` frees memory in ascending order, and until
Linux 5.10 each max-order block was added at the head, so the head is the *highest* block; since
5.10 (commit 7fef431be9c9, "mm/page_alloc: place pages to tail in __free_pages_core()") boot
memory goes to the tail, so the head is the *lowest* block (``st["alloc_low"]``).  The model and
Linux agree until the workload's frees reorder the lists.

State: ``bd``, any bundle with the fields of :class:`~.layout.Buddy` (a ``Buddy``, or the
:class:`~.layout.Guest`); ``st["nr_free_pages"]`` counts free pages.
"""

from __future__ import annotations

import numpy as np

from .._numba import jit
from .bitmap import ALL, ONE, ZERO, clz_index64, popcount64
from .layout import MAX_ORDER, Buddy


def freemap_layout(n: int):
    """Word offsets and bit counts of the per-order free bitmaps for ``n`` pages."""
    off = np.zeros(MAX_ORDER + 2, dtype=np.int64)
    nbits = np.zeros(MAX_ORDER + 1, dtype=np.int64)
    for k in range(MAX_ORDER + 1):
        nbits[k] = n >> k
        off[k + 1] = off[k] + ((nbits[k] + 63) >> 6) + 1
    return off, nbits


def new_buddy(n: int) -> Buddy:
    """An empty allocator over ``n`` pages (give it pages with :func:`buddy_add_range`)."""
    off, _nbits = freemap_layout(n)
    return Buddy(
        free_order=np.full(n, -1, dtype=np.int8),
        freemap=np.zeros(int(off[-1]), dtype=np.uint64),
        fm_off=off,
        fm_top=off[:-1].copy(),
        fm_bot=np.concatenate((off[1:] - 1, off[1:] - 1)),
        nr_free=np.zeros(MAX_ORDER + 1, dtype=np.int64),
    )


@jit(inline="always")
def fl_add(st, bd, pfn, k):
    """Put the free block (pfn, k) on its free list."""
    bd.free_order[pfn] = k
    idx = pfn >> k
    w = bd.fm_off[k] + (idx >> 6)
    bd.freemap[w] = bd.freemap[w] | (ONE << np.uint64(idx & 63))
    if w > bd.fm_top[k]:
        bd.fm_top[k] = w
    if w < bd.fm_bot[k]:
        bd.fm_bot[k] = w
    if st["zone_start"] > 0 and pfn >= st["zone_start"] and w < bd.fm_bot[MAX_ORDER + 1 + k]:
        bd.fm_bot[MAX_ORDER + 1 + k] = w
    bd.nr_free[k] += 1
    st["nr_free_pages"] += 1 << k


@jit(inline="always")
def fl_del(st, bd, pfn, k):
    """Take the free block (pfn, k) off its free list."""
    bd.free_order[pfn] = -1
    idx = pfn >> k
    w = bd.fm_off[k] + (idx >> 6)
    bd.freemap[w] = bd.freemap[w] & ~(ONE << np.uint64(idx & 63))
    bd.nr_free[k] -= 1
    st["nr_free_pages"] -= 1 << k


@jit(inline="always")
def fl_highest(bd, k):
    """pfn of the highest free block of order k (the list must not be empty)."""
    freemap = bd.freemap
    w = bd.fm_top[k]
    lo = bd.fm_off[k]
    while w >= lo and freemap[w] == ZERO:
        w -= 1
    bd.fm_top[k] = w
    idx = ((w - lo) << 6) + clz_index64(freemap[w])
    return idx << k


@jit(inline="always")
def fl_lowest(bd, k):
    """pfn of the lowest free block of order k (the list must not be empty)."""
    freemap = bd.freemap
    w = bd.fm_bot[k]
    hi = bd.fm_off[k + 1]
    while w < hi and freemap[w] == ZERO:
        w += 1
    bd.fm_bot[k] = w
    x = freemap[w]
    idx = ((w - bd.fm_off[k]) << 6) + popcount64((x & (~x + ONE)) - ONE)
    return idx << k


@jit
def fl_zone_lowest(st, bd, k):
    """pfn of the lowest free block of order k at or above ``st["zone_start"]``, -1 if none
    (the preferred zone's free list, from a cursor kept in ``bd.fm_bot[MAX_ORDER + 1 + k]``)."""
    freemap = bd.freemap
    c = MAX_ORDER + 1 + k
    first = (st["zone_start"] + (1 << k) - 1) >> k  # the zone's first block of order k
    zw = bd.fm_off[k] + (first >> 6)
    w = max(bd.fm_bot[c], zw)
    hi = bd.fm_off[k + 1]
    x = ZERO
    while w < hi:
        x = freemap[w]
        if w == zw:
            x = x & (ALL << np.uint64(first & 63))
        if x != ZERO:
            break
        w += 1
    bd.fm_bot[c] = w
    if w >= hi:
        return -1
    idx = ((w - bd.fm_off[k]) << 6) + popcount64((x & (~x + ONE)) - ONE)
    return idx << k


@jit
def buddy_alloc(st, bd, k):
    """Allocate a block of order k; return its pfn or -1 (``__rmqueue_smallest`` + ``expand``).

    With a preferred zone (``st["zone_start"]``, the Normal zone of a guest whose RAM is split
    around the PCI hole) the smallest large-enough block there, lowest first; else, or when
    that zone has none, anywhere (``get_page_from_freelist`` walks the zonelist)."""
    pfn = -1
    j = k
    if st["zone_start"] > 0 and st["alloc_low"]:
        while j <= MAX_ORDER:
            if bd.nr_free[j] > 0:
                pfn = fl_zone_lowest(st, bd, j)
                if pfn >= 0:
                    break
            j += 1
    if pfn < 0:
        j = k
        while j <= MAX_ORDER and bd.nr_free[j] == 0:
            j += 1
        if j > MAX_ORDER:
            return -1
        pfn = fl_lowest(bd, j) if st["alloc_low"] else fl_highest(bd, j)
    fl_del(st, bd, pfn, j)
    while j > k:
        j -= 1
        fl_add(st, bd, pfn + (1 << j), j)
    return pfn


@jit
def buddy_free(st, bd, pfn, k):
    """Free the block (pfn, k), merging with free buddies (``__free_one_page``)."""
    n = st["n"]
    while k < MAX_ORDER:
        buddy = pfn ^ (1 << k)
        if buddy + (1 << k) > n or bd.free_order[buddy] != k:
            break
        fl_del(st, bd, buddy, k)
        if buddy < pfn:
            pfn = buddy
        k += 1
    fl_add(st, bd, pfn, k)


@jit
def buddy_add_range(st, bd, lo, hi):
    """Give pages [lo, hi) to the allocator as maximal aligned blocks (boot-time freeing)."""
    pfn = lo
    while pfn < hi:
        k = MAX_ORDER
        while k > 0 and ((pfn & ((1 << k) - 1)) != 0 or pfn + (1 << k) > hi):
            k -= 1
        buddy_free(st, bd, pfn, k)
        pfn += 1 << k


@jit
def page_is_free(bd, n, p):
    """True if page ``p`` lies inside a free buddy block (one bit test per order)."""
    freemap = bd.freemap
    fm_off = bd.fm_off
    for k in range(MAX_ORDER + 1):
        idx = p >> k
        if (idx + 1) << k > n:
            break
        w = fm_off[k] + (idx >> 6)
        if (freemap[w] >> np.uint64(idx & 63)) & ONE:
            return True
    return False


@jit
def free_mask64(bd, n, wi):
    """The pages of bitmap word ``wi`` (pages ``64 * wi`` to ``64 * wi + 63``) that lie inside
    a free buddy block, as a 64-bit mask: per order, from the highest (most free memory lies in
    large blocks), one bit test (order >= 6: a block covers the word), then the word's run of
    ``64 >> k`` block bits, each spread over its ``2**k`` pages."""
    freemap = bd.freemap
    fm_off = bd.fm_off
    base = wi << 6
    for k in range(MAX_ORDER, 5, -1):
        idx = base >> k
        if (idx + 1) << k > n:
            continue
        w = fm_off[k] + (idx >> 6)
        if (freemap[w] >> np.uint64(idx & 63)) & ONE:
            return ALL
    mask = freemap[fm_off[0] + wi]  # order 0: one bit per page, aligned with the page word
    for k in range(1, 6):
        nb = 64 >> k  # blocks of order k in the word, their bits in one freemap word
        idx = base >> k
        w = fm_off[k] + (idx >> 6)
        bits = (freemap[w] >> np.uint64(idx & 63)) & ((ONE << np.uint64(nb)) - ONE)
        fill = (ONE << np.uint64(1 << k)) - ONE
        while bits != ZERO:
            low = bits & (~bits + ONE)
            bits = bits ^ low
            j = popcount64(low - ONE)
            mask = mask | (fill << np.uint64(j << k))
    return mask


@jit
def fl_next(bd, k, idx, down):
    """Index of the next free block of order k at or below (``down``) / at or above ``idx``
    in its free bitmap, -1 if none: a walk of the free list that takes nothing."""
    freemap = bd.freemap
    lo = bd.fm_off[k]
    hi = bd.fm_off[k + 1]
    nbits = (hi - lo - 1) << 6
    if idx < 0 or idx >= nbits:
        return -1
    w = lo + (idx >> 6)
    b = idx & 63
    if down:
        x = freemap[w] & (ALL >> np.uint64(63 - b))
        while x == ZERO:
            w -= 1
            if w < lo:
                return -1
            x = freemap[w]
        return ((w - lo) << 6) + clz_index64(x)
    x = freemap[w] & (ALL << np.uint64(b))
    while x == ZERO:
        w += 1
        if w >= hi:
            return -1
        x = freemap[w]
    return ((w - lo) << 6) + popcount64((x & (~x + ONE)) - ONE)


@jit
def free_page_bitmap(free_order, out):
    """Set in ``out`` (a page bitmap, cleared first) every page that is inside a free block."""
    for w in range(out.shape[0]):
        out[w] = ZERO
    n = free_order.shape[0]
    pfn = 0
    while pfn < n:
        k = int(free_order[pfn])
        if k >= 0:
            size = 1 << k
            for p in range(pfn, pfn + size):
                out[p >> 6] = out[p >> 6] | (ONE << np.uint64(p & 63))
            pfn += size
        else:
            pfn += 1
