"""The engine: the main loop that runs the guest, the hint channel and the migration thread on
one clock.

Each step of ``step_ms``: dirty logging starts if due, the guest's workload runs
(:mod:`.workload`), then its hint worker and the host's iothread (:mod:`.balloon`), setup's
first sync if due, then the migration thread up to the step's end (:mod:`.precopy`), and the
trace is recorded (:mod:`.recorders`).

Sharing the host's CPUs (measured on a 2-core host, docs/model.md "Host contention"): the
migration thread, the destination, the guest's busy vCPUs, the device's iothread and any other
busy thread on the host (``background``) each want a CPU.  When they want more than the host has
(``host_cpus``), each gets the same share of one, and everything they do takes that much longer.
The share of a step is set from the threads' demand in the step before (wall time they were
busy), so a thread that waits (a sender blocked on a full stream, an idle guest) asks for
nothing.

Simplification (docs/model.md): the migration thread and the guest advance in steps of
``step_ms`` (the guest acts first within a step).
"""

from __future__ import annotations

from .._numba import jit
from .balloon import guest_hint_step, host_free_page_start, host_hint_step, reporting_step
from .layout import (
    AFTER_CANCEL_MS,
    CANCELLED,
    D_REPORTING,
    F_LATE_LOG,
    FAILED,
    LATE_LOG_MS,
    NOT_CONVERGED,
    RUNNING,
)
from .precopy import bitmap_sync, dirty_log_start, migration_cancel, sender_run
from .recorders import record_trace
from .rng import rng_exponential
from .workload import workload_step


@jit
def start(st, prm, h):
    """The ``migrate`` command: the clock starts, setup begins (it takes ``setup_ms`` plus a
    random extra of mean ``setup_jitter_ms``, then the first sync)."""
    setup = prm["setup_ms"]
    if prm["setup_jitter_ms"] > 0.0:
        setup += rng_exponential(h.rng, prm["setup_jitter_ms"])
    setup_end = setup + prm["t_sync"]
    st["vm_running"] = 1
    st["log_start_at"] = setup
    if prm["faults"] & F_LATE_LOG:
        st["log_start_at"] = setup_end + LATE_LOG_MS
    st["sender_time"] = setup_end
    st["hint_low_pfn"] = -1
    st["cancel_time"] = -1.0
    st["next_trace"] = 0.0
    st["share"] = 1.0


@jit
def cpu_share(st, prm, step_start, dt):
    """The share of a CPU each busy thread gets in the next step, from this step's demand."""
    dst = min(dt, max(0.0, st["dst_clock"] - step_start))
    want = (st["busy_mig"] + dst + st["busy_vcpu"] + st["busy_io"]) / dt + prm["background"]
    if st["vm_running"]:
        want += prm["guest_busy"] * (1.0 - st["throttle"])
    st["busy_mig"] = 0.0
    st["busy_vcpu"] = 0.0
    st["busy_io"] = 0.0
    if want > prm["host_cpus"]:
        return prm["host_cpus"] / want
    return 1.0


@jit
def run(st, prm, g, wl, hc, rec, h, stop_at):
    """Run the migration from where ``st`` stands to completion, the time cap, or ``stop_at``
    (ms; the caller may call again to resume, e.g. to draw a progress bar).

    A migration cancelled at ``cancel_at`` (:func:`.precopy.migration_cancel`) stops sending;
    the guest runs on for ``AFTER_CANCEL_MS`` so the trace shows what it is left with."""
    dt = prm["step_ms"]
    while st["now"] < stop_at:
        now = st["now"]
        step_end = now + dt
        cancelled = st["status"] == CANCELLED
        if not cancelled and now >= prm["cancel_at"]:
            migration_cancel(st, prm, g, hc, rec, now)
            cancelled = True
        if st["logging"] == 0 and now >= st["log_start_at"] and not cancelled:
            dirty_log_start(st, g)
        if st["vm_running"]:
            eff = dt * (1.0 - st["throttle"]) * prm["cpu_speed"] * prm["intensity"]
            workload_step(st, prm, g, wl, eff * st["share"])
            if st["status"] == FAILED:
                st["end_time"] = step_end
                break
            if prm["hint"]:
                guest_hint_step(st, prm, g, hc, h, now, dt)
            elif prm["design"] == D_REPORTING:
                reporting_step(st, prm, g, h, now)
        if cancelled:
            if st["next_trace"] <= step_end:
                record_trace(st, prm, rec, step_end)
            st["share"] = cpu_share(st, prm, now, dt)
            st["now"] = step_end
            if step_end >= st["cancel_time"] + AFTER_CANCEL_MS:
                break
            continue
        if prm["hint"]:
            host_hint_step(st, prm, g, hc, step_end)
        if st["setup_done"] == 0 and st["sender_time"] <= step_end:
            # ram_save_setup's sync #1 (the bitmap is all ones: it adds nothing)
            setup_end = st["sender_time"]
            bitmap_sync(st, prm, g)
            st["setup_done"] = 1
            st["setup_time"] = setup_end
            st["round"] = 1
            st["round_start"] = setup_end
            st["window_start"] = setup_end
            st["period_start"] = setup_end
            if prm["hint"]:
                host_free_page_start(st, prm, h, setup_end)
        if st["setup_done"]:
            sender_run(st, prm, g, hc, rec, h, step_end)
        if st["next_trace"] <= step_end:
            record_trace(st, prm, rec, step_end)
        st["share"] = cpu_share(st, prm, now, dt)
        st["now"] = step_end
        if st["status"] != RUNNING:
            break
        if step_end >= prm["max_time"]:
            st["status"] = NOT_CONVERGED
            st["end_time"] = step_end
            break
