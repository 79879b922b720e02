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

# ---- times (ms) ----------------------------------------------------------------------------
BUFFER_DELAY = 100.0  # one rate-limit / bandwidth window
MAX_WAIT = 50.0  # longest ram_save_iterate slice
LATE_LOG_MS = 200.0  # with the late-dirty-log fault: logging starts this long after setup

# ---- codes ---------------------------------------------------------------------------------
RUNNING, COMPLETED, NOT_CONVERGED, FAILED = 0, 1, 2, 3
FAIL_NONE, FAIL_OOM = 0, 1
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
)
T_PENDING = TRACE_COLUMNS.index("pending")
T_TRANSFERRED = TRACE_COLUMNS.index("transferred")
T_SENDER = TRACE_COLUMNS.index("sender-pfn")
T_HINT = TRACE_COLUMNS.index("hint-pfn")
T_FREE = TRACE_COLUMNS.index("free-pages")
T_HELD = TRACE_COLUMNS.index("held-pages")
T_DLOG = TRACE_COLUMNS.index("dirty-log-pages")
T_ROUND = TRACE_COLUMNS.index("round-index")
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
        ("dlog_count", i8),
        ("write_faults", i8),
        ("held_pages", i8),
        ("held_max", i8),
        ("held_n", i8),
        ("memmap_start", i8),
        ("reserved_low", i8),
        # balloon device and driver
        ("host_status", i8),
        ("host_cmd", i8),
        ("guest_cmd_active", i8),
        ("guest_start_at", f8),
        ("guest_start_cmd", i8),
        ("guest_reporting", i8),
        ("hint_budget", f8),
        ("hint_cpu_ns", f8),
        ("zero_cpu_ns", f8),
        ("hint_low_pfn", i8),
        ("q_head", i8),
        ("q_count", i8),
        ("stale_n", i8),
        # workload
        ("pc_head", i8),
        ("pc_count", i8),
        ("pc_acc", f8),
        ("base_n", i8),
        ("dl_cursor", i8),
        ("dl_acc", f8),
        ("dl_n", i8),
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
        ("hint", i8),
        ("init_on_alloc", i8),
        ("poison", i8),
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
    nr_free: np.ndarray  #: int64[MAX_ORDER + 1]: free blocks per order


class Guest(NamedTuple):
    """The guest's memory: its pages and what the guest kernel keeps about them."""

    # the buddy allocator (the fields of Buddy, in its order)
    free_order: np.ndarray  #: int8[p]: order of the free block headed at pfn, -1 otherwise
    freemap: np.ndarray  #: uint64[...]: one bitmap per order, order k from word fm_off[k]
    fm_off: np.ndarray  #: int64[MAX_ORDER + 2]: first word of each order's bitmap
    fm_top: np.ndarray  #: int64[MAX_ORDER + 1]: highest word of each order that may be non-zero
    nr_free: np.ndarray  #: int64[MAX_ORDER + 1]: free blocks per order
    # the per-page bitmaps
    bm: np.ndarray  #: uint64[N_BM, w]: one row per bitmap (BM_* above)
    # per-page content versions (the nothing-lost check compares them)
    ver_src: np.ndarray  #: uint32[p]: version of each page's content in the guest
    ver_dst: np.ndarray  #: uint32[p]: version the destination received
    # lists of blocks
    held_blocks: np.ndarray  #: int64[p >> HINT_ORDER]: blocks the balloon driver holds (a stack)
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
    ready: np.ndarray  #: float64[q]: time the iothread handles it
    stale: np.ndarray  #: int64[q]: blocks kept past a sync (stale-hint-after-sync fault)


class Recorders(NamedTuple):
    """What the run leaves behind for the Dataset."""

    trace: np.ndarray  #: float64[times, N_TRACE]
    trace_t: np.ndarray  #: float64[times]: time of each trace row
    rounds: np.ndarray  #: float64[rounds, N_ROUND]
    pm: np.ndarray  #: int64[rounds, bins, N_PM]: the page map (0 rounds: off)
    pm_free: np.ndarray  #: uint64[w]: scratch for the page map
