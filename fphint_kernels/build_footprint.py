"""A real kernel build's memory, measured, against the model's kernel-build workload.

``data/measurements/host-build`` holds one ``make -j2 bzImage`` of Linux 6.1 (``defconfig``)
on a host with 23 GiB free, traced page by page: every page the build took from the buddy
allocator (the ``kmem:mm_page_alloc_zone_locked`` tracepoint of ``mm/page_alloc.c``), the free
pages before and after it (``/proc/kpageflags``), and each compiler process's peak memory and
lifetime (``/proc/PID/status``).  Its README gives the protocol; ``tools/build_footprint.py``
makes the files from the raw trace.

Two questions are asked of it:

* **How far does a build spread over free memory?**  A guest with plenty of free memory
  never reclaims, so if the allocator handed out never-used pages as the build went on, the
  footprint would grow with the guest (the published 128 GiB kernel-build migrations took much
  longer than the model says).  :func:`load_host_build` gives the distinct pages the build
  took that were free before it ("fresh") against all it took.
* **How many distinct pages does a build write in a window as long as a migration's first
  pass?**  :func:`first_pass_dirty_set` puts the model's first-pass dirty set beside the
  distinct pages the real build took from the allocator in windows of as many compile units.
  The trace sees pages taken from the allocator only, not rewrites of memory a process
  already holds: it is a lower bound of what dirty logging would see.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from .config import HostProfile, Scenario, Workload, data_dir
from .errors import ScenarioError
from .simulate import simulate

#: folder of the measured build under ``data/measurements``
HOST_BUILD = "host-build"
MIB = 2**20
PAGE_SIZE = 4096


def _root(root: str | Path | None) -> Path:
    path = Path(root) if root is not None else data_dir() / "measurements" / HOST_BUILD
    for name in ("footprint.csv", "windows.csv", "summary.json"):
        if not (path / name).is_file():
            raise ScenarioError(f"build measurement: {path / name} not found")
    return path


def load_host_build(root: str | Path | None = None) -> xr.Dataset:
    """The measured build, second by second and window by window.

    Parameters
    ----------
    root : path, optional
        Folder with ``footprint.csv``, ``windows.csv`` and ``summary.json`` (default:
        ``data/measurements/host-build``).

    Returns
    -------
    xarray.Dataset
        Over ``t`` (s since the build started): ``objects`` built, ``fresh`` (MiB of distinct
        pages taken that were free before the build), ``taken`` (MiB taken in all, repeats
        counted), ``memfree`` and ``cached`` (MiB, ``/proc/meminfo``).  Over ``window`` (its
        length in s): ``window_objects`` (median objects built in one window) and
        ``window_distinct_{median,min,max}`` (MiB of distinct pages taken in one window).
        ``attrs`` hold ``summary.json``.
    """
    path = _root(root)
    fp = pd.read_csv(path / "footprint.csv")
    win = pd.read_csv(path / "windows.csv")
    g = win.groupby("window_s")
    ds = xr.Dataset(
        {
            "objects": ("t", fp["objects"].to_numpy()),
            "fresh": ("t", fp["fresh_mib"].to_numpy(), {"units": "MiB"}),
            "taken": ("t", fp["taken_mib"].to_numpy(), {"units": "MiB"}),
            "memfree": ("t", fp["memfree_mib"].to_numpy(), {"units": "MiB"}),
            "cached": ("t", fp["cached_mib"].to_numpy(), {"units": "MiB"}),
            "window_objects": ("window", g["objects"].median().to_numpy()),
            "window_distinct_median": ("window", g["distinct_mib"].median().to_numpy(), {"units": "MiB"}),
            "window_distinct_min": ("window", g["distinct_mib"].min().to_numpy(), {"units": "MiB"}),
            "window_distinct_max": ("window", g["distinct_mib"].max().to_numpy(), {"units": "MiB"}),
        },
        coords={"t": fp["t_s"].to_numpy(), "window": np.array(sorted(g.groups), float)},
    )  # fmt: skip
    ds["t"].attrs["units"] = "s"
    ds["window"].attrs["units"] = "s"
    summary = json.loads((path / "summary.json").read_text())
    ds.attrs.update({k: v for k, v in summary.items() if not isinstance(v, dict)})
    for k, v in summary.get("fresh_at_end", {}).items():
        ds.attrs[f"fresh_at_end_{k}"] = v
    return ds


def measured_distinct(build: xr.Dataset, objects: float) -> tuple[float, float, float]:
    """Distinct MiB the real build took in a window of ``objects`` compile units: (median,
    min, max) interpolated in log-log between the measured window lengths (clamped at both
    ends)."""
    x = np.log(np.maximum(build["window_objects"].values, 1e-9))
    out = []
    for name in ("median", "min", "max"):
        y = np.log(build[f"window_distinct_{name}"].values)
        out.append(float(np.exp(np.interp(np.log(max(objects, 1e-9)), x, y))))
    return out[0], out[1], out[2]


def first_pass_dirty_set(
    profile: str = "v37",
    memories=("8G", "128G"),
    seeds=(1, 2, 3),
    downtime_limit: str = "400ms",
    root: str | Path | None = None,
) -> xr.Dataset:
    """The model's kernel build during a legacy migration's first pass, beside the real build.

    For each guest size and seed, the first pass of a legacy migration of the kernel-build
    workload (4 vCPUs, 100 GB/s max-bandwidth: the thread's settings) is simulated; its
    length is converted to compile units (``jobs`` compilers each living ``proc_lifetime_ms``
    of workload time, which runs at the profile's ``cpu_speed``), and the pages dirty at the
    first sync are set beside the distinct pages the measured build took from its allocator
    in windows of as many compile units (:func:`measured_distinct`).

    Returns
    -------
    xarray.Dataset
        Over (``memory``, ``seed``): ``first_pass_ms``, ``compile_units``, ``simulated`` (MiB
        dirty at the first sync) and ``measured_{median,min,max}`` (MiB).
    """

    build = load_host_build(root)
    wl = Workload.load("kernel-build").params
    speed = HostProfile.load(profile).params["cpu_speed"]
    shape = (len(memories), len(seeds))
    out = {k: np.zeros(shape) for k in ("first_pass_ms", "compile_units", "simulated",
                                        "measured_median", "measured_min", "measured_max")}  # fmt: skip
    for i, mem in enumerate(memories):
        for j, seed in enumerate(seeds):
            sc = Scenario(
                memory=mem, workload="kernel-build", downtime_limit=downtime_limit,
                max_bandwidth="100G", hint=False, init_on_alloc=False, vcpus=4,
                profile=profile, seed=seed,
            )  # fmt: skip
            r = simulate(sc)
            ms = float(r["round-end"].values[0] - r["round-start"].values[0])
            units = ms * speed * wl["intensity"] * wl["jobs"] / wl["proc_lifetime_ms"]
            out["first_pass_ms"][i, j] = ms
            out["compile_units"][i, j] = units
            out["simulated"][i, j] = (
                float(r["round-pending-after-sync"].values[0]) * PAGE_SIZE / MIB
            )
            med, lo, hi = measured_distinct(build, units)
            out["measured_median"][i, j], out["measured_min"][i, j] = med, lo
            out["measured_max"][i, j] = hi
    dims = ("memory", "seed")
    ds = xr.Dataset({k: (dims, v) for k, v in out.items()},
                    coords={"memory": list(memories), "seed": list(seeds)})  # fmt: skip
    for k in ("simulated", "measured_median", "measured_min", "measured_max"):
        ds[k].attrs["units"] = "MiB"
    ds["first_pass_ms"].attrs["units"] = "ms"
    ds.attrs["profile"] = profile
    return ds
