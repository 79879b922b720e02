"""Measured runs against the simulator: end counters, times, CPU, whole trajectories; and the fit
of a host profile on the machine that was measured.

:func:`scenario_for` turns a measured run's recorded configuration (``attrs["scenario_*"]``) into
the :class:`fphint_kernels.Scenario` that ``fphint simulate`` runs for it: the harness's guest
(``busybox-tcg``, ``data/guests/``) on a host profile.  :func:`compare` simulates every measured
run and puts measured and simulated fields side by side, with relative errors and, for the poll
trace, a trajectory error (:func:`trajectory_error`).  :func:`error_summary` gives the share of
runs within the targets (:data:`TARGETS`; end counters within 15 % or twice the spread of the
configuration's repeats, total time within 30 %, downtime within 30 % or 30 ms);
:func:`pair_ratios` compares the ratio hint / legacy of total time per configuration;
:func:`seed_spread` checks that seeds bracket the measured zero pages of hinted runs.

:func:`fit_host_profile` fits a host profile (``fphint qemu fit``): what the host's CPUs cost
per page on the source and the destination, and its fixed times, on at most five measured runs
(``fit_runs``, recorded in the profile; every other run is held out), with the measured cost of
new memory, the stream's size and the number of CPUs taken from the host itself
(:mod:`~fphint_kernels.qemu.hostbench`).  The fit goes through
:func:`fphint_kernels.fitting.fit_log_params`, the loop ``fphint calibrate`` uses too.
The figures are :func:`fphint_kernels.plot.measured_vs_simulated` and
:func:`fphint_kernels.plot.trajectories`.
"""

from __future__ import annotations

import json
import math
import sys
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import FphintError

#: Fields compared run by run (query-migrate names, and the harness's CPU times).
FIELDS = (
    "ram-duplicate",
    "ram-normal",
    "ram-transferred",
    "dirty-sync-count",
    "total-time",
    "downtime",
    "setup-time",
    "cpu-destination",
    "cpu-migration-thread",
    "cpu-vcpus",
)
#: End counters: within 15 %, or twice the spread of the configuration's repeats.
COUNTERS = ("ram-duplicate", "ram-normal", "ram-transferred")
#: Relative error targets on held-out runs (downtime: 30 % or 30 ms, :data:`DOWNTIME_MS`).
TARGETS = {
    "ram-duplicate": 0.15,
    "ram-normal": 0.15,
    "ram-transferred": 0.15,
    "total-time": 0.30,
    "downtime": 0.30,
}
DOWNTIME_MS = 30.0
#: Trajectories compared (measured poll trace vs the simulated trace, both on ``time``).
TRAJECTORIES = {
    "transferred": "transferred",
    "pending": "pending",
    "zero-pages-sent": "qmp-duplicate",
    "normal-pages-sent": "qmp-normal",
}
PROFILE = "this-host-tcg"
GUEST = "busybox-tcg"
#: The runs the shipped fit uses (repeat 0 of five configurations); all others are held out.
#: Each pins something: a hinted idle guest (the race's statistics), a hinted guest that zeroes
#: its blocks (the guest busy on a CPU), a large idle guest (zero pages: millions of them), a
#: filled guest (normal pages) and a dirtying guest on 2 vCPUs.
DEFAULT_FIT_RUNS = (
    "1G-idle-hint-ioa0-dl400-smp1-r0",
    "1G-idle-hint-ioa1-dl400-smp1-r0",
    "8G-idle-nohint-ioa0-dl400-smp1-r0",
    "1G-fill-free-fill60-nohint-ioa0-dl400-smp1-r0",
    "2G-dirty-loop-d128M-100ms-nohint-ioa0-dl400-smp2-r0",
)
#: Host parameters the fit moves (the others come from the host's microbenchmarks or stay).
FREE = (
    "zero_page_ns",
    "normal_page_ns",
    "dst_zero_page_ns",
    "dst_normal_page_ns",
    "switchover_fixed_ms",
)
MAX_FIT_RUNS = 5
#: Weight of the downtime residuals in the fit: a single run's downtime depends on where its last
#: slice happens to end (repeats of one configuration differ by tens of ms), so it pulls less.
DOWNTIME_WEIGHT = 0.3


def run_id(ds) -> str:
    """``<config_key>-r<run>``, the stem of the run's file."""
    return f"{ds.attrs['config_key']}-r{int(ds.attrs['run'])}"


def profile_doc(name: str = PROFILE) -> dict:
    """The raw JSON of a profile in ``data/profiles/`` (with its ``fit_runs``)."""
    from ..config import data_dir

    p = data_dir() / "profiles" / f"{name}.json"
    if not p.exists():
        raise FphintError(f"no profile {name!r} in {p.parent}: run `fphint qemu fit` first")
    return json.loads(p.read_text())


def scenario_for(ds, *, profile: str = PROFILE, guest: str = GUEST, seed: int = 0):
    """The simulator scenario of a measured run: the one ``fphint simulate`` runs for the same
    configuration with ``--guest GUEST --profile PROFILE``.

    The fill of a filled-then-freed guest is what the guest program reports it wrote (it caps
    its share of MemTotal by MemAvailable).

    Parameters
    ----------
    ds : xarray.Dataset
        A measured run (:func:`fphint_kernels.io.load_dataset`, :func:`~.measurement.load_all`).
    profile : str
        Host profile name.
    guest : str
        Guest name.
    seed : int

    Returns
    -------
    fphint_kernels.Scenario
    """
    from ..config import Scenario

    a = ds.attrs
    mem = int(a["scenario_memory"])
    opts = json.loads(a.get("scenario_workload_options", "{}") or "{}")
    fill_bytes = int(a.get("guest_fill_bytes", -1))
    if a["scenario_workload"] == "fill-free" and fill_bytes >= 0:
        opts["fill"] = min(1.0, fill_bytes / mem)
    return Scenario(
        memory=f"{mem}B",  # a bare number would be MiB
        workload=str(a["scenario_workload"]),
        workload_options=opts,
        downtime_limit=float(a["scenario_downtime_limit"]),
        max_bandwidth=float(a["scenario_max_bandwidth"]),
        hint=bool(int(a["scenario_hint"])),
        init_on_alloc=bool(int(a["scenario_init_on_alloc"])),
        vcpus=int(a["scenario_vcpus"]),
        profile=profile,
        guest=guest,
        seed=seed,
        max_time=float(a.get("harness_max_time_s", 300.0)) * 1000.0,
    )


def _value(ds, name):
    if name not in ds:
        return np.nan
    v = ds[name].values
    try:
        return float(v)
    except (TypeError, ValueError):
        return np.nan


def trajectory_error(measured, simulated, name: str) -> float:
    """How far a simulated trajectory is from the measured one, as a fraction.

    The measured poll trace (every 50 ms) and the simulated trace (every ``trace_interval``)
    share the ``time`` dim (ms from the migrate command); the simulated one is interpolated at
    the measured times up to the end of the shorter run, then ``mean |s - m| / max |m|``.  A
    run that ends earlier is held at its final value (the trajectory has arrived).
    """
    mcol = TRAJECTORIES[name]
    if mcol not in measured or name not in simulated:
        return np.nan
    tm = np.asarray(measured["time"].values, dtype=float)
    m = np.asarray(measured[mcol].values, dtype=float)
    ok = np.isfinite(m)
    tm, m = tm[ok], m[ok]
    ts = np.asarray(simulated["time"].values, dtype=float)
    s = np.asarray(simulated[name].values, dtype=float)
    if len(tm) < 2 or len(ts) < 2 or not np.nanmax(np.abs(m)) > 0:
        return np.nan
    end = max(tm[-1], ts[-1])
    grid = tm[tm <= end]
    si = np.interp(grid, ts, s)  # np.interp holds the end values past the last sample
    mi = np.interp(grid, tm, m)
    return float(np.mean(np.abs(si - mi)) / np.max(np.abs(m)))


def compare(
    measured: list,
    *,
    profile: str = PROFILE,
    guest: str = GUEST,
    host_profile=None,
    guest_desc=None,
    seeds=range(5),
    fit_runs=None,
) -> pd.DataFrame:
    """Simulate every measured run; one row per run with measured, simulated and error columns.

    Parameters
    ----------
    measured : list of xarray.Dataset
    profile, guest : str
        The host profile and the guest (names in ``data/``); the profile's ``fit_runs`` mark
        the runs that are not held out.
    host_profile : HostProfile, optional
        In-memory profile to simulate with (used by the fit); default: load ``profile``.
    guest_desc : config.Guest, optional
        In-memory guest description; default: load ``guest``.
    seeds : sequence of int
        The prediction of each field is the median over these seeds (the trajectories come
        from the first): a run is one draw of the host's and the guest's randomness (where the
        boot put the kernel, when the guest starts hinting, how the lock is handed over), in
        the model as on the host, so one draw is compared with the model's typical outcome.
    fit_runs : collection of str, optional
        Default: the profile's ``fit_runs``.

    Returns
    -------
    pandas.DataFrame
        Columns ``run, config, pair, held_out, workload, memory_gib, hint, init_on_alloc,
        downtime_limit, vcpus, guest_ok, status, sim_status``, for each field of
        :data:`FIELDS` ``m:<field>``, ``s:<field>``, ``err:<field>`` ((s - m) / m), and for each
        trajectory of :data:`TRAJECTORIES` ``traj:<name>`` (:func:`trajectory_error`).
    """
    from ..simulate import simulate

    if fit_runs is None:
        try:
            fit_runs = profile_doc(profile).get("fit_runs", [])
        except FphintError:
            fit_runs = []
    fit_runs = set(fit_runs)
    cache: dict = {}
    rows = []
    for ds in measured:
        sims = []
        for s in seeds:
            sc = scenario_for(ds, profile=profile, guest=guest, seed=s)
            if sc not in cache:
                cache[sc] = simulate(sc, profile=host_profile, guest=guest_desc)
            sims.append(cache[sc])
        a = ds.attrs
        row = {
            "run": run_id(ds),
            "config": a["config_key"],
            "pair": _pair_key(a["config_key"]),
            "held_out": run_id(ds) not in fit_runs,
            "workload": a["scenario_workload"],
            "memory_gib": int(a["scenario_memory"]) / 2**30,
            "hint": bool(int(a["scenario_hint"])),
            "init_on_alloc": bool(int(a["scenario_init_on_alloc"])),
            "downtime_limit": float(a["scenario_downtime_limit"]),
            "vcpus": int(a["scenario_vcpus"]),
            "guest_ok": bool(int(a.get("guest_ok", 0))),
            "status": str(ds["status"].values),
            "sim_status": str(sims[0]["status"].values),
        }
        for f in FIELDS:
            m = _value(ds, f)
            s = float(np.median([_value(x, f) for x in sims]))
            row[f"m:{f}"] = m
            row[f"s:{f}"] = s
            row[f"err:{f}"] = (s - m) / m if m and np.isfinite(m) and m > 0 else np.nan
        for name in TRAJECTORIES:
            row[f"traj:{name}"] = trajectory_error(ds, sims[0], name)
        rows.append(row)
    return pd.DataFrame(rows)


def _pair_key(config_key: str) -> str:
    return config_key.replace("-nohint-", "-*-").replace("-hint-", "-*-")


def _spread(table: pd.DataFrame, field: str) -> pd.Series:
    """Per configuration, the spread of its repeats: max |m - median| / median (0 for one run)."""
    out = {}
    for cfg, g in table.groupby("config"):
        m = g[f"m:{field}"].dropna()
        med = m.median() if len(m) else np.nan
        out[cfg] = float((m - med).abs().max() / med) if len(m) >= 2 and med > 0 else 0.0
    return pd.Series(out)


def within_target(table: pd.DataFrame) -> pd.DataFrame:
    """Per run and field of :data:`TARGETS`: is the simulated value within its target?

    End counters: within 15 %, or within twice the spread of the configuration's measured
    repeats when they disagree more; total time: 30 %; downtime: 30 % or 30 ms.
    """
    out = pd.DataFrame(index=table.index)
    for f, tgt in TARGETS.items():
        err = table[f"err:{f}"].abs()
        if f in COUNTERS:
            spread = table["config"].map(_spread(table, f)).fillna(0.0)
            ok = err <= np.maximum(tgt, 2 * spread)
        elif f == "downtime":
            ok = (err <= tgt) | ((table[f"s:{f}"] - table[f"m:{f}"]).abs() <= DOWNTIME_MS)
        else:
            ok = err <= tgt
        out[f] = ok.where(err.notna())
    return out


def error_summary(table: pd.DataFrame, *, held_out_only: bool = True) -> pd.DataFrame:
    """Per field: runs compared, median and mean |relative error|, share within target."""
    t = table[table["status"] == "completed"]
    ok = within_target(t)
    if held_out_only:
        keep = t["held_out"]
        t, ok = t[keep], ok[keep]
    out = []
    for f in FIELDS:
        e = t[f"err:{f}"].abs().dropna()
        w = ok[f].dropna() if f in ok else pd.Series(dtype=float)
        out.append(
            {
                "field": f,
                "runs": len(e),
                "median_abs_err": float(e.median()) if len(e) else np.nan,
                "mean_abs_err": float(e.mean()) if len(e) else np.nan,
                "target": TARGETS.get(f, np.nan),
                "within_target": float(w.astype(float).mean()) if len(w) else np.nan,
            }
        )
    for name in TRAJECTORIES:
        e = t[f"traj:{name}"].dropna()
        out.append(
            {
                "field": f"trajectory {name}",
                "runs": len(e),
                "median_abs_err": float(e.median()) if len(e) else np.nan,
                "mean_abs_err": float(e.mean()) if len(e) else np.nan,
                "target": np.nan,
                "within_target": np.nan,
            }
        )
    return pd.DataFrame(out).set_index("field")


def pair_ratios(table: pd.DataFrame, *, field: str = "total-time", tol: float = 0.30):
    """Per configuration pair (hinting on and off, all else equal): the ratio hint / legacy of
    the mean ``field``, measured and simulated, and whether they agree within ``tol``."""
    t = table[table["status"] == "completed"]
    rows = []
    for pair, g in t.groupby("pair"):
        h, lg = g[g["hint"]], g[~g["hint"]]
        if h.empty or lg.empty:
            continue
        m = h[f"m:{field}"].mean() / lg[f"m:{field}"].mean()
        s = h[f"s:{field}"].mean() / lg[f"s:{field}"].mean()
        rows.append(
            {
                "pair": pair,
                "measured_ratio": float(m),
                "simulated_ratio": float(s),
                "error": float(s / m - 1.0),
                "within": bool(abs(s / m - 1.0) <= tol),
                "held_out": bool(g["held_out"].all()),
            }
        )
    return pd.DataFrame(rows)


def race_samples(measured: list, *, profile: str = PROFILE, guest: str = GUEST, seeds=range(10)):
    """Zero pages of every hinted ``init_on_alloc=0`` run and of ``seeds`` simulations of its
    configuration: one row per sample (``config``, ``source`` "measured" or "simulated",
    ``ram-duplicate``), in configuration order.  Where the hint race is lost, zero pages are
    what it costs (docs/model.md "The race")."""
    from ..simulate import simulate

    groups: dict = {}
    for ds in measured:
        a = ds.attrs
        if int(a["scenario_hint"]) and not int(a["scenario_init_on_alloc"]):
            groups.setdefault(a["config_key"], []).append(ds)
    rows = []
    for cfg, runs in sorted(groups.items()):
        rows += [{"config": cfg, "source": "measured", "ram-duplicate": _value(ds, "ram-duplicate")}
                 for ds in runs]  # fmt: skip
        for k in seeds:
            ds = simulate(scenario_for(runs[0], profile=profile, guest=guest, seed=k))
            rows.append({"config": cfg, "source": "simulated",
                         "ram-duplicate": _value(ds, "ram-duplicate")})  # fmt: skip
    return pd.DataFrame(rows, columns=["config", "source", "ram-duplicate"])


def seed_spread(measured: list, *, profile: str = PROFILE, guest: str = GUEST, seeds=range(10)):
    """For each configuration with hinting and ``init_on_alloc=0``: the zero pages of the
    measured repeats against those of ``seeds`` simulations (:func:`race_samples`; does the
    model's spread bracket the measurements?)."""
    samples = race_samples(measured, profile=profile, guest=guest, seeds=seeds)
    rows = []
    for cfg, g in samples.groupby("config", sort=True):
        m = g.loc[g["source"] == "measured", "ram-duplicate"].to_numpy(float)
        s = g.loc[g["source"] == "simulated", "ram-duplicate"].to_numpy(float)
        rows.append(
            {
                "config": cfg,
                "measured_min": m.min(),
                "measured_max": m.max(),
                "simulated_min": s.min(),
                "simulated_max": s.max(),
                "bracketed": bool(s.min() <= m.min() * 1.15 and s.max() >= m.max() * 0.85),
                "measured_ratio_max_min": float(m.max() / max(m.min(), 1)),
                "simulated_ratio_max_min": float(s.max() / max(s.min(), 1)),
            }
        )
    return pd.DataFrame(rows)


def repeat_spread(table: pd.DataFrame) -> pd.DataFrame:
    """The noise floor: per field, how far repeats of one configuration are from their median.

    For every configuration with at least two completed runs, the relative deviation
    ``|m - median(m)| / median(m)`` of each run; the table gives its median and the share of
    runs within the target.  No simulator can predict a single run better than this.
    """
    t = table[table["status"] == "completed"]
    out = []
    for f in FIELDS:
        devs = []
        for _, g in t.groupby("config"):
            m = g[f"m:{f}"].dropna()
            if len(m) >= 2 and m.median() > 0:
                devs += list((m - m.median()).abs() / m.median())
        d = pd.Series(devs, dtype=float)
        tgt = TARGETS.get(f)
        out.append(
            {
                "field": f,
                "runs": len(d),
                "median_abs_dev": float(d.median()) if len(d) else np.nan,
                "within_target": float((d <= tgt).mean()) if (tgt and len(d)) else np.nan,
            }
        )
    return pd.DataFrame(out).set_index("field")


def compare_dir(
    root, *, profile: str = PROFILE, guest: str = GUEST, held_out_only: bool = False
) -> pd.DataFrame:
    """:func:`compare` over every completed measured run under ``root``."""
    from .measurement import load_all

    runs = load_all(root, completed=True)
    if not runs:
        raise FphintError(f"no completed measured runs under {root}")
    table = compare(runs, profile=profile, guest=guest)
    return table[table["held_out"]] if held_out_only else table


def format_table(table: pd.DataFrame) -> str:
    """A compact text table: per run, measured/simulated of the main fields, then the summaries."""
    lines = []
    short = {"ram-duplicate": "zero", "ram-normal": "normal", "total-time": "total",
             "downtime": "down", "cpu-destination": "dst-cpu"}  # fmt: skip
    for _, r in table.iterrows():
        parts = [f"{r['run']:<50}", "held" if r["held_out"] else "FIT "]
        for f, nm in short.items():
            parts.append(f"{nm} {r[f'm:{f}']:.4g}/{r[f's:{f}']:.4g}")
        parts.append(f"traj {r['traj:pending']:.2f}")
        lines.append(" ".join(parts))
    fmt = {"float_format": lambda v: f"{v:.3f}"}
    lines += ["", "simulated vs measured, held-out runs:", error_summary(table).to_string(**fmt)]
    pr = pair_ratios(table)
    if not pr.empty:
        lines += ["", f"ratio hint/legacy of total-time: {int(pr['within'].sum())} of {len(pr)} "
                  "pairs within 30 %", pr.to_string(index=False, **fmt)]  # fmt: skip
    lines += ["", "repeat-to-repeat spread of the measurements (noise floor):",
              repeat_spread(table).to_string(**fmt)]  # fmt: skip
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# Fitting a host profile
# --------------------------------------------------------------------------------------------
def trace_statistics(measured: list, *, min_ends: int = 10) -> dict:
    """What the trace events of hinted runs say about the host's timing, without a fit.

    Returns the mean extra setup time above its minimum (``setup_jitter_ms``: the first slice
    starts after setup), the minimum setup time (``setup_fixed_ms``), the mean number of
    hints applied at slice ends where the iothread did not drain its queue
    (``boundary_hints``: between 0 and 5 hinted blocks seen right after such a slice end), and
    the share of slice ends with a queue (more than 20 hinted blocks not yet applied) at which
    the iothread drained it (more than 5 blocks applied within 2 ms; the drain is what shows
    that the sender's flush waited, docs/model.md "The race"): ``flush_wait_p`` at slice ends
    that follow a drain or start a run's queue, ``flush_wait_p_after`` at those that follow a
    slice end that left its queue; each only from at least ``min_ends`` such slice ends (a share
    of one or two is no measurement: a profile then keeps the value it started from).

    And what a bitmap sync costs (``sync_ns_per_page``): the median over runs of the time from
    the start of the last sync before the switchover (``ram_save_pending`` syncs when pending
    falls below the threshold) to the switchover, per page of guest RAM.  That time holds the
    sync and QEMU's decision to stop the VM, so it bounds the sync from above.
    """
    setups = []
    syncs = []
    few = []
    ends = []
    after = []
    for ds in measured:
        if "setup-done-time" not in ds:
            continue
        setups.append(_value(ds, "setup-done-time"))
        if "sync-time" in ds and "switchover-time" in ds:
            sw = _value(ds, "switchover-time")
            st = np.asarray(ds["sync-time"].values, dtype=float)
            st = st[np.isfinite(st) & (st < sw)]
            if np.isfinite(sw) and len(st) >= 2:  # setup's sync, then the one before the stop
                pages = float(ds.attrs["scenario_memory"]) / 4096.0
                syncs.append((sw - st[-1]) * 1e6 / pages)
        if int(ds.attrs["scenario_hint"]) and "hint-time" in ds:
            h = np.asarray(ds["hint-time"].values, dtype=float)
            missed = False
            for b in np.asarray(ds["slice-end-time"].values, dtype=float):
                k = int(np.sum((h >= b - 0.3) & (h < b + 2.0)))
                left = int(np.sum(h >= b - 0.3))
                if left > 20:
                    (after if missed else ends).append(k > 5)
                missed = left > 20 and k <= 5
                if missed:  # a queue that was not drained
                    few.append(k)
    out = {}
    s = np.array([v for v in setups if np.isfinite(v)])
    if len(s):
        out["setup_fixed_ms"] = float(s.min())
        out["setup_jitter_ms"] = float(max(s.mean() - s.min(), 0.0))
    if syncs:
        out["sync_ns_per_page"] = float(np.median(syncs))
    if few:
        out["boundary_hints"] = float(np.mean(few))
    if len(ends) >= max(1, min_ends):
        out["flush_wait_p"] = float(np.mean(ends))
    if len(after) >= max(1, min_ends):
        out["flush_wait_p_after"] = float(np.mean(after))
    return out


def fit_host_profile(
    measured: list,
    *,
    fit_runs=DEFAULT_FIT_RUNS,
    free=FREE,
    start: str = PROFILE,
    guest: str = GUEST,
    bench: dict | None = None,
    out_dir=None,
    name: str = PROFILE,
    max_evals: int = 80,
    stream=None,
    trace_runs=(),
) -> dict:
    """Fit ``<out_dir>/<name>.json`` on at most five measured runs and write it.

    Steps:

    1. From the host (:func:`~fphint_kernels.qemu.hostbench.run_all`): its CPUs
       (``host_cpus``), whether guest RAM gets transparent huge pages (``host_page_kib``), how
       many bytes a loopback TCP stream holds before the writer blocks
       (``stream_buffer_bytes``), and the wire rate.  The cost of new memory
       (``first_touch_us``) is the median of what the harness measured just before each fit run
       (``host_first_touch_ms_per_2m``), else the microbenchmark's.
    2. From the trace events (:func:`trace_statistics`) of the fit runs and of
       ``trace_runs`` (runs taken for their trace events only, used for nothing else): the
       setup time and its spread, how many hints get through at a slice end, and how often the
       iothread drains its queue there.
    3. ``free`` parameters by least squares on, for every fit run, log total-time, log
       downtime (plus 10 ms, so that a 2 ms downtime does not dominate; weighted
       :data:`DOWNTIME_WEIGHT`), log CPU time of the destination and of the source's migration
       thread.

    The guest is the harness's (``guest``, from ``data/guests/``), not fitted here.

    Returns
    -------
    dict
        The profile document written.
    """
    from ..config import HostProfile, data_dir
    from ..fitting import fit_log_params
    from ..io import save_json
    from ..simulate import simulate
    from . import hostbench

    stream = stream or sys.stderr
    fit_runs = tuple(fit_runs)
    if len(fit_runs) > MAX_FIT_RUNS:
        raise FphintError(f"at most {MAX_FIT_RUNS} fit runs (the others are held out)")
    by_id = {run_id(ds): ds for ds in measured}
    missing = [r for r in fit_runs if r not in by_id]
    if missing:
        raise FphintError(f"fit runs not measured yet: {', '.join(missing)}")
    fit = [by_id[r] for r in fit_runs]
    bench = bench or hostbench.run_all()
    stream.write(f"fphint qemu fit: host {json.dumps(bench)}\n")
    base = HostProfile.load(start)
    params = dict(base.params)
    prov = {k: f"as in {start}.json" for k in params}
    for k in ("host_cpus", "host_page_kib", "stream_buffer_bytes", "link_bytes_per_s"):
        if k in bench:
            params[k] = float(bench[k])
            prov[k] = f"measured on the host: {bench[k]:.6g}"
    touch = [ds.attrs.get("host_first_touch_ms_per_2m", np.nan) for ds in fit]
    touch = [float(v) for v in touch if np.isfinite(float(v))]
    if touch:
        params["first_touch_us"] = 1000.0 * float(np.median(touch))
        prov["first_touch_us"] = "median of the harness's probe just before each fit run"
    elif "first_touch_ms_per_2m" in bench:
        params["first_touch_us"] = 1000.0 * float(bench["first_touch_ms_per_2m"])
        prov["first_touch_us"] = "microbenchmark (first touch of fresh huge pages)"
    trace_runs = list(trace_runs)
    traced = "the fit runs' trace events"
    if trace_runs:
        campaigns = sorted({str(ds.attrs.get("campaign", "?")) for ds in trace_runs})
        traced = (f"the trace events of the fit runs and of {len(trace_runs)} runs of "
                  f"{', '.join(campaigns)}")  # fmt: skip
    for k, v in trace_statistics(fit + trace_runs).items():
        params[k] = v
        prov[k] = f"{traced} (fphint_kernels.qemu.compare.trace_statistics)"
    stream.write(f"fphint qemu fit: fixed {json.dumps({k: params[k] for k in prov})}\n")

    free = tuple(free)
    meas = {
        f: np.array([_value(ds, f) for ds in fit])
        for f in ("total-time", "downtime", "cpu-destination", "cpu-migration-thread")
    }

    def model(values):
        hp = HostProfile.from_dict({"params": {**params, **values}}, name=name)
        sims = [simulate(scenario_for(ds, profile=start, guest=guest), profile=hp) for ds in fit]
        r = []
        for f, m in meas.items():
            s = np.array([_value(x, f) for x in sims])
            pad = 10.0 if f == "downtime" else 0.0
            ok = np.isfinite(m) & (m > 0)
            w = DOWNTIME_WEIGHT if f == "downtime" else 1.0
            r.append(w * np.log((np.maximum(s[ok], 0) + pad + 1e-9) / (m[ok] + pad)))
        return np.concatenate(r), None

    def on_eval(calls, r, _new):
        if calls % 10 == 0:
            stream.write(f"  eval {calls}: rms {math.sqrt(np.mean(r**2)):.3f}\n")

    result = fit_log_params(
        model, {k: params[k] for k in free}, method="least-squares", max_evals=max_evals,
        on_eval=on_eval,
    )  # fmt: skip
    fitted = {k: float(v) for k, v in result.params.items()}
    params.update(fitted)
    for k in free:
        prov[k] = (
            "fitted (least squares on log total-time, downtime + 10 ms, destination CPU and "
            f"migration-thread CPU of the fit runs); start {result.start[k]:.4g}"
        )
    doc = {
        "name": name,
        "description": (
            f"{bench.get('cpu_model', 'this host')}, {int(params['host_cpus'])} CPUs, QEMU "
            f"{fit[0].attrs.get('qemu_version', '')} ({fit[0].attrs.get('accelerator', '')}): "
            "measured on the host, the trace events of the fit runs, and "
            f"{', '.join(free)} fitted on {len(fit)} measured runs (fit_runs); every other "
            "run measured on this host is held out."
        ),
        "params": {k: float(v) for k, v in params.items()},
        "provenance": {
            **prov,
            "host": bench,
            "fit_residuals_log": [float(v) for v in result.residuals],
            "fit_evaluations": int(result.calls),
            "fit_date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "guest": guest,
        },
        "fit_runs": list(fit_runs),
    }
    if trace_runs:
        doc["trace_runs"] = sorted(
            f"{ds.attrs.get('campaign', '?')}/{run_id(ds)}" for ds in trace_runs
        )
    out = Path(out_dir) if out_dir else data_dir() / "profiles"
    path = save_json(doc, out / f"{name}.json")
    stream.write(f"fphint qemu fit: wrote {path} ({fitted})\n")
    return doc


#: The short migrations of ``fphint qemu fit --quick``, one per thing the fit must pin (as
#: :data:`DEFAULT_FIT_RUNS`, with a 4 GiB instead of an 8 GiB legacy guest and a 1-vCPU dirty
#: loop, so that the five take about 2 minutes under TCG).
QUICK_RUNS = (
    dict(memory="1G", mode="idle", hint="on", init_on_alloc="off", downtime_limit="400ms"),
    dict(memory="1G", mode="idle", hint="on", init_on_alloc="on", downtime_limit="400ms"),
    dict(memory="4G", mode="idle", hint="off", init_on_alloc="off", downtime_limit="400ms"),
    dict(memory="1G", mode="fill-free", fill="60%", hint="off", downtime_limit="400ms"),
    dict(memory="1G", mode="dirty-loop", dirty_bytes="64M", dirty_interval="100ms", hint="off",
         downtime_limit="400ms"),
)  # fmt: skip
#: Wall-clock budget of ``fphint qemu fit --quick`` (seconds); no new migration starts after
#: three quarters of it, and the fit's evaluations are capped so the whole stays within it.
QUICK_BUDGET_S = 300.0


def machine_profile_name(accel: str = "tcg") -> str:
    """A profile name for this machine: ``host-<hostname>-<accel>`` (file-name safe)."""
    import re
    import socket

    host = re.sub(r"[^A-Za-z0-9-]+", "-", socket.gethostname()).strip("-").lower() or "machine"
    return f"host-{host[:40]}-{accel}"


def quick_fit(
    out_runs, *, name: str | None = None, out_dir=None, stream=None, migrate=None, guest=None
) -> dict:
    """``fphint qemu fit --quick``: microbenchmarks of this host, at most five short migrations
    (:data:`QUICK_RUNS`) and the fit of :func:`fit_host_profile` on them, within
    :data:`QUICK_BUDGET_S`.

    Parameters
    ----------
    out_runs : path-like
        Folder for the measured runs (netCDF, one per migration).
    name : str, optional
        Profile name (default :func:`machine_profile_name`).
    out_dir : path-like, optional
        Folder of the profile (default ``data/profiles/``).
    stream : file, optional
        Progress (default ``sys.stderr``).
    migrate : callable, optional
        ``migrate(cfg) -> RunResult`` (default: :func:`~.runner.migrate_once` on the prepared
        guest; tests pass a stand-in).
    guest : str
        Simulator guest of the harness (default :data:`GUEST`).

    Returns
    -------
    dict
        The profile document written (``provenance.quick`` records the runs and the time).
    """
    import time

    from ..io import save_dataset
    from . import hostbench
    from .measurement import to_dataset
    from .runconfig import RunConfig

    stream = stream or sys.stderr
    t0 = time.monotonic()
    out_runs = Path(out_runs)
    out_runs.mkdir(parents=True, exist_ok=True)
    if migrate is None:
        from .guest import load_guest
        from .runner import detect_accelerator, migrate_once

        g = load_guest()
        accel = detect_accelerator(g)

        def migrate(cfg):
            return migrate_once(cfg, guest=g, accel=accel)

    else:
        accel = "tcg"
    name = name or machine_profile_name(accel)
    bench = hostbench.run_all(quick=True)
    stream.write(f"fphint qemu fit --quick: host measured in {time.monotonic() - t0:.0f} s\n")
    measured = []
    for i, kw in enumerate(QUICK_RUNS, start=1):
        if measured and time.monotonic() - t0 > 0.75 * QUICK_BUDGET_S:
            stream.write("fphint qemu fit --quick: time budget reached, fitting on "
                         f"{len(measured)} runs\n")  # fmt: skip
            break
        cfg = RunConfig.from_strings(max_time="60s", settle="1s", **kw)
        t1 = time.monotonic()
        res = migrate(cfg)
        ds = to_dataset(res, run=0, campaign=f"quick-{name}")
        save_dataset(ds, out_runs / f"{cfg.key()}-r0.nc")
        stream.write(f"[{i}/{len(QUICK_RUNS)}] {cfg.key()}: {res.status} "
                     f"({time.monotonic() - t1:.0f} s)\n")  # fmt: skip
        if str(ds["status"].values) == "completed":
            measured.append(ds)
    if not measured:
        raise FphintError("fphint qemu fit --quick: no migration completed; nothing to fit")
    left = QUICK_BUDGET_S - (time.monotonic() - t0)
    per_eval = 1.5 * len(measured)  # seconds, warm kernels, guests of 1-4 GiB
    evals = int(max(8, min(40, left / per_eval)))
    doc = fit_host_profile(
        measured, fit_runs=tuple(run_id(ds) for ds in measured), start=PROFILE, guest=guest or GUEST,
        bench=bench, out_dir=out_dir, name=name, max_evals=evals, stream=stream,
    )  # fmt: skip
    stream.write(f"fphint qemu fit --quick: done in {time.monotonic() - t0:.0f} s\n")
    return doc


# --------------------------------------------------------------------------------------------
# Guest health and per-configuration summaries
# --------------------------------------------------------------------------------------------
def health_summary(measured: list) -> pd.DataFrame:
    """Destination guest health per (workload, hint, init_on_alloc): runs, crashes, kinds."""
    rows = []
    for ds in measured:
        a = ds.attrs
        rows.append(
            {
                "workload": a["scenario_workload"],
                "hint": bool(int(a["scenario_hint"])),
                "init_on_alloc": bool(int(a["scenario_init_on_alloc"])),
                "completed": str(ds["status"].values) == "completed",
                "guest_ok": bool(int(a.get("guest_ok", 0))),
                "trouble": ",".join(sorted(json.loads(a.get("guest_trouble_counts", "{}")))),
            }
        )
    df = pd.DataFrame(rows)
    g = df.groupby(["workload", "hint", "init_on_alloc"])
    out = g.agg(
        runs=("guest_ok", "size"),
        completed=("completed", "sum"),
        guest_ok=("guest_ok", "sum"),
    )
    out["guest_bad"] = out["completed"] - out["guest_ok"]
    out["trouble_kinds"] = g["trouble"].agg(lambda s: ";".join(sorted({x for x in s if x})))
    return out


def config_summary(measured: list) -> pd.DataFrame:
    """Per configuration: runs, total-time median/min/max, medians of zero and normal pages and
    syncs, and how many destination guests were healthy."""
    rows = []
    for ds in measured:
        rows.append(
            {
                "config": ds.attrs["config_key"],
                "total": _value(ds, "total-time"),
                "downtime": _value(ds, "downtime"),
                "zero": _value(ds, "ram-duplicate"),
                "normal": _value(ds, "ram-normal"),
                "syncs": _value(ds, "dirty-sync-count"),
                "guest_ok": int(ds.attrs.get("guest_ok", 0)),
            }
        )
    df = pd.DataFrame(rows)
    return df.groupby("config").agg(
        runs=("total", "size"),
        total_median=("total", "median"),
        total_min=("total", "min"),
        total_max=("total", "max"),
        downtime_median=("downtime", "median"),
        zero_median=("zero", "median"),
        normal_median=("normal", "median"),
        syncs_median=("syncs", "median"),
        guest_ok=("guest_ok", "sum"),
    )
