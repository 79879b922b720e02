"""Every layout constant of the kernels, in one place.

Sizes (the page, the records on the wire, the buddy orders), codes (run status, hint device
status, virtqueue element kinds, release policies, faults), the columns of the recorders, the
scalar state and parameter records, and the named bundles of arrays the kernels pass around.

Per-page state lives in arrays (bitmaps, versions, buddy orders), grouped in named tuples
(:class:`Guest`, :class:`Workload`, :class:`HintChannel`, :class:`Recorders`) that Numba compiles
as tuples and that stay plain named tuples with ``NUMBA_DISABLE_JIT=1``.  Every scalar lives in
one NumPy structured record so kernels can pass it around by reference (``st["pending"] += 1``
works compiled and interpreted).  Field names follow QEMU and Linux where they exist.

The bundles are flat and hold few arrays on purpose: a compiled call counts a reference to
every array it passes (an atomic add and subtract each), and taking a bundle out of a bundle
costs as much again, so the kernels that run millions of times per migration (allocate, free,
write a block) pay for every array of the bundle they get.  Hence the seven per-page bitmaps
are the rows of one array, and the guest is one bundle rather than a bundle of bundles.

This module imports NumPy only, so the Python layer can take its constants from here.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

i8 = np.int64
f8 = np.float64

# ---- sizes ---------------------------------------------------------------------------------
PAGE_SIZE = 4096  # TARGET_PAGE_SIZE on x86
ZERO_RECORD = 9  # 8-byte header | RAM_SAVE_FLAG_ZERO + 1 fill byte
NORMAL_RECORD = 8 + PAGE_SIZE  # 8-byte header | RAM_SAVE_FLAG_PAGE + the page (4104 bytes)
SLICE_OVERHEAD = 18  # section header (5) + footer (5) + RAM_SAVE_FLAG_EOS (8)
MAX_ORDER = 10  # highest buddy order (4 MiB blocks); Linux 4.20 MAX_ORDER - 1
#: order of the blocks the balloon driver hints: VIRTIO_BALLOON_FREE_PAGE_ORDER (Linux 4.20),
#: defined there as MAX_ORDER - 1, i.e. the highest buddy order
HINT_ORDER = MAX_ORDER
HINT_PAGES = 1 << HINT_ORDER
QUEUE_SIZE = 1024  # VIRTQUEUE_MAX_SIZE of the free page vq
#: free page reporting (Linux 5.7 ``mm/page_reporting.{c,h}``): blocks of at least
#: pageblock_order (order 9, 2 MiB on x86), reported in batches of PAGE_REPORTING_CAPACITY
REPORTING_ORDER = 9
REPORTING_CAPACITY = 32
#: each pass reports about 1/16 of each free list: DIV_ROUND_UP(nr_free, CAPACITY * 16) batches
REPORTING_LIST_SHARE = 16

# ---- times (ms) ----------------------------------------------------------------------------
BUFFER_DELAY = 100.0  # one rate-limit / bandwidth window
MAX_WAIT = 50.0  # longest ram_save_iterate slice
LATE_LOG_MS = 200.0  # with the late-dirty-log fault: logging starts this long after setup
#: PAGE_REPORTING_DELAY (2 * HZ): the reporting worker runs this long after it is requested
REPORTING_DELAY = 2000.0
#: after a cancelled (or failed) migration the guest is followed for this long
AFTER_CANCEL_MS = 2000.0
#: stream checkpoints (the destination's progress) are taken every this many bytes sent
CHECKPOINT_BYTES = 65536
# how QEMU's migration thread holds the dirty bitmap's lock (bitmap_mutex)
LOCK_PER_PAGE = 0  # QEMU 4.0-6.0: around each page's test-and-clear (386a907b37)
LOCK_PER_SLICE = 1  # QEMU 6.1+: across each ram_save_iterate slice (63268c4970)

# ---- codes ---------------------------------------------------------------------------------
RUNNING, COMPLETED, NOT_CONVERGED, FAILED, CANCELLED = 0, 1, 2, 3, 4
# hinting designs (the ``design`` parameter)
D_NONE, D_FPH, D_RIP, D_REPORTING, D_ORACLE = 0, 1, 2, 3, 4
# what the device tells the guest when a migration is cancelled or fails (CLEANUP notifier)
CANCEL_STOP, CANCEL_DONE = 0, 1  # QEMU 4.0: STOP, blocks stay held; 5.1 (dd8eeb9671fc): DONE
FAIL_NONE, FAIL_OOM = 0, 1
#: not a failure of the migration: the run stopped because the round recorder was full
FAIL_ROUNDS = 2
# virtio-balloon host status (hw/virtio/virtio-balloon.c, QEMU 4.0)
S_STOP, S_REQUESTED, S_START, S_DONE = 0, 1, 2, 3
CMD_ID_STOP, CMD_ID_MIN = 0, 0x80000000
# hint queue element kinds (virtqueue buffers)
Q_BLOCK, Q_START, Q_STOP = 0, 1, 2
# release policies
REL_DONE, REL_SHRINKER, REL_AFTER_PASS = 0, 1, 2
# fault bits
F_OUTSIDE_START, F_STALE_AFTER_SYNC, F_LATE_LOG, F_NO_REARM = 1, 2, 4, 8

# ---- recorder columns: the Dataset's variable names, the kernels' column indices -----------
#: per-time trace (dim ``time``)
TRACE_COLUMNS = (
    "pending",
    "transferred",
    "sender-pfn",
    "hint-pfn",
    "free-pages",
    "held-pages",
    "dirty-log-pages",
    "round-index",
    "zero-pages-sent",
    "normal-pages-sent",
)
T_PENDING = TRACE_COLUMNS.index("pending")
T_TRANSFERRED = TRACE_COLUMNS.index("transferred")
T_SENDER = TRACE_COLUMNS.index("sender-pfn")
T_HINT = TRACE_COLUMNS.index("hint-pfn")
T_FREE = TRACE_COLUMNS.index("free-pages")
T_HELD = TRACE_COLUMNS.index("held-pages")
T_DLOG = TRACE_COLUMNS.index("dirty-log-pages")
T_ROUND = TRACE_COLUMNS.index("round-index")
T_DUP = TRACE_COLUMNS.index("zero-pages-sent")
T_NORMAL = TRACE_COLUMNS.index("normal-pages-sent")
N_TRACE = len(TRACE_COLUMNS)
#: per-round record (dim ``round``)
ROUND_COLUMNS = (
    "round-start",
    "round-end",
    "round-duplicate",
    "round-normal",
    "round-bytes",
    "round-skipped",
    "round-dirtied",
    "round-pending-after-sync",
    "round-threshold",
    "round-bandwidth",
)
R_START = ROUND_COLUMNS.index("round-start")
R_END = ROUND_COLUMNS.index("round-end")
R_DUP = ROUND_COLUMNS.index("round-duplicate")
R_NORMAL = ROUND_COLUMNS.index("round-normal")
R_BYTES = ROUND_COLUMNS.index("round-bytes")
R_SKIPPED = ROUND_COLUMNS.index("round-skipped")
R_DIRTIED = ROUND_COLUMNS.index("round-dirtied")
R_PENDING = ROUND_COLUMNS.index("round-pending-after-sync")
R_THRESH = ROUND_COLUMNS.index("round-threshold")
R_BW = ROUND_COLUMNS.index("round-bandwidth")
N_ROUND = len(ROUND_COLUMNS)
#: page-map states (coordinate ``page_state`` of ``page-map``)
PAGE_STATES = ("used", "free", "held", "sent", "skipped", "dirty")
PM_USED = PAGE_STATES.index("used")
PM_FREE = PAGE_STATES.index("free")
PM_HELD = PAGE_STATES.index("held")
PM_SENT = PAGE_STATES.index("sent")
PM_SKIPPED = PAGE_STATES.index("skipped")
PM_DIRTY = PAGE_STATES.index("dirty")
N_PM = len(PAGE_STATES)

# ---- per-page bitmaps: the rows of Guest.bm, one bit per page each (:mod:`.bitmap`) -------
BITMAPS = (
    "bmap",  # QEMU's migration bitmap: the page is pending
    "dlog",  # KVM's dirty log
    "unarmed",  # written since write protection was (re-)armed: no fault, no log
    "nonzero",  # the page's content is not all zeros
    "held",  # held by the balloon driver
    "sent",  # sent in the current round (page map)
    "skip",  # skipped by a hint in the current round (page map)
)
BM_BMAP = BITMAPS.index("bmap")
BM_DLOG = BITMAPS.index("dlog")
BM_UNARMED = BITMAPS.index("unarmed")
BM_NONZERO = BITMAPS.index("nonzero")
BM_HELD = BITMAPS.index("held")
BM_SENT = BITMAPS.index("sent")
BM_SKIP = BITMAPS.index("skip")
N_BM = len(BITMAPS)

# ---- scalar records ------------------------------------------------------------------------
STATE_DTYPE = np.dtype(
    [
        # sizes and clocks
        ("n", i8),
        ("now", f8),
        ("sender_time", f8),
        ("status", i8),
        ("failure", i8),
        ("vm_running", i8),
        ("logging", i8),
        ("log_start_at", f8),
        ("setup_done", i8),
        ("setup_time", f8),
        ("downtime_start", f8),
        ("end_time", f8),
        # migration thread (migration/ram.c RAMState, migration.c MigrationState)
        ("pending", i8),
        ("cursor", i8),
        ("in_slice", i8),
        ("slice_start", f8),
        ("slice_pages", i8),
        ("window_start", f8),
        ("window_bytes", i8),
        ("bandwidth", f8),
        ("threshold", f8),
        ("sync_count", i8),
        ("round", i8),
        ("round_start", f8),
        ("r_dup", i8),
        ("r_normal", i8),
        ("r_bytes", i8),
        ("r_skipped", i8),
        ("dup", i8),
        ("normal", i8),
        ("bytes", i8),
        ("hinted", i8),
        ("skipped", i8),
        ("expected_downtime", f8),
        # auto-converge
        ("throttle", f8),
        ("ac_cnt", i8),
        ("period_start", f8),
        ("period_dirty", i8),
        ("period_bytes", i8),
        # guest memory
        ("nr_free_pages", i8),
        ("wmark_min", i8),
        ("wmark_low", i8),
        ("wmark_high", i8),
        ("hint_floor", i8),  # free pages the hint worker leaves (min watermark + reserves)
        ("dlog_count", i8),
        ("write_faults", i8),
        ("held_pages", i8),
        ("held_max", i8),
        ("held_n", i8),
        ("memmap_start", i8),
        ("reserved_low", i8),
        ("low_start", i8),  # first pfn of the boot's early allocations (low_span)
        ("zone_start", i8),  # first pfn of the Normal zone the allocator prefers (0: one zone)
        ("low_span", i8),  # pages above reserved_low kept by the boot, partly written
        ("low_used", i8),  # ... of which this many hold data
        ("img_start", i8),  # the kernel image, placed at a random address at boot (KASLR) ...
        ("img_pages", i8),  # ... and its pages (not in the allocator, all written)
        ("bf_start", i8),  # the boot's freed data, at a fixed place: first pfn ...
        ("bf_pages", i8),  # ... its pages (free, with what freeing left in them) ...
        ("bf_span", i8),  # ... in 1 MiB runs spread evenly over this many pages
        ("alloc_low", i8),  # the allocator takes the lowest free block first (Linux 5.10+)
        # balloon device and driver
        ("host_status", i8),
        ("host_cmd", i8),
        ("guest_cmd_active", i8),
        ("guest_start_at", f8),
        ("guest_start_cmd", i8),
        ("guest_reporting", i8),
        ("hint_budget", f8),  # ns the worker may spend (negative: time it still owes)
        ("releasing", i8),  # after-pass with poisoning: the worker is freeing its blocks
        ("hint_cpu_ns", f8),
        ("zero_cpu_ns", f8),
        ("hint_low_pfn", i8),
        ("q_head", i8),
        ("q_count", i8),
        ("stale_n", i8),
        ("redirtied", i8),  # pages skipped by a hint that the next sync found dirty
        ("reported", i8),  # pages discarded by free page reporting
        ("rep_next", f8),  # when the reporting worker runs next (-1: not scheduled)
        ("rip_order", i8),  # report-in-place: the free list being walked ...
        ("rip_idx", i8),  # ... and the next block index in it
        ("cancel_time", f8),  # when the migration was cancelled (-1: it was not)
        ("held_at_cancel", i8),
        # workload
        ("pc_head", i8),
        ("pc_count", i8),
        ("pc_acc", f8),
        ("base_n", i8),
        ("dl_cursor", i8),
        ("dl_acc", f8),
        ("dl_n", i8),
        # the host: the stream to the destination, the CPUs everyone shares
        ("dst_clock", f8),  # the destination has processed every byte sent so far by then
        ("ck_head", i8),  # oldest stream checkpoint still needed (a ring of CHECKPOINT_BYTES)
        ("ck_count", i8),
        ("ck_next", i8),  # bytes sent at which the next checkpoint is taken
        ("share", f8),  # share of a CPU each busy thread gets in this step (1: no contention)
        ("busy_mig", f8),  # ms of CPU this step: the migration thread
        ("busy_vcpu", f8),  # ... the guest's vCPUs
        ("busy_io", f8),  # ... the device's iothread
        ("cpu_mig", f8),  # ms of CPU over the run: the migration thread
        ("cpu_dst", f8),  # ... the destination
        ("cpu_vcpu", f8),  # ... the guest's vCPUs on hinting, zeroing and the dirty loop
        ("dl_used", f8),  # ms of vCPU time the dirty loop used in this step
        ("slices", i8),  # ram_save_iterate slices started
        ("hints_early", i8),  # hinted blocks applied before the first slice
        ("hints_boundary", i8),  # ... at the ends of slices (QEMU 6.1+ lock)
        ("boundary_drains", i8),  # slice ends at which the iothread drained its queue
        ("drain_missed", i8),  # the last slice end with hints queued did not drain them
        # records
        ("n_trace", i8),
        ("next_trace", f8),
        ("n_rounds", i8),
        ("n_map", i8),
    ]
)

PARAM_DTYPE = np.dtype(
    [
        # scenario
        ("downtime_limit", f8),
        ("max_bandwidth", f8),
        ("hint", i8),  # the balloon's free page protocol runs (fph, report-in-place)
        ("design", i8),  # D_NONE ... D_ORACLE
        ("hint_order", i8),  # order of the hinted / reported blocks
        ("init_on_alloc", i8),
        ("init_on_free", i8),
        ("poison", i8),
        ("poison_val", i8),  # the device knows the guest's poison value (PAGE_POISON)
        ("pcp_keep", i8),  # pages of the touched memory's last frees left on per-cpu lists
        ("cancel_at", f8),  # ms; inf: never
        ("cancel_done", i8),  # CANCEL_STOP or CANCEL_DONE
        ("release", i8),
        ("auto_converge", i8),
        ("faults", i8),
        ("max_time", f8),
        ("step_ms", f8),
        ("trace_ms", f8),
        # host profile, converted to ms / bytes per ms and divided by cpu_speed
        ("t_zero", f8),
        ("t_normal", f8),
        ("link_bytes_per_ms", f8),
        ("t_word", f8),
        ("t_sync", f8),
        ("setup_ms", f8),
        ("t_switchover", f8),
        ("hint_block_ns", f8),
        ("hint_start_ms", f8),
        ("hint_latency_ms", f8),
        ("zero_fill_ns", f8),
        ("cpu_speed", f8),
        # host: contention, the destination, the stream, the bitmap lock
        ("host_cpus", f8),  # CPUs shared by both QEMUs and the guest (inf: plenty)
        ("background", f8),  # busy threads of other work on the host
        ("t_dst_zero", f8),  # ms the destination spends on one zero page
        ("t_dst_normal", f8),  # ... on one normal page (copy into guest RAM)
        ("t_first_touch", f8),  # ms to allocate and zero one host region of guest RAM
        ("region_shift", i8),  # log2 of the pages in one host region (9: 2 MiB huge pages)
        ("stream_bytes", f8),  # bytes in flight between the two QEMUs before the sender blocks
        ("bitmap_lock", i8),  # LOCK_PER_PAGE or LOCK_PER_SLICE
        ("t_lock", f8),  # ms the per-page lock costs each page (LOCK_PER_PAGE)
        ("t_hint_apply", f8),  # ms the iothread spends applying one hinted block
        ("boundary_hints", f8),  # mean blocks applied at a slice end the sender does not block
        ("boundary_drain_p", f8),  # chance the iothread drains its queue at such an end
        ("flush_wait_p", f8),  # chance the iothread drains its queue at a slice end with hints
        ("flush_wait_p_after", f8),  # ... at the slice end after one that did not drain
        ("setup_jitter_ms", f8),  # mean of the exponential extra setup time
        # guest vCPUs
        ("vcpus", i8),
        ("hint_start_jitter_ms", f8),  # mean of the exponential extra START latency
        ("write_fault_ms", f8),  # vCPU time of a write fault while dirty logging
        ("store_ms", f8),  # vCPU time of one write to a page that needs no fault
        ("guest_busy", f8),  # vCPUs the workload keeps busy (compiler jobs)
        # workload
        ("bg_rate", f8),
        ("bg_hot", i8),
        ("jobs", i8),
        ("rss_mu", f8),
        ("rss_sigma", f8),
        ("life_ms", f8),
        ("alloc_frac", f8),
        ("rewrite_per_ms", f8),
        ("anon_order", i8),
        ("pc_rate", f8),
        ("pc_order", i8),
        ("dl_interval", f8),
        ("intensity", f8),
    ]
)


def new_state() -> np.ndarray:
    return np.zeros(1, dtype=STATE_DTYPE)


def new_params() -> np.ndarray:
    return np.zeros(1, dtype=PARAM_DTYPE)


# ---- bundles of arrays ---------------------------------------------------------------------
# (p = pages, w = uint64 words of a page bitmap)


class Buddy(NamedTuple):
    """The buddy allocator (:mod:`.buddy`); ``st["nr_free_pages"]`` counts its free pages.

    The buddy kernels take any bundle with these fields: a ``Buddy`` of its own, or the
    :class:`Guest`, whose first fields they are.
    """

    free_order: np.ndarray  #: int8[p]: order of the free block headed at pfn, -1 otherwise
    freemap: np.ndarray  #: uint64[...]: one bitmap per order, order k from word fm_off[k]
    fm_off: np.ndarray  #: int64[MAX_ORDER + 2]: first word of each order's bitmap
    fm_top: np.ndarray  #: int64[MAX_ORDER + 1]: highest word of each order that may be non-zero
    #: int64[2 (MAX_ORDER + 1)]: lowest word of each order that may be non-zero, then the same
    #: within the preferred zone (``st["zone_start"]``)
    fm_bot: np.ndarray
    nr_free: np.ndarray  #: int64[MAX_ORDER + 1]: free blocks per order


class Guest(NamedTuple):
    """The guest's memory: its pages and what the guest kernel keeps about them."""

    # the buddy allocator (the fields of Buddy, in its order)
    free_order: np.ndarray  #: int8[p]: order of the free block headed at pfn, -1 otherwise
    freemap: np.ndarray  #: uint64[...]: one bitmap per order, order k from word fm_off[k]
    fm_off: np.ndarray  #: int64[MAX_ORDER + 2]: first word of each order's bitmap
    fm_top: np.ndarray  #: int64[MAX_ORDER + 1]: highest word of each order that may be non-zero
    #: int64[2 (MAX_ORDER + 1)]: lowest word of each order that may be non-zero, then the same
    #: within the preferred zone (``st["zone_start"]``)
    fm_bot: np.ndarray
    nr_free: np.ndarray  #: int64[MAX_ORDER + 1]: free blocks per order
    # the per-page bitmaps
    bm: np.ndarray  #: uint64[N_BM, w]: one row per bitmap (BM_* above)
    # per-page content versions (the nothing-lost check compares them)
    ver_src: np.ndarray  #: uint32[p]: version of each page's content in the guest
    ver_dst: np.ndarray  #: uint32[p]: version the destination received
    # lists of blocks
    held_blocks: np.ndarray  #: int64[p >> hint order]: blocks the balloon driver holds (a stack)
    pc_ring: np.ndarray  #: int32[...]: page-cache blocks, oldest first (a ring)


class Workload(NamedTuple):
    """The guest's programs (:mod:`.workload`; j = compiler jobs)."""

    base_pool: np.ndarray  #: int32[...]: pages of base memory
    dl_pool: np.ndarray  #: int32[...]: pages of the dirty-loop buffer
    rngs: np.ndarray  #: int64[2, 6]: MRG32k3a streams: 0 the workload, 1 the initial state
    job_age: np.ndarray  #: float64[j], workload ms
    job_life: np.ndarray  #: float64[j], workload ms
    job_target: np.ndarray  #: int64[j]: blocks at peak RSS (0: not started)
    job_nblk: np.ndarray  #: int64[j]: blocks allocated
    job_acc: np.ndarray  #: float64[j]: fractional blocks to allocate
    job_pool: np.ndarray  #: int32[j, blocks]: pfns of each job's blocks


class HintChannel(NamedTuple):
    """The free page virtqueue (a ring of QUEUE_SIZE elements) and the stale set."""

    kind: np.ndarray  #: int64[q]: Q_BLOCK, Q_START or Q_STOP
    pfn: np.ndarray  #: int64[q]: first page of a hinted block
    cmd: np.ndarray  #: int64[q]: command id
    order: np.ndarray  #: int64[q]: order of a hinted block
    ready: np.ndarray  #: float64[q]: time the iothread handles it
    stale: np.ndarray  #: int64[q]: blocks kept past a sync (stale-hint-after-sync fault)


class Host(NamedTuple):
    """The two QEMUs' host: its memory, the stream between them, its random timing.

    (r = host regions of guest RAM, 2 MiB with transparent huge pages; k = checkpoints)
    """

    dst_touched: np.ndarray  #: uint64[r words]: regions of the destination's RAM written so far
    src_touched: np.ndarray  #: uint64[r words]: regions of the source's RAM the guest has written
    ck_bytes: np.ndarray  #: int64[k]: stream checkpoints (a ring): bytes sent ...
    ck_time: np.ndarray  #: float64[k]: ... and when the destination has processed them
    rng: np.ndarray  #: int64[6]: MRG32k3a stream of the host's timing (setup, START, the lock)


class Recorders(NamedTuple):
    """What the run leaves behind for the Dataset."""

    trace: np.ndarray  #: float64[times, N_TRACE]
    trace_t: np.ndarray  #: float64[times]: time of each trace row
    rounds: np.ndarray  #: float64[rounds, N_ROUND]
    pm: np.ndarray  #: int64[rounds, bins, N_PM]: the page map (0 rounds: off)
    pm_free: np.ndarray  #: uint64[w]: scratch for the page map
