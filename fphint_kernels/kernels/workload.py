"""Guest memory activity: page writes, allocation with reclaim, processes, page cache.

A page write bumps the page's version (the nothing-lost check compares versions) and, while
KVM dirty logging is on, the first write after (re-)arming write protection sets the page's bit
in the dirty log and costs the guest a write fault (``kvm_mmu_page_fault`` ->
``mark_page_dirty``).  Allocations go through the buddy allocator with Linux's watermarks:
below the low watermark the guest reclaims (the balloon shrinker first when it may give hinted
blocks back, then the oldest page cache), below the min watermark the allocation fails.

Bitmap tuple ``bm`` (all uint64[words]): see ``BM_*`` indices below.
"""

from __future__ import annotations

import math

import numpy as np

from .._numba import jit
from .bitmap import ONE, ZERO, clear_bit, clear_range, set_bit
from .buddy import buddy_alloc, buddy_free
from .rng import rng_below, rng_exponential, rng_normal, rng_poisson, rng_uniform
from .state import FAIL_OOM, FAILED, MAX_ORDER, REL_SHRINKER

BM_BMAP, BM_DLOG, BM_UNARMED, BM_NONZERO, BM_HELD, BM_SENT, BM_SKIP = range(7)
N_BM = 7


@jit
def page_write(st, bm, ver_src, p, zero):
    """The guest writes page ``p`` (``zero``: it writes zeros, e.g. ``clear_page``)."""
    ver_src[p] += 1
    if zero:
        clear_bit(bm[BM_NONZERO], p)
    else:
        set_bit(bm[BM_NONZERO], p)
    if st["logging"]:
        if set_bit(bm[BM_UNARMED], p):
            st["write_faults"] += 1
            if set_bit(bm[BM_DLOG], p):
                st["dlog_count"] += 1


@jit
def block_write(st, bm, ver_src, pfn, k, zero):
    """The guest writes every page of the block (pfn, k): ``page_write`` in one loop."""
    nonzero = bm[BM_NONZERO]
    unarmed = bm[BM_UNARMED]
    dlog = bm[BM_DLOG]
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
def guest_free(st, prm, bd, bm, ver_src, pfn, k):
    """Free a block; with page poisoning the freed pages are overwritten first."""
    free_order, freemap, fm_off, fm_top, nr_free = bd
    if prm["poison"] != 0:
        block_write(st, bm, ver_src, pfn, k, np.int64(prm["poison"] == 1))
    buddy_free(st, free_order, freemap, fm_off, fm_top, nr_free, pfn, k)


@jit
def release_held_block(st, prm, bd, bm, ver_src, held_blocks):
    """The balloon driver gives its most recently hinted block back (``return_free_pages_to_mm``)."""
    st["held_n"] -= 1
    pfn = held_blocks[st["held_n"]]
    clear_range(bm[BM_HELD], pfn, np.int64(1 << MAX_ORDER))
    st["held_pages"] -= 1 << MAX_ORDER
    guest_free(st, prm, bd, bm, ver_src, pfn, np.int64(MAX_ORDER))


@jit
def reclaim(st, prm, bd, bm, ver_src, held_blocks, pc_ring, target):
    """Free memory until ``target`` free pages: balloon shrinker first, then old page cache."""
    if prm["release"] == REL_SHRINKER:
        while st["nr_free_pages"] < target and st["held_n"] > 0:
            release_held_block(st, prm, bd, bm, ver_src, held_blocks)
    cap = pc_ring.shape[0]
    k = prm["pc_order"]
    while st["nr_free_pages"] < target and st["pc_count"] > 0:
        tail = (st["pc_head"] - st["pc_count"]) % cap
        st["pc_count"] -= 1
        guest_free(st, prm, bd, bm, ver_src, np.int64(pc_ring[tail]), k)


@jit
def guest_alloc(st, prm, bd, bm, ver_src, held_blocks, pc_ring, k):
    """Allocate an order-k block for the workload; -1 (and status FAILED) when out of memory."""
    free_order, freemap, fm_off, fm_top, nr_free = bd
    need = 1 << k
    if st["nr_free_pages"] - need < st["wmark_low"]:
        reclaim(st, prm, bd, bm, ver_src, held_blocks, pc_ring, st["wmark_high"] + need)
    pfn = -1
    if st["nr_free_pages"] - need >= st["wmark_min"]:
        pfn = buddy_alloc(st, free_order, freemap, fm_off, fm_top, nr_free, k)
    if pfn < 0:
        st["status"] = FAILED
        st["failure"] = FAIL_OOM
        return -1
    if prm["init_on_alloc"]:
        block_write(st, bm, ver_src, pfn, k, np.int64(1))
        st["zero_cpu_ns"] += need * prm["zero_fill_ns"]
    return pfn


@jit
def pagecache_add(st, prm, bd, bm, ver_src, held_blocks, pc_ring):
    """Read or write one page-cache block: allocate it, fill it with data, queue it for reclaim."""
    cap = pc_ring.shape[0]
    k = prm["pc_order"]
    if st["pc_count"] >= cap:
        reclaim(st, prm, bd, bm, ver_src, held_blocks, pc_ring, st["nr_free_pages"] + (1 << k))
    pfn = guest_alloc(st, prm, bd, bm, ver_src, held_blocks, pc_ring, k)
    if pfn < 0:
        return
    block_write(st, bm, ver_src, pfn, k, np.int64(0))
    pc_ring[st["pc_head"]] = pfn
    st["pc_head"] = (st["pc_head"] + 1) % cap
    st["pc_count"] += 1


@jit
def proc_spawn(st, prm, procs, p_pool, rng, j):
    """Start compiler job j: lognormal peak RSS, exponential lifetime (in workload ms)."""
    p_age, p_life, p_target, p_nblk, p_acc = procs
    rss = math.exp(prm["rss_mu"] + prm["rss_sigma"] * rng_normal(rng))
    blocks = int(rss) >> prm["anon_order"]
    if blocks < 1:
        blocks = 1
    cap = p_pool.shape[1]
    if blocks > cap:
        blocks = cap
    p_target[j] = blocks
    p_life[j] = max(20.0, rng_exponential(rng, prm["life_ms"]))
    p_age[j] = 0.0
    p_nblk[j] = 0
    p_acc[j] = 0.0


@jit
def proc_grow(st, prm, bd, bm, ver_src, held_blocks, pc_ring, procs, p_pool, j, nblocks):
    p_age, p_life, p_target, p_nblk, p_acc = procs
    k = prm["anon_order"]
    for _ in range(nblocks):
        if p_nblk[j] >= p_target[j]:
            return
        pfn = guest_alloc(st, prm, bd, bm, ver_src, held_blocks, pc_ring, k)
        if pfn < 0:
            return
        block_write(st, bm, ver_src, pfn, k, np.int64(0))
        p_pool[j, p_nblk[j]] = pfn
        p_nblk[j] += 1


@jit
def proc_exit(st, prm, bd, bm, ver_src, procs, p_pool, j):
    p_age, p_life, p_target, p_nblk, p_acc = procs
    k = prm["anon_order"]
    for i in range(p_nblk[j]):
        guest_free(st, prm, bd, bm, ver_src, np.int64(p_pool[j, i]), k)
    p_nblk[j] = 0


@jit
def workload_step(
    st, prm, bd, bm, ver_src, held_blocks, pc_ring, base_pool, dl_pool, procs, p_pool, rng, dt
):
    """Advance the guest workload by ``dt`` ms of its own time (already scaled by throttle,
    testbed speed and intensity)."""
    if dt <= 0.0:
        return
    # kernel and daemons: Poisson writes into a small hot set of base memory
    if st["base_n"] > 0:
        hot = min(prm["bg_hot"], st["base_n"])
        m = rng_poisson(rng, prm["bg_rate"] * dt)
        for _ in range(m):
            page_write(st, bm, ver_src, np.int64(base_pool[rng_below(rng, hot)]), np.int64(0))
    # compiler jobs
    p_age, p_life, p_target, p_nblk, p_acc = procs
    k = prm["anon_order"]
    for j in range(prm["jobs"]):
        if p_target[j] == 0:
            proc_spawn(st, prm, procs, p_pool, rng, j)
        rate = p_target[j] / max(1.0, p_life[j] * prm["alloc_frac"])
        p_acc[j] += rate * dt
        n = int(p_acc[j])
        p_acc[j] -= n
        proc_grow(st, prm, bd, bm, ver_src, held_blocks, pc_ring, procs, p_pool, j, n)
        if st["status"] != 0:
            return
        if p_nblk[j] > 0:
            m = rng_poisson(rng, (p_nblk[j] << k) * prm["rewrite_per_ms"] * dt)
            for _ in range(m):
                pfn = np.int64(p_pool[j, rng_below(rng, p_nblk[j])])
                page_write(st, bm, ver_src, pfn + rng_below(rng, 1 << k), np.int64(0))
        p_age[j] += dt
        if p_age[j] >= p_life[j]:
            proc_exit(st, prm, bd, bm, ver_src, procs, p_pool, j)
            p_target[j] = 0
    # page cache growth (sources read, objects written)
    if prm["pc_rate"] > 0.0:
        st["pc_acc"] += prm["pc_rate"] * dt
        while st["pc_acc"] >= 1.0 and st["status"] == 0:
            st["pc_acc"] -= 1.0
            pagecache_add(st, prm, bd, bm, ver_src, held_blocks, pc_ring)
    # dirty loop: rewrite the buffer in address order once per interval
    if st["dl_n"] > 0:
        st["dl_acc"] += st["dl_n"] / prm["dl_interval"] * dt
        n = int(st["dl_acc"])
        st["dl_acc"] -= n
        # one process on one vCPU cannot write faster than it can fill pages: the cap is in
        # real time (dt is guest time, already scaled by testbed speed and intensity)
        real_dt = dt / (prm["cpu_speed"] * max(prm["intensity"], 1e-9))
        cap = int(real_dt * 1e6 / max(prm["zero_fill_ns"], 1.0)) + 1
        if n > cap:
            n = cap
            st["dl_acc"] = 0.0
        for _ in range(n):
            page_write(st, bm, ver_src, np.int64(dl_pool[st["dl_cursor"]]), np.int64(0))
            st["dl_cursor"] = (st["dl_cursor"] + 1) % st["dl_n"]


@jit
def workload_init(
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
    rng,
    touched_pages,
    pagecache_pages,
    tmp,
):
    """Build the guest's memory as it is when migration starts (boot and workload history).

    Base memory, then page cache, then the running jobs and the dirty-loop buffer, then
    ``touched_pages`` of memory that is written and freed again (it stays free with old data in
    it; allocation stops at the high watermark, or when ``tmp``, sized for the blocks of
    touched memory taken largest first plus a margin, is full).
    ``tmp`` is scratch space for the touched blocks.
    """
    free_order, freemap, fm_off, fm_top, nr_free = bd
    n = st["n"]
    # boot-time reserved memory: written, never in the buddy allocator
    for p in range(st["reserved_low"]):
        block_write(st, bm, ver_src, p, np.int64(0), np.int64(0))
    for p in range(st["memmap_start"], n):
        block_write(st, bm, ver_src, p, np.int64(0), np.int64(0))
    for i in range(base_pool.shape[0]):
        pfn = buddy_alloc(st, free_order, freemap, fm_off, fm_top, nr_free, np.int64(0))
        if pfn < 0:
            st["status"] = FAILED
            st["failure"] = FAIL_OOM
            return
        page_write(st, bm, ver_src, pfn, np.int64(0))
        base_pool[i] = pfn
    st["base_n"] = base_pool.shape[0]
    k = prm["pc_order"]
    for _ in range(pagecache_pages >> k):
        pagecache_add(st, prm, bd, bm, ver_src, held_blocks, pc_ring)
    # running jobs, each part-way through its life
    p_age, p_life, p_target, p_nblk, p_acc = procs
    for j in range(prm["jobs"]):
        proc_spawn(st, prm, procs, p_pool, rng, j)
        age = rng_uniform(rng) * p_life[j]
        grown = int(min(1.0, age / max(1.0, p_life[j] * prm["alloc_frac"])) * p_target[j])
        p_age[j] = age
        proc_grow(st, prm, bd, bm, ver_src, held_blocks, pc_ring, procs, p_pool, j, grown)
    for i in range(dl_pool.shape[0]):
        pfn = guest_alloc(st, prm, bd, bm, ver_src, held_blocks, pc_ring, np.int64(0))
        if pfn < 0:
            return
        page_write(st, bm, ver_src, pfn, np.int64(0))
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
        pfn = buddy_alloc(st, free_order, freemap, fm_off, fm_top, nr_free, order)
        if pfn < 0:
            order -= 1
            continue
        block_write(st, bm, ver_src, pfn, order, np.int64(0))
        tmp[nt, 0] = pfn
        tmp[nt, 1] = order
        nt += 1
        left -= 1 << order
    for i in range(nt):
        guest_free(st, prm, bd, bm, ver_src, tmp[i, 0], tmp[i, 1])
