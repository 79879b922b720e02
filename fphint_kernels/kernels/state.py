"""Layouts of the scalar state and parameter records shared by the kernels.

Per-page state lives in arrays (bitmaps, versions, buddy orders); every scalar lives in one
NumPy structured record so kernels can pass it around by reference (``st["pending"] += 1``
works compiled and interpreted).  Field names follow QEMU and Linux where they exist.
"""

from __future__ import annotations

import numpy as np

i8 = np.int64
f8 = np.float64

# ---- constants shared by kernels ---------------------------------------------------------
MAX_ORDER = 10  # highest buddy order (4 MiB blocks); Linux 4.20 MAX_ORDER - 1
HINT_BLOCK = 1 << MAX_ORDER
RUNNING, COMPLETED, NOT_CONVERGED, FAILED = 0, 1, 2, 3
FAIL_NONE, FAIL_OOM = 0, 1
# virtio-balloon host status (hw/virtio/virtio-balloon.c, QEMU 4.0)
S_STOP, S_REQUESTED, S_START, S_DONE = 0, 1, 2, 3
CMD_ID_STOP, CMD_ID_DONE, CMD_ID_MIN = 0, 1, 0x80000000
# hint queue element kinds (virtqueue buffers)
Q_BLOCK, Q_START, Q_STOP = 0, 1, 2
QUEUE_SIZE = 1024  # VIRTQUEUE_MAX_SIZE of the free page vq
# release policies
REL_DONE, REL_SHRINKER, REL_AFTER_PASS = 0, 1, 2
# fault bits
F_OUTSIDE_START, F_STALE_AFTER_SYNC, F_LATE_LOG, F_NO_REARM = 1, 2, 4, 8
# trace columns
T_PENDING, T_TRANSFERRED, T_SENDER, T_HINT, T_FREE, T_HELD, T_DLOG, T_ROUND = range(8)
N_TRACE = 8
# round columns
R_START, R_END, R_DUP, R_NORMAL, R_BYTES, R_SKIPPED, R_DIRTIED, R_PENDING, R_THRESH, R_BW = range(
    10
)
N_ROUND = 10
# page-map states
PM_USED, PM_FREE, PM_HELD, PM_SENT, PM_SKIPPED, PM_DIRTY = range(6)
N_PM = 6
LATE_LOG_MS = 200.0  # with the late-dirty-log fault: logging starts this long after setup

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
        ("vcpus", i8),
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
        ("write_fault_ns", f8),
        ("cpu_speed", f8),
        # workload
        ("bg_rate", f8),
        ("bg_hot", i8),
        ("jobs", i8),
        ("rss_mu", f8),
        ("rss_sigma", f8),
        ("rss_cap", i8),
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
