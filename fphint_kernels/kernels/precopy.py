"""QEMU 4.0 pre-copy: the migration thread's sender, bitmap syncs and completion.

Follows ``migration/migration.c`` (``migration_thread``, ``migration_iteration_run``,
``migration_update_counters``, ``migration_completion``) and ``migration/ram.c``
(``ram_save_setup``, ``ram_save_pending``, ``ram_save_iterate``, ``migration_bitmap_sync``,
``ram_save_complete``) as released in QEMU 4.0:

* setup: bitmap all ones, dirty logging on, first sync; hinting starts after that sync (the
  main loop of :mod:`.engine` runs setup);
* 100 ms windows: at most ``max-bandwidth / 10`` bytes each; when the window closes the
  bandwidth estimate is its bytes over its length and ``threshold = bandwidth x downtime-limit``;
* each ``migration_iteration_run``: if pending bytes < threshold, sync (STOP hints before, new
  command id after); then if pending is 0 or still < threshold, stop-and-copy; else one
  ``ram_save_iterate`` slice: pages in address order from the cursor until rate-limited or 50 ms
  (checked every 64 pages); a zero page costs the zero-check and puts 9 bytes on the wire, a
  normal page 4104 bytes; each slice adds 18 bytes (section header, footer, EOS);
* stop-and-copy: VM stopped, final sync, every pending page sent without rate limit, device
  state; ``downtime`` runs from the stop to the end.

The stream to the destination (measured on QEMU 7.2, docs/model.md "The destination"): every
record the sender writes is processed by the destination in order, at its own cost (a zero page:
``t_dst_zero``; a normal page: ``t_dst_normal``, plus ``t_first_touch`` when it is the first
write into a host region of the destination's guest RAM, which the host must allocate and zero:
a 2 MiB huge page with transparent huge pages).  At most ``stream_bytes`` may be in flight.
The sender queues pages in its QEMUFile and writes them in batches of 64
(``MAX_IOV_SIZE``: ``add_to_iovec`` flushes a full iovec); a batch written into a full stream
blocks the sender until the destination has made room (``qemu_fflush`` ->
``qio_channel_writev_all``).  A slice ends on a batch boundary (``ram_save_iterate`` checks
``MAX_WAIT`` every 64 pages), and that batch is flushed after the lock is released.  The destination's progress is kept as a ring
of checkpoints (bytes sent, time processed) every ``CHECKPOINT_BYTES``.

The dirty bitmap's lock (``bitmap_mutex``): QEMU 4.0-6.0 take it around each page
(``migration_bitmap_clear_dirty``, commit 386a907b37), so the iothread's hints get in between
any two pages, at a cost per page (``t_lock``); QEMU 6.1+ (commit 63268c4970) hold it across
each ``ram_save_iterate`` slice, so hints queue until the slice ends (:func:`end_slice`).

CPU time: every cost is the work's CPU time; a thread that shares its CPU with others
(``st["share"]`` < 1, computed by :mod:`.engine`) takes that much longer.

Simplifications (docs/model.md): the CPU time and the wire time of a page overlap (a page costs
the larger of the two); auto-converge slows the whole guest by the throttle fraction (QEMU
sleeps each vCPU that fraction of every 10 ms).

State: ``st`` and ``prm`` (:mod:`.layout` records) and the bundles ``g`` (:class:`~.layout.Guest`),
``hc`` (:class:`~.layout.HintChannel`), ``rec`` (:class:`~.layout.Recorders`) and ``h``
(:class:`~.layout.Host`).
"""

from __future__ import annotations

import numpy as np

from .._numba import jit
from .balloon import (
    host_after_sync_faults,
    host_free_page_done,
    host_free_page_start,
    host_free_page_stop,
    slice_end_hints,
)
from .bitmap import ALL, ONE, ZERO, count_and, or_merge, popcount64
from .buddy import free_mask64
from .layout import (
    BM_BMAP,
    BM_DLOG,
    BM_NONZERO,
    BM_SENT,
    BM_SKIP,
    BM_UNARMED,
    BUFFER_DELAY,
    CANCELLED,
    CHECKPOINT_BYTES,
    COMPLETED,
    D_NONE,
    D_ORACLE,
    F_NO_REARM,
    FAIL_ROUNDS,
    LOCK_PER_SLICE,
    MAX_WAIT,
    NORMAL_RECORD,
    NOT_CONVERGED,
    PAGE_SIZE,
    RUNNING,
    SLICE_OVERHEAD,
    ZERO_RECORD,
)
from .recorders import page_map_snapshot, record_round


@jit
def dirty_log_start(st, g):
    """``memory_global_dirty_log_start``: write-protect every page."""
    unarmed = g.bm[BM_UNARMED]
    for w in range(unarmed.shape[0]):
        unarmed[w] = ZERO
    st["logging"] = 1


@jit
def bitmap_sync(st, prm, g):
    """``migration_bitmap_sync``: OR the dirty log into the migration bitmap and re-arm.

    Returns the number of pages newly set in the migration bitmap.
    """
    st["sync_count"] += 1
    bmap = g.bm[BM_BMAP]
    dlog = g.bm[BM_DLOG]
    unarmed = g.bm[BM_UNARMED]
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
def close_round(st, g, rec, newly, t):
    """A round ends at ``t`` (after a sync that found ``newly`` dirty pages): record it, start
    the next one."""
    record_round(st, rec, newly, t)
    st["r_dup"] = 0
    st["r_normal"] = 0
    st["r_bytes"] = 0
    st["r_skipped"] = 0
    st["round_start"] = t
    st["round"] += 1
    sent = g.bm[BM_SENT]
    skip = g.bm[BM_SKIP]
    for w in range(sent.shape[0]):
        sent[w] = ZERO
        skip[w] = ZERO


@jit(inline="always")
def dst_done_at(st, h, b):
    """When the destination has processed the first ``b`` bytes of the stream (the time of the
    first checkpoint at or after ``b``; older checkpoints are dropped: ``b`` only grows)."""
    k = h.ck_bytes.shape[0]
    while st["ck_count"] > 0:
        i = st["ck_head"]
        if h.ck_bytes[i] >= b:
            return h.ck_time[i]
        st["ck_head"] = (i + 1) % k
        st["ck_count"] -= 1
    return st["dst_clock"]


@jit(inline="always")
def checkpoint(st, h, tot):
    """Take a checkpoint of the destination's progress after ``tot`` bytes, if one is due."""
    if tot >= st["ck_next"]:
        k = h.ck_bytes.shape[0]
        if st["ck_count"] < k:
            i = (st["ck_head"] + st["ck_count"]) % k
            h.ck_bytes[i] = tot
            h.ck_time[i] = st["dst_clock"]
            st["ck_count"] += 1
        st["ck_next"] = tot + CHECKPOINT_BYTES


@jit(inline="always")
def dst_page(st, prm, h, p, normal, t):
    """The destination receives page ``p`` written into the stream at ``t``."""
    if normal:
        cost = prm["t_dst_normal"]
        if prm["t_first_touch"] > 0.0:
            r = p >> prm["region_shift"]
            w = r >> 6
            m = ONE << np.uint64(r & 63)
            if (h.dst_touched[w] & m) == ZERO:
                h.dst_touched[w] = h.dst_touched[w] | m
                cost += prm["t_first_touch"]
    else:
        cost = prm["t_dst_zero"]
    if cost > 0.0:
        st["dst_clock"] = max(st["dst_clock"], t) + cost / st["share"]
        st["cpu_dst"] += cost


@jit
def send_pages(st, prm, g, h, until, window_budget, check_slice):
    """Send pending pages in address order from the cursor (``ram_find_and_save_block`` ->
    ``migration_bitmap_find_dirty`` -> ``ram_save_target_page``), one bitmap word at a time.

    Each page: test-and-clear its bit, zero check, then a 9-byte (zero) or 4104-byte (normal)
    record into the stream; it costs the larger of its CPU and wire time, and waits while the
    stream is full.  Each 64-bit word examined costs ``t_word`` (``find_next_bit``).  Stops
    when the sender's clock reaches ``until``, the bitmap is empty, or, with ``check_slice``,
    the 50 ms slice is over (checked every 64 pages, like ``ram_save_iterate``) or the window's
    byte budget is spent.

    Returns
    -------
    int
        0: clock reached ``until``; 1: slice over; 2: nothing pending.
    """
    n = st["n"]
    bmap = g.bm[BM_BMAP]
    nonzero = g.bm[BM_NONZERO]
    sent = g.bm[BM_SENT]
    ver_src = g.ver_src
    ver_dst = g.ver_dst
    nw = bmap.shape[0]
    link = prm["link_bytes_per_ms"]
    share = st["share"]
    lock = prm["t_lock"] if prm["bitmap_lock"] != LOCK_PER_SLICE else 0.0
    c_zero = prm["t_zero"] + lock  # CPU time of a page
    c_normal = prm["t_normal"] + lock
    t_zero = max(c_zero / share, ZERO_RECORD / link)  # its wall time
    t_normal = max(c_normal / share, NORMAL_RECORD / link)
    c_word = prm["t_word"]
    t_word = c_word / share
    t_max = max(t_zero, t_normal)
    buf = prm["stream_bytes"]
    bounded = buf < np.inf
    oracle = prm["design"] == D_ORACLE
    skipped = 0
    skip = g.bm[BM_SKIP]
    t = st["sender_time"]
    cursor = st["cursor"]
    pending = st["pending"]
    slice_pages = st["slice_pages"]
    slice_start = st["slice_start"]
    wbytes0 = st["window_bytes"]
    wbytes = wbytes0
    tot = st["bytes"]
    dup = 0
    normal = 0
    words = 0
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
        words += 1
        word = bmap[wi] & (ALL << np.uint64(cursor & 63))
        if oracle and word != ZERO:
            # the oracle: pages free at the moment they would be sent are skipped, at no cost
            fm = free_mask64(g, n, wi) & word
            if fm != ZERO:
                c = popcount64(fm)
                skipped += c
                pending -= c
                bmap[wi] = bmap[wi] & ~fm
                skip[wi] = skip[wi] | fm
                word = word & ~fm
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
            # A full word that cannot end the slice part-way nor wait for the stream: the same
            # per-page arithmetic as below (so results are identical), without the per-page bit
            # search and checks.  ram_save_iterate checks MAX_WAIT every 64 pages: here, at the
            # word's end.
            base = wi << 6
            for b in range(64):
                p = base + b
                ver_dst[p] = ver_src[p]
                nz = (nzw >> np.uint64(b)) & ONE
                if nz:
                    normal += 1
                    wbytes += NORMAL_RECORD
                    tot += NORMAL_RECORD
                    t += t_normal
                else:
                    dup += 1
                    wbytes += ZERO_RECORD
                    tot += ZERO_RECORD
                    t += t_zero
                dst_page(st, prm, h, p, nz, t)
                if bounded:
                    checkpoint(st, h, tot)
            pending -= 64
            slice_pages += 64
            cursor = base + 64
            bmap[wi] = ZERO
            sent[wi] = ALL
            if check_slice and t - slice_start > MAX_WAIT:
                reason = 1  # the batch is flushed after the lock is released (end_slice)
                break
            if bounded and tot > buf:
                t = max(t, dst_done_at(st, h, tot - buf))  # flush the batch: wait for room
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
            nz = nzw & low
            if nz:
                normal += 1
                wbytes += NORMAL_RECORD
                tot += NORMAL_RECORD
                t += t_normal
            else:
                dup += 1
                wbytes += ZERO_RECORD
                tot += ZERO_RECORD
                t += t_zero
            dst_page(st, prm, h, p, nz != ZERO, t)
            if bounded:
                checkpoint(st, h, tot)
            pending -= 1
            slice_pages += 1
            cursor = p + 1
            if (slice_pages & 63) == 0:
                if check_slice and t - slice_start > MAX_WAIT:
                    reason = 1  # the batch is flushed after the lock is released (end_slice)
                    stop = True
                    break
                if bounded and tot > buf:
                    t = max(t, dst_done_at(st, h, tot - buf))  # flush the batch: wait for room
            if check_slice:
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
    cpu = words * c_word + dup * c_zero + normal * c_normal
    st["cpu_mig"] += cpu
    st["busy_mig"] += cpu / share
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
    if skipped:
        st["skipped"] += skipped
        st["r_skipped"] += skipped
    return reason


@jit
def ram_save_iterate(st, prm, g, hc, h, until, window_budget):
    """One slice of ``ram_save_iterate`` (it may span several calls, one per step)."""
    reason = send_pages(st, prm, g, h, until, window_budget, np.int64(1))
    if reason != 0:
        end_slice(st, prm, g, hc, h)


@jit
def end_slice(st, prm, g, hc, h):
    """The slice ends: the lock is released, the section footer and EOS are flushed into the
    stream (waiting for room if it is full); with QEMU 6.1's lock the iothread may now apply
    the hints that queued during the slice (:func:`.balloon.slice_end_hints`)."""
    st["in_slice"] = 0
    st["bytes"] += SLICE_OVERHEAD
    st["r_bytes"] += SLICE_OVERHEAD
    st["window_bytes"] += SLICE_OVERHEAD
    st["period_bytes"] += SLICE_OVERHEAD
    t = st["sender_time"]
    gap = 0.0
    buf = prm["stream_bytes"]
    if buf < np.inf and st["bytes"] > buf:
        gap = max(0.0, dst_done_at(st, h, st["bytes"] - buf) - t)
    if prm["hint"] and prm["bitmap_lock"] == LOCK_PER_SLICE:
        st["sender_time"] = slice_end_hints(st, prm, g, hc, h, t, gap)
    else:
        st["sender_time"] = t + gap


@jit
def sync_point(st, prm, g, hc, rec, h, last):
    """A precopy sync with its hint notifications; ends the current round (``last``: the
    final sync of stop-and-copy)."""
    if prm["hint"]:
        host_free_page_stop(st, prm, g, hc)
    page_map_snapshot(st, g, rec)
    if prm["design"] != D_NONE:  # skipped in this round, written since: sent again
        st["redirtied"] += count_and(g.bm[BM_SKIP], g.bm[BM_DLOG])
    newly = bitmap_sync(st, prm, g)
    st["sender_time"] += prm["t_sync"] / st["share"]
    st["cpu_mig"] += prm["t_sync"]
    st["busy_mig"] += prm["t_sync"] / st["share"]
    t = st["sender_time"]
    auto_converge_check(st, prm, t)
    close_round(st, g, rec, newly, t)
    if prm["hint"]:
        host_after_sync_faults(st, prm, g, hc)
        if last:
            host_free_page_done(st)
        else:
            host_free_page_start(st, prm, h, t)


@jit
def migration_completion(st, prm, g, hc, rec, h):
    """Stop-and-copy: stop the VM, final sync, send everything pending, device state."""
    st["vm_running"] = 0
    st["downtime_start"] = st["sender_time"]
    if st["bandwidth"] > 0.0:
        st["expected_downtime"] = st["pending"] * PAGE_SIZE / st["bandwidth"]
    sync_point(st, prm, g, hc, rec, h, np.int64(1))
    st["cursor"] = 0
    send_pages(st, prm, g, h, np.inf, np.inf, np.int64(0))
    if prm["stream_bytes"] < np.inf and st["bytes"] > prm["stream_bytes"]:
        # the last batch goes into the stream once it has room
        last = dst_done_at(st, h, st["bytes"] - prm["stream_bytes"])
        st["sender_time"] = max(st["sender_time"], last)
    st["bytes"] += SLICE_OVERHEAD
    st["r_bytes"] += SLICE_OVERHEAD
    st["sender_time"] += prm["t_switchover"]
    st["end_time"] = st["sender_time"]
    close_round(st, g, rec, np.int64(0), st["end_time"])
    st["status"] = COMPLETED


@jit
def sender_run(st, prm, g, hc, rec, h, until):
    """The migration thread, from its clock to ``until`` (``migration_thread`` loop body)."""
    window_budget = prm["max_bandwidth"] / 10.0
    while st["sender_time"] < until and st["status"] == RUNNING:
        t = st["sender_time"]
        if st["n_rounds"] + 3 > rec.rounds.shape[0]:
            # the round recorder is full (a sync and the stop-and-copy need 3 rows): stop,
            # reported not-converged with the reason, rather than run on unrecorded
            st["status"] = NOT_CONVERGED
            st["failure"] = FAIL_ROUNDS
            st["end_time"] = t
            return
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
                sync_point(st, prm, g, hc, rec, h, np.int64(0))
            if st["pending"] == 0 or st["pending"] * PAGE_SIZE < st["threshold"]:
                migration_completion(st, prm, g, hc, rec, h)
                return
            st["in_slice"] = 1
            st["slices"] += 1
            st["slice_start"] = st["sender_time"]
            st["slice_pages"] = 0
        ram_save_iterate(st, prm, g, hc, h, until, window_budget)


@jit
def migration_cancel(st, prm, g, hc, rec, t):
    """The migration is cancelled (``migrate_cancel``) or fails at ``t`` (``migrate_fd_cleanup``):
    the round in progress ends, dirty logging stops, and the balloon hears the precopy
    notifier's CLEANUP.

    QEMU 4.0 (``virtio_balloon_free_page_report_notify``): CLEANUP -> ``free_page_stop``: the
    guest ends its pass but keeps every hinted block until the host's next command, i.e. the
    next migration (``CANCEL_STOP``).  QEMU 5.1 (commit dd8eeb9671fc, "virtio-balloon: Always
    indicate S_DONE when migration fails"): CLEANUP -> ``free_page_done``, and the guest gives
    the blocks back when it reads DONE (``CANCEL_DONE``).  The VM keeps running: the engine
    follows the guest for ``AFTER_CANCEL_MS`` more.
    """
    st["cancel_time"] = t
    st["held_at_cancel"] = st["held_pages"]
    page_map_snapshot(st, g, rec)
    close_round(st, g, rec, np.int64(0), t)
    st["status"] = CANCELLED
    st["end_time"] = t
    st["in_slice"] = 0
    st["logging"] = 0  # ram_save_cleanup -> memory_global_dirty_log_stop
    if prm["hint"]:
        if prm["cancel_done"]:
            host_free_page_done(st)
        else:
            host_free_page_stop(st, prm, g, hc)
        st["guest_start_at"] = -1.0
        st["q_count"] = 0  # the device is no longer in S_START: queued hints are dropped
