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

The iothread and the dirty bitmap's lock: applying a hint takes ``bitmap_mutex``.  With QEMU
4.0-6.0's per-page lock a hint gets in between any two pages the sender handles; with QEMU
6.1+'s per-slice lock (commit 63268c4970) it waits until the sender's ``ram_save_iterate`` slice
ends.  Measured on QEMU 7.2 (docs/model.md "The race"): at a slice end the sender releases the
lock, flushes its footer into the stream and takes the lock again; when that flush blocks (the
stream is full) the iothread gets the lock and, the mutex being unfair to a sleeping waiter,
applies its whole queue; otherwise a few hints get through at most (:func:`slice_end_hints`).

Timing varies from run to run on a real host: the guest's START comes ``hint_start_ms`` plus a
random (exponential, mean ``hint_start_jitter_ms``) latency after a new command id, and the
lock hand-offs at slice ends are random; these draws come from the host's random stream
(``h.rng``), so the guest's workload sees the same random numbers with and without hinting.

State: ``st`` and ``prm`` (:mod:`.layout` records), the :class:`~.layout.Guest` bundle ``g``
(the driver's held blocks are guest memory), the :class:`~.layout.HintChannel` ``hc`` (the
free page virtqueue as a ring, and the blocks kept over a sync by the stale-hint fault) and the
:class:`~.layout.Host` ``h`` (its random stream, the source's guest RAM populated on the host).
"""

from __future__ import annotations

import numpy as np

from .._numba import jit
from .bitmap import ONE, ZERO, clear_range, set_range
from .buddy import buddy_alloc, fl_next
from .layout import (
    BM_BMAP,
    BM_HELD,
    BM_NONZERO,
    BM_SKIP,
    CMD_ID_STOP,
    D_RIP,
    F_OUTSIDE_START,
    F_STALE_AFTER_SYNC,
    LOCK_PER_SLICE,
    MAX_ORDER,
    Q_BLOCK,
    Q_START,
    Q_STOP,
    QUEUE_SIZE,
    REL_AFTER_PASS,
    REPORTING_CAPACITY,
    REPORTING_DELAY,
    REPORTING_LIST_SHARE,
    RUNNING,
    S_DONE,
    S_REQUESTED,
    S_START,
    S_STOP,
)
from .rng import rng_exponential, rng_poisson, rng_uniform
from .workload import block_write, release_held_block


@jit
def q_push(st, hc, kind, pfn, cmd, ready, order):
    """Add an element to the virtqueue (``order``: of a hinted block); False when the ring is
    full."""
    if st["q_count"] >= QUEUE_SIZE:
        return False
    i = (st["q_head"] + st["q_count"]) % QUEUE_SIZE
    hc.kind[i] = kind
    hc.pfn[i] = pfn
    hc.cmd[i] = cmd
    hc.ready[i] = ready
    hc.order[i] = order
    st["q_count"] += 1
    return True


@jit
def apply_hint(st, g, pfn, k):
    """``qemu_guest_free_page_hint``: clear the pending bits of the order-k block at ``pfn``
    (migration must be active)."""
    if st["status"] != RUNNING or st["vm_running"] == 0:
        return
    npages = np.int64(1) << k
    cleared = clear_range(g.bm[BM_BMAP], pfn, npages)
    st["pending"] -= cleared
    st["skipped"] += cleared
    st["r_skipped"] += cleared
    st["hinted"] += npages
    set_range(g.bm[BM_SKIP], pfn, npages)


@jit
def host_free_page_start(st, prm, h, t):
    """AFTER_BITMAP_SYNC at time ``t`` while the VM runs: a new command id for the guest."""
    if st["vm_running"] == 0:
        return
    st["host_cmd"] += 1
    st["host_status"] = S_REQUESTED
    delay = prm["hint_start_ms"]
    if prm["hint_start_jitter_ms"] > 0.0:
        delay += rng_exponential(h.rng, prm["hint_start_jitter_ms"])
    st["guest_start_at"] = t + delay
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
        np.int64(0),
    )
    if prm["release"] == REL_AFTER_PASS:
        if prm["poison"] == 0:
            while st["held_n"] > 0:
                release_held_block(st, prm, g)
        else:
            # freeing a block poisons its pages: vCPU time the worker spends from its next
            # step on (guest_release_step), not all at once
            st["releasing"] = 1


@jit
def guest_release_step(st, prm, g):
    """The worker frees the blocks of its last pass (after-pass release with page poisoning),
    as far as its time allows: each block costs the poisoning of its pages and the write
    faults that takes while dirty logging is on.  True while blocks are left to free."""
    while st["releasing"] and st["hint_budget"] >= 0.0:
        if st["held_n"] == 0:
            st["releasing"] = 0
            break
        faults = st["write_faults"]
        release_held_block(st, prm, g)
        poison_ns = (np.int64(1) << prm["hint_order"]) * prm["zero_fill_ns"]
        cost = poison_ns + (st["write_faults"] - faults) * prm["write_fault_ms"] * 1e6
        st["hint_budget"] -= cost
        st["zero_cpu_ns"] += poison_ns
        st["cpu_vcpu"] += cost / 1e6
        st["busy_vcpu"] += cost / 1e6 / st["share"]
    if st["releasing"] and st["held_n"] == 0:
        st["releasing"] = 0
    return st["releasing"] != 0


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
def host_after_sync_faults(st, prm, g, hc):
    """Fault only: apply the blocks kept over the sync (a stale hint after a sync)."""
    for i in range(st["stale_n"]):
        apply_hint(st, g, hc.stale[i], prm["hint_order"])
    st["stale_n"] = 0


@jit
def host_free_page_done(st):
    """Completion (VM stopped): DONE; the guest frees its blocks once it runs again."""
    st["host_status"] = S_DONE


@jit(inline="always")
def first_touch_regions(h, shift, pfn, npages):
    """Host regions of the source's guest RAM that the block (pfn, npages) writes for the
    first time (they are marked as written)."""
    new = 0
    for r in range(pfn >> shift, ((pfn + npages - 1) >> shift) + 1):
        w = r >> 6
        m = ONE << np.uint64(r & 63)
        if (h.src_touched[w] & m) == ZERO:
            h.src_touched[w] = h.src_touched[w] | m
            new += 1
    return new


@jit
def guest_done(st, prm, g, hc, now):
    """The guest reads DONE (``virtballoon_changed`` / ``report_free_page_func``): its pass
    ends and every held block goes back to the allocator (``return_free_pages_to_mm``)."""
    guest_end_pass(st, prm, g, hc, now)
    while st["held_n"] > 0:
        release_held_block(st, prm, g)


@jit
def guest_hint_step(st, prm, g, hc, h, now, dt):
    """Advance the hint worker by ``dt`` ms (one vCPU, slowed by auto-converge throttling and by
    its share of a host CPU).

    ``fph`` (Linux 4.20): it allocates free blocks of the hint order and holds them; with
    ``init_on_alloc`` each block is zeroed, and the host allocates the regions of the source's
    RAM it writes for the first time.  ``report-in-place`` (the series up to v34):
    :func:`rip_walk`.  When the host says DONE, the held blocks go back (:func:`guest_done`).
    """
    if st["host_status"] == S_DONE and (st["held_n"] > 0 or st["guest_reporting"]):
        guest_done(st, prm, g, hc, now)
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
                np.int64(0),
            )
            st["guest_reporting"] = 1
            st["hint_low_pfn"] = st["n"]
            st["hint_budget"] = min(0.0, st["hint_budget"])  # time it still owes
            st["rip_order"] = MAX_ORDER
            st["rip_idx"] = rip_first(st, np.int64(MAX_ORDER))
    if st["guest_reporting"] == 0 and st["releasing"] == 0 and st["hint_budget"] >= 0.0:
        return
    share = st["share"]
    # the worker runs on one vCPU; with a single vCPU it has what the dirty loop left of it
    avail = dt
    if prm["vcpus"] <= 1:
        avail = max(0.0, dt - st["dl_used"] / (1.0 - st["throttle"]) / share)
    st["hint_budget"] += avail * 1e6 * (1.0 - st["throttle"]) * share
    if st["releasing"] and guest_release_step(st, prm, g):
        return
    if st["guest_reporting"] == 0:
        st["hint_budget"] = min(0.0, st["hint_budget"])
        return
    if prm["design"] == D_RIP:
        rip_walk(st, prm, g, hc, now)
        return
    k = prm["hint_order"]
    npages = np.int64(1) << k
    zeroes = prm["init_on_alloc"] and not prm["init_on_free"]
    cost0 = prm["hint_block_ns"]
    if zeroes:
        cost0 += npages * prm["zero_fill_ns"]
    while st["hint_budget"] >= cost0:
        if st["q_count"] >= QUEUE_SIZE - 1:
            st["hint_budget"] = 0.0  # ring full: the worker spins until the host catches up
            return
        # get_free_page_and_send: no reclaim, so each zone gives blocks down to its min
        # watermark plus its lowmem reserve (``hint_floor``, set by simulate.hint_floor)
        avail = 0
        for j in range(k, MAX_ORDER + 1):
            avail += g.nr_free[j]
        if avail == 0 or st["nr_free_pages"] - npages < st["hint_floor"]:
            guest_end_pass(st, prm, g, hc, now)
            return
        pfn = buddy_alloc(st, g, k)
        cost = cost0
        fault_ns = 0.0
        if zeroes:
            faults = st["write_faults"]
            block_write(st, g, pfn, k, np.int64(1))
            # zeroing a block dirty logging write-protected takes a write fault per page:
            # vCPU time of the worker too (counted in write_faults, not in hint_cpu_ns)
            fault_ns = (st["write_faults"] - faults) * prm["write_fault_ms"] * 1e6
            st["zero_cpu_ns"] += npages * prm["zero_fill_ns"]
            if prm["t_first_touch"] > 0.0:
                new = first_touch_regions(h, prm["region_shift"], pfn, npages)
                cost += new * prm["t_first_touch"] * 1e6
        set_range(g.bm[BM_HELD], pfn, npages)
        g.held_blocks[st["held_n"]] = pfn
        st["held_n"] += 1
        st["held_pages"] += npages
        if st["held_pages"] > st["held_max"]:
            st["held_max"] = st["held_pages"]
        q_push(
            st, hc, np.int64(Q_BLOCK), pfn, st["guest_cmd_active"], now + prm["hint_latency_ms"], k
        )
        st["hint_budget"] -= cost + fault_ns
        st["hint_cpu_ns"] += cost
        st["cpu_vcpu"] += (cost + fault_ns) / 1e6
        st["busy_vcpu"] += (cost + fault_ns) / 1e6 / share
        if pfn < st["hint_low_pfn"]:
            st["hint_low_pfn"] = pfn


@jit(inline="always")
def rip_first(st, k):
    """Where a walk of the order-k free list starts: the end the allocator takes from."""
    if st["alloc_low"]:
        return np.int64(0)
    return (st["n"] >> k) - 1


@jit
def rip_walk(st, prm, g, hc, now):
    """Report-in-place (the series up to v34, ``get_from_free_page_list``): walk the free lists
    from the highest order down to the hint order, in the order the allocator hands blocks out,
    and report every free block's address (one element of its own order) without taking it.

    The blocks stay free: the workload may allocate and write them at any time, and the dirty
    log (on since setup) records those writes, so the next sync sends them again.  Each block
    costs the vCPU ``hint_block_ns``; the pass ends when every list has been walked.
    """
    share = st["share"]
    cost = prm["hint_block_ns"]
    kmin = prm["hint_order"]
    down = st["alloc_low"] == 0
    while st["hint_budget"] >= cost:
        if st["q_count"] >= QUEUE_SIZE - 1:
            st["hint_budget"] = 0.0  # ring full: the worker spins until the host catches up
            return
        k = st["rip_order"]
        idx = fl_next(g, k, st["rip_idx"], down)
        if idx < 0:
            if k <= kmin:
                guest_end_pass(st, prm, g, hc, now)
                return
            st["rip_order"] = k - 1
            st["rip_idx"] = rip_first(st, k - 1)
            continue
        st["rip_idx"] = idx - 1 if down else idx + 1
        pfn = idx << k
        q_push(
            st, hc, np.int64(Q_BLOCK), pfn, st["guest_cmd_active"], now + prm["hint_latency_ms"], k
        )
        st["hint_budget"] -= cost
        st["hint_cpu_ns"] += cost
        st["cpu_vcpu"] += cost / 1e6
        st["busy_vcpu"] += cost / 1e6 / share
        if pfn < st["hint_low_pfn"]:
            st["hint_low_pfn"] = pfn


@jit
def reporting_step(st, prm, g, h, now):
    """Free page reporting (Linux 5.7 ``mm/page_reporting.c``, QEMU 5.1
    ``virtio_balloon_handle_report``), one pass of the worker when it is due.

    ``page_reporting_process``: the zone is skipped unless its free pages exceed the low
    watermark by a batch (``CAPACITY << order``); for each order from the reporting order up,
    ``page_reporting_cycle`` reports about 1/16 of the free list
    (``DIV_ROUND_UP(nr_free, CAPACITY * 16)`` batches of ``PAGE_REPORTING_CAPACITY`` blocks),
    skipping blocks already reported.  The host discards each reported block
    (``ram_block_discard_range``: MADV_DONTNEED), so it reads back as zeros, unless the guest
    poisons freed pages with a non-zero value (QEMU skips the discard when ``poison_val != 0``).
    The worker re-arms itself ``PAGE_REPORTING_DELAY`` later.  Nothing here touches the
    migration bitmap: reported pages are still sent, as zero pages.

    Simplifications (docs/model.md): a block whose pages all read as zero counts as reported
    (Linux keeps a ``PageReported`` flag); the blocks are isolated, reported and put back
    within the pass; the worker runs every 2 s while the guest runs.
    """
    if st["rep_next"] < 0.0 or now < st["rep_next"]:
        return
    st["rep_next"] = now + REPORTING_DELAY
    kmin = prm["hint_order"]
    if st["nr_free_pages"] < st["wmark_low"] + (REPORTING_CAPACITY << kmin):
        return
    if prm["poison"] == 2:
        return  # poison_val != 0: QEMU reports back without discarding, nothing changes
    nonzero = g.bm[BM_NONZERO]
    shift = prm["region_shift"]
    share = st["share"]
    cost = prm["hint_block_ns"]
    for k in range(kmin, MAX_ORDER + 1):
        batches = (g.nr_free[k] + REPORTING_CAPACITY * REPORTING_LIST_SHARE - 1) // (
            REPORTING_CAPACITY * REPORTING_LIST_SHARE
        )
        budget = batches * REPORTING_CAPACITY
        idx = fl_next(g, k, np.int64(0), False)
        npages = np.int64(1) << k
        while budget > 0 and idx >= 0:
            pfn = idx << k
            dirty = False
            for w in range(pfn >> 6, (pfn + npages + 63) >> 6):
                if nonzero[w] != ZERO:
                    dirty = True
                    break
            if dirty:
                budget -= 1
                st["reported"] += npages
                st["hint_cpu_ns"] += cost
                st["cpu_vcpu"] += cost / 1e6
                st["busy_vcpu"] += cost / 1e6 / share
                st["busy_io"] += prm["t_hint_apply"]
                clear_range(nonzero, pfn, npages)
                if shift <= k:  # the host gives its regions back: first touch again
                    clear_range(h.src_touched, pfn >> shift, npages >> shift)
            idx = fl_next(g, k, idx + 1, False)


@jit
def iothread_pop(st, prm, g, hc):
    """The iothread handles the element at the head of the virtqueue
    (``get_free_page_hints``); returns 1 when it applied a hinted block, else 0."""
    i = st["q_head"]
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
        apply_hint(st, g, hc.pfn[i], hc.order[i])
        st["busy_io"] += prm["t_hint_apply"]
        if st["slices"] == 0:
            st["hints_early"] += 1
        return 1
    return 0


@jit
def host_hint_step(st, prm, g, hc, now):
    """The iothread handles the queued elements that are due by ``now``; with QEMU 6.1's lock
    a hinted block waits while the migration thread is inside a slice (elements behind it
    wait too: the iothread handles them in order)."""
    locked = prm["bitmap_lock"] == LOCK_PER_SLICE and st["in_slice"] == 1
    while st["q_count"] > 0:
        i = st["q_head"]
        if hc.ready[i] > now:
            return
        if locked and hc.kind[i] == Q_BLOCK:
            return
        iothread_pop(st, prm, g, hc)


@jit
def slice_end_hints(st, prm, g, hc, h, t, gap):
    """QEMU 6.1+: the migration thread released ``bitmap_mutex`` at ``t`` and flushes its slice
    footer into the stream, which blocks for ``gap`` ms when the stream is full.

    While hints are queued, the iothread gets the lock before the migration thread takes it
    back with chance ``flush_wait_p``, or ``flush_wait_p_after`` at the slice end after one
    that left its queue (measured over every slice end with a queue, the stream full or not:
    the draws are not independent).  Then it applies every hint it has queued, holding the
    lock until its queue is empty, while the flush waits ``gap`` for room in a full stream;
    otherwise (or, with chance ``boundary_drain_p``, not) the footer went into room the
    destination had just made (``gap`` is 0), the migration thread takes the lock back almost
    at once and a few hints get through (a Poisson number of mean ``boundary_hints``).  Each
    applied hint takes the iothread ``t_hint_apply``.  Returns when the migration thread has
    the lock again.
    """
    drain = gap > 0.0
    if st["q_count"] > 0:
        p_wait = prm["flush_wait_p_after"] if st["drain_missed"] else prm["flush_wait_p"]
        drain = p_wait >= 1.0 or rng_uniform(h.rng) < p_wait
        if not drain:
            gap = 0.0  # the footer went into room the destination had just made
    if not drain and prm["boundary_drain_p"] > 0.0:
        drain = rng_uniform(h.rng) < prm["boundary_drain_p"]
    limit = QUEUE_SIZE
    if not drain:
        limit = 0
        if prm["boundary_hints"] > 0.0:
            limit = rng_poisson(h.rng, prm["boundary_hints"])
    clock = t
    applied = 0
    while st["q_count"] > 0 and applied < limit:
        if hc.ready[st["q_head"]] > clock:
            break
        if iothread_pop(st, prm, g, hc):
            applied += 1
            clock += prm["t_hint_apply"]
    st["hints_boundary"] += applied
    if drain and applied > 0:
        st["boundary_drains"] += 1
    st["drain_missed"] = 1 if (st["q_count"] > 0 and not drain) else 0
    return max(t + gap, clock)
