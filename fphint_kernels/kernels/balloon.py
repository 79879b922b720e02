"""Free page hinting: the Linux 4.20 virtio-balloon driver and the QEMU 4.0 device.

Guest (``drivers/virtio/virtio_balloon.c``, v37 patch 1/3 as merged for 4.20): on a new command
id the worker sends START(id) on the free page virtqueue, then takes whole free order-10 blocks
one by one with ``__GFP_NORETRY | __GFP_NOWARN | __GFP_NOMEMALLOC`` (no reclaim, so it stops at
the low watermark), adds each as an in-buffer and kicks; it holds the blocks until the host says
DONE (4.20), gives them back through the shrinker under pressure (5.7+), or frees them when the
pass ends (the v36 patch).  With ``init_on_alloc`` each block is zeroed when allocated, which
writes (and so dirties) all its pages.

Host (``hw/virtio/virtio-balloon.c`` + ``qemu_guest_free_page_hint`` in ``migration/ram.c``,
QEMU 4.0): ``free_page_start`` bumps the command id (status S_REQUESTED) after every bitmap sync
while the VM runs; ``free_page_stop`` (status S_STOP) before every sync; ``free_page_done`` at
completion.  The iothread pops elements in order: START with the current id -> S_START; STOP
while S_START -> S_STOP; a block is applied only in S_START: it clears the block's bits in the
migration bitmap and lowers the pending count.

Queue arrays (q = QUEUE_SIZE): ``q_kind``, ``q_pfn``, ``q_cmd`` int64[q]; ``q_ready`` float64[q]
(time the iothread handles it).  ``stale`` int64[q]: blocks kept past a sync (fault only).
"""

from __future__ import annotations

import numpy as np

from .._numba import jit
from .bitmap import clear_range, set_range
from .buddy import buddy_alloc
from .state import (
    CMD_ID_STOP,
    F_OUTSIDE_START,
    F_STALE_AFTER_SYNC,
    MAX_ORDER,
    Q_BLOCK,
    Q_START,
    Q_STOP,
    QUEUE_SIZE,
    REL_AFTER_PASS,
    RUNNING,
    S_DONE,
    S_REQUESTED,
    S_START,
    S_STOP,
)
from .workload import BM_BMAP, BM_HELD, BM_SKIP, block_write, release_held_block

BLOCK = 1 << MAX_ORDER


@jit
def q_push(st, queue, kind, pfn, cmd, ready):
    q_kind, q_pfn, q_cmd, q_ready = queue
    if st["q_count"] >= QUEUE_SIZE:
        return False
    i = (st["q_head"] + st["q_count"]) % QUEUE_SIZE
    q_kind[i] = kind
    q_pfn[i] = pfn
    q_cmd[i] = cmd
    q_ready[i] = ready
    st["q_count"] += 1
    return True


@jit
def apply_hint(st, bm, pfn):
    """``qemu_guest_free_page_hint``: clear the block's pending bits (migration must be active)."""
    if st["status"] != RUNNING or st["vm_running"] == 0:
        return
    cleared = clear_range(bm[BM_BMAP], pfn, np.int64(BLOCK))
    st["pending"] -= cleared
    st["skipped"] += cleared
    st["r_skipped"] += cleared
    st["hinted"] += BLOCK
    set_range(bm[BM_SKIP], pfn, np.int64(BLOCK))


@jit
def host_free_page_start(st, prm, t):
    """AFTER_BITMAP_SYNC at time ``t`` while the VM runs: a new command id for the guest."""
    if st["vm_running"] == 0:
        return
    st["host_cmd"] += 1
    st["host_status"] = S_REQUESTED
    st["guest_start_at"] = t + prm["hint_start_ms"]
    st["guest_start_cmd"] = st["host_cmd"]


@jit
def guest_end_pass(st, prm, bd, bm, ver_src, held_blocks, queue, now):
    """The worker stops: no more free blocks, or the host said STOP."""
    if st["guest_reporting"] == 0:
        return
    st["guest_reporting"] = 0
    q_push(
        st,
        queue,
        np.int64(Q_STOP),
        np.int64(-1),
        np.int64(CMD_ID_STOP),
        now + prm["hint_latency_ms"],
    )
    if prm["release"] == REL_AFTER_PASS:
        while st["held_n"] > 0:
            release_held_block(st, prm, bd, bm, ver_src, held_blocks)


@jit
def host_free_page_stop(st, prm, bd, bm, ver_src, held_blocks, queue, stale):
    """BEFORE_BITMAP_SYNC: S_STOP; the guest sees the STOP id and ends its pass."""
    if st["host_status"] != S_STOP:
        st["host_status"] = S_STOP
    st["guest_start_at"] = -1.0
    if st["vm_running"]:  # at completion the vCPUs are already stopped: the guest is frozen
        guest_end_pass(st, prm, bd, bm, ver_src, held_blocks, queue, st["now"])
    if prm["faults"] & F_STALE_AFTER_SYNC:
        # fault: blocks still queued now are kept and applied after the sync
        q_kind, q_pfn, q_cmd, q_ready = queue
        while st["q_count"] > 0:
            i = st["q_head"]
            st["q_head"] = (i + 1) % QUEUE_SIZE
            st["q_count"] -= 1
            if q_kind[i] == Q_BLOCK and st["stale_n"] < stale.shape[0]:
                stale[st["stale_n"]] = q_pfn[i]
                st["stale_n"] += 1


@jit
def host_after_sync_faults(st, bm, stale):
    """Fault only: apply the blocks kept over the sync (a stale hint after a sync)."""
    for i in range(st["stale_n"]):
        apply_hint(st, bm, stale[i])
    st["stale_n"] = 0


@jit
def host_free_page_done(st):
    """Completion (VM stopped): DONE; the guest frees its blocks once it runs again."""
    st["host_status"] = S_DONE


@jit
def guest_hint_step(st, prm, bd, bm, ver_src, held_blocks, queue, now, dt):
    """Advance the hint worker by ``dt`` ms (one vCPU, slowed by auto-converge throttling)."""
    free_order, freemap, fm_off, fm_top, nr_free = bd
    if st["guest_start_at"] >= 0.0 and now >= st["guest_start_at"]:
        st["guest_start_at"] = -1.0
        if st["host_status"] == S_REQUESTED and st["host_cmd"] == st["guest_start_cmd"]:
            st["guest_cmd_active"] = st["host_cmd"]
            q_push(
                st,
                queue,
                np.int64(Q_START),
                np.int64(-1),
                st["host_cmd"],
                now + prm["hint_latency_ms"],
            )
            st["guest_reporting"] = 1
            st["hint_low_pfn"] = st["n"]
            st["hint_budget"] = 0.0
    if st["guest_reporting"] == 0:
        return
    st["hint_budget"] += dt * 1e6 * (1.0 - st["throttle"])
    cost = prm["hint_block_ns"]
    if prm["init_on_alloc"]:
        cost += BLOCK * prm["zero_fill_ns"]
    while st["hint_budget"] >= cost:
        if st["q_count"] >= QUEUE_SIZE - 1:
            st["hint_budget"] = 0.0  # ring full: the worker spins until the host catches up
            return
        # get_free_page_and_send: no reclaim, fails at the low watermark
        if nr_free[MAX_ORDER] == 0 or st["nr_free_pages"] - BLOCK < st["wmark_low"]:
            guest_end_pass(st, prm, bd, bm, ver_src, held_blocks, queue, now)
            return
        pfn = buddy_alloc(st, free_order, freemap, fm_off, fm_top, nr_free, np.int64(MAX_ORDER))
        if prm["init_on_alloc"]:
            block_write(st, bm, ver_src, pfn, np.int64(MAX_ORDER), np.int64(1))
            st["zero_cpu_ns"] += BLOCK * prm["zero_fill_ns"]
        set_range(bm[BM_HELD], pfn, np.int64(BLOCK))
        held_blocks[st["held_n"]] = pfn
        st["held_n"] += 1
        st["held_pages"] += BLOCK
        if st["held_pages"] > st["held_max"]:
            st["held_max"] = st["held_pages"]
        q_push(
            st, queue, np.int64(Q_BLOCK), pfn, st["guest_cmd_active"], now + prm["hint_latency_ms"]
        )
        st["hint_budget"] -= cost
        st["hint_cpu_ns"] += cost
        if pfn < st["hint_low_pfn"]:
            st["hint_low_pfn"] = pfn


@jit
def host_hint_step(st, prm, bm, queue, now):
    """The iothread handles the queued elements that are due by ``now``."""
    q_kind, q_pfn, q_cmd, q_ready = queue
    while st["q_count"] > 0:
        i = st["q_head"]
        if q_ready[i] > now:
            return
        st["q_head"] = (i + 1) % QUEUE_SIZE
        st["q_count"] -= 1
        kind = q_kind[i]
        if kind == Q_START:
            if q_cmd[i] == st["host_cmd"]:
                st["host_status"] = S_START
        elif kind == Q_STOP:
            if st["host_status"] == S_START:
                st["host_status"] = S_STOP
        elif st["host_status"] == S_START or (prm["faults"] & F_OUTSIDE_START):
            apply_hint(st, bm, q_pfn[i])
