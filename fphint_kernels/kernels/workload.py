"""Guest memory activity: page writes, allocation with reclaim, processes, page cache.

A page write bumps the page's version (the nothing-lost check compares versions) and, while
KVM dirty logging is on, the first write after (re-)arming write protection sets the page's bit
in the dirty log and costs the guest a write fault (``kvm_mmu_page_fault`` ->
``mark_page_dirty``).  Allocations go through the buddy allocator with Linux's watermarks:
below the low watermark the guest reclaims (the balloon shrinker first when it may give hinted
blocks back, then the oldest page cache), below the min watermark the allocation fails.

State: ``st`` and ``prm`` (:mod:`.layout` records), the bundles ``g`` (:class:`~.layout.Guest`,
the guest's memory) and ``wl`` (:class:`~.layout.Workload`, its programs).
"""

from __future__ import annotations

import math

import numpy as np

from .._numba import jit
from .bitmap import ONE, ZERO, clear_bit, clear_range, set_bit
from .buddy import buddy_alloc, buddy_free
from .layout import (
    BM_DLOG,
    BM_HELD,
    BM_NONZERO,
    BM_UNARMED,
    FAIL_OOM,
    FAILED,
    MAX_ORDER,
    REL_SHRINKER,
)
from .rng import rng_below, rng_exponential, rng_normal, rng_poisson, rng_uniform

#: the boot's early allocations above the kernel come in runs of 1 MiB (order 8)
LOW_RUN_ORDER = 8
LOW_RUN = 1 << LOW_RUN_ORDER


@jit
def page_write(st, g, p, zero):
    """The guest writes page ``p`` (``zero``: it writes zeros, e.g. ``clear_page``)."""
    g.ver_src[p] += 1
    if zero:
        clear_bit(g.bm[BM_NONZERO], p)
    else:
        set_bit(g.bm[BM_NONZERO], p)
    if st["logging"]:
        if set_bit(g.bm[BM_UNARMED], p):
            st["write_faults"] += 1
            if set_bit(g.bm[BM_DLOG], p):
                st["dlog_count"] += 1


@jit
def block_write(st, g, pfn, k, zero):
    """The guest writes every page of the block (pfn, k): ``page_write`` in one loop."""
    ver_src = g.ver_src
    nonzero = g.bm[BM_NONZERO]
    unarmed = g.bm[BM_UNARMED]
    dlog = g.bm[BM_DLOG]
    logging = st["logging"]
    faults = 0
    logged = 0
    for p in range(pfn, pfn + (1 << k)):
        ver_src[p] += 1
        w = p >> 6
        m = ONE << np.uint64(p & 63)
        if zero:
            nonzero[w] = nonzero[w] & ~m
        else:
            nonzero[w] = nonzero[w] | m
        if logging and (unarmed[w] & m) == ZERO:
            unarmed[w] = unarmed[w] | m
            faults += 1
            if (dlog[w] & m) == ZERO:
                dlog[w] = dlog[w] | m
                logged += 1
    st["write_faults"] += faults
    st["dlog_count"] += logged


@jit
def guest_free(st, prm, g, pfn, k):
    """Free a block; with page poisoning the freed pages are overwritten first, with
    ``init_on_free`` they are zeroed (``free_pages_prepare``; poisoning takes precedence, as
    Linux says at boot: "CONFIG_PAGE_POISONING is on, will take precedence over init_on_free")."""
    if prm["poison"] != 0:
        block_write(st, g, pfn, k, np.int64(prm["poison"] == 1))
    elif prm["init_on_free"]:
        block_write(st, g, pfn, k, np.int64(1))
    buddy_free(st, g, pfn, k)


@jit
def release_held_block(st, prm, g):
    """The balloon driver gives its most recently hinted block back (``return_free_pages_to_mm``)."""
    st["held_n"] -= 1
    pfn = g.held_blocks[st["held_n"]]
    k = prm["hint_order"]
    clear_range(g.bm[BM_HELD], pfn, np.int64(1 << k))
    st["held_pages"] -= 1 << k
    guest_free(st, prm, g, pfn, k)


@jit
def reclaim(st, prm, g, target):
    """Free memory until ``target`` free pages: balloon shrinker first, then old page cache."""
    if prm["release"] == REL_SHRINKER:
        while st["nr_free_pages"] < target and st["held_n"] > 0:
            release_held_block(st, prm, g)
    pc_ring = g.pc_ring
    cap = pc_ring.shape[0]
    k = prm["pc_order"]
    while st["nr_free_pages"] < target and st["pc_count"] > 0:
        tail = (st["pc_head"] - st["pc_count"]) % cap
        st["pc_count"] -= 1
        guest_free(st, prm, g, np.int64(pc_ring[tail]), k)


@jit
def guest_alloc(st, prm, g, k):
    """Allocate an order-k block for the workload; -1 (and status FAILED) when out of memory."""
    need = 1 << k
    if st["nr_free_pages"] - need < st["wmark_low"]:
        reclaim(st, prm, g, st["wmark_high"] + need)
    pfn = -1
    if st["nr_free_pages"] - need >= st["wmark_min"]:
        pfn = buddy_alloc(st, g, k)
    if pfn < 0:
        st["status"] = FAILED
        st["failure"] = FAIL_OOM
        return -1
    if prm["init_on_alloc"] and not prm["init_on_free"]:  # free_pages_prezeroed()
        block_write(st, g, pfn, k, np.int64(1))
        st["zero_cpu_ns"] += need * prm["zero_fill_ns"]
    return pfn


@jit
def pagecache_add(st, prm, g):
    """Read or write one page-cache block: allocate it, fill it with data, queue it for reclaim."""
    pc_ring = g.pc_ring
    cap = pc_ring.shape[0]
    k = prm["pc_order"]
    if st["pc_count"] >= cap:
        reclaim(st, prm, g, st["nr_free_pages"] + (1 << k))
    pfn = guest_alloc(st, prm, g, k)
    if pfn < 0:
        return
    block_write(st, g, pfn, k, np.int64(0))
    pc_ring[st["pc_head"]] = pfn
    st["pc_head"] = (st["pc_head"] + 1) % cap
    st["pc_count"] += 1


@jit
def proc_spawn(prm, wl, rng, j):
    """Start compiler job j: lognormal peak RSS, exponential lifetime (in workload ms)."""
    rss = math.exp(prm["rss_mu"] + prm["rss_sigma"] * rng_normal(rng))
    blocks = int(rss) >> prm["anon_order"]
    if blocks < 1:
        blocks = 1
    cap = wl.job_pool.shape[1]
    if blocks > cap:
        blocks = cap
    wl.job_target[j] = blocks
    wl.job_life[j] = max(20.0, rng_exponential(rng, prm["life_ms"]))
    wl.job_age[j] = 0.0
    wl.job_nblk[j] = 0
    wl.job_acc[j] = 0.0


@jit
def proc_grow(st, prm, g, wl, j, nblocks):
    """Job j allocates up to ``nblocks`` more anonymous blocks (not past its peak RSS)."""
    nblk = wl.job_nblk
    k = prm["anon_order"]
    for _ in range(nblocks):
        if nblk[j] >= wl.job_target[j]:
            return
        pfn = guest_alloc(st, prm, g, k)
        if pfn < 0:
            return
        block_write(st, g, pfn, k, np.int64(0))
        wl.job_pool[j, nblk[j]] = pfn
        nblk[j] += 1


@jit
def proc_exit(st, prm, g, wl, j):
    """Job j exits: its blocks go back to the allocator."""
    pool = wl.job_pool
    k = prm["anon_order"]
    for i in range(wl.job_nblk[j]):
        guest_free(st, prm, g, np.int64(pool[j, i]), k)
    wl.job_nblk[j] = 0


@jit
def workload_step(st, prm, g, wl, dt):
    """Advance the guest workload by ``dt`` ms of its own time (already scaled by throttle,
    testbed speed and intensity)."""
    st["dl_used"] = 0.0
    if dt <= 0.0:
        return
    rng = wl.rngs[0]
    # kernel and daemons: Poisson writes into a small hot set of base memory
    if st["base_n"] > 0:
        base_pool = wl.base_pool
        hot = min(prm["bg_hot"], st["base_n"])
        m = rng_poisson(rng, prm["bg_rate"] * dt)
        for _ in range(m):
            page_write(st, g, np.int64(base_pool[rng_below(rng, hot)]), np.int64(0))
    # compiler jobs
    target = wl.job_target
    life = wl.job_life
    acc = wl.job_acc
    age = wl.job_age
    nblk = wl.job_nblk
    pool = wl.job_pool
    k = prm["anon_order"]
    for j in range(prm["jobs"]):
        if target[j] == 0:
            proc_spawn(prm, wl, rng, j)
        rate = target[j] / max(1.0, life[j] * prm["alloc_frac"])
        acc[j] += rate * dt
        n = int(acc[j])
        acc[j] -= n
        proc_grow(st, prm, g, wl, j, n)
        if st["status"] != 0:
            return
        if nblk[j] > 0:
            m = rng_poisson(rng, (nblk[j] << k) * prm["rewrite_per_ms"] * dt)
            for _ in range(m):
                pfn = np.int64(pool[j, rng_below(rng, nblk[j])])
                page_write(st, g, pfn + rng_below(rng, 1 << k), np.int64(0))
        age[j] += dt
        if age[j] >= life[j]:
            proc_exit(st, prm, g, wl, j)
            target[j] = 0
    # page cache growth (sources read, objects written)
    if prm["pc_rate"] > 0.0:
        st["pc_acc"] += prm["pc_rate"] * dt
        while st["pc_acc"] >= 1.0 and st["status"] == 0:
            st["pc_acc"] -= 1.0
            pagecache_add(st, prm, g)
    # dirty loop: rewrite the buffer in address order once per interval
    if st["dl_n"] > 0:
        dirty_loop_step(st, prm, g, wl, dt)


@jit
def dirty_loop_step(st, prm, g, wl, dt):
    """The dirty loop's writes due in ``dt`` ms of guest time, as many as its vCPU can do.

    One process on one vCPU: each page costs a store (``store_ms``), or a write fault
    (``write_fault_ms``) when dirty logging has write-protected the page since its last write
    (the first write after each sync).  The vCPU time of the step is real time (``dt`` is guest
    time, already scaled by the testbed's speed, the workload's intensity and the vCPU's share
    of a CPU); pages it has no time for are not written (the loop falls behind).
    """
    dl_pool = wl.dl_pool
    st["dl_acc"] += st["dl_n"] / prm["dl_interval"] * dt
    n = int(st["dl_acc"])
    st["dl_acc"] -= n
    budget = dt / (prm["cpu_speed"] * max(prm["intensity"], 1e-9))
    unarmed = g.bm[BM_UNARMED]
    logging = st["logging"]
    used = 0.0
    for i in range(n):
        p = np.int64(dl_pool[st["dl_cursor"]])
        cost = prm["store_ms"]
        if logging and (unarmed[p >> 6] >> np.uint64(p & 63)) & ONE == ZERO:
            cost = prm["write_fault_ms"]
        if used + cost > budget and i > 0:
            st["dl_acc"] = 0.0
            break
        used += cost
        page_write(st, g, p, np.int64(0))
        st["dl_cursor"] = (st["dl_cursor"] + 1) % st["dl_n"]
    st["cpu_vcpu"] += used
    st["busy_vcpu"] += used / st["share"]
    st["dl_used"] += used


@jit
def workload_init(st, prm, g, wl, touched_pages, pagecache_pages, tmp):
    """Build the guest's memory as it is when migration starts (boot and workload history).

    Reserved memory, the kernel image, the boot's early allocations, the memmap and the
    boot's freed data at its fixed place (``bf_pages`` from ``bf_start``, in 1 MiB runs evenly
    apart over ``bf_span`` pages: free, holding what ``guest_free`` would leave in it); base
    memory, then page cache, then the running jobs and
    the dirty-loop buffer, then
    ``touched_pages`` of memory that is written and freed again (it stays free with old data in
    it; allocation stops at the high watermark, or when ``tmp``, sized for the blocks of
    touched memory taken largest first plus a margin, is full).
    The last ``pcp_keep`` pages freed (whole blocks, from the last one) stay on the freeing
    CPU's per-cpu list: allocated, with their data (``free_unref_page_commit``).
    ``tmp`` is scratch space for the touched blocks.  Draws come from stream 1 of ``wl.rngs``.
    """
    n = st["n"]
    rng = wl.rngs[1]
    # boot-time reserved memory: written, never in the buddy allocator
    for p in range(st["reserved_low"]):
        page_write(st, g, p, np.int64(0))
    # the kernel image where the boot's physical KASLR put it
    if st["img_pages"] > 0:
        block_write(st, g, st["img_start"], np.int64(0), np.int64(0))  # first page ...
        for p in range(st["img_start"] + 1, st["img_start"] + st["img_pages"]):
            page_write(st, g, p, np.int64(0))  # ... and the rest
    # memory the boot kept (early allocations, from low_start): low_used pages of it hold data,
    # in runs of LOW_RUN pages at random places (early allocations come in contiguous chunks)
    nonzero = g.bm[BM_NONZERO]
    runs = st["low_span"] // LOW_RUN
    left = min(st["low_used"], runs * LOW_RUN) // LOW_RUN
    while left > 0:
        p = st["low_start"] + rng_below(rng, runs) * LOW_RUN
        if (nonzero[p >> 6] >> np.uint64(p & 63)) & ONE == ZERO:
            block_write(st, g, p, np.int64(LOW_RUN_ORDER), np.int64(0))
            left -= 1
    for p in range(st["memmap_start"], n):
        page_write(st, g, p, np.int64(0))
    # the boot's freed data at its fixed place: free pages holding what freeing left in them
    # (free_pages_prepare: the poison pattern, zeros with init_on_free, else the old data)
    if prm["poison"] != 0:
        freed_zero = np.int64(prm["poison"] == 1)
    else:
        freed_zero = np.int64(prm["init_on_free"] != 0)
    used = (st["bf_pages"] + LOW_RUN - 1) // LOW_RUN  # 1 MiB runs, evenly apart in the span
    slots = max(used, st["bf_span"] // LOW_RUN)
    left = st["bf_pages"]
    for i in range(used):
        first = st["bf_start"] + (i * slots // used) * LOW_RUN
        for p in range(first, first + min(LOW_RUN, left)):
            page_write(st, g, p, freed_zero)
        left -= LOW_RUN
    base_pool = wl.base_pool
    for i in range(base_pool.shape[0]):
        pfn = buddy_alloc(st, g, np.int64(0))
        if pfn < 0:
            st["status"] = FAILED
            st["failure"] = FAIL_OOM
            return
        page_write(st, g, pfn, np.int64(0))
        base_pool[i] = pfn
    st["base_n"] = base_pool.shape[0]
    k = prm["pc_order"]
    for _ in range(pagecache_pages >> k):
        pagecache_add(st, prm, g)
    # running jobs, each part-way through its life
    life = wl.job_life
    for j in range(prm["jobs"]):
        proc_spawn(prm, wl, rng, j)
        age = rng_uniform(rng) * life[j]
        grown = int(min(1.0, age / max(1.0, life[j] * prm["alloc_frac"])) * wl.job_target[j])
        wl.job_age[j] = age
        proc_grow(st, prm, g, wl, j, grown)
    dl_pool = wl.dl_pool
    for i in range(dl_pool.shape[0]):
        pfn = guest_alloc(st, prm, g, np.int64(0))
        if pfn < 0:
            return
        page_write(st, g, pfn, np.int64(0))
        dl_pool[i] = pfn
    st["dl_n"] = dl_pool.shape[0]
    # touched memory: written then freed (largest blocks first, like a big anonymous mapping)
    nt = 0
    left = touched_pages
    order = np.int64(MAX_ORDER)
    while left > 0 and order >= 0 and nt < tmp.shape[0]:
        if (1 << order) > left or st["nr_free_pages"] - (1 << order) < st["wmark_high"]:
            order -= 1
            continue
        pfn = buddy_alloc(st, g, order)
        if pfn < 0:
            order -= 1
            continue
        block_write(st, g, pfn, order, np.int64(0))
        tmp[nt, 0] = pfn
        tmp[nt, 1] = order
        nt += 1
        left -= 1 << order
    # the last frees stay on the freeing CPU's per-cpu lists: out of the buddy allocator,
    # holding their data (free_unref_page_commit keeps up to pcp->high pages)
    kept = np.int64(0)
    last = nt
    while last > 0 and kept + (1 << tmp[last - 1, 1]) <= prm["pcp_keep"]:
        last -= 1
        kept += 1 << tmp[last, 1]
    for i in range(last):
        guest_free(st, prm, g, tmp[i, 0], tmp[i, 1])
