"""Reproduction of the published experiments of the free page hint series (``fphint reproduce``).

The published figures live in ``data/published/thread-figures.csv`` (see its README); this module
reads them, runs every published configuration in both modes (hint and legacy) over several
seeds, puts the geometric baseline of :mod:`fphint_kernels.analytic` beside each row, and returns
one :class:`xarray.Dataset` with dims ``config``, ``mode`` and ``seed``.  :mod:`fphint_kernels.report`
turns it into ``report.md``, PNG figures and a netCDF file.

Which host profile runs which row: a profile named after the row's patch version
(``data/profiles/v36.json``, ``v37.json``) when it exists, else ``v36``; ``profile=`` forces one
for every row.  A row is *fitted* when the calibration that produced its profile used it (the
profile's ``provenance.calibration.rows``), otherwise *predicted*.

References
----------
.. [1] W. Wang, "[PATCH v36 0/5] Virtio-balloon: support free page reporting", 2018-07-20, and
   "[PATCH v37 0/3] ...", 2018-08-27, https://lkml.org/lkml/2018/8/27/29.
"""

from __future__ import annotations

import json
import math
import os
import sys
import threading
import time

import numpy as np
import xarray as xr

from .config import HostProfile, available_profiles
from .errors import FphintError
from .kernels.layout import PAGE_SIZE
from .metrics import reduction
from .published import MODES, configurations, fitted_rows, load_published, lookup, published_path

__all__ = [
    "FIRST_SEED",
    "RUN_FIELDS",
    "build_time_table",
    "fast_mode",
    "profile_for",
    "reproduce",
    "run_scenarios",
    "table",
]

#: Seeds of the reproduction: common random numbers, the same for every configuration and mode.
FIRST_SEED = 1


def fast_mode() -> bool:
    """True when ``FPHINT_FAST=1`` asks for the quick, small version (tests, notebook CI)."""
    return os.environ.get("FPHINT_FAST", "").strip().lower() in ("1", "true", "yes", "on")


def profile_for(patch_version: str, profile: str | None = None) -> str:
    """Host profile that runs the rows of one patch version.

    Parameters
    ----------
    patch_version : str
        ``v36`` or ``v37``.
    profile : str, optional
        Forces this profile for every row.

    Returns
    -------
    str
        ``profile`` if given, else the profile named after the patch version if it exists in
        ``data/profiles/``, else ``v36``.
    """
    known = available_profiles()
    if profile is not None:
        if profile not in known:
            raise FphintError(f"unknown profile {profile!r} (known: {', '.join(known)})")
        return profile
    return patch_version if patch_version in known else "v36"


# --------------------------------------------------------------------------------------------
# The reproduction
# --------------------------------------------------------------------------------------------

#: Scalars of every run kept in the reproduction Dataset (query-migrate names).
RUN_FIELDS = (
    "total-time", "downtime", "setup-time", "ram-transferred", "ram-duplicate", "ram-normal",
    "dirty-sync-count", "hinted-pages", "skipped-pages", "lost-pages", "guest-overhead-time",
    "hint-cpu-time", "held-pages-max",
)  # fmt: skip


def run_scenarios(scenarios: list, *, progress: bool = True, workers: int | None = None) -> list:
    """Simulate scenarios on several threads and keep the scalars of ``RUN_FIELDS``.

    Parameters
    ----------
    scenarios : list of Scenario
    progress : bool
        A tqdm progress bar over runs on stderr.
    workers : int, optional
        Threads (default: the number of CPUs).  The engine's kernels release the GIL
        (``nogil=True``), so runs overlap; the first (smallest) run goes alone so that the
        kernels are compiled once.  A ``KeyboardInterrupt`` cancels the queue and stops the
        runs under way within a chunk (about 0.1 s) before it propagates.

    Returns
    -------
    list of dict
        Per scenario, in order: the ``RUN_FIELDS`` values, ``status``, and ``units``.
    """
    from concurrent.futures import ThreadPoolExecutor, as_completed

    from tqdm.auto import tqdm

    from .simulate import simulate

    cancel = threading.Event()

    def one(sc):
        ds = simulate(sc, cancel=cancel)
        out = {k: float(ds[k].values) if k in ds else math.nan for k in RUN_FIELDS}
        out["status"] = str(ds["status"].values)
        out["units"] = {k: ds[k].attrs.get("units", "") for k in RUN_FIELDS if k in ds}
        return out

    n = len(scenarios)
    workers = max(1, int(workers or os.cpu_count() or 1))
    results: list = [None] * n
    if progress:
        from .simulate import warm_up

        warm_up()  # compile first: the bar's estimate is the runs' alone
    with tqdm(total=n, desc="reproduce", unit="run", disable=not progress, file=sys.stderr) as bar:
        if n:
            first = min(range(n), key=lambda i: scenarios[i].memory)
            results[first] = one(scenarios[first])
            bar.update(1)
            rest = sorted((i for i in range(n) if i != first), key=lambda i: -scenarios[i].memory)
            pool = ThreadPoolExecutor(max_workers=workers)
            try:
                futures = {pool.submit(one, scenarios[i]): i for i in rest}
                for f in as_completed(futures):
                    results[futures[f]] = f.result()
                    bar.update(1)
            except BaseException:
                # Ctrl-C or a failed run: drop the queue, stop the runs under way (each
                # checks ``cancel`` between chunks of about 0.1 s) and wait for them
                cancel.set()
                pool.shutdown(wait=True, cancel_futures=True)
                raise
            pool.shutdown(wait=True)
    return results


def reproduce(
    seeds: int = 5,
    *,
    profile: str | None = None,
    fast: bool | None = None,
    progress: bool = True,
    published: str | os.PathLike | None = None,
    workers: int | None = None,
) -> xr.Dataset:
    """Run every published configuration in both modes over several seeds.

    Parameters
    ----------
    seeds : int
        Runs per configuration and mode, seeds ``1..seeds`` (the same seeds for every row:
        common random numbers).
    profile : str, optional
        Host profile for every row (default: :func:`profile_for` each patch version).
    fast : bool, optional
        Small guests and one seed (default: :func:`fast_mode`, i.e. ``FPHINT_FAST=1``).
    progress : bool
        Show a tqdm progress bar on stderr.
    published : path-like, optional
        The published figures (default ``data/published/thread-figures.csv``).
    workers : int, optional
        Threads running simulations side by side (default: the number of CPUs).

    Returns
    -------
    xarray.Dataset
        Dims ``config``, ``mode`` (``hint``, ``legacy``), ``seed``.  Per run: the fields of
        ``RUN_FIELDS`` and ``status``; per configuration and mode: ``published-total-time``,
        ``published-build-time`` (NaN where the letters give none), ``analytic-total-time``,
        ``fitted``, ``row-id``; per configuration: ``source``, ``memory``, ``downtime-limit``,
        ``workload``, ``vcpus``, ``profile``, ``simulated-memory``.  ``attrs`` record the
        seeds, fast mode, wall time and the published file.
    """
    from .analytic import estimate_scenario

    if isinstance(seeds, bool) or not isinstance(seeds, (int, np.integer)) or seeds < 1:
        raise FphintError(f"seeds: a whole number >= 1, got {seeds!r}")
    fast = fast_mode() if fast is None else bool(fast)
    if fast:
        seeds = 1
    rows = load_published(published)
    configs = configurations(rows)
    if not configs:
        raise FphintError("the published file has no total-time rows")
    seed_list = list(range(FIRST_SEED, FIRST_SEED + int(seeds)))
    profiles = [profile_for(c.patch_version, profile) for c in configs]
    scenarios = [
        c.scenario(mode == "hint", s, prof, fast)
        for c, prof in zip(configs, profiles, strict=True)
        for mode in MODES
        for s in seed_list
    ]
    t0 = time.perf_counter()
    shape = (len(configs), len(MODES), len(seed_list))
    runs = run_scenarios(scenarios, progress=progress, workers=workers)
    wall = time.perf_counter() - t0
    data = {k: np.array([r[k] for r in runs], dtype=float).reshape(shape) for k in RUN_FIELDS}
    status = np.array([r["status"] for r in runs], dtype=object).reshape(shape)
    units = runs[0]["units"]

    pub_t = np.full(shape[:2], np.nan)
    pub_b = np.full(shape[:2], np.nan)
    analytic = np.full(shape[:2], np.nan)
    fitted = np.zeros(shape[:2], dtype=bool)
    ids = np.empty(shape[:2], dtype=object)
    for ci, (c, prof) in enumerate(zip(configs, profiles, strict=True)):
        used = fitted_rows(prof)
        for mi, mode in enumerate(MODES):
            r = lookup(rows, c, mode, "total-time")
            if r is not None:
                pub_t[ci, mi] = r["value"]
                ids[ci, mi] = r["id"]
                fitted[ci, mi] = r["id"] in used
            else:
                ids[ci, mi] = ""
            b = lookup(rows, c, mode, "build-time")
            if b is not None:
                pub_b[ci, mi] = b["value"]
            analytic[ci, mi] = estimate_scenario(
                c.scenario(mode == "hint", 1, prof, fast)
            ).total_time

    dims = ("config", "mode", "seed")
    out = xr.Dataset(
        {k: (dims, v, {"units": units.get(k, "")}) for k, v in data.items()},
        coords={
            "config": [c.label for c in configs],
            "mode": list(MODES),
            "seed": seed_list,
        },
    )  # fmt: skip
    out["status"] = (dims, status.astype(str))
    cm = ("config", "mode")
    out["published-total-time"] = (
        cm,
        pub_t,
        {"units": "ms", "description": "published QEMU total-time"},
    )
    out["published-build-time"] = (
        cm,
        pub_b,
        {"units": "s", "description": "published kernel build time"},
    )
    out["analytic-total-time"] = (
        cm, analytic, {"units": "ms", "description": "geometric pre-copy model (fphint_kernels.analytic)"},
    )  # fmt: skip
    out["fitted"] = (cm, fitted, {"description": "row used by the calibration of its profile"})
    out["row-id"] = (cm, ids.astype(str))
    out["source"] = ("config", [c.source for c in configs])
    out["patch-version"] = ("config", [c.patch_version for c in configs])
    out["memory"] = ("config", [c.memory for c in configs])
    out["downtime-limit"] = ("config", [c.downtime_limit for c in configs])
    out["workload"] = ("config", [c.workload for c in configs])
    out["vcpus"] = ("config", [c.vcpus for c in configs])
    out["profile"] = ("config", profiles)
    out["simulated-memory"] = (
        "config", [c.run_memory(fast) for c in configs], {"units": "bytes"},
    )  # fmt: skip
    out.attrs.update(
        seeds=len(seed_list),
        first_seed=FIRST_SEED,
        fast=int(fast),
        wall_time_s=wall,
        published_file=str(published or published_path()),
        profiles_json=json.dumps(
            {p: dict(HostProfile.load(p).params) for p in sorted(set(profiles))}, sort_keys=True
        ),
    )
    return out


# --------------------------------------------------------------------------------------------
# Tables
# --------------------------------------------------------------------------------------------


def _pct(a: float, b: float) -> float:
    return float((a - b) / b * 100.0) if b and math.isfinite(a) and math.isfinite(b) else math.nan


def _reduction_pct(hint: float, legacy: float) -> float:
    return float(reduction(legacy=legacy, hinted=hint) * 100.0)


def _num(v: float, nd: int = 1):
    return None if v is None or not math.isfinite(v) else round(float(v), nd)


def table(res: xr.Dataset) -> list[dict]:
    """The reproduction table: one record per configuration and mode.

    Parameters
    ----------
    res : xarray.Dataset
        Output of :func:`reproduce`.

    Returns
    -------
    list of dict
        Keys: ``source``, ``patch-version``, ``memory``, ``downtime-limit``, ``workload``,
        ``hint``, ``profile``, ``row``, ``published-ms``, ``simulated-ms`` (mean over seeds),
        ``simulated-sd-ms``, ``simulated-min-ms``, ``simulated-max-ms``, ``seeds``,
        ``completed`` (runs with status completed), ``error-pct`` (simulated vs published),
        ``analytic-ms``, ``analytic-error-pct``, ``published-reduction-pct`` and
        ``simulated-reduction-pct`` (hint vs legacy of the configuration),
        ``analytic-reduction-pct``, ``lost-pages`` (max over completed runs), ``fitted``.
    """
    out = []
    tt = res["total-time"].values
    for ci, label in enumerate(res["config"].values):
        sim_mean = np.nanmean(tt[ci], axis=-1)
        pub = res["published-total-time"].values[ci]
        ana = res["analytic-total-time"].values[ci]
        red_pub = _reduction_pct(pub[0], pub[1])
        red_sim = _reduction_pct(sim_mean[0], sim_mean[1])
        red_ana = _reduction_pct(ana[0], ana[1])
        for mi, mode in enumerate(res["mode"].values):
            runs = tt[ci, mi]
            st = res["status"].values[ci, mi]
            out.append({
                "source": str(res["source"].values[ci]),
                "patch-version": str(res["patch-version"].values[ci]),
                "config": str(label),
                "memory": str(res["memory"].values[ci]),
                "downtime-limit": str(res["downtime-limit"].values[ci]),
                "workload": str(res["workload"].values[ci]),
                "hint": bool(mode == "hint"),
                "profile": str(res["profile"].values[ci]),
                "row": str(res["row-id"].values[ci, mi]),
                "published-ms": _num(pub[mi]),
                "simulated-ms": _num(sim_mean[mi]),
                "simulated-sd-ms": _num(np.nanstd(runs, ddof=1) if runs.size > 1 else 0.0),
                "simulated-min-ms": _num(np.nanmin(runs)),
                "simulated-max-ms": _num(np.nanmax(runs)),
                "seeds": int(runs.size),
                "completed": int(np.sum(st == "completed")),
                "error-pct": _num(_pct(sim_mean[mi], pub[mi])),
                "analytic-ms": _num(ana[mi]),
                "analytic-error-pct": _num(_pct(ana[mi], pub[mi])),
                "published-reduction-pct": _num(red_pub),
                "simulated-reduction-pct": _num(red_sim),
                "analytic-reduction-pct": _num(red_ana),
                # the engine reports -1 for runs that did not complete: count completed runs only
                "lost-pages": int(max(res["lost-pages"].values[ci, mi][st == "completed"], default=0)),
                "fitted": bool(res["fitted"].values[ci, mi]),
            })  # fmt: skip
    return out


def build_time_table(res: xr.Dataset) -> list[dict]:
    """The build-time question of the thread: does hinting slow the kernel build down?

    Parameters
    ----------
    res : xarray.Dataset
        Output of :func:`reproduce`.

    Returns
    -------
    list of dict
        One record per configuration with published build times: ``config``, ``published-hint-s``,
        ``published-legacy-s``, ``published-diff-s`` (hint - legacy), ``overhead-hint-ms`` and
        ``overhead-legacy-ms`` (simulated ``guest-overhead-time``, mean over seeds),
        ``slowdown-hint-s`` and ``slowdown-legacy-s`` (overhead / vCPUs: wall time the build
        loses when it keeps every vCPU busy), ``predicted-diff-s``, ``predicted-hint-s`` (the
        published legacy time plus the predicted difference), ``error-pct`` of that prediction,
        ``held-max-gib`` (memory the balloon held at most, hint mode).

    Notes
    -----
    ``make -j4`` on 4 vCPUs keeps every vCPU busy, so vCPU time stolen by migration (write
    faults while dirty logging is on, the hint worker) lengthens the build by about that time
    divided by the vCPUs.  The model has no other coupling between migration and build speed.
    """
    out = []
    over = np.nanmean(res["guest-overhead-time"].values, axis=-1)
    held = np.nanmax(res["held-pages-max"].values, axis=-1)
    for ci, label in enumerate(res["config"].values):
        pub = res["published-build-time"].values[ci]
        if not np.isfinite(pub).any():
            continue
        vcpus = int(res["vcpus"].values[ci])
        slow = over[ci] / vcpus / 1e3
        diff = float(slow[0] - slow[1])
        pred_hint = float(pub[1] + diff)
        out.append({
            "config": str(label),
            "published-hint-s": _num(pub[0]),
            "published-legacy-s": _num(pub[1]),
            "published-diff-s": _num(pub[0] - pub[1]),
            "overhead-hint-ms": _num(over[ci, 0], 2),
            "overhead-legacy-ms": _num(over[ci, 1], 2),
            "slowdown-hint-s": _num(slow[0], 4),
            "slowdown-legacy-s": _num(slow[1], 4),
            "predicted-diff-s": _num(diff, 4),
            "predicted-hint-s": _num(pred_hint, 2),
            "error-pct": _num(_pct(pred_hint, pub[0]), 2),
            "held-max-gib": _num(held[ci, 0] * PAGE_SIZE / 2**30, 2),
        })  # fmt: skip
    return out
