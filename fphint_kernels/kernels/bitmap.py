"""Word-level bitmaps: one bit per page in ``uint64`` words, bit ``i`` in word ``i >> 6``.

These are the bitmaps of QEMU's migration code (``bmap``, ``util/bitmap.c``,
``find_next_bit``) and of KVM's dirty log.  All constants are ``np.uint64`` so that Numba never
mixes signed and unsigned words (which it would promote to float), and no operation overflows,
so the kernels also run interpreted.
"""

from __future__ import annotations

import numpy as np

from .._numba import jit

ONE = np.uint64(1)
ZERO = np.uint64(0)
ALL = np.uint64(0xFFFFFFFFFFFFFFFF)
_M1 = np.uint64(0x5555555555555555)
_M2 = np.uint64(0x3333333333333333)
_M4 = np.uint64(0x0F0F0F0F0F0F0F0F)
_S1 = np.uint64(1)
_S2 = np.uint64(2)
_S4 = np.uint64(4)
_S8 = np.uint64(8)
_S16 = np.uint64(16)
_S32 = np.uint64(32)
_B7F = np.uint64(0x7F)


def words_for(nbits: int) -> int:
    """Number of uint64 words that hold ``nbits`` bits."""
    return (int(nbits) + 63) >> 6


@jit(inline="always")
def popcount64(x):
    """Number of set bits of a uint64 (SWAR, without the overflowing multiply)."""
    x = x - ((x >> _S1) & _M1)
    x = (x & _M2) + ((x >> _S2) & _M2)
    x = (x + (x >> _S4)) & _M4
    x = x + (x >> _S8)
    x = x + (x >> _S16)
    x = x + (x >> _S32)
    return np.int64(x & _B7F)


@jit
def clz_index64(x):
    """Index of the highest set bit of a non-zero uint64."""
    n = 0
    if x >> np.uint64(32):
        x = x >> np.uint64(32)
        n += 32
    if x >> np.uint64(16):
        x = x >> np.uint64(16)
        n += 16
    if x >> np.uint64(8):
        x = x >> np.uint64(8)
        n += 8
    if x >> np.uint64(4):
        x = x >> np.uint64(4)
        n += 4
    if x >> np.uint64(2):
        x = x >> np.uint64(2)
        n += 2
    if x >> np.uint64(1):
        n += 1
    return n


@jit(inline="always")
def test_bit(bm, i):
    """1 if bit ``i`` is set."""
    return 1 if (bm[i >> 6] >> np.uint64(i & 63)) & ONE else 0


@jit(inline="always")
def set_bit(bm, i):
    """Set bit ``i``; return 1 if it was clear."""
    w = i >> 6
    m = ONE << np.uint64(i & 63)
    old = bm[w]
    bm[w] = old | m
    return 0 if old & m else 1


@jit(inline="always")
def clear_bit(bm, i):
    """Clear bit ``i``; return 1 if it was set."""
    w = i >> 6
    m = ONE << np.uint64(i & 63)
    old = bm[w]
    bm[w] = old & ~m
    return 1 if old & m else 0


@jit(inline="always")
def _range_mask(lo, hi):
    """Mask of bits lo..hi-1 inside one word (0 <= lo < hi <= 64)."""
    n = hi - lo
    if n == 64:
        return ALL
    return ((ONE << np.uint64(n)) - ONE) << np.uint64(lo)


@jit
def set_range(bm, start, n):
    """Set bits [start, start + n); return how many were clear."""
    newly = 0
    i = start
    end = start + n
    while i < end:
        w = i >> 6
        lo = i & 63
        hi = min(64, lo + (end - i))
        m = _range_mask(lo, hi)
        newly += popcount64(m & ~bm[w])
        bm[w] = bm[w] | m
        i += hi - lo
    return newly


@jit
def clear_range(bm, start, n):
    """Clear bits [start, start + n); return how many were set (``bitmap_count_one`` +
    ``bitmap_clear`` in ``qemu_guest_free_page_hint``)."""
    was = 0
    i = start
    end = start + n
    while i < end:
        w = i >> 6
        lo = i & 63
        hi = min(64, lo + (end - i))
        m = _range_mask(lo, hi)
        was += popcount64(bm[w] & m)
        bm[w] = bm[w] & ~m
        i += hi - lo
    return was


@jit
def popcount(bm):
    """Number of set bits in the whole bitmap (``bitmap_weight``)."""
    total = 0
    for w in range(bm.shape[0]):
        if bm[w]:
            total += popcount64(bm[w])
    return total


@jit
def or_merge(dst, src):
    """``dst |= src``; return the number of bits newly set in ``dst``."""
    newly = 0
    for w in range(dst.shape[0]):
        s = src[w]
        if s:
            add = s & ~dst[w]
            if add:
                newly += popcount64(add)
                dst[w] = dst[w] | s
    return newly


@jit
def count_and(a, b):
    """Number of bits set in both ``a`` and ``b``."""
    total = 0
    for w in range(a.shape[0]):
        x = a[w] & b[w]
        if x:
            total += popcount64(x)
    return total
