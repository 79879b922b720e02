"""Measured runs against the simulator, field by field; and the fit of this host's profile.

:func:`scenario_for` turns a measured run's recorded configuration (``attrs["scenario_*"]``) into
a :class:`fphint_kernels.Scenario`; :func:`compare` simulates every measured run and puts
measured and simulated ``query-migrate`` fields side by side with relative errors;
:func:`error_summary` gives, per field, the median error and the share of runs within the
targets of :data:`TARGETS` (zero pages, normal pages and bytes within 15 %, total time within
30 %).

:func:`fit_host_profile` writes ``data/profiles/this-host-tcg.json``: the migration thread's
per-page costs and the wire rate start from :mod:`fphint_kernels.qemu.hostbench`
microbenchmarks; the description of the harness's guest (``guest_workload_options``: how much of
its memory is in use, i.e. not zero) and a few free parameters (``cpu_speed``,
``hint_block_us``, ``zero_fill_ns_per_page``) are fitted on a FEW measured runs, named in the
profile (``fit_runs``); every other run is held out.  The fit goes through
:func:`fphint_kernels.fitting.fit_log_params`, the loop ``fphint calibrate`` uses too.
The figure of the comparison is :func:`fphint_kernels.plot.measured_vs_simulated`.
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
from ..kernels.layout import PAGE_SIZE

FIELDS = (
    "ram-duplicate",
    "ram-normal",
    "ram-transferred",
    "dirty-sync-count",
    "total-time",
    "downtime",
    "setup-time",
)
#: Relative error targets of the simulator on held-out measured runs.
TARGETS = {"ram-duplicate": 0.15, "ram-normal": 0.15, "ram-transferred": 0.15, "total-time": 0.30}
PROFILE = "this-host-tcg"
#: The runs the default fit uses (repeat 0 of four 1 GiB configurations); all others are held out.
DEFAULT_FIT_RUNS = (
    "1G-idle-nohint-ioa0-dl400-smp1-r0",
    "1G-fill-free-fill60-nohint-ioa0-dl400-smp1-r0",
    "1G-idle-hint-ioa0-dl400-smp1-r0",
    "1G-fill-free-fill60-hint-ioa1-dl400-smp1-r0",
    "4G-idle-hint-ioa0-dl400-smp1-r0",
)
FREE = ("cpu_speed", "hint_block_us", "hint_start_ms", "zero_fill_ns_per_page", "setup_fixed_ms")


def run_id(ds) -> str:
    """``<config_key>-r<run>``, the stem of the run's file."""
    return f"{ds.attrs['config_key']}-r{int(ds.attrs['run'])}"


def profile_doc(name: str = PROFILE) -> dict:
    """The raw JSON of a profile in ``data/profiles/`` (with ``guest_workload_options``)."""
    from ..config import data_dir

    p = data_dir() / "profiles" / f"{name}.json"
    if not p.exists():
        raise FphintError(f"no profile {name!r} in {p.parent}: run `fphint qemu fit` first")
    return json.loads(p.read_text())


def scenario_for(ds, *, profile: str = PROFILE, guest_options: dict | None = None, seed: int = 0):
    """The simulator scenario of a measured run, from its recorded configuration.

    Parameters
    ----------
    ds : xarray.Dataset
        A measured run (:func:`fphint_kernels.io.load_dataset`, :func:`~.measurement.load_all`).
    profile : str
        Host profile name.
    guest_options : dict, optional
        Workload parameters describing the harness's guest (``guest_workload_options`` of the
        profile); the run's own workload options win over them.
    seed : int

    Returns
    -------
    fphint_kernels.Scenario
    """
    from ..config import Scenario

    a = ds.attrs
    mem = int(a["scenario_memory"])
    opts = dict(guest_options or {})
    opts.update(json.loads(a.get("scenario_workload_options", "{}") or "{}"))
    fill_bytes = int(a.get("guest_fill_bytes", -1))
    if a["scenario_workload"] == "fill-free" and fill_bytes >= 0:
        # the guest program writes a share of MemTotal (capped): use what it reports it wrote
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


def compare(
    measured: list, *, profile: str = PROFILE, host_profile=None, seeds=(0,)
) -> pd.DataFrame:
    """Simulate every measured run; one row per run with measured, simulated and error columns.

    Parameters
    ----------
    measured : list of xarray.Dataset
    profile : str
        Profile name (its ``guest_workload_options`` and ``fit_runs`` are used).
    host_profile : HostProfile, optional
        In-memory profile to simulate with (used by the fit); default: load ``profile``.
    seeds : sequence of int
        The simulation is averaged over these seeds.

    Returns
    -------
    pandas.DataFrame
        Columns ``run, config, held_out, workload, memory, hint, init_on_alloc,
        downtime_limit, guest_ok, status, sim_status`` and for each field of :data:`FIELDS`
        ``m:<field>``, ``s:<field>``, ``err:<field>`` (relative error (s - m) / m).
    """
    from ..simulate import simulate

    doc = profile_doc(profile) if host_profile is None else {}
    guest = (
        doc.get("guest_workload_options", {})
        if host_profile is None
        else host_profile.provenance.get("guest_workload_options", {})
    )
    fit_runs = set(doc.get("fit_runs", []))
    cache: dict = {}
    rows = []
    for ds in measured:
        sims = []
        for s in seeds:
            sc = scenario_for(ds, profile=profile, guest_options=guest, seed=s)
            if sc not in cache:
                cache[sc] = simulate(sc, profile=host_profile) if host_profile else simulate(sc)
            sims.append(cache[sc])
        a = ds.attrs
        row = {
            "run": run_id(ds),
            "config": a["config_key"],
            "held_out": run_id(ds) not in fit_runs,
            "workload": a["scenario_workload"],
            "memory_gib": int(a["scenario_memory"]) / 2**30,
            "hint": bool(int(a["scenario_hint"])),
            "init_on_alloc": bool(int(a["scenario_init_on_alloc"])),
            "downtime_limit": float(a["scenario_downtime_limit"]),
            "guest_ok": bool(int(a.get("guest_ok", 0))),
            "status": str(ds["status"].values),
            "sim_status": str(sims[0]["status"].values),
        }
        for f in FIELDS:
            m = _value(ds, f)
            s = float(np.mean([_value(x, f) for x in sims]))
            row[f"m:{f}"] = m
            row[f"s:{f}"] = s
            row[f"err:{f}"] = (s - m) / m if m and np.isfinite(m) and m > 0 else np.nan
        rows.append(row)
    return pd.DataFrame(rows)


def error_summary(table: pd.DataFrame, *, held_out_only: bool = True) -> pd.DataFrame:
    """Per field: runs compared, median and mean |relative error|, share within target."""
    t = table[table["held_out"]] if held_out_only else table
    t = t[t["status"] == "completed"]
    out = []
    for f in FIELDS:
        e = t[f"err:{f}"].abs().dropna()
        tgt = TARGETS.get(f)
        out.append(
            {
                "field": f,
                "runs": len(e),
                "median_abs_err": float(e.median()) if len(e) else np.nan,
                "mean_abs_err": float(e.mean()) if len(e) else np.nan,
                "target": tgt if tgt is not None else np.nan,
                "within_target": float((e <= tgt).mean()) if (tgt and len(e)) else np.nan,
            }
        )
    return pd.DataFrame(out).set_index("field")


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


def compare_dir(root, *, profile: str = PROFILE, held_out_only: bool = False) -> pd.DataFrame:
    """:func:`compare` over every completed measured run under ``root``."""
    from .measurement import load_all

    runs = [ds for ds in load_all(root) if str(ds["status"].values) == "completed"]
    if not runs:
        raise FphintError(f"no completed measured runs under {root}")
    table = compare(runs, profile=profile)
    return table[table["held_out"]] if held_out_only else table


def format_table(table: pd.DataFrame) -> str:
    """A compact text table: per run, measured/simulated of the main fields, then the summary."""
    lines = []
    short = {"ram-duplicate": "zero", "ram-normal": "normal", "ram-transferred": "bytes",
             "total-time": "total", "dirty-sync-count": "syncs"}  # fmt: skip
    for _, r in table.iterrows():
        parts = [f"{r['run']:<50}", "held" if r["held_out"] else "FIT "]
        for f, nm in short.items():
            parts.append(f"{nm} {r[f'm:{f}']:.4g}/{r[f's:{f}']:.4g}")
        lines.append(" ".join(parts))
    fmt = {"float_format": lambda v: f"{v:.3f}"}
    lines += ["", "simulated vs measured, held-out runs:", error_summary(table).to_string(**fmt)]
    lines += ["", "repeat-to-repeat spread of the measurements (noise floor):",
              repeat_spread(table).to_string(**fmt)]  # fmt: skip
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# Fitting this host's profile
# --------------------------------------------------------------------------------------------
def fit_host_profile(
    measured: list,
    *,
    fit_runs=DEFAULT_FIT_RUNS,
    free=FREE,
    start: str = "prior",
    bench: dict | None = None,
    out_dir=None,
    name: str = PROFILE,
    max_evals: int = 120,
    stream=None,
) -> dict:
    """Fit ``data/profiles/<name>.json`` on a few measured runs and write it.

    Steps: (1) microbenchmarks set ``zero_page_ns``, ``normal_page_ns`` and
    ``link_bytes_per_s``; (2) the guest description ``base_used`` is set so that the legacy idle
    fit run's normal pages match (``reserved_low`` = 16 MiB, no page cache and no old data in
    free memory: the guest is a busybox initramfs); (3) ``free`` parameters are fitted by
    least squares on log total-time of every fit run, log pages sent of the hinted ones and
    (weighted 0.3) log setup-time.  (Weighting the page counts 3x was tried: it did not make
    the held-out page counts better.)

    Returns
    -------
    dict
        The profile document written.
    """
    from ..config import HostProfile, data_dir
    from ..fitting import fit_log_params
    from ..simulate import simulate
    from . import hostbench

    stream = stream or sys.stderr
    by_id = {run_id(ds): ds for ds in measured}
    missing = [r for r in fit_runs if r not in by_id]
    if missing:
        raise FphintError(f"fit runs not measured yet: {', '.join(missing)}")
    fit = [by_id[r] for r in fit_runs]
    bench = bench or hostbench.run_all()
    stream.write(f"fphint qemu fit: microbenchmarks {json.dumps(bench)}\n")
    base = HostProfile.load(start)
    params = dict(base.params)
    params.update(
        zero_page_ns=bench["zero_page_ns"],
        normal_page_ns=bench["normal_page_ns"],
        link_bytes_per_s=bench["link_bytes_per_s"],
    )
    guest = {"reserved_low": "16M", "pagecache_initial": "0", "touched_free": "0",
             "base_used": "64M"}  # fmt: skip

    def prof(p, g):
        return HostProfile.from_dict(
            {"params": p, "provenance": {"guest_workload_options": g}}, name=name
        )

    # (2) guest description from the legacy idle run: pages that are not zero
    idle = [ds for ds in fit if ds.attrs["scenario_workload"] == "idle" and
            not int(ds.attrs["scenario_hint"])]  # fmt: skip
    if idle:
        target = _value(idle[0], "ram-normal")
        base_used = 64 << 20
        for _ in range(4):
            g = {**guest, "base_used": str(int(base_used))}
            sc = scenario_for(idle[0], profile=start, guest_options=g)
            n = _value(simulate(sc, profile=prof(params, g)), "ram-normal")
            base_used = max(4 << 20, base_used + (target - n) * PAGE_SIZE)
        guest["base_used"] = f"{int(base_used) >> 20}M"
    stream.write(f"fphint qemu fit: guest {guest}\n")

    # (3) the free parameters
    free = tuple(free)
    meas_t = np.array([_value(ds, "total-time") for ds in fit])
    meas_setup = np.array([max(_value(ds, "setup-time"), 0.5) for ds in fit])
    hinted = [i for i, ds in enumerate(fit) if int(ds.attrs["scenario_hint"])]
    meas_sent = np.array(
        [_value(fit[i], "ram-duplicate") + _value(fit[i], "ram-normal") for i in hinted]
    )

    def model(values):
        hp = prof({**params, **values}, guest)
        sims = [simulate(scenario_for(ds, profile=start, guest_options=guest), profile=hp)
                for ds in fit]  # fmt: skip
        t = np.array([_value(s, "total-time") for s in sims])
        setup = np.array([max(_value(s, "setup-time"), 0.5) for s in sims])
        sent = np.array([_value(sims[i], "ram-duplicate") + _value(sims[i], "ram-normal")
                         for i in hinted])  # fmt: skip
        r = np.concatenate(
            [
                np.log(t / meas_t),
                np.log(np.maximum(sent, 1) / meas_sent),
                0.3 * np.log(setup / meas_setup),  # setup-time is 1-2 ms: a weak pull
            ]
        )
        return r, None

    def on_eval(calls, r, _new):
        if calls % 10 == 0:
            stream.write(f"  eval {calls}: rms {math.sqrt(np.mean(r**2)):.3f}\n")

    result = fit_log_params(
        model, {k: params[k] for k in free}, method="least-squares", max_evals=max_evals,
        on_eval=on_eval,
    )  # fmt: skip
    fitted = {k: float(v) for k, v in result.params.items()}
    params.update(fitted)
    r = result.residuals
    doc = {
        "name": name,
        "description": "This host (2-core shared VM, AMD EPYC) running QEMU 7.2 under TCG: "
        "per-page costs from microbenchmarks, guest description and "
        f"{', '.join(free)} fitted on {len(fit)} measured runs (fit_runs); the other "
        "measured runs in data/measurements/ are held out.",
        "params": {k: float(v) for k, v in params.items()},
        "provenance": {
            **{k: f"from prior.json ({start})" for k in params},
            "zero_page_ns": f"microbenchmark: numpy OR-reduce of 4 KiB zero pages "
            f"({bench['zero_page_ns']:.1f} ns)",
            "normal_page_ns": f"microbenchmark: 4 KiB copy ({bench['page_copy_ns']:.0f} ns) + "
            f"4104 bytes over loopback TCP",
            "link_bytes_per_s": "microbenchmark: one TCP stream over 127.0.0.1 "
            f"({bench['link_bytes_per_s'] / 1e9:.2f} GB/s)",
            **{
                k: f"fitted (least squares, log total-time of the fit runs and log pages sent "
                f"of the hinted ones); start {result.start[k]:.4g}"
                for k in free
            },  # fmt: skip
            "microbenchmarks": bench,
            "fit_residuals_log": [float(v) for v in r],
            "fit_evaluations": int(result.calls),
            "fit_date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        },
        "guest_workload_options": guest,
        "guest_workload_provenance": "the harness's busybox guest: reserved_low 16 MiB, no page "
        "cache, no old data in free memory; base_used set so that the legacy idle fit run's "
        "normal pages match",
        "fit_runs": list(fit_runs),
    }
    out = Path(out_dir) if out_dir else data_dir() / "profiles"
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(doc, indent=2) + "\n")
    stream.write(f"fphint qemu fit: wrote {out / (name + '.json')} ({fitted})\n")
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
