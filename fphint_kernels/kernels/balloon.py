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

State: ``st`` and ``prm`` (:mod:`.layout` records), the :class:`~.layout.Guest` bundle ``g``
(the driver's held blocks are guest memory) and the :class:`~.layout.HintChannel` ``hc`` (the
free page virtqueue as a ring, and the blocks kept over a sync by the stale-hint fault).
"""

from __future__ import annotations

import numpy as np

from .._numba import jit
from .bitmap import clear_range, set_range
from .buddy import buddy_alloc
from .layout import (
    BM_BMAP,
    BM_HELD,
    BM_SKIP,
    CMD_ID_STOP,
    F_OUTSIDE_START,
    F_STALE_AFTER_SYNC,
    HINT_ORDER,
    HINT_PAGES,
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
from .workload import block_write, release_held_block


@jit
def q_push(st, hc, kind, pfn, cmd, ready):
    """Add an element to the virtqueue; False when the ring is full."""
    if st["q_count"] >= QUEUE_SIZE:
        return False
    i = (st["q_head"] + st["q_count"]) % QUEUE_SIZE
    hc.kind[i] = kind
    hc.pfn[i] = pfn
    hc.cmd[i] = cmd
    hc.ready[i] = ready
    st["q_count"] += 1
    return True


@jit
def apply_hint(st, g, pfn):
    """``qemu_guest_free_page_hint``: clear the block's pending bits (migration must be active)."""
    if st["status"] != RUNNING or st["vm_running"] == 0:
        return
    cleared = clear_range(g.bm[BM_BMAP], pfn, np.int64(HINT_PAGES))
    st["pending"] -= cleared
    st["skipped"] += cleared
    st["r_skipped"] += cleared
    st["hinted"] += HINT_PAGES
    set_range(g.bm[BM_SKIP], pfn, np.int64(HINT_PAGES))


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
def guest_end_pass(st, prm, g, hc, now):
    """The worker stops: no more free blocks, or the host said STOP."""
    if st["guest_reporting"] == 0:
        return
    st["guest_reporting"] = 0
    q_push(
        st,
        hc,
        np.int64(Q_STOP),
        np.int64(-1),
        np.int64(CMD_ID_STOP),
        now + prm["hint_latency_ms"],
    )
    if prm["release"] == REL_AFTER_PASS:
        while st["held_n"] > 0:
            release_held_block(st, prm, g)


@jit
def host_free_page_stop(st, prm, g, hc):
    """BEFORE_BITMAP_SYNC: S_STOP; the guest sees the STOP id and ends its pass."""
    if st["host_status"] != S_STOP:
        st["host_status"] = S_STOP
    st["guest_start_at"] = -1.0
    if st["vm_running"]:  # at completion the vCPUs are already stopped: the guest is frozen
        guest_end_pass(st, prm, g, hc, st["now"])
    if prm["faults"] & F_STALE_AFTER_SYNC:
        # fault: blocks still queued now are kept and applied after the sync
        stale = hc.stale
        while st["q_count"] > 0:
            i = st["q_head"]
            st["q_head"] = (i + 1) % QUEUE_SIZE
            st["q_count"] -= 1
            if hc.kind[i] == Q_BLOCK and st["stale_n"] < stale.shape[0]:
                stale[st["stale_n"]] = hc.pfn[i]
                st["stale_n"] += 1


@jit
def host_after_sync_faults(st, g, hc):
    """Fault only: apply the blocks kept over the sync (a stale hint after a sync)."""
    for i in range(st["stale_n"]):
        apply_hint(st, g, hc.stale[i])
    st["stale_n"] = 0


@jit
def host_free_page_done(st):
    """Completion (VM stopped): DONE; the guest frees its blocks once it runs again."""
    st["host_status"] = S_DONE


@jit
def guest_hint_step(st, prm, g, hc, now, dt):
    """Advance the hint worker by ``dt`` ms (one vCPU, slowed by auto-converge throttling)."""
    if st["guest_start_at"] >= 0.0 and now >= st["guest_start_at"]:
        st["guest_start_at"] = -1.0
        if st["host_status"] == S_REQUESTED and st["host_cmd"] == st["guest_start_cmd"]:
            st["guest_cmd_active"] = st["host_cmd"]
            q_push(
                st,
                hc,
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
        cost += HINT_PAGES * prm["zero_fill_ns"]
    while st["hint_budget"] >= cost:
        if st["q_count"] >= QUEUE_SIZE - 1:
            st["hint_budget"] = 0.0  # ring full: the worker spins until the host catches up
            return
        # get_free_page_and_send: no reclaim, fails at the low watermark
        if g.nr_free[HINT_ORDER] == 0 or st["nr_free_pages"] - HINT_PAGES < st["wmark_low"]:
            guest_end_pass(st, prm, g, hc, now)
            return
        pfn = buddy_alloc(st, g, np.int64(HINT_ORDER))
        if prm["init_on_alloc"]:
            block_write(st, g, pfn, np.int64(HINT_ORDER), np.int64(1))
            st["zero_cpu_ns"] += HINT_PAGES * prm["zero_fill_ns"]
        set_range(g.bm[BM_HELD], pfn, np.int64(HINT_PAGES))
        g.held_blocks[st["held_n"]] = pfn
        st["held_n"] += 1
        st["held_pages"] += HINT_PAGES
        if st["held_pages"] > st["held_max"]:
            st["held_max"] = st["held_pages"]
        q_push(st, hc, np.int64(Q_BLOCK), pfn, st["guest_cmd_active"], now + prm["hint_latency_ms"])
        st["hint_budget"] -= cost
        st["hint_cpu_ns"] += cost
        if pfn < st["hint_low_pfn"]:
            st["hint_low_pfn"] = pfn


@jit
def host_hint_step(st, prm, g, hc, now):
    """The iothread handles the queued elements that are due by ``now``."""
    while st["q_count"] > 0:
        i = st["q_head"]
        if hc.ready[i] > now:
            return
        st["q_head"] = (i + 1) % QUEUE_SIZE
        st["q_count"] -= 1
        kind = hc.kind[i]
        if kind == Q_START:
            if hc.cmd[i] == st["host_cmd"]:
                st["host_status"] = S_START
        elif kind == Q_STOP:
            if st["host_status"] == S_START:
                st["host_status"] = S_STOP
        elif st["host_status"] == S_START or (prm["faults"] & F_OUTSIDE_START):
            apply_hint(st, g, hc.pfn[i])
