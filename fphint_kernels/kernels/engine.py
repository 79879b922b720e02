"""The engine: the main loop that runs the guest, the hint channel and the migration thread on
one clock.

Each step of ``step_ms``: dirty logging starts if due, the guest's workload runs
(:mod:`.workload`), then its hint worker and the host's iothread (:mod:`.balloon`), setup's
first sync if due, then the migration thread up to the step's end (:mod:`.precopy`), and the
trace is recorded (:mod:`.recorders`).

Simplification (docs/model.md): the migration thread and the guest advance in steps of
``step_ms`` (the guest acts first within a step).
"""

from __future__ import annotations

from .._numba import jit
from .balloon import guest_hint_step, host_free_page_start, host_hint_step
from .layout import F_LATE_LOG, LATE_LOG_MS, NOT_CONVERGED, RUNNING
from .precopy import bitmap_sync, dirty_log_start, sender_run
from .recorders import record_trace
from .workload import workload_step


@jit
def start(st, prm):
    """The ``migrate`` command: the clock starts, setup begins."""
    setup_end = prm["setup_ms"] + prm["t_sync"]
    st["vm_running"] = 1
    st["log_start_at"] = prm["setup_ms"]
    if prm["faults"] & F_LATE_LOG:
        st["log_start_at"] = setup_end + LATE_LOG_MS
    st["sender_time"] = setup_end
    st["hint_low_pfn"] = -1
    st["next_trace"] = 0.0


@jit
def run(st, prm, g, wl, hc, rec, stop_at):
    """Run the migration from where ``st`` stands to completion, the time cap, or ``stop_at``
    (ms; the caller may call again to resume, e.g. to draw a progress bar)."""
    dt = prm["step_ms"]
    setup_end = prm["setup_ms"] + prm["t_sync"]
    while st["now"] < stop_at:
        now = st["now"]
        step_end = now + dt
        if st["logging"] == 0 and now >= st["log_start_at"]:
            dirty_log_start(st, g)
        if st["vm_running"]:
            eff = dt * (1.0 - st["throttle"]) * prm["cpu_speed"] * prm["intensity"]
            workload_step(st, prm, g, wl, eff)
            if st["status"] != RUNNING:
                st["end_time"] = step_end
                break
            if prm["hint"]:
                guest_hint_step(st, prm, g, hc, now, dt)
        if prm["hint"]:
            host_hint_step(st, prm, g, hc, step_end)
        if st["setup_done"] == 0 and st["sender_time"] <= step_end:
            # ram_save_setup's sync #1 (the bitmap is all ones: it adds nothing)
            bitmap_sync(st, prm, g)
            st["setup_done"] = 1
            st["setup_time"] = setup_end
            st["round"] = 1
            st["round_start"] = setup_end
            st["window_start"] = setup_end
            st["period_start"] = setup_end
            if prm["hint"]:
                host_free_page_start(st, prm, setup_end)
        if st["setup_done"]:
            sender_run(st, prm, g, hc, rec, step_end)
        if st["next_trace"] <= step_end:
            record_trace(st, prm, rec, step_end)
        st["now"] = step_end
        if st["status"] != RUNNING:
            break
        if step_end >= prm["max_time"]:
            st["status"] = NOT_CONVERGED
            st["end_time"] = step_end
            break
