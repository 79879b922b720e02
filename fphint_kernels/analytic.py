"""The textbook geometric model of pre-copy live migration, as a baseline for the simulator.

Round 0 sends the whole memory ``V``; every later round sends what the guest dirtied while the
previous round was on the wire.  With link rate ``R`` and dirty rate ``D`` (both bytes/s) and
``lambda = D / R``, round ``i`` sends ``V_i = V_0 * lambda**i`` in ``T_i = V_i / R``.  Pre-copy stops
after the first round whose successor would fit in the threshold ``V_thd = R * downtime_limit``;
that last piece is sent with the VM stopped (the downtime).  Free page hinting enters as a smaller
first round: the hinted free memory is never sent.

The model knows nothing about zero pages, QEMU's 100 ms bandwidth windows, threshold-triggered
bitmap syncs, or the race between the guest's hints and the sender's scan: that is what the
page-level simulator (:func:`fphint_kernels.simulate`) adds, and the reproduction report shows
the two side by side.

References
----------
.. [1] H. Liu, H. Jin, C.-Z. Xu, X. Liao, "Performance and energy modeling for live migration of
   virtual machines", HPDC 2011, pp. 171-182, doi:10.1145/1996130.1996154 (section 3: the
   geometric series of rounds, ``V_i = V_mem * lambda**i``).
.. [2] C. Clark, K. Fraser, S. Hand, J. G. Hansen, E. Jul, C. Limpach, I. Pratt, A. Warfield,
   "Live Migration of Virtual Machines", NSDI 2005, pp. 273-286 (iterative pre-copy followed by
   stop-and-copy; the writable working set).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .config import HostProfile, Scenario
from .errors import FphintError
from .kernels.layout import NORMAL_RECORD, PAGE_SIZE, ZERO_RECORD

__all__ = ["PrecopyEstimate", "precopy_geometric", "scenario_inputs", "estimate_scenario"]


@dataclass(frozen=True)
class PrecopyEstimate:
    """Result of :func:`precopy_geometric` (times in ms, volumes in bytes).

    Attributes
    ----------
    total_time : float
        Fixed costs plus every round plus the stop-and-copy (ms).
    downtime : float
        Stop-and-copy time: the last volume over the link, plus the fixed switchover cost (ms).
    rounds : int
        Live rounds before stop-and-copy (``n + 1`` rounds ``0..n``).
    traffic : float
        Bytes sent, live rounds and stop-and-copy together.
    converged : bool
        False when ``lambda >= 1`` and the first round is above the threshold: pre-copy never
        reaches the threshold (the sum is then cut at ``max_rounds``).
    round_bytes : numpy.ndarray
        Bytes sent in each live round (dim ``round``), then the stop-and-copy volume last.
    """

    total_time: float
    downtime: float
    rounds: int
    traffic: float
    converged: bool
    round_bytes: np.ndarray = field(repr=False)


def precopy_geometric(
    memory_bytes: float,
    link_bytes_per_s: float,
    dirty_bytes_per_s: float,
    downtime_limit_ms: float,
    *,
    first_round_bytes: float | None = None,
    dirtyable_bytes: float | None = None,
    fixed_ms: float = 0.0,
    max_rounds: int = 30,
) -> PrecopyEstimate:
    """Time and traffic of pre-copy under the geometric model of Liu et al. [1]_.

    Parameters
    ----------
    memory_bytes : float
        Guest memory ``V_mem`` (bytes).
    link_bytes_per_s : float
        Effective transfer rate ``R`` (bytes/s), assumed constant.
    dirty_bytes_per_s : float
        Dirty rate ``D`` (bytes/s), assumed constant; ``lambda = D / R``.
    downtime_limit_ms : float
        Allowed downtime; the threshold is ``V_thd = R * downtime_limit``.
    first_round_bytes : float, optional
        Volume of round 0 (default ``memory_bytes``).  Free page hinting: memory minus the hinted
        free memory.
    dirtyable_bytes : float, optional
        Cap of every later round: a round cannot send more than the memory the guest writes
        (the writable working set of Clark et al. [2]_).  Default: no cap beyond ``memory_bytes``.
    fixed_ms : float
        Fixed costs added once (setup and switchover), 0 in the textbook model.
    max_rounds : int
        Cut of the series when it does not converge (Xen's ``DEF_MAX_ITERS`` is 29).

    Returns
    -------
    PrecopyEstimate

    Notes
    -----
    Round ``i`` sends ``V_i = min(V_0 * lambda**i, cap)`` and lasts ``V_i / R``.  Round 0 is always
    live; rounds go on while ``V_i > V_thd``; the first ``V_n <= V_thd`` (``n >= 1``) is sent with
    the VM stopped.  The closed form of
    the live time is ``(V_0 / R) * (1 - lambda**n) / (1 - lambda)`` with
    ``n = ceil(log(V_thd / V_0) / log(lambda))`` [1]_; the loop below computes the same sum with the
    cap applied.

    Examples
    --------
    >>> est = precopy_geometric(8 * 2**30, 1e9, 1e8, 300.0)
    >>> est.rounds, est.converged
    (2, True)
    >>> round(est.total_time)
    9535
    """
    for name, v in (
        ("memory", memory_bytes),
        ("link rate", link_bytes_per_s),
        ("downtime limit", downtime_limit_ms),
    ):
        if not (v > 0 and math.isfinite(v)):
            raise FphintError(f"analytic model: {name} must be a finite number > 0, got {v!r}")
    if not (dirty_bytes_per_s >= 0 and math.isfinite(dirty_bytes_per_s)):
        raise FphintError(f"analytic model: dirty rate must be >= 0, got {dirty_bytes_per_s!r}")
    v0 = float(memory_bytes if first_round_bytes is None else first_round_bytes)
    if not 0 <= v0 <= memory_bytes:
        raise FphintError("analytic model: first round must be between 0 and the memory size")
    cap = float(memory_bytes if dirtyable_bytes is None else min(dirtyable_bytes, memory_bytes))
    rate = float(link_bytes_per_s)
    lam = dirty_bytes_per_s / rate
    threshold = rate * downtime_limit_ms / 1e3
    sent = [v0]  # round 0 is always sent live (QEMU's threshold is 0 before the first window)
    while True:
        # what the guest dirtied while the previous round was on the wire
        sent.append(min(sent[-1] * lam, cap))
        if sent[-1] <= threshold or len(sent) > max_rounds:
            break
    converged = sent[-1] <= threshold
    live, last = sent[:-1], sent[-1]
    downtime = last / rate * 1e3
    live_ms = sum(live) / rate * 1e3
    return PrecopyEstimate(
        total_time=fixed_ms + live_ms + downtime,
        downtime=downtime,
        rounds=len(live),
        traffic=float(sum(sent)),
        converged=bool(converged),
        round_bytes=np.asarray(sent, dtype=float),
    )


def scenario_inputs(scenario: Scenario, profile: HostProfile | None = None) -> dict:
    """Inputs of the geometric model for a simulator scenario, from documented parameters only.

    Parameters
    ----------
    scenario : Scenario
        The migration (memory, workload, downtime limit, hint on/off, max-bandwidth).
    profile : HostProfile, optional
        Host costs (default: ``scenario.profile`` loaded from ``data/profiles/``).

    Returns
    -------
    dict
        ``memory_bytes``, ``link_bytes_per_s``, ``dirty_bytes_per_s``, ``downtime_limit_ms``,
        ``first_round_bytes``, ``dirtyable_bytes``, ``fixed_ms`` for :func:`precopy_geometric`.

    Notes
    -----
    The textbook model has one transfer rate.  It is taken here as the mean rate of round 0 over
    the pages it sends, with the profile's per-page costs: memory that holds data (kernel, page
    cache, freed memory with old data, the memmap) costs ``normal_page_ns`` or the wire time of
    4104 bytes, whichever is larger; the rest (never written, so zero) costs ``zero_page_ns`` or
    9 bytes of wire time; CPU costs are divided by ``cpu_speed``; the wire rate is
    ``min(link, max-bandwidth)``.  With hinting round 0 sends only data pages, so the rate is
    the normal-page rate.  The dirty rate is
    the workload's documented write rate (background writes, compiler heap rewrites, new page
    cache, new process memory), multiplied by ``intensity`` and ``cpu_speed``; later rounds are
    capped by the memory the workload writes.  With hinting, round 0 skips the guest's free
    memory (every free page, as if hints always won the race).
    """
    prof = profile if profile is not None else scenario.load_profile()
    p = prof.params
    w = scenario.load_workload().params
    mem = float(scenario.memory)
    speed = p["cpu_speed"]
    wire = min(p["link_bytes_per_s"], scenario.max_bandwidth)
    lay = scenario.memory_layout()  # the guest's memory plus what the workload adds
    memmap = mem / PAGE_SIZE * lay["memmap_bytes_per_page"]
    procs = w["jobs"] * w["proc_rss_mean"]
    used = lay["reserved_low"] + lay["low_used"] + lay["kaslr_image"] + memmap
    used += lay["base_used"] + lay["pagecache_initial"] + procs
    data = min(mem, used + lay["touched_free"] + w["fill"] * mem)
    zero = mem - data
    t_normal = max(p["normal_page_ns"] / speed * 1e-9, NORMAL_RECORD / wire)
    t_zero = max(p["zero_page_ns"] / speed * 1e-9, ZERO_RECORD / wire)
    if scenario.hint:  # round 0 sends only the memory that holds data
        rate = PAGE_SIZE / t_normal
    else:
        rate = mem / (data / PAGE_SIZE * t_normal + zero / PAGE_SIZE * t_zero)
    rates = w["intensity"] * speed
    dirty = rates * (
        w["background_dirty_pages_per_s"] * PAGE_SIZE
        + w["jobs"] * w["proc_rss_mean"] * w["proc_rewrite_per_s"]
        + w["pagecache_rate"]
        + (w["jobs"] * w["proc_rss_mean"] * 1e3 / w["proc_lifetime_ms"] if w["jobs"] else 0.0)
    )
    dirtyable = w["background_hot"] + 3 * procs + w["dirty_bytes"] + w["pagecache_rate"]
    if w["dirty_bytes"]:
        dirty += rates * w["dirty_bytes"] * 1e3 / max(w["dirty_interval_ms"], 1e-3)
    first = used if scenario.hint else mem
    nr_pages = mem / PAGE_SIZE
    fixed = (
        p["setup_fixed_ms"]
        + (p["setup_ns_per_page"] + p["sync_ns_per_page"]) * nr_pages / speed * 1e-6
        + p["switchover_fixed_ms"]
    )
    return {
        "memory_bytes": mem,
        "link_bytes_per_s": rate,
        "dirty_bytes_per_s": dirty,
        "downtime_limit_ms": float(scenario.downtime_limit),
        "first_round_bytes": min(first, mem),
        "dirtyable_bytes": max(dirtyable, PAGE_SIZE),
        "fixed_ms": fixed,
    }


def estimate_scenario(scenario: Scenario, profile: HostProfile | None = None) -> PrecopyEstimate:
    """The geometric model applied to a simulator scenario (see :func:`scenario_inputs`).

    Parameters
    ----------
    scenario : Scenario
        The migration.
    profile : HostProfile, optional
        Host costs (default: ``scenario.profile``).

    Returns
    -------
    PrecopyEstimate
    """
    return precopy_geometric(**scenario_inputs(scenario, profile))
