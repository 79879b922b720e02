"""QEMU 4.0 pre-copy: the migration thread, bitmap syncs, completion, and the main loop.

Follows ``migration/migration.c`` (``migration_thread``, ``migration_iteration_run``,
``migration_update_counters``, ``migration_completion``) and ``migration/ram.c``
(``ram_save_setup``, ``ram_save_pending``, ``ram_save_iterate``, ``migration_bitmap_sync``,
``ram_save_complete``) as released in QEMU 4.0 (see shared/reference/qemu-linux-algorithms.md
sections 1 and 2):

* setup: bitmap all ones, dirty logging on, first sync; hinting starts after that sync;
* 100 ms windows: at most ``max-bandwidth / 10`` bytes each; when the window closes the
  bandwidth estimate is its bytes over its length and ``threshold = bandwidth x downtime-limit``;
* each ``migration_iteration_run``: if pending bytes < threshold, sync (STOP hints before, new
  command id after); then if pending is 0 or still < threshold, stop-and-copy; else one
  ``ram_save_iterate`` slice: pages in address order from the cursor until rate-limited or 50 ms
  (checked every 64 pages); a zero page costs the zero-check and puts 9 bytes on the wire, a
  normal page 4104 bytes; each slice adds 18 bytes (section header, footer, EOS);
* stop-and-copy: VM stopped, final sync, every pending page sent without rate limit, device
  state; ``downtime`` runs from the stop to the end.

Simplifications (docs/model.md): the migration thread and the guest advance in steps of
``step_ms`` (the guest acts first within a step); the CPU time and the wire time of a page
overlap (a page costs the larger of the two); auto-converge slows the whole guest by the
throttle fraction (QEMU sleeps each vCPU that fraction of every 10 ms).
"""

from __future__ import annotations

import numpy as np

from .._numba import jit
from .balloon import (
    guest_hint_step,
    host_after_sync_faults,
    host_free_page_done,
    host_free_page_start,
    host_free_page_stop,
    host_hint_step,
)
from .bitmap import ALL, ONE, ZERO, or_merge, popcount64, test_bit
from .buddy import free_page_bitmap
from .state import (
    COMPLETED,
    F_LATE_LOG,
    F_NO_REARM,
    LATE_LOG_MS,
    MAX_ORDER,
    NOT_CONVERGED,
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
    RUNNING,
    T_DLOG,
    T_FREE,
    T_HELD,
    T_HINT,
    T_PENDING,
    T_ROUND,
    T_SENDER,
    T_TRANSFERRED,
)
from .workload import (
    BM_BMAP,
    BM_DLOG,
    BM_HELD,
    BM_NONZERO,
    BM_SENT,
    BM_SKIP,
    BM_UNARMED,
    workload_step,
)

PAGE_SIZE = 4096
ZERO_RECORD = 9  # 8-byte header | RAM_SAVE_FLAG_ZERO + 1 fill byte
NORMAL_RECORD = 4104  # 8-byte header | RAM_SAVE_FLAG_PAGE + 4096 bytes
SLICE_OVERHEAD = 18  # section header (5) + footer (5) + RAM_SAVE_FLAG_EOS (8)
BUFFER_DELAY = 100.0  # ms, one rate-limit / bandwidth window
MAX_WAIT = 50.0  # ms, longest ram_save_iterate slice


@jit
def dirty_log_start(st, bm):
    """``memory_global_dirty_log_start``: write-protect every page."""
    unarmed = bm[BM_UNARMED]
    for w in range(unarmed.shape[0]):
        unarmed[w] = ZERO
    st["logging"] = 1


@jit
def bitmap_sync(st, prm, bm):
    """``migration_bitmap_sync``: OR the dirty log into the migration bitmap and re-arm.

    Returns the number of pages newly set in the migration bitmap.
    """
    st["sync_count"] += 1
    bmap = bm[BM_BMAP]
    dlog = bm[BM_DLOG]
    unarmed = bm[BM_UNARMED]
    newly = or_merge(bmap, dlog)
    rearm = (prm["faults"] & F_NO_REARM) == 0
    for w in range(dlog.shape[0]):
        d = dlog[w]
        if d:
            if rearm:
                unarmed[w] = unarmed[w] & ~d
            dlog[w] = ZERO
    st["dlog_count"] = 0
    st["pending"] += newly
    st["period_dirty"] += newly
    return newly


@jit
def auto_converge_check(st, prm, t):
    """Once per >= 1 s period (v3.1/4.0 ``migration_bitmap_sync``): throttle when the pages
    dirtied in the period exceed half of the bytes sent, twice in a row."""
    if prm["auto_converge"] == 0 or t - st["period_start"] < 1000.0:
        return
    if st["period_dirty"] * PAGE_SIZE > st["period_bytes"] / 2:
        st["ac_cnt"] += 1
        if st["ac_cnt"] >= 2:
            st["ac_cnt"] = 0
            if st["throttle"] == 0.0:
                st["throttle"] = 0.2
            else:
                st["throttle"] = min(0.99, st["throttle"] + 0.1)
    st["period_start"] = t
    st["period_dirty"] = 0
    st["period_bytes"] = 0


@jit
def page_map_snapshot(st, bm, free_order, pm, pm_free):
    """Counts of pages per address bin and state at the end of a round (for pictures)."""
    r = st["n_map"]
    if pm.shape[0] == 0 or r >= pm.shape[0]:
        return
    n = st["n"]
    bins = pm.shape[1]
    free_page_bitmap(free_order, pm_free)
    for p in range(n):
        b = p * bins // n
        free = test_bit(pm_free, p)
        held = test_bit(bm[BM_HELD], p)
        if free:
            pm[r, b, PM_FREE] += 1
        elif held:
            pm[r, b, PM_HELD] += 1
        else:
            pm[r, b, PM_USED] += 1
        if test_bit(bm[BM_SENT], p):
            pm[r, b, PM_SENT] += 1
        if test_bit(bm[BM_SKIP], p):
            pm[r, b, PM_SKIPPED] += 1
        if test_bit(bm[BM_DLOG], p):
            pm[r, b, PM_DIRTY] += 1
    st["n_map"] += 1


@jit
def close_round(st, bm, rounds, newly, t):
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
    st["r_dup"] = 0
    st["r_normal"] = 0
    st["r_bytes"] = 0
    st["r_skipped"] = 0
    st["round_start"] = t
    st["round"] += 1
    sent = bm[BM_SENT]
    skip = bm[BM_SKIP]
    for w in range(sent.shape[0]):
        sent[w] = ZERO
        skip[w] = ZERO


@jit
def send_pages(st, prm, bm, ver_src, ver_dst, until, window_budget, check_slice):
    """Send pending pages in address order from the cursor (``ram_find_and_save_block`` ->
    ``migration_bitmap_find_dirty`` -> ``ram_save_target_page``), one bitmap word at a time.

    Each page: test-and-clear its bit, zero check, then a 9-byte (zero) or 4104-byte (normal)
    record; it costs the larger of its CPU and wire time.  Each 64-bit word examined costs
    ``t_word`` (``find_next_bit``).  Stops when the sender's clock reaches ``until``, the bitmap
    is empty, or, with ``check_slice``, the 50 ms slice is over (checked every 64 pages, like
    ``ram_save_iterate``) or the window's byte budget is spent.

    Returns
    -------
    int
        0: clock reached ``until``; 1: slice over; 2: nothing pending.
    """
    n = st["n"]
    bmap = bm[BM_BMAP]
    nonzero = bm[BM_NONZERO]
    sent = bm[BM_SENT]
    nw = bmap.shape[0]
    link = prm["link_bytes_per_ms"]
    t_zero = max(prm["t_zero"], ZERO_RECORD / link)
    t_normal = max(prm["t_normal"], NORMAL_RECORD / link)
    t_word = prm["t_word"]
    t_max = max(t_zero, t_normal)
    t = st["sender_time"]
    cursor = st["cursor"]
    pending = st["pending"]
    slice_pages = st["slice_pages"]
    slice_start = st["slice_start"]
    wbytes0 = st["window_bytes"]
    wbytes = wbytes0
    dup = 0
    normal = 0
    reason = 0
    while True:
        if t >= until:
            reason = 0
            break
        if pending == 0:
            reason = 2
            break
        wi = cursor >> 6
        if wi >= nw:
            cursor = 0
            continue
        t += t_word
        word = bmap[wi] & (ALL << np.uint64(cursor & 63))
        if word == ZERO:
            cursor = (wi + 1) << 6
            if cursor >= n:
                cursor = 0  # end of the RAMBlock list: wrap (complete_round)
            continue
        nzw = nonzero[wi]
        if (
            word == ALL
            and (slice_pages & 63) == 0
            and wbytes + 64 * NORMAL_RECORD <= window_budget
            and t + 65.0 * t_max < until
        ):
            # A full word that cannot end the slice part-way: the same per-page arithmetic as
            # below (so results are identical), without the per-page bit search and checks.
            # ram_save_iterate checks MAX_WAIT every 64 pages: here, at the word's end.
            base = wi << 6
            for b in range(64):
                ver_dst[base + b] = ver_src[base + b]
                if (nzw >> np.uint64(b)) & ONE:
                    normal += 1
                    wbytes += NORMAL_RECORD
                    t += t_normal
                else:
                    dup += 1
                    wbytes += ZERO_RECORD
                    t += t_zero
            pending -= 64
            slice_pages += 64
            cursor = base + 64
            bmap[wi] = ZERO
            sent[wi] = ALL
            if check_slice and t - slice_start > MAX_WAIT:
                reason = 1
                break
            if cursor >= n:
                cursor = 0
            continue
        done = ZERO
        stop = False
        while word != ZERO:
            low = word & (~word + ONE)
            word = word ^ low
            done = done | low
            p = (wi << 6) + popcount64(low - ONE)
            ver_dst[p] = ver_src[p]
            if nzw & low:
                normal += 1
                wbytes += NORMAL_RECORD
                t += t_normal
            else:
                dup += 1
                wbytes += ZERO_RECORD
                t += t_zero
            pending -= 1
            slice_pages += 1
            cursor = p + 1
            if check_slice:
                if (slice_pages & 63) == 0 and t - slice_start > MAX_WAIT:
                    reason = 1
                    stop = True
                    break
                if wbytes > window_budget:
                    reason = 1
                    stop = True
                    break
            if t >= until:
                reason = 0
                stop = True
                break
        bmap[wi] = bmap[wi] & ~done
        sent[wi] = sent[wi] | done
        if stop:
            break
        if cursor >= n:
            cursor = 0
    added = wbytes - wbytes0
    st["sender_time"] = t
    st["cursor"] = cursor
    st["pending"] = pending
    st["slice_pages"] = slice_pages
    st["window_bytes"] = wbytes
    st["bytes"] += added
    st["r_bytes"] += added
    st["period_bytes"] += added
    st["dup"] += dup
    st["r_dup"] += dup
    st["normal"] += normal
    st["r_normal"] += normal
    return reason


@jit
def ram_save_iterate(st, prm, bm, ver_src, ver_dst, until, window_budget):
    """One slice of ``ram_save_iterate`` (it may span several calls, one per step)."""
    reason = send_pages(st, prm, bm, ver_src, ver_dst, until, window_budget, np.int64(1))
    if reason != 0:
        end_slice(st)


@jit
def end_slice(st):
    st["in_slice"] = 0
    st["bytes"] += SLICE_OVERHEAD
    st["r_bytes"] += SLICE_OVERHEAD
    st["window_bytes"] += SLICE_OVERHEAD
    st["period_bytes"] += SLICE_OVERHEAD


@jit
def sync_point(st, prm, bd, bm, ver_src, held_blocks, queue, stale, rounds, pm, pm_free, t, last):
    """A precopy sync with its hint notifications; ends the current round."""
    free_order = bd[0]
    if prm["hint"]:
        host_free_page_stop(st, prm, bd, bm, ver_src, held_blocks, queue, stale)
    page_map_snapshot(st, bm, free_order, pm, pm_free)
    newly = bitmap_sync(st, prm, bm)
    st["sender_time"] += prm["t_sync"]
    t2 = st["sender_time"]
    auto_converge_check(st, prm, t2)
    close_round(st, bm, rounds, newly, t2)
    if prm["hint"]:
        host_after_sync_faults(st, bm, stale)
        if last:
            host_free_page_done(st)
        else:
            host_free_page_start(st, prm, t2)


@jit
def migration_completion(
    st, prm, bd, bm, ver_src, ver_dst, held_blocks, queue, stale, rounds, pm, pm_free
):
    """Stop-and-copy: stop the VM, final sync, send everything pending, device state."""
    st["vm_running"] = 0
    st["downtime_start"] = st["sender_time"]
    if st["bandwidth"] > 0.0:
        st["expected_downtime"] = st["pending"] * PAGE_SIZE / st["bandwidth"]
    sync_point(
        st,
        prm,
        bd,
        bm,
        ver_src,
        held_blocks,
        queue,
        stale,
        rounds,
        pm,
        pm_free,
        st["sender_time"],
        np.int64(1),
    )
    st["cursor"] = 0
    send_pages(st, prm, bm, ver_src, ver_dst, np.inf, np.inf, np.int64(0))
    st["bytes"] += SLICE_OVERHEAD
    st["r_bytes"] += SLICE_OVERHEAD
    st["sender_time"] += prm["t_switchover"]
    st["end_time"] = st["sender_time"]
    close_round(st, bm, rounds, np.int64(0), st["end_time"])
    st["status"] = COMPLETED


@jit
def sender_run(
    st, prm, bd, bm, ver_src, ver_dst, held_blocks, queue, stale, rounds, pm, pm_free, until
):
    """The migration thread, from its clock to ``until`` (``migration_thread`` loop body)."""
    window_budget = prm["max_bandwidth"] / 10.0
    while st["sender_time"] < until and st["status"] == RUNNING:
        t = st["sender_time"]
        if t >= st["window_start"] + BUFFER_DELAY:  # migration_update_counters
            el = t - st["window_start"]
            st["bandwidth"] = st["window_bytes"] / el
            st["threshold"] = st["bandwidth"] * prm["downtime_limit"]
            st["window_bytes"] = 0
            st["window_start"] = t
        if st["window_bytes"] > window_budget:  # rate limited: sleep to the window's end
            st["sender_time"] = st["window_start"] + BUFFER_DELAY
            continue
        if st["in_slice"] == 0:  # migration_iteration_run
            if st["pending"] * PAGE_SIZE < st["threshold"]:  # ram_save_pending syncs
                sync_point(
                    st,
                    prm,
                    bd,
                    bm,
                    ver_src,
                    held_blocks,
                    queue,
                    stale,
                    rounds,
                    pm,
                    pm_free,
                    t,
                    np.int64(0),
                )
            if st["pending"] == 0 or st["pending"] * PAGE_SIZE < st["threshold"]:
                migration_completion(
                    st,
                    prm,
                    bd,
                    bm,
                    ver_src,
                    ver_dst,
                    held_blocks,
                    queue,
                    stale,
                    rounds,
                    pm,
                    pm_free,
                )
                return
            st["in_slice"] = 1
            st["slice_start"] = st["sender_time"]
            st["slice_pages"] = 0
        ram_save_iterate(st, prm, bm, ver_src, ver_dst, until, window_budget)


@jit
def record_trace(st, trace):
    i = st["n_trace"]
    if i >= trace.shape[0]:
        return
    trace[i, T_PENDING] = st["pending"]
    trace[i, T_TRANSFERRED] = st["bytes"]
    trace[i, T_SENDER] = st["cursor"]
    trace[i, T_HINT] = st["hint_low_pfn"]
    trace[i, T_FREE] = st["nr_free_pages"]
    trace[i, T_HELD] = st["held_pages"]
    trace[i, T_DLOG] = st["dlog_count"]
    trace[i, T_ROUND] = st["round"]
    st["n_trace"] += 1


@jit
def start(st, prm):
    """The ``migrate`` command: the clock starts, setup begins."""
    setup_end = prm["setup_ms"] + prm["t_sync"]
    st["vm_running"] = 1
    st["log_start_at"] = prm["setup_ms"]
    if prm["faults"] & F_LATE_LOG:
        st["log_start_at"] = setup_end + LATE_LOG_MS
    st["sender_time"] = setup_end
    st["hint_low_pfn"] = -1
    st["next_trace"] = 0.0


@jit
def run(
    st,
    prm,
    bd,
    bm,
    ver_src,
    ver_dst,
    held_blocks,
    pc_ring,
    base_pool,
    dl_pool,
    procs,
    p_pool,
    rngs,
    queue,
    stale,
    trace,
    trace_t,
    rounds,
    pm,
    pm_free,
    stop_at,
):
    """Run the migration from where ``st`` stands to completion, the time cap, or ``stop_at``
    (ms; the caller may call again to resume, e.g. to draw a progress bar)."""
    dt = prm["step_ms"]
    wrng = rngs[0]
    setup_end = prm["setup_ms"] + prm["t_sync"]
    while st["now"] < stop_at:
        now = st["now"]
        step_end = now + dt
        if st["logging"] == 0 and now >= st["log_start_at"]:
            dirty_log_start(st, bm)
        if st["vm_running"]:
            eff = dt * (1.0 - st["throttle"]) * prm["cpu_speed"] * prm["intensity"]
            workload_step(
                st,
                prm,
                bd,
                bm,
                ver_src,
                held_blocks,
                pc_ring,
                base_pool,
                dl_pool,
                procs,
                p_pool,
                wrng,
                eff,
            )
            if st["status"] != RUNNING:
                st["end_time"] = step_end
                break
            if prm["hint"]:
                guest_hint_step(st, prm, bd, bm, ver_src, held_blocks, queue, now, dt)
        if prm["hint"]:
            host_hint_step(st, prm, bm, queue, step_end)
        if st["setup_done"] == 0 and st["sender_time"] <= step_end:
            # ram_save_setup's sync #1 (the bitmap is all ones: it adds nothing)
            bitmap_sync(st, prm, bm)
            st["setup_done"] = 1
            st["setup_time"] = setup_end
            st["round"] = 1
            st["round_start"] = setup_end
            st["window_start"] = setup_end
            st["period_start"] = setup_end
            if prm["hint"]:
                host_free_page_start(st, prm, setup_end)
        if st["setup_done"]:
            sender_run(
                st,
                prm,
                bd,
                bm,
                ver_src,
                ver_dst,
                held_blocks,
                queue,
                stale,
                rounds,
                pm,
                pm_free,
                step_end,
            )
        while st["next_trace"] <= step_end and st["n_trace"] < trace.shape[0]:
            trace_t[st["n_trace"]] = st["next_trace"]
            record_trace(st, trace)
            st["next_trace"] += prm["trace_ms"]
        st["now"] = step_end
        if st["status"] != RUNNING:
            break
        if step_end >= prm["max_time"]:
            st["status"] = NOT_CONVERGED
            st["end_time"] = step_end
            break


@jit
def page_is_free(freemap, fm_off, n, p):
    """True if page ``p`` lies inside a free buddy block (one bit test per order)."""
    for k in range(MAX_ORDER + 1):
        idx = p >> k
        if (idx + 1) << k > n:
            break
        w = fm_off[k] + (idx >> 6)
        if (freemap[w] >> np.uint64(idx & 63)) & ONE:
            return True
    return False


@jit
def count_lost(st, bm, bd, ver_src, ver_dst, poison):
    """The nothing-lost check at switchover.

    A page the guest may read without writing it first must have reached the destination in
    its last version: every page in use (not free, not held by the balloon), and free pages
    too when the guest relies on their contents (page poisoning checks the pattern).
    Versions are compared for every page (two at a time); whether a stale page is free is
    looked up in the buddy allocator's per-order free bitmaps.

    Returns (lost, stale_free): stale pages the guest may read, and stale pages it may not.
    """
    freemap = bd[1]
    fm_off = bd[2]
    held = bm[BM_HELD]
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
            elif poison == 0 and page_is_free(freemap, fm_off, n, p):
                relied = False
            if relied:
                lost += 1
            else:
                stale_free += 1
    return lost, stale_free


@jit
def count_nonzero(bm):
    total = 0
    nz = bm[BM_NONZERO]
    for w in range(nz.shape[0]):
        if nz[w]:
            total += popcount64(nz[w])
    return total
