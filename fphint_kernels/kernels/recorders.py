"""The recorders: the per-time trace, the per-round rows and the page map.

They only read the state (and write the :class:`~.layout.Recorders` bundle ``rec``); the run
does not depend on them.  Column indices and the Dataset's names come from :mod:`.layout`.
"""

from __future__ import annotations

from .._numba import jit
from .bitmap import test_bit
from .buddy import free_page_bitmap
from .layout import (
    BM_DLOG,
    BM_HELD,
    BM_SENT,
    BM_SKIP,
    PM_DIRTY,
    PM_FREE,
    PM_HELD,
    PM_SENT,
    PM_SKIPPED,
    PM_USED,
    R_BW,
    R_BYTES,
    R_DIRTIED,
    R_DUP,
    R_END,
    R_NORMAL,
    R_PENDING,
    R_SKIPPED,
    R_START,
    R_THRESH,
    T_DLOG,
    T_DUP,
    T_FREE,
    T_HELD,
    T_HINT,
    T_NORMAL,
    T_PENDING,
    T_ROUND,
    T_SENDER,
    T_TRANSFERRED,
)


@jit
def record_trace(st, prm, rec, until):
    """Trace rows every ``trace_ms`` up to ``until`` (each holds the state as it is now)."""
    trace = rec.trace
    while st["next_trace"] <= until and st["n_trace"] < trace.shape[0]:
        i = st["n_trace"]
        rec.trace_t[i] = st["next_trace"]
        trace[i, T_PENDING] = st["pending"]
        trace[i, T_TRANSFERRED] = st["bytes"]
        trace[i, T_SENDER] = st["cursor"]
        trace[i, T_HINT] = st["hint_low_pfn"]
        trace[i, T_FREE] = st["nr_free_pages"]
        trace[i, T_HELD] = st["held_pages"]
        trace[i, T_DLOG] = st["dlog_count"]
        trace[i, T_ROUND] = st["round"]
        trace[i, T_DUP] = st["dup"]
        trace[i, T_NORMAL] = st["normal"]
        st["n_trace"] += 1
        st["next_trace"] += prm["trace_ms"]


@jit
def record_round(st, rec, newly, t):
    """The row of the round that ends at ``t`` (``newly``: pages its sync found dirty)."""
    rounds = rec.rounds
    r = st["n_rounds"]
    if r < rounds.shape[0]:
        rounds[r, R_START] = st["round_start"]
        rounds[r, R_END] = t
        rounds[r, R_DUP] = st["r_dup"]
        rounds[r, R_NORMAL] = st["r_normal"]
        rounds[r, R_BYTES] = st["r_bytes"]
        rounds[r, R_SKIPPED] = st["r_skipped"]
        rounds[r, R_DIRTIED] = newly
        rounds[r, R_PENDING] = st["pending"]
        rounds[r, R_THRESH] = st["threshold"]
        rounds[r, R_BW] = st["bandwidth"] * 1000.0
        st["n_rounds"] += 1


@jit
def page_map_snapshot(st, g, rec):
    """Counts of pages per address bin and state at the end of a round (for pictures)."""
    pm = rec.pm
    r = st["n_map"]
    if pm.shape[0] == 0 or r >= pm.shape[0]:
        return
    n = st["n"]
    bins = pm.shape[1]
    pm_free = rec.pm_free
    free_page_bitmap(g.free_order, pm_free)
    held_bm = g.bm[BM_HELD]
    sent_bm = g.bm[BM_SENT]
    skip_bm = g.bm[BM_SKIP]
    dlog_bm = g.bm[BM_DLOG]
    for p in range(n):
        b = p * bins // n
        free = test_bit(pm_free, p)
        held = test_bit(held_bm, p)
        if free:
            pm[r, b, PM_FREE] += 1
        elif held:
            pm[r, b, PM_HELD] += 1
        else:
            pm[r, b, PM_USED] += 1
        if test_bit(sent_bm, p):
            pm[r, b, PM_SENT] += 1
        if test_bit(skip_bm, p):
            pm[r, b, PM_SKIPPED] += 1
        if test_bit(dlog_bm, p):
            pm[r, b, PM_DIRTY] += 1
    st["n_map"] += 1
