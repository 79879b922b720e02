"""``simulate(scenario) -> xarray.Dataset``: one migration, page by page.

This module validates and converts a :class:`~fphint_kernels.config.Scenario` into arrays,
runs the kernels of :mod:`fphint_kernels.kernels`, checks that nothing was lost, and returns
the results in the vocabulary of :mod:`fphint_kernels.variables`.
"""

from __future__ import annotations

import math
import numbers
import os
import time
from collections.abc import Iterable

import numpy as np

from .config import Guest as GuestDescription
from .config import HostProfile, Scenario
from .errors import InvariantError, ScenarioError, SimulationCancelled
from .feedback import announce_compile, kernels_cold
from .kernels import layout as S
from .kernels.bitmap import popcount, words_for
from .kernels.buddy import buddy_add_range, new_buddy
from .kernels.engine import run, start
from .kernels.layout import PAGE_SIZE, Guest, HintChannel, Host, Recorders, Workload
from .kernels.lost_check import count_lost
from .kernels.recorders import page_map_snapshot
from .kernels.rng import seed_streams
from .kernels.workload import workload_init
from .variables import PAGE_STATES, SPECS, make_dataset

STATUS = {
    S.COMPLETED: "completed",
    S.NOT_CONVERGED: "not-converged",
    S.FAILED: "failed",
    S.RUNNING: "running",
    S.CANCELLED: "cancelled",
}
DESIGNS = {
    "none": S.D_NONE,
    "fph": S.D_FPH,
    "report-in-place": S.D_RIP,
    "reporting": S.D_REPORTING,
    "oracle": S.D_ORACLE,
}
ROUND_CAP = 20000
FAILURES = {
    S.FAIL_NONE: "",
    S.FAIL_OOM: "guest out of memory",
    S.FAIL_ROUNDS: f"stopped after {ROUND_CAP:,} rounds (the round recorder is full)",
}
#: the guest's boot draws where physical KASLR puts the kernel from its own random stream
KASLR_STREAM = 0x6B61736C72
PCP_STREAM = 0x706370
MAP_ROUND_CAP = 256
RELEASE = {"done": S.REL_DONE, "shrinker": S.REL_SHRINKER, "after-pass": S.REL_AFTER_PASS}
POISON = {"off": 0, "zero": 1, "pattern": 2}
FAULT_BITS = {
    "hint-outside-start": S.F_OUTSIDE_START,
    "stale-hint-after-sync": S.F_STALE_AFTER_SYNC,
    "late-dirty-log": S.F_LATE_LOG,
    "sync-no-rearm": S.F_NO_REARM,
}


def watermarks(managed_pages: int) -> tuple[int, int, int]:
    """Zone watermarks (min, low, high) in pages, as Linux 4.20 sets them.

    ``min_free_kbytes = int_sqrt(lowmem_kbytes * 16)`` clamped to [128, 65536]
    (``init_per_zone_wmark_min``); ``low = min + max(min/4, managed * 10/10000)`` and
    ``high = min + 2 * that`` (``__setup_per_zone_wmarks``, watermark_scale_factor 10).
    """
    kbytes = managed_pages * 4
    min_free_kbytes = min(65536, max(128, math.isqrt(kbytes * 16)))
    wmin = min_free_kbytes // 4
    tmp = max(wmin // 4, managed_pages * 10 // 10000)
    return wmin, wmin + tmp, wmin + 2 * tmp


#: RAM of a pc machine of at least this size is split: 3 GiB below 4 GiB, the rest above it
#: (QEMU ``pc_init1``), where it makes the guest's Normal zone
PC_SPLIT_PAGES = 0xE0000000 // PAGE_SIZE
PC_LOWMEM_PAGES = 0xC0000000 // PAGE_SIZE
DMA_PAGES = (16 << 20) // PAGE_SIZE
PAGEBLOCK_PAGES = 512
LOWMEM_RESERVE_RATIO = 256  # vm.lowmem_reserve_ratio of the DMA and DMA32 zones


def normal_zone_pages(memory_pages: int) -> int:
    """Pages of the Normal zone: the RAM a pc machine of at least ``PC_SPLIT_PAGES`` puts above
    4 GiB (QEMU ``pc_init1``), else 0."""
    return max(0, memory_pages - PC_LOWMEM_PAGES) if memory_pages >= PC_SPLIT_PAGES else 0


def _min_free_pages(managed_pages: int, zones: int, *, thp: bool) -> int:
    """``min_free_kbytes`` in pages: :func:`watermarks`'s, or with transparent huge pages
    khugepaged's 11 pageblocks per populated zone, at most 5 % of memory
    (``set_recommended_min_free_kbytes``, mm/khugepaged.c)."""
    wmin = watermarks(managed_pages)[0]
    if thp:
        wmin = max(wmin, min(zones * 11 * PAGEBLOCK_PAGES, managed_pages // 20))
    return wmin


def hint_floor(memory_pages: int, managed_pages: int, dma_free_pages: int, *, thp: bool) -> int:
    """Free pages the hint worker leaves: it allocates without reclaim, so each zone gives
    blocks down to its min watermark plus its lowmem reserve for Normal-zone requests.

    ``min_free_kbytes`` is :func:`_min_free_pages`'s.  Zones of a pc machine: DMA (first
    16 MiB), DMA32, and Normal when RAM is split above 4 GiB.  Reserves
    (``setup_per_zone_lowmem_reserve``, mm/page_alloc.c, ratio 256): DMA32 keeps Normal/256;
    DMA keeps (DMA32 + Normal)/256, at most what it has free (``dma_free_pages``: the
    allocator's pages below 16 MiB).
    Measured on the harness's guest (``/proc/zoneinfo``, ``/proc/buddyinfo`` and the count of
    hinted blocks, docs/model.md "The hint worker's floor").

    Parameters
    ----------
    memory_pages : int
        The guest's RAM in pages.
    managed_pages : int
        Pages the page allocator manages (for the square-root rule and the 5 % cap).
    dma_free_pages : int
        The allocator's free pages in the DMA zone (below 16 MiB).
    thp : bool
        Transparent huge pages on in the guest (khugepaged's ``min_free_kbytes``).

    Returns
    -------
    int
        Free pages left when the worker's allocations start to fail.
    """
    normal = normal_zone_pages(memory_pages)
    dma32 = memory_pages - normal - DMA_PAGES
    wmin = _min_free_pages(managed_pages, 3 if normal else 2, thp=thp)
    reserve = normal // LOWMEM_RESERVE_RATIO
    reserve += min(dma_free_pages, (dma32 + normal) // LOWMEM_RESERVE_RATIO)
    return int(wmin + reserve)


def pcp_high(memory_pages: int, managed_pages: int, vcpus: int, *, thp: bool, normal: bool) -> int:
    """Pages one CPU's per-cpu lists of a zone keep when it frees many pages in a row.

    Linux 6.1 (``zone_highsize``, mm/page_alloc.c): ``pcp->high`` is the zone's low watermark
    split over the node's CPUs, at least four batches; ``free_unref_page_commit`` gives pages
    back to the buddy allocator only when a list reaches it (``free_pcppages_bulk``), so after a
    program frees its memory up to that many of its last pages stay on the list, out of the
    allocator (not in ``MemFree``) and holding their data. The zone's min watermark is its
    share of ``min_free_kbytes`` (:func:`hint_floor`'s), by its pages; ``low = min +
    max(min/4, managed * 10/10000)``. Measured on the harness's guest: ``high: 13857`` for
    DMA32 at 1 GiB (``/proc/zoneinfo``).

    Parameters
    ----------
    memory_pages : int
        The guest's RAM in pages.
    managed_pages : int
        Pages the page allocator manages.
    vcpus : int
        The guest's CPUs (``nr_split_cpus``: every CPU of its one node).
    thp : bool
        Transparent huge pages on in the guest (khugepaged's ``min_free_kbytes``).
    normal : bool
        The Normal zone (RAM above 4 GiB of a split pc machine), else DMA32.

    Returns
    -------
    int
    """
    nz = normal_zone_pages(memory_pages)
    span = nz if normal and nz else memory_pages - nz - DMA_PAGES
    wmin = _min_free_pages(managed_pages, 3 if nz else 2, thp=thp)
    zmin = wmin * span // memory_pages
    zmanaged = span * managed_pages // memory_pages
    low = zmin + max(zmin // 4, zmanaged * 10 // 10000)
    batch = min(zmanaged >> 10, 256) // 4  # zone_batchsize
    batch = max(1, (1 << (batch + batch // 2).bit_length() - 1) - 1) if batch else 1
    return int(max(low // max(1, vcpus), 4 * batch))


def reporting_enabled(scenario: Scenario) -> bool:
    """Whether the guest reports free pages (Linux ``virtballoon_validate``, 5.9+: reporting is
    turned off when the guest poisons or zeroes freed pages and the device does not know the
    value, i.e. lacks ``VIRTIO_BALLOON_F_PAGE_POISON``)."""
    fills = scenario.page_poison != "off" or scenario.init_on_free
    return not (fills and not scenario.poison_val)


def build_params(
    scenario: Scenario,
    profile: HostProfile,
    guest: GuestDescription,
    trace_interval_ms: float,
    step_ms: float,
) -> tuple[np.ndarray, dict]:
    """The parameter record of the kernels, and the sizes of the guest's initial state and of
    its arrays (``rss_cap``: blocks of the largest job)."""
    wl = scenario.load_workload().params
    mem = scenario.memory_layout(guest)
    gp = guest.params
    hp = profile.params
    n = scenario.nr_pages
    speed = hp["cpu_speed"]
    prm = S.new_params()
    r = prm[0]
    r["downtime_limit"] = scenario.downtime_limit
    r["max_bandwidth"] = scenario.max_bandwidth
    design = DESIGNS[scenario.hinting]
    r["design"] = design
    # the balloon's free page protocol (command ids, START/STOP, hints applied by the host)
    r["hint"] = int(design in (S.D_FPH, S.D_RIP))
    r["hint_order"] = scenario.block_order
    r["init_on_alloc"] = int(scenario.init_on_alloc)
    r["init_on_free"] = int(scenario.init_on_free)
    r["poison"] = POISON[scenario.page_poison]
    r["poison_val"] = int(scenario.poison_val)
    r["cancel_at"] = scenario.cancel_at if scenario.cancel_at is not None else np.inf
    r["cancel_done"] = int(scenario.cancel_cleanup == "qemu-5.1")
    r["release"] = RELEASE[scenario.hint_release]
    r["auto_converge"] = int(scenario.auto_converge)
    r["faults"] = sum(FAULT_BITS[f] for f in scenario.faults)
    r["max_time"] = scenario.max_time
    r["step_ms"] = step_ms
    r["trace_ms"] = trace_interval_ms
    r["t_zero"] = hp["zero_page_ns"] / 1e6 / speed
    r["t_normal"] = hp["normal_page_ns"] / 1e6 / speed
    r["link_bytes_per_ms"] = hp["link_bytes_per_s"] / 1e3
    r["t_word"] = hp["scan_word_ns"] / 1e6 / speed
    r["t_sync"] = hp["sync_ns_per_page"] * n / 1e6 / speed
    r["setup_ms"] = (hp["setup_fixed_ms"] + hp["setup_ns_per_page"] * n / 1e6) / speed
    r["t_switchover"] = hp["switchover_fixed_ms"] / speed
    r["hint_latency_ms"] = hp["hint_host_latency_ms"] / speed
    r["cpu_speed"] = speed
    # the host: contention, the destination, the stream, the dirty bitmap's lock
    r["host_cpus"] = hp["host_cpus"] if hp["host_cpus"] > 0 else np.inf
    r["background"] = hp["background_threads"]
    r["t_dst_zero"] = hp["dst_zero_page_ns"] / 1e6 / speed
    r["t_dst_normal"] = hp["dst_normal_page_ns"] / 1e6 / speed
    r["t_first_touch"] = hp["first_touch_us"] / 1e3 / speed
    r["region_shift"] = 9 if hp["host_page_kib"] == 2048 else 0
    r["stream_bytes"] = hp["stream_buffer_bytes"] if hp["stream_buffer_bytes"] > 0 else np.inf
    r["bitmap_lock"] = int(hp["bitmap_lock"])
    r["t_lock"] = hp["bitmap_lock_ns"] / 1e6 / speed
    r["t_hint_apply"] = hp["hint_apply_us"] / 1e3 / speed
    r["boundary_hints"] = hp["boundary_hints"]
    r["boundary_drain_p"] = hp["boundary_drain_p"]
    r["flush_wait_p"] = hp["flush_wait_p"]
    r["flush_wait_p_after"] = hp["flush_wait_p_after"]
    r["setup_jitter_ms"] = hp["setup_jitter_ms"] / speed
    # the guest's vCPUs (their work runs on the host's CPUs: divided by its speed)
    r["vcpus"] = scenario.vcpus
    r["hint_block_ns"] = gp["hint_block_us"] * 1e3 / speed
    r["hint_start_ms"] = gp["hint_start_ms"] / speed
    r["hint_start_jitter_ms"] = gp["hint_start_jitter_ms"] / speed
    r["zero_fill_ns"] = gp["zero_fill_ns_per_page"] / speed
    r["write_fault_ms"] = gp["write_fault_ns"] / 1e6 / speed
    r["store_ms"] = gp["store_ns_per_page"] / 1e6 / speed
    r["guest_busy"] = min(float(wl["jobs"]), float(scenario.vcpus))
    r["intensity"] = wl["intensity"]
    r["bg_rate"] = wl["background_dirty_pages_per_s"] / 1e3
    r["bg_hot"] = max(1, int(wl["background_hot"]) // PAGE_SIZE)
    r["jobs"] = int(wl["jobs"])
    anon_order = int(wl["anon_order"])
    r["anon_order"] = anon_order
    mean_pages = max(1.0, wl["proc_rss_mean"] / PAGE_SIZE)
    sigma = wl["proc_rss_sigma"]
    r["rss_mu"] = math.log(mean_pages) - sigma * sigma / 2
    r["rss_sigma"] = sigma
    r["life_ms"] = wl["proc_lifetime_ms"]
    r["alloc_frac"] = max(1e-3, wl["proc_alloc_frac"])
    r["rewrite_per_ms"] = wl["proc_rewrite_per_s"] / 1e3
    pc_order = int(wl["pagecache_order"])
    r["pc_order"] = pc_order
    r["pc_rate"] = wl["pagecache_rate"] / PAGE_SIZE / (1 << pc_order) / 1e3
    r["dl_interval"] = max(1e-3, wl["dirty_interval_ms"])
    layout = {
        "reserved_low": int(mem["reserved_low"]) // PAGE_SIZE,
        "low_span": int(mem["low_span"]) // PAGE_SIZE,
        "low_used": int(mem["low_used"]) // PAGE_SIZE,
        "kaslr_image": int(mem["kaslr_image"]) // PAGE_SIZE,
        "kaslr_bss": int(mem["kaslr_bss"]) // PAGE_SIZE,
        "low_start": int(mem["reserved_low"]) // PAGE_SIZE,
        "zone_start": 0,
        "swiotlb": 0,
        "memmap": int(math.ceil(n * mem["memmap_bytes_per_page"] / PAGE_SIZE)),
        "base": int(mem["base_used"]) // PAGE_SIZE,
        "pagecache": int(mem["pagecache_initial"]) // PAGE_SIZE,
        "touched": int(mem["touched_free"] - mem["boot_free"]) // PAGE_SIZE + int(wl["fill"] * n),
        "boot_free_start": int(mem["boot_free_at"]) // PAGE_SIZE,
        "boot_free": int(mem["boot_free"]) // PAGE_SIZE,
        "boot_free_span": max(int(mem["boot_free"]), int(mem["boot_free_span"])) // PAGE_SIZE,
        "dirty_loop": int(wl["dirty_bytes"]) // PAGE_SIZE,
        "rss_cap": (int(math.ceil(mean_pages * math.exp(3 * sigma))) >> anon_order) + 1,
    }
    if gp["normal_zone_first"] > 0 and n >= PC_SPLIT_PAGES:
        layout["zone_start"] = PC_LOWMEM_PAGES  # the Normal zone, above the PCI hole
        layout["low_start"] = PC_LOWMEM_PAGES  # the boot's early allocations at its start
    if normal_zone_pages(n):  # RAM above 4 GiB: the boot reserves the swiotlb below 4 GiB
        layout["swiotlb"] = int(mem["swiotlb"]) // PAGE_SIZE
    kept = layout["reserved_low"] + layout["low_span"] + layout["kaslr_image"] + layout["kaslr_bss"]
    # the last pages of the touched memory's frees left on the freeing CPU's per-cpu lists,
    # in the zone they came from last (the Normal zone is used first): drawn from the seed
    r["pcp_keep"] = 0
    if layout["touched"] > 0 and gp["freed_pcp_p"] > 0:
        draw = np.random.default_rng([scenario.seed, PCP_STREAM]).random()
        if draw < gp["freed_pcp_p"]:
            split = layout["zone_start"] > 0
            managed = max(1, n - kept - layout["swiotlb"] - layout["memmap"])
            high = pcp_high(
                n, managed, scenario.vcpus, thp=gp["thp"] > 0,
                normal=split and layout["touched"] <= n - PC_LOWMEM_PAGES,
            )  # fmt: skip
            r["pcp_keep"] = min(high, layout["touched"])
    if kept + layout["memmap"] >= n:
        raise ScenarioError("memory: too small for the kernel's reserved memory and memmap")
    if layout["boot_free"]:
        a = layout["boot_free_start"]
        b = a + layout["boot_free_span"]
        lo, hi = layout["low_start"], layout["low_start"] + layout["low_span"]
        if a < layout["reserved_low"] or b > n - layout["memmap"] or (a < hi and b > lo):
            raise ScenarioError(
                "boot_free_at: the boot's freed data must lie between reserved_low and the "
                "memmap, off the early allocations"
            )
    return prm, layout


def boot_layout(n: int, lay: dict, memmap_start: int, seed: int):
    """Where the boot put the kernel image, and the ranges it gave the page allocator.

    Kept out of the allocator: ``reserved_low`` pages from 0, the early allocations'
    ``low_span`` from ``low_start`` (right above ``reserved_low``, or, with the guest's
    ``normal_zone_first`` in a guest whose RAM QEMU's pc machine splits, the start of the Normal
    zone at RAM offset 3 GiB), the kernel image and its bss at a random 2 MiB-aligned slot
    (physical KASLR, drawn from ``seed``) that crosses neither the early allocations nor the
    boot's freed data (``boot_free`` pages over ``boot_free_span`` from ``boot_free_start``,
    which the decompressor
    keeps out of its choice, ``mem_avoid`` in arch/x86/boot/compressed/kaslr.c, and which is
    given to the allocator), and the memmap from ``memmap_start``.

    Returns
    -------
    img_start : int
        First pfn of the image (0 without one).
    ranges : list of (int, int)
        Free ranges ``[lo, hi)`` in ascending order.
    """
    rl, span, low_start = lay["reserved_low"], lay["low_span"], lay["low_start"]
    img = lay["kaslr_image"]
    bss = lay["kaslr_bss"] if img else 0
    kept = [(low_start, low_start + span)]
    img_start = 0
    bf = lay.get("boot_free", 0)
    if img:
        if low_start == rl and not bf:  # one place: above the early allocations
            lo = rl + span
            segments = [((lo + 511) >> 9 << 9, max(1, (memmap_start - img - bss - lo) >> 9))]
        else:  # every 2 MiB slot from reserved_low to the memmap off what the boot avoids
            avoid = list(kept)
            if bf:
                a = lay["boot_free_start"]
                avoid.append((a, a + lay["boot_free_span"]))
            segments = []
            a = rl
            for lo, hi in sorted(avoid) + [(memmap_start, memmap_start)]:
                first = (a + 511) >> 9 << 9
                if lo - img - bss > first:
                    segments.append((first, (lo - img - bss - first) >> 9))
                a = max(a, hi)
        total = max(1, sum(c for _, c in segments))
        draw = int(np.random.default_rng([seed, KASLR_STREAM]).integers(total))
        for first, count in segments:
            if draw < count:
                img_start = first + (draw << 9)
                break
            draw -= count
        kept.append((img_start, img_start + img + bss))
    sw = lay.get("swiotlb", 0)
    if sw:  # memblock_alloc_low: top-down from the end of RAM below 4 GiB, off the image
        top = min(PC_LOWMEM_PAGES, memmap_start)
        if img and img_start < top and img_start + img + bss > top - sw:
            top = img_start
        kept.append((top - sw, top))
    ranges = []
    cursor = rl
    for a, b in sorted(kept):
        if a > cursor:
            ranges.append((cursor, a))
        cursor = max(cursor, b)
    if memmap_start > cursor:
        ranges.append((cursor, memmap_start))
    return img_start, ranges


class _Run:
    """All arrays of one run, in the kernels' bundles (kept together so a run can be resumed
    chunk by chunk)."""

    def __init__(
        self,
        scenario: Scenario,
        profile: HostProfile,
        guest: GuestDescription,
        trace_interval_ms: float,
        page_map_bins: int,
        step_ms: float,
    ):
        n = scenario.nr_pages
        self.n = n
        self.prm, lay = build_params(scenario, profile, guest, trace_interval_ms, step_ms)
        prm = self.prm[0]
        self.write_fault_ns = prm["write_fault_ms"] * 1e6
        st = S.new_state()
        self.st = st
        s = st[0]
        s["n"] = n
        s["reserved_low"] = lay["reserved_low"]
        s["low_span"] = lay["low_span"]
        s["low_used"] = lay["low_used"]
        s["alloc_low"] = int(guest.params["alloc_low_first"] > 0)
        s["memmap_start"] = n - lay["memmap"]
        s["host_status"] = S.S_STOP
        s["host_cmd"] = S.CMD_ID_MIN - 1
        s["guest_start_at"] = -1.0
        nw = words_for(n)
        bm = np.zeros((S.N_BM, nw), dtype=np.uint64)
        # bitmap_sync's vectorized conditional stores into the dirty log and the write
        # protection are 50x slower on never-touched (zero-page) memory: write them through
        bm[S.BM_DLOG] = 0
        bm[S.BM_UNARMED] = 0
        bm[S.BM_BMAP] = np.uint64(0xFFFFFFFFFFFFFFFF)  # migration bitmap: all ones at setup
        if n & 63:
            bm[S.BM_BMAP, -1] = np.uint64((1 << (n & 63)) - 1)
        s["pending"] = n
        buddy = new_buddy(n)
        s["low_start"] = lay["low_start"]
        s["zone_start"] = lay["zone_start"]
        img_start, ranges = boot_layout(n, lay, int(s["memmap_start"]), scenario.seed)
        s["img_start"] = img_start
        s["img_pages"] = lay["kaslr_image"]
        s["bf_start"] = lay["boot_free_start"]
        s["bf_pages"] = lay["boot_free"]
        s["bf_span"] = lay["boot_free_span"]
        for a, b in ranges:
            buddy_add_range(s, buddy, a, b)
        wmin, wlow, whigh = watermarks(int(s["nr_free_pages"]))
        s["wmark_min"], s["wmark_low"], s["wmark_high"] = wmin, wlow, whigh
        # the allocator's pages in the DMA zone
        dma_free = sum(max(0, min(b, DMA_PAGES) - a) for a, b in ranges)
        s["hint_floor"] = hint_floor(
            n, int(s["nr_free_pages"]), dma_free, thp=guest.params["thp"] > 0
        )
        jobs = int(prm["jobs"])
        self.guest = Guest(
            **buddy._asdict(),
            bm=bm,
            ver_src=np.zeros(n, dtype=np.uint32),
            ver_dst=np.zeros(n, dtype=np.uint32),
            held_blocks=np.zeros((n >> int(prm["hint_order"])) + 1, dtype=np.int64),
            pc_ring=np.zeros(max(1, n >> int(prm["pc_order"])), dtype=np.int32),
        )
        rngs = seed_streams(scenario.seed, 3)  # 0 the workload, 1 the initial state, 2 the host
        self.workload = Workload(
            base_pool=np.zeros(lay["base"], dtype=np.int32),
            dl_pool=np.zeros(lay["dirty_loop"], dtype=np.int32),
            rngs=rngs[:2].copy(),
            job_age=np.zeros(jobs),
            job_life=np.zeros(jobs),
            job_target=np.zeros(jobs, dtype=np.int64),
            job_nblk=np.zeros(jobs, dtype=np.int64),
            job_acc=np.zeros(jobs),
            job_pool=np.zeros((jobs, lay["rss_cap"] if jobs else 1), dtype=np.int32),
        )
        self.hints = HintChannel(
            kind=np.zeros(S.QUEUE_SIZE, dtype=np.int64),
            pfn=np.zeros(S.QUEUE_SIZE, dtype=np.int64),
            cmd=np.zeros(S.QUEUE_SIZE, dtype=np.int64),
            order=np.zeros(S.QUEUE_SIZE, dtype=np.int64),
            ready=np.zeros(S.QUEUE_SIZE),
            stale=np.zeros(S.QUEUE_SIZE, dtype=np.int64),
        )
        regions = (n >> int(prm["region_shift"])) + 1
        # the ring of stream checkpoints: the live ones span at most the stream and the bytes
        # sent since the last wait for room (one batch of 64 normal pages), one every
        # CHECKPOINT_BYTES or more apart, so at most stream // CHECKPOINT_BYTES + 6 of them
        k = 6
        if np.isfinite(prm["stream_bytes"]):
            k += int(prm["stream_bytes"]) // S.CHECKPOINT_BYTES
        self.host = Host(
            dst_touched=np.zeros(words_for(regions), dtype=np.uint64),
            src_touched=np.zeros(words_for(regions), dtype=np.uint64),
            ck_bytes=np.zeros(k, dtype=np.int64),
            ck_time=np.zeros(k),
            rng=rngs[2].copy(),
        )
        s["share"] = 1.0
        s["ck_next"] = S.CHECKPOINT_BYTES
        ntrace = int(math.ceil(scenario.max_time / trace_interval_ms)) + 2
        if scenario.cancel_at is not None:  # the guest is followed after the cancel
            ntrace += int(math.ceil(S.AFTER_CANCEL_MS / trace_interval_ms)) + 2
        s["rep_next"] = -1.0
        if prm["design"] == S.D_REPORTING and reporting_enabled(scenario):
            # page_reporting_register: the first pass is due PAGE_REPORTING_DELAY after the
            # request, here the start of the migration (memory freed just before it)
            s["rep_next"] = S.REPORTING_DELAY
        bins = int(page_map_bins)
        self.rec = Recorders(
            trace=np.zeros((ntrace, S.N_TRACE)),
            trace_t=np.zeros(ntrace),
            rounds=np.zeros((ROUND_CAP, S.N_ROUND)),
            pm=np.zeros((MAP_ROUND_CAP if bins else 0, max(bins, 1), S.N_PM), dtype=np.int64),
            pm_free=np.zeros(nw if bins else 1, dtype=np.uint64),
        )
        # scratch for the touched blocks: taken largest first, so about one row per 4 MiB
        tmp = np.zeros(((lay["touched"] >> S.MAX_ORDER) + 4096, 2), dtype=np.int64)
        workload_init(s, prm, self.guest, self.workload, lay["touched"], lay["pagecache"], tmp)
        # the source's guest RAM holds on the host what the guest has written so far
        mark_regions(bm[S.BM_NONZERO], self.host.src_touched, int(prm["region_shift"]))
        self.zero_at_start = n - popcount(bm[S.BM_NONZERO])
        self.free_at_start = int(s["nr_free_pages"])
        if s["status"] == S.RUNNING:
            start(s, prm, self.host)

    def state_bytes(self) -> int:
        """Bytes of per-page engine state (the arrays that grow with the guest)."""
        return int(sum(a.nbytes for a in self.guest)) + self.rec.pm_free.nbytes

    def advance(self, stop_at: float) -> None:
        if not self.running:
            return
        s = self.st[0]
        run(
            s, self.prm[0], self.guest, self.workload, self.hints, self.rec, self.host,
            float(stop_at),
        )  # fmt: skip

    @property
    def running(self) -> bool:
        """The engine has more to do: the migration runs, or it was cancelled and the guest
        is followed for ``AFTER_CANCEL_MS`` more."""
        s = self.st[0]
        if s["status"] == S.RUNNING:
            return True
        return bool(s["status"] == S.CANCELLED and s["now"] < s["cancel_time"] + S.AFTER_CANCEL_MS)

    @property
    def now(self) -> float:
        return float(self.st[0]["now"])


#: wall time one call into the engine aims at: signals (Ctrl-C) and ``cancel`` are seen
#: between calls
CHUNK_WALL_S = 0.1


def _advance_in_chunks(rn: _Run, end: float, cancel=None, bar=None) -> None:
    """Run ``rn`` to its end in chunks of simulated time sized so that each takes about
    :data:`CHUNK_WALL_S` of wall time; between chunks Python handles signals (a
    ``KeyboardInterrupt`` stops the run) and ``cancel`` is checked."""
    chunk = 20.0  # ms of simulated time; adapted to the wall time each chunk takes
    shown = 0
    while rn.running:
        t0 = time.perf_counter()
        rn.advance(min(rn.now + chunk, end))
        wall = time.perf_counter() - t0
        if cancel is not None and cancel.is_set():
            raise SimulationCancelled("the run was cancelled")
        if bar is not None:
            done = int(rn.now // 1000)
            bar.update(done - shown)
            shown = done
        scale = CHUNK_WALL_S / wall if wall > 0 else 4.0
        chunk = min(max(chunk * min(4.0, max(0.25, scale)), 1.0), 600_000.0)


def _available_bytes() -> int:
    """Memory this process may still take (``MemAvailable``), or 0 when unknown."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, AttributeError):  # pragma: no cover - not POSIX
        return 0


def memory_estimate(
    scenario: Scenario, trace_interval_ms: float = 10.0, page_map_bins: int = 0
) -> dict:
    """Bytes a run will allocate, by what they grow with (checked before allocating).

    Returns
    -------
    dict
        ``pages`` (per-page engine state, about 12 bytes a page, and the result's copies),
        ``trace`` (one row per ``trace_interval_ms`` up to ``max_time``, held twice while the
        Dataset is made), ``page_map`` (256 rounds x bins x states) and ``total``.
    """
    n = scenario.nr_pages
    ntrace = math.ceil(scenario.max_time / trace_interval_ms) + 2
    out = {
        "pages": 14.0 * n,
        "trace": 2.0 * ntrace * (S.N_TRACE + 1) * 8,
        "page_map": 2.0 * MAP_ROUND_CAP * page_map_bins * S.N_PM * 8,
    }
    out["total"] = sum(out.values())
    return out


def _check_memory(scenario: Scenario, trace_interval_ms: float, page_map_bins: int) -> None:
    est = memory_estimate(scenario, trace_interval_ms, page_map_bins)
    avail = _available_bytes()
    if not avail or est["total"] <= 0.8 * avail:
        return
    what = max(("pages", "trace", "page_map"), key=lambda k: est[k])
    change = {
        "pages": "memory (a smaller guest)",
        "trace": "max-time (or a longer trace_interval_ms)",
        "page_map": "page_map_bins",
    }[what]
    gib = 1 << 30
    raise ScenarioError(
        f"{change.split(' ')[0]}: this run needs about {est['total'] / gib:.1f} GiB "
        f"({what.replace('_', '-')} {est[what] / gib:.1f} GiB), more than the "
        f"{avail / gib:.1f} GiB this machine has available; lower {change}"
    )


def _positive(value, what: str, lo: float, hi: float) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise ScenarioError(f"{what}: a number from {lo:g} to {hi:g}, got {value!r}")
    v = float(value)
    if not lo <= v <= hi:
        raise ScenarioError(f"{what}: a number from {lo:g} to {hi:g}, got {value!r}")
    return v


def simulate(
    scenario: Scenario,
    *,
    profile: HostProfile | None = None,
    guest: GuestDescription | None = None,
    trace_interval_ms: float = 10.0,
    page_map_bins: int = 0,
    step_ms: float = 1.0,
    progress: bool = False,
    cancel=None,
):
    """Simulate one pre-copy migration of ``scenario``.

    Parameters
    ----------
    scenario : Scenario
        What to migrate and how (validated on construction).
    profile : HostProfile, optional
        Host costs; default: ``HostProfile.load(scenario.profile)``.
    guest : config.Guest, optional
        The guest's description; default: ``scenario.load_guest()`` (calibration passes one
        held in memory).
    trace_interval_ms : float
        Sampling period of the per-time trace (dim ``time``).
    page_map_bins : int
        If > 0, record ``page-map`` (pages per address bin and state at the end of each round,
        up to 256 rounds).  Costs one pass over the guest per round.
    step_ms : float
        Step in which guest and migration thread alternate (the race's time resolution).
    progress : bool
        Show a tqdm progress bar over simulated time.
    cancel : threading.Event, optional
        Checked between chunks of the run (each about 0.1 s of wall time): once it is set the
        run stops with :class:`~fphint_kernels.errors.SimulationCancelled`.  A
        ``KeyboardInterrupt`` (Ctrl-C) stops a run the same way, between chunks.

    Returns
    -------
    xarray.Dataset
        Variables of :mod:`fphint_kernels.variables`; scenario and profile in ``attrs``.

    Raises
    ------
    ScenarioError
        A bad argument, or a run that would need more memory than the machine has available
        (:func:`memory_estimate`; the message names the option to change).
    InvariantError
        The run broke an invariant of the model (:func:`invariant_violations`): a bug.

    Notes
    -----
    The algorithms followed (QEMU 4.0 ``migration/ram.c``, ``hw/virtio/virtio-balloon.c``;
    Linux 4.20 ``drivers/virtio/virtio_balloon.c``, ``mm/page_alloc.c``) and the
    simplifications made are listed in ``docs/model.md``.

    Examples
    --------
    >>> from fphint_kernels import Scenario, simulate
    >>> ds = simulate(Scenario(memory="256M", hint=True, seed=3))
    >>> str(ds["status"].values), int(ds["lost-pages"])
    ('completed', 0)
    """
    if not isinstance(scenario, Scenario):
        raise ScenarioError(f"simulate() takes a Scenario, got {type(scenario).__name__}")
    step_ms = _positive(step_ms, "step_ms", 0.01, 100.0)
    trace_interval_ms = _positive(trace_interval_ms, "trace_interval_ms", step_ms, 3_600_000.0)
    if isinstance(page_map_bins, (bool, np.bool_)) or not isinstance(
        page_map_bins, numbers.Integral
    ):
        raise ScenarioError(f"page_map_bins: a whole number >= 0, got {page_map_bins!r}")
    page_map_bins = int(page_map_bins)
    if not 0 <= page_map_bins <= min(scenario.nr_pages, 65536):
        raise ScenarioError(
            f"page_map_bins: from 0 to {min(scenario.nr_pages, 65536)}, got {page_map_bins}"
        )
    if profile is not None and not isinstance(profile, HostProfile):
        raise ScenarioError(f"profile: a HostProfile, got {type(profile).__name__}")
    if guest is not None and not isinstance(guest, GuestDescription):
        raise ScenarioError(f"guest: a config.Guest, got {type(guest).__name__}")
    if cancel is not None and not callable(getattr(cancel, "is_set", None)):
        raise ScenarioError("cancel: an object with is_set(), e.g. threading.Event")
    _check_memory(scenario, trace_interval_ms, page_map_bins)
    profile = profile or scenario.load_profile()
    guest = guest or scenario.load_guest()
    if progress:
        warm_up()  # compile first, so that the bar's estimate is the simulation's alone
    announce_compile()  # one line before the one-off compilation of the kernels
    rn = _Run(scenario, profile, guest, trace_interval_ms, page_map_bins, step_ms)
    end = scenario.max_time + 1.0
    if progress:
        from tqdm.auto import tqdm

        with tqdm(
            total=round(scenario.max_time / 1000), unit="s", desc="simulated time", leave=False
        ) as bar:
            _advance_in_chunks(rn, end, cancel, bar)
    else:
        _advance_in_chunks(rn, end, cancel)
    ds = _to_dataset(scenario, profile, guest, rn)
    bad = invariant_violations(ds)
    if bad:
        raise InvariantError(f"{scenario}: " + "; ".join(bad))
    return ds


def invariant_violations(ds) -> list[str]:
    """The invariants of the model a run broke (empty: none); :func:`simulate` checks them
    on every run and raises :class:`~fphint_kernels.errors.InvariantError` if any fails.

    * the guest's CPU overhead (write faults and hinting) fits in the vCPU time there was:
      ``guest-overhead-time <= vcpus * total-time``;
    * rounds and syncs agree: setup syncs once and every round ends at a sync, so
      ``dirty-sync-count`` is ``rounds + 2`` for a completed run (the stop-and-copy's final
      sync; ``rounds + 1`` when that sync also ended the last pre-copy round) and the number
      of recorded rounds plus one otherwise (a cancel ends its round without a sync); every
      recorded round is in the Dataset
      (``round`` has ``rounds + 1`` entries for a completed run);
    * pages sent are the sum of the rounds' pages (at least that sum when the run stopped
      inside a round), bytes at least 4 KiB a normal page, and a completed run sent or
      skipped every page;
    * pending pages never negative, held pages never more than the guest has; no hints
      without a hinting design (``hinting="none"``).
    """
    bad = []

    def val(name):
        return ds[name].values.item()

    status = str(ds["status"].values)
    total = val("total-time")
    vcpus = int(ds.attrs["scenario_vcpus"])
    over = val("guest-overhead-time")
    if total == total and over > vcpus * total * (1 + 1e-9) + 1e-6:
        bad.append(
            f"guest-overhead-time {over:.3f} ms exceeds vcpus x total-time "
            f"({vcpus} x {total:.3f} ms)"
        )
    nr = int(ds.sizes.get("round", 0))
    rounds, syncs = int(val("rounds")), int(val("dirty-sync-count"))
    if status == "completed":
        if nr != rounds + 1:
            bad.append(f"{nr} rounds recorded for {rounds} pre-copy rounds and a stop-and-copy")
        # the final sync ends the last pre-copy round (after the VM stopped) when no other
        # sync came before the stop; then it is not a sync of its own
        stop = total - val("downtime")
        ends = ds["round-end"].values
        apart = 0 if rounds >= 1 and ends[rounds - 1] > stop + 1e-9 * max(1.0, stop) else 1
        if syncs != rounds + 1 + apart:
            bad.append(f"dirty-sync-count {syncs} != rounds {rounds} + {1 + apart}")
    elif status == "cancelled":
        # the cancel ends the round it falls in without a sync of its own
        if syncs and syncs not in (nr, nr + 1):
            bad.append(f"dirty-sync-count {syncs} != rounds recorded {nr} (+ 1) of a cancel")
    elif syncs and syncs != nr + 1:
        bad.append(f"dirty-sync-count {syncs} != rounds recorded {nr} + 1")
    sent = int(val("ram-duplicate")) + int(val("ram-normal"))
    in_rounds = int((ds["round-duplicate"] + ds["round-normal"]).sum()) if nr else 0
    if sent < in_rounds or (status == "completed" and sent != in_rounds):
        bad.append(f"pages sent ({sent}) differ from the sum over rounds ({in_rounds})")
    if int(val("ram-transferred")) < PAGE_SIZE * int(val("ram-normal")):
        bad.append("ram-transferred below 4 KiB per normal page")
    if status == "completed" and sent + int(val("skipped-pages")) < int(val("nr-pages")):
        bad.append("a completed run neither sent nor skipped some pages")
    if ds.sizes.get("time", 0):
        if float(ds["pending"].min()) < 0:
            bad.append("pending pages below 0")
        if float(ds["held-pages"].max()) > int(val("nr-pages")):
            bad.append("more pages held than the guest has")
    hinting = ds.attrs.get("scenario_hinting", "fph" if int(ds.attrs["scenario_hint"]) else "none")
    if hinting == "none" and int(val("hinted-pages")):
        bad.append("hinted pages without hinting")
    return bad


def _page_map_now(rn: _Run) -> np.ndarray:
    """The page map of the guest's memory as it is now (pfn_bin x page_state)."""
    st = rn.st.copy()
    st[0]["n_map"] = 0
    pm = np.zeros((1,) + rn.rec.pm.shape[1:], dtype=np.int64)
    rec = rn.rec._replace(pm=pm)
    page_map_snapshot(st[0], rn.guest, rec)
    return pm[0]


def mark_regions(pages, regions, shift: int) -> None:
    """Set the bit of every host region (2**shift pages) that holds a set bit of ``pages``."""
    p = np.unpackbits(pages.view(np.uint8), bitorder="little")
    hit = np.flatnonzero(p) >> shift
    r = np.zeros(regions.size * 64, dtype=np.uint8)
    r[np.unique(hit)] = 1
    regions[:] = np.packbits(r, bitorder="little").view(np.uint64)


def _to_dataset(scenario: Scenario, profile: HostProfile, guest: GuestDescription, rn: _Run):
    s = rn.st[0]
    prm = rn.prm[0]
    status = int(s["status"])
    completed = status == S.COMPLETED
    lost, stale_free = -1, -1  # the check applies to completed migrations only
    if completed:
        lost, stale_free = count_lost(s, prm, rn.guest)
    nan = float("nan")
    cancelled = float(s["cancel_time"]) >= 0
    total = float(s["end_time"]) if status != S.FAILED else nan
    if cancelled:
        total = float(s["cancel_time"])
    downtime = float(s["end_time"] - s["downtime_start"]) if completed else nan
    setup = float(s["setup_time"]) if s["setup_done"] else nan
    moving = (total - setup) if completed else nan
    mbps = float(s["bytes"]) * 8 / moving / 1000 if completed and moving > 0 else nan
    overhead_ns = float(s["write_faults"]) * rn.write_fault_ns + float(s["hint_cpu_ns"])
    data = {
        "status": np.array(STATUS[status]),
        "total-time": total,
        "downtime": downtime,
        "setup-time": setup,
        "expected-downtime": float(s["expected_downtime"]) if completed else nan,
        "ram-transferred": np.int64(s["bytes"]),
        "ram-duplicate": np.int64(s["dup"]),
        "ram-normal": np.int64(s["normal"]),
        "ram-normal-bytes": np.int64(s["normal"]) * PAGE_SIZE,
        "dirty-sync-count": np.int64(s["sync_count"]),
        "mbps": mbps,
        "cpu-throttle-percentage": float(s["throttle"]) * 100,
        "hinted-pages": np.int64(s["hinted"]),
        "skipped-pages": np.int64(s["skipped"]),
        "lost-pages": np.int64(lost),
        "stale-free-pages": np.int64(stale_free),
        "rounds": np.int64(0),  # set below, once the rounds are known
        "hint-cpu-time": float(s["hint_cpu_ns"]) / 1e6,
        "zeroing-cpu-time": float(s["zero_cpu_ns"]) / 1e6,
        "write-faults": np.int64(s["write_faults"]),
        "guest-overhead-time": overhead_ns / 1e6,
        "held-pages-max": np.int64(s["held_max"]),
        "hinting": np.array(scenario.hinting),
        "reported-pages": np.int64(s["reported"]),
        "skipped-pages-redirtied": np.int64(s["redirtied"]),
        "cancel-time": float(s["cancel_time"]) if cancelled else -1.0,
        "held-pages-at-cancel": np.int64(s["held_at_cancel"]) if cancelled else np.int64(-1),
        "held-pages-at-end": np.int64(s["held_pages"]),
        "zero-pages-at-start": np.int64(rn.zero_at_start),
        "free-pages-at-start": np.int64(rn.free_at_start),
        "nr-pages": np.int64(rn.n),
        "cpu-migration-thread": float(s["cpu_mig"]),
        "cpu-destination": float(s["cpu_dst"]),
        "cpu-vcpus": float(s["cpu_vcpu"]),
        "hints-before-first-slice": np.int64(s["hints_early"]),
        "slice-end-drains": np.int64(s["boundary_drains"]),
        "failure": np.array(FAILURES[int(s["failure"])]),
    }
    nr = min(int(s["n_rounds"]), ROUND_CAP)
    rd = rn.rec.rounds[:nr]
    for i, name in enumerate(S.ROUND_COLUMNS):
        data[name] = rd[:, i] if SPECS[name].kind == "f" else rd[:, i].astype(np.int64)
    # the sync that starts the downtime closes a round of its own that sends nothing: it is
    # part of the stop-and-copy (see _merge_final_sync)
    merged = None
    if completed and int(s["n_rounds"]) <= ROUND_CAP:
        merged = _merge_final_sync(data, float(s["downtime_start"]))
    if merged is not None:
        nr -= 1
    data["rounds"] = np.int64(max(0, nr - (1 if completed else 0)))
    nt = int(s["n_trace"])
    tr = rn.rec.trace[:nt]
    for i, name in enumerate(S.TRACE_COLUMNS):
        data[name] = tr[:, i]
    if completed:  # samples taken after the VM stopped: the stop-and-copy, the last round
        data["round-index"] = np.minimum(data["round-index"], nr)
    coords = {"round": np.arange(1, nr + 1), "time": rn.rec.trace_t[:nt].copy()}
    pm = rn.rec.pm
    if pm.shape[0]:
        nm = int(s["n_map"])
        maps = pm[:nm]
        if merged is not None and merged < nm:  # taken at the VM stop: nothing sent yet
            maps = np.delete(maps, merged, axis=0)
            nm -= 1
        data["page-map"] = maps
        coords["pfn_bin"] = (np.arange(pm.shape[1]) * rn.n) // pm.shape[1]
        coords["page_state"] = list(PAGE_STATES)
        if cancelled:  # the guest's memory when the run ends, after the cancel
            data["page-map-end"] = _page_map_now(rn)
        if nm < nr:  # the map covers the first rounds only (never the stop-and-copy)
            data["page-map"] = np.concatenate(
                [maps, np.zeros((nr - nm,) + pm.shape[1:], dtype=np.int64)]
            )
    attrs = scenario.to_attrs()
    attrs.update({f"profile_{k}": float(v) for k, v in profile.params.items()})
    attrs["profile_name"] = profile.name
    attrs.update({f"guest_{k}": float(v) for k, v in guest.params.items()})
    attrs["guest_name"] = guest.name
    from ._version import __version__

    attrs["engine"] = f"fphint_kernels {__version__}"
    attrs["state_bytes_per_page"] = rn.state_bytes() / rn.n
    attrs["note_last_round"] = (
        "the last round is the stop-and-copy (VM stopped: final sync, the rest sent)"
        if completed
        else ""
    )
    ds = make_dataset(data, coords=coords, attrs=attrs)
    ds["time"].attrs["units"] = "ms"
    ds["round"].attrs["description"] = (
        "round number: pre-copy rounds 1, 2, ... end at bitmap syncs; the last round of a "
        "completed run is the stop-and-copy"
    )
    return ds


ROUND_SUMS = ("round-duplicate", "round-normal", "round-bytes", "round-skipped")


def _merge_final_sync(data: dict, downtime_start: float) -> int | None:
    """Fold the round closed by the sync at the start of the downtime into the stop-and-copy.

    When a sync finds that what is pending fits under the threshold, QEMU stops the VM and
    syncs once more before sending the rest (``migration_completion`` -> ``ram_save_complete``
    -> ``migration_bitmap_sync_precopy``).  The engine closes a round at each sync, so that
    last sync leaves a round that lies wholly in the downtime and sends nothing.  Presented as
    it is, it would be a round "k + 1" that sends nothing, followed by the stop-and-copy as
    "k + 2".  Here it becomes the start of the stop-and-copy: that round starts when the VM
    stops, its ``round-dirtied`` and ``round-pending-after-sync`` are those of the final sync
    (what the stop-and-copy has to send), and its counts are the sum of both (the first has
    none).  ``data`` is changed in place.

    Returns
    -------
    int or None
        Index of the removed round, None if there was none (the VM stopped before any sync of
        the pre-copy phase ended a round: then the final sync ends round 1).
    """
    start = data["round-start"]
    if len(start) < 2 or start[-2] < downtime_start:
        return None
    i = len(start) - 2
    for name in [n for n in data if n.startswith("round-") and n != "round-index"]:
        v = np.asarray(data[name])
        if name in ROUND_SUMS:
            last = v[-1] + v[i]
        elif name in ("round-start", "round-dirtied", "round-pending-after-sync"):
            last = v[i]  # the stop-and-copy starts with the final sync
        else:  # round-end, and the threshold and bandwidth it ends with
            last = v[-1]
        out = np.delete(v, i)
        out[-1] = last
        data[name] = out
    return i


def warm_up(write=None) -> bool:
    """Compile the kernels with one tiny simulation if they are not compiled yet in this
    process, saying so first (:func:`fphint_kernels.feedback.announce_compile`; ``write`` as
    there).  Progress bars started afterwards measure the simulations only.

    Returns
    -------
    bool
        True if it simulated (the kernels were cold).
    """
    if not kernels_cold():
        return False
    announce_compile(write)
    simulate(
        Scenario(memory="256M", workload="idle", max_bandwidth="100G", hint=True),
        trace_interval_ms=10.0,
        page_map_bins=4,
    )
    return True


def simulate_many(
    scenarios: Iterable[Scenario], *, progress: bool = True, desc: str = "runs", **kwargs
) -> list:
    """Simulate several scenarios in turn, with a progress bar over runs."""
    scenarios = list(scenarios)
    it = scenarios
    if progress:
        from tqdm.auto import tqdm

        warm_up()
        it = tqdm(scenarios, desc=desc, unit="run")
    return [simulate(sc, **kwargs) for sc in it]


def summary(ds) -> dict:
    """The query-migrate-like JSON object of a run (what ``fphint simulate --json`` prints).

    Times in ms, bytes, pages.  A value that does not apply is ``None`` (JSON ``null``):
    ``downtime`` of a run that did not complete, and ``lost-pages`` and ``stale-free-pages``,
    which are checked only when the migration completed (the Dataset holds -1 for them then).
    ``rounds`` counts the pre-copy rounds, before the stop-and-copy.
    """

    def num(name):
        v = ds[name].values.item()
        if isinstance(v, float):
            return None if math.isnan(v) else round(v, 3)
        return int(v)

    def checked(name):  # -1: the check applies to completed runs only
        v = num(name)
        return None if v is None or v < 0 else v

    return {
        "status": str(ds["status"].values),
        "total-time": num("total-time"),
        "downtime": num("downtime"),
        "setup-time": num("setup-time"),
        "expected-downtime": num("expected-downtime"),
        "dirty-sync-count": num("dirty-sync-count"),
        "mbps": num("mbps"),
        "ram": {
            "transferred": num("ram-transferred"),
            "duplicate": num("ram-duplicate"),
            "normal": num("ram-normal"),
            "normal-bytes": num("ram-normal-bytes"),
        },
        "rounds": num("rounds"),
        "cpu-throttle-percentage": num("cpu-throttle-percentage"),
        "hinted-pages": num("hinted-pages"),
        "skipped-pages": num("skipped-pages"),
        "lost-pages": checked("lost-pages"),
        "stale-free-pages": checked("stale-free-pages"),
        "guest-overhead-time": num("guest-overhead-time"),
        "reported-pages": num("reported-pages") if "reported-pages" in ds else 0,
        "held-pages-at-end": num("held-pages-at-end") if "held-pages-at-end" in ds else 0,
        "failure": str(ds["failure"].values),
        "scenario": {
            "memory": int(ds.attrs["scenario_memory"]),
            "workload": ds.attrs["scenario_workload"],
            "downtime-limit": float(ds.attrs["scenario_downtime_limit"]),
            "max-bandwidth": float(ds.attrs["scenario_max_bandwidth"]),
            "hint": bool(ds.attrs["scenario_hint"]),
            "hinting": str(
                ds.attrs.get("scenario_hinting", "fph" if ds.attrs["scenario_hint"] else "none")
            ),
            "init-on-alloc": bool(ds.attrs["scenario_init_on_alloc"]),
            "auto-converge": bool(ds.attrs.get("scenario_auto_converge", 0)),
            "profile": ds.attrs["profile_name"],
            "guest": ds.attrs.get("scenario_guest", "testbed-2018"),
            "seed": int(ds.attrs["scenario_seed"]),
        },
    }
