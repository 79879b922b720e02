"""Studies beyond the published thread: grids of simulations, each returned as one Dataset.

Each function runs a small grid of :class:`~fphint_kernels.config.Scenario` (with seeds) one
after the other in this process and returns an :class:`xarray.Dataset` with one dimension per
varied parameter plus ``seed``, and one variable per result (the ``query-migrate`` vocabulary
of :mod:`fphint_kernels.variables`, units and descriptions included).  ``fast=True`` shrinks the
grid to small guests, so that the notebooks built on them run in seconds in the test suite;
the default grids are the ones behind the figures of ``docs/studies.md``
(``python tools/study_figures.py``).  Larger grids belong on a cluster:
:func:`fphint_kernels.sweep.sweep` runs the same scenarios on Dask.

:func:`big_idle_guest`      what hinting buys a big, mostly idle guest (1 GiB to 1 TiB)
:func:`hint_rate`           the hint worker's rate against the sender's: where hinting stops paying
:func:`init_on_alloc`       today's guests (``init_on_alloc=1``) against 2018's
:func:`designs`             hinting designs side by side
:func:`non_convergence`     a guest that dirties memory fast: hinting and auto-converge

The hinting design of a point is the coordinate ``hinting``, a value of
:data:`fphint_kernels.config.HINTING`: ``"none"`` (legacy pre-copy), ``"fph"`` (free page
hinting as merged in Linux 4.20 and QEMU 4.0, ``VIRTIO_BALLOON_F_FREE_PAGE_HINT``),
``"report-in-place"`` (the series' earlier versions), ``"reporting"`` (free page reporting,
Linux 5.7) and ``"oracle"`` (every page free when it would be sent is skipped).
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable, Sequence

import numpy as np
import xarray as xr

from .config import HINTING, Scenario
from .errors import ScenarioError
from .kernels.layout import PAGE_SIZE
from .simulate import simulate, warm_up
from .units import parse_duration_ms, parse_size
from .variables import SPECS

__all__ = [
    "DESIGNS", "FIELDS", "big_idle_guest", "designs", "hint_rate", "idle_guest_scenario",
    "init_on_alloc", "non_convergence", "run_grid",
]  # fmt: skip

#: results kept for every point (scalar fields of a simulation Dataset)
FIELDS = (
    "status",
    "total-time",
    "downtime",
    "ram-transferred",
    "ram-duplicate",
    "ram-normal",
    "rounds",
    "hinted-pages",
    "skipped-pages",
    "held-pages-max",
    "hint-cpu-time",
    "zeroing-cpu-time",
    "guest-overhead-time",
    "cpu-throttle-percentage",
    "lost-pages",
)

#: the designs the engine knows: coordinate value -> Scenario fields (see ``config.HINTING``)
DESIGNS = {name: {"hinting": name} for name in HINTING}


def _design(name: str) -> dict:
    try:
        return DESIGNS[name]
    except KeyError:
        raise ScenarioError(f"hinting: one of {', '.join(DESIGNS)}, got {name!r}") from None


def _seeds(seeds) -> list[int]:
    if isinstance(seeds, (int, np.integer)) and not isinstance(seeds, bool):
        if seeds < 1:
            raise ScenarioError("seeds: a count >= 1 or a list of seeds")
        return list(range(int(seeds)))
    out = [int(s) for s in seeds]
    if not out or len(set(out)) != len(out) or min(out) < 0:
        raise ScenarioError("seeds: a non-empty list of distinct whole numbers >= 0")
    return out


def run_grid(
    dims: dict[str, Sequence],
    make: Callable[..., Scenario],
    seeds=1,
    *,
    fields: Sequence[str] = FIELDS,
    progress: bool = True,
    desc: str = "study",
    attrs: dict | None = None,
) -> xr.Dataset:
    """Simulate ``make(**point, seed=s)`` for every point of the grid ``dims`` and every seed.

    Parameters
    ----------
    dims : dict
        Dimension name -> coordinate values (the grid is their cartesian product, in order).
    make : callable
        Builds the scenario of one point from keyword arguments named as ``dims`` plus
        ``seed``; a :class:`~fphint_kernels.ScenarioError` stops the study before any run.
    seeds : int or list of int
        A count (seeds 0 to N-1) or the seeds.
    fields : sequence of str
        Scalar results kept (names of :mod:`fphint_kernels.variables`).
    progress : bool
        Show a progress bar over runs.

    Returns
    -------
    xarray.Dataset
        One variable per field, dims ``(*dims, "seed")``; ``run-seconds`` is the wall time of
        each simulation.  Attributes: ``points``, ``wall_time_s`` and ``attrs``.
    """
    seeds = _seeds(seeds)
    names = list(dims)
    values = [list(dims[n]) for n in names]
    if any(not v for v in values):
        raise ScenarioError("every dimension of a study needs at least one value")
    shape = tuple(len(v) for v in values) + (len(seeds),)
    points = list(itertools.product(*[range(len(v)) for v in values], range(len(seeds))))
    # build (and so validate) every scenario before the first run
    scenarios = [
        make(
            **{n: values[k][i] for k, (n, i) in enumerate(zip(names, idx[:-1], strict=True))},
            seed=seeds[idx[-1]],
        )
        for idx in points
    ]
    out = {f: np.empty(shape, dtype=object if f == "status" else float) for f in fields}
    secs = np.empty(shape)
    it = zip(points, scenarios, strict=True)
    started = time.perf_counter()
    if progress:
        from tqdm.auto import tqdm

        warm_up()
        it = tqdm(it, total=len(points), desc=desc, unit="run")
    for idx, sc in it:
        t0 = time.perf_counter()
        ds = simulate(sc)
        secs[idx] = time.perf_counter() - t0
        for f in fields:
            out[f][idx] = str(ds[f].values) if f == "status" else float(ds[f].values)
    data = {}
    for f in fields:
        arr = out[f].astype(str) if f == "status" else out[f]
        spec = SPECS[f]
        data[f] = xr.Variable(
            (*names, "seed"), arr, {"units": spec.units, "description": spec.description}
        )
    data["run-seconds"] = xr.Variable(
        (*names, "seed"), secs, {"units": "s", "description": "wall time of the simulation"}
    )
    coords = {n: np.asarray(v) for n, v in zip(names, values, strict=True)}
    coords["seed"] = np.asarray(seeds)
    a = {"points": len(points), "wall_time_s": round(time.perf_counter() - started, 3)}
    a.update(attrs or {})
    return xr.Dataset(data, coords=coords, attrs=a)


def _add_derived(ds: xr.Dataset) -> xr.Dataset:
    """Derived results: bytes saved against ``hinting="none"`` and the like."""
    if "held-pages-max" in ds:
        ds["held-bytes-max"] = ds["held-pages-max"] * PAGE_SIZE
        ds["held-bytes-max"].attrs = {
            "units": "bytes",
            "description": "most guest memory held by the balloon at once (unusable meanwhile)",
        }
    if "hinting" in ds.dims and "none" in ds["hinting"].values:
        legacy = ds.sel(hinting="none")
        for name, what in (("total-time", "total time"), ("ram-transferred", "bytes sent")):
            r = 1.0 - ds[name] / legacy[name]
            ds[f"{name}-saving"] = r.transpose(*ds[name].dims)
            ds[f"{name}-saving"].attrs = {
                "units": "1",
                "description": f"share of the {what} of hinting='none' (same seed) saved",
            }
    return ds


def _size(value) -> int:
    return int(parse_size(value, what="size"))


# --------------------------------------------------------------------------------------------
# the reviewers' question: a big, mostly idle guest
# --------------------------------------------------------------------------------------------


def _guest_own_bytes(sc: Scenario) -> float:
    """Bytes the guest's kernel uses on its own (reserved, low memory, image, base, memmap)."""
    m = sc.memory_layout()
    return (
        m["reserved_low"]
        + m["low_span"]
        + m["kaslr_image"]
        + m["base_used"]
        + m["memmap_bytes_per_page"] * sc.nr_pages
    )


def idle_guest_scenario(
    memory, in_use: float, old_data: float, *, seed: int = 0, **fields
) -> Scenario:
    """A mostly idle guest of ``memory`` bytes, ``in_use`` of it in use (the guest's own
    kernel memory included), and ``old_data`` of the rest (free memory) still holding data
    written earlier (so legacy pre-copy sends it in full; the rest of free memory was never
    written and goes as zero pages).

    The memory in use is the workload's ``base_used`` (on top of the guest's own); the old data
    is the ``fill`` of the ``fill-free`` workload.
    """
    if not 0.0 <= in_use < 1.0 or not 0.0 <= old_data <= 1.0:
        raise ScenarioError("in_use in [0, 1) and old_data in [0, 1]")
    probe = Scenario(memory=memory, workload="idle", **fields)
    own = _guest_own_bytes(probe)
    n = probe.memory
    base = max(0.0, in_use * n - own)
    base = math.floor(base / (2 << 20)) * (2 << 20)
    used = own + base
    # the free memory, less the zone reserves and a margin the allocator keeps
    free = max(0.0, n - used - (16 << 20) - 0.01 * n)
    fill = old_data * free / n
    return Scenario(
        memory=n,
        workload="fill-free",
        workload_options={"base_used": int(base), "fill": round(fill, 6)},
        seed=seed,
        **fields,
    )


def big_idle_guest(
    memory=("1G", "16G", "256G", "1T"),
    in_use=(0.0, 0.3, 0.6, 0.9),
    downtime_limit=("300ms", "2s"),
    hinting=("none", "fph"),
    *,
    old_data: float = 0.5,
    max_bandwidth="100G",
    max_time="10min",
    profile: str = "v36",
    seeds=1,
    fast: bool = False,
    progress: bool = True,
) -> xr.Dataset:
    """What hinting buys a big, mostly idle guest: total time and bytes, 1 GiB to 1 TiB.

    A guest of ``memory`` with ``in_use`` of its RAM in use and ``old_data`` of its free memory
    still holding data written earlier (:func:`idle_guest_scenario`), migrated with each
    downtime limit, without and with free page hinting, on the 2018 testbed (``profile``).

    Parameters
    ----------
    memory, in_use, downtime_limit, hinting : sequences
        The grid (sizes and times as for :class:`~fphint_kernels.Scenario`).
    old_data : float
        Share of free memory holding old data (0: a freshly booted guest; 1: a guest whose
        free memory was all written once).
    max_bandwidth, max_time, profile : as for :class:`~fphint_kernels.Scenario`
        (a run still going at ``max_time`` is reported ``not-converged``: legacy pre-copy of a
        1 TiB guest with 30 % or more in use needs more than the default 10 min on the
        testbed's 1.3 GB/s link; ``max_time="30min"`` lets it finish, at a few minutes of
        computation per run)
    seeds : int or list of int
    fast : bool
        A small grid (1 GiB and 2 GiB guests) for tests.

    Returns
    -------
    xarray.Dataset
        Dims ``memory`` (bytes), ``in_use``, ``downtime_limit`` (ms), ``hinting``, ``seed``;
        the fields of :data:`FIELDS`, ``total-time-saving`` and ``ram-transferred-saving``
        (against ``hinting="none"``).

    Notes
    -----
    The question of the v37 review thread (lkml.org/lkml/2018/8/27/29): the series was measured
    on an 8 GiB idle guest with a 2 s limit; hosts over-provisioned with large, mostly idle
    guests and 300-500 ms limits are the use case.
    """
    if fast:
        memory, in_use, downtime_limit = ("1G", "2G"), (0.0, 0.6), ("300ms", "2s")
    mem = [_size(m) for m in memory]
    dls = [parse_duration_ms(d, what="downtime_limit") for d in downtime_limit]

    def make(memory, in_use, downtime_limit, hinting, seed):
        return idle_guest_scenario(
            memory,
            in_use,
            old_data,
            seed=seed,
            downtime_limit=downtime_limit,
            max_bandwidth=max_bandwidth,
            max_time=max_time,
            profile=profile,
            **_design(hinting),
        )

    ds = run_grid(
        {"memory": mem, "in_use": list(in_use), "downtime_limit": dls, "hinting": list(hinting)},
        make,
        seeds,
        progress=progress,
        desc="big idle guest",
        attrs={"study": "big_idle_guest", "old_data": old_data, "profile": profile,
               "max_bandwidth": float(parse_size(max_bandwidth, what="max_bandwidth"))},
    )  # fmt: skip
    ds["memory"].attrs["units"] = "bytes"
    ds["in_use"].attrs = {"units": "1", "description": "share of guest RAM in use"}
    ds["downtime_limit"].attrs["units"] = "ms"
    return _add_derived(ds)


# --------------------------------------------------------------------------------------------
# the hint worker's rate against the sender's
# --------------------------------------------------------------------------------------------


def hint_rate(
    hint_block_us=(10.0, 30.0, 100.0, 300.0, 1000.0, 3000.0, 10000.0, 30000.0, 100000.0),
    max_bandwidth=("128M", "1G", "100G"),
    hinting=("none", "fph"),
    *,
    memory="8G",
    fill: float = 0.6,
    downtime_limit="2s",
    profile: str = "v36",
    seeds=1,
    fast: bool = False,
    progress: bool = True,
) -> xr.Dataset:
    """The hint worker's speed against the sender's: where hinting stops paying off.

    A ``fill-free`` guest (``fill`` of its RAM written then freed) with the guest's
    ``hint_block_us`` (vCPU time to take and report one 4 MiB block) varied, sent at each
    ``max_bandwidth``.  The sender spends about ``4104 B / bandwidth`` per old-data page and a
    zero-page check per never-written page; once the worker reports a block more slowly than
    the sender gets through one, the sender reaches free memory before its hint.

    Returns
    -------
    xarray.Dataset
        Dims ``hint_block_us`` (us), ``max_bandwidth`` (bytes/s), ``hinting``, ``seed``; the
        fields of :data:`FIELDS`, the savings against ``hinting="none"``, and
        ``sender-block-us``: the sender's time per 4 MiB block of old data at that bandwidth
        (capped by the profile's link rate), ``sender-zero-block-us``: its time per 4 MiB
        block of never-written memory (1024 zero-page checks and records).

    Notes
    -----
    The hint worker is ``virtio_balloon``'s ``report_free_page_func`` (Linux 4.20,
    ``drivers/virtio/virtio_balloon.c``); the sender QEMU's ``ram_find_and_save_block``
    (``migration/ram.c``), which skips pages whose bit ``qemu_guest_free_page_hint`` cleared.
    """
    if fast:
        memory, hint_block_us, max_bandwidth = "512M", (30.0, 30000.0), ("128M", "100G")
    bws = [float(parse_size(b, what="max_bandwidth")) for b in max_bandwidth]
    blocks = [float(b) for b in hint_block_us]

    def make(hint_block_us, max_bandwidth, hinting, seed):
        return Scenario(
            memory=memory,
            workload="fill-free",
            workload_options={"fill": fill},
            downtime_limit=downtime_limit,
            max_bandwidth=max_bandwidth,
            profile=profile,
            guest_options={"hint_block_us": hint_block_us},
            seed=seed,
            **_design(hinting),
        )

    ds = run_grid(
        {"hint_block_us": blocks, "max_bandwidth": bws, "hinting": list(hinting)},
        make,
        seeds,
        progress=progress,
        desc="hint rate",
        attrs={"study": "hint_rate", "memory": _size(memory), "fill": fill, "profile": profile},
    )
    ds["hint_block_us"].attrs = {"units": "us", "description": "guest vCPU time per hinted block"}
    ds["max_bandwidth"].attrs["units"] = "bytes/s"
    hp = make(blocks[0], bws[0], "none", 0).load_profile().params
    rate = np.minimum(np.asarray(bws), hp["link_bytes_per_s"])
    ds["sender-block-us"] = xr.Variable(
        ("max_bandwidth",),
        1024 * 4104 / rate * 1e6,
        {"units": "us", "description": "sender's wire time for one 4 MiB block of old data"},
    )
    ds["sender-zero-block-us"] = xr.Variable(
        (),
        1024 * hp["zero_page_ns"] / hp["cpu_speed"] / 1e3,
        {"units": "us", "description": "sender's time for one 4 MiB block of zero pages"},
    )
    return _add_derived(ds)


# --------------------------------------------------------------------------------------------
# init_on_alloc: today's guests against 2018's
# --------------------------------------------------------------------------------------------


def init_on_alloc(
    memory=("1G", "8G", "64G"),
    workload=("idle", "fill-free"),
    init_on_alloc=(False, True),
    hinting=("none", "fph"),
    *,
    downtime_limit="300ms",
    max_bandwidth="100G",
    profile: str = "v36",
    seeds=1,
    fast: bool = False,
    progress: bool = True,
) -> xr.Dataset:
    """Today's guests (``init_on_alloc=1``, the default of most distribution kernels since
    Linux 5.3) against 2018's (the option did not exist: ``init_on_alloc=0``).

    With ``init_on_alloc=1`` the guest zeroes every page it allocates, the 4 MiB blocks its
    hint worker takes included: the hinted pages are written, come back dirty and are sent
    again (as zero pages), and the guest's vCPUs pay for the zeroing.

    Returns
    -------
    xarray.Dataset
        Dims ``memory``, ``workload``, ``init_on_alloc`` (bool), ``hinting``, ``seed``.

    Notes
    -----
    Linux 5.3 ``init_on_alloc`` (commit 6471384af2a6, ``mm/page_alloc.c``
    ``want_init_on_alloc``); the hint worker allocates with ``alloc_pages`` in
    ``get_free_page_and_send`` (``drivers/virtio/virtio_balloon.c``), so its blocks are zeroed.
    """
    if fast:
        memory = ("512M",)
    mem = [_size(m) for m in memory]

    def make(memory, workload, init_on_alloc, hinting, seed):
        return Scenario(
            memory=memory,
            workload=workload,
            init_on_alloc=bool(init_on_alloc),
            downtime_limit=downtime_limit,
            max_bandwidth=max_bandwidth,
            profile=profile,
            seed=seed,
            **_design(hinting),
        )

    ds = run_grid(
        {"memory": mem, "workload": list(workload), "init_on_alloc": list(init_on_alloc),
         "hinting": list(hinting)},
        make,
        seeds,
        progress=progress,
        desc="init_on_alloc",
        attrs={"study": "init_on_alloc", "profile": profile},
    )  # fmt: skip
    ds["memory"].attrs["units"] = "bytes"
    return _add_derived(ds)


# --------------------------------------------------------------------------------------------
# designs side by side
# --------------------------------------------------------------------------------------------


def designs(
    hinting=("none", "fph", "report-in-place", "reporting", "oracle"),
    workload=("idle", "fill-free", "kernel-build"),
    *,
    memory="8G",
    downtime_limit="300ms",
    max_bandwidth="100G",
    profile: str = "v36",
    seeds=3,
    fast: bool = False,
    progress: bool = True,
) -> xr.Dataset:
    """Hinting designs side by side: time, bytes, downtime, memory the guest cannot use while
    hinting (``held-bytes-max``), guest CPU spent (``guest-overhead-time``).

    Every design runs the same guests with the same seeds (:data:`fphint_kernels.config.HINTING`
    describes them; ``oracle`` is the upper bound of what any hinting can buy).

    Returns
    -------
    xarray.Dataset
        Dims ``hinting``, ``workload``, ``seed``; also ``reported-pages`` (pages the guest
        reported, for the designs that report without allocating).

    Notes
    -----
    ``fph``: Linux 4.20 ``virtio_balloon`` ``report_free_page_func``, QEMU
    ``virtio_balloon_free_page_hint``; ``report-in-place``: the series up to v34 (2018), which
    reported free blocks without taking them; ``reporting``: Linux 5.7 ``mm/page_reporting.c``
    and QEMU 5.1 ``virtio_balloon_handle_report``.
    """
    if fast:
        memory, workload, seeds = "512M", ("idle", "fill-free"), 1

    def make(hinting, workload, seed):
        return Scenario(
            memory=memory,
            workload=workload,
            downtime_limit=downtime_limit,
            max_bandwidth=max_bandwidth,
            profile=profile,
            seed=seed,
            **_design(hinting),
        )

    ds = run_grid(
        {"hinting": list(hinting), "workload": list(workload)},
        make,
        seeds,
        fields=(*FIELDS, "reported-pages"),
        progress=progress,
        desc="designs",
        attrs={"study": "designs", "memory": _size(memory), "profile": profile},
    )
    return _add_derived(ds)


# --------------------------------------------------------------------------------------------
# non-convergence
# --------------------------------------------------------------------------------------------


def non_convergence(
    dirty_bytes=("64M", "256M", "512M", "1G"),
    hinting=("none", "fph"),
    auto_converge=(False, True),
    *,
    memory="4G",
    dirty_interval="100ms",
    downtime_limit="300ms",
    max_bandwidth="1G",
    max_time="60s",
    profile: str = "v36",
    seeds=2,
    fast: bool = False,
    progress: bool = True,
) -> xr.Dataset:
    """A guest that rewrites ``dirty_bytes`` every ``dirty_interval`` (``dirty-loop``): does the
    migration converge, and what do hinting and auto-converge change?

    Returns
    -------
    xarray.Dataset
        Dims ``dirty_bytes`` (bytes), ``hinting``, ``auto_converge`` (bool), ``seed``;
        ``converged`` is 1 for a completed run; ``dirty-rate`` the loop's write rate.

    Notes
    -----
    Auto-converge is QEMU's ``mig_throttle_guest_down`` (``migration/ram.c``): a 20 % vCPU
    throttle, raised by 10 % while the dirty rate stays above half the transfer rate.
    """
    if fast:
        memory, dirty_bytes, max_time, seeds = "1G", ("64M", "512M"), "20s", 1
    sizes = [_size(d) for d in dirty_bytes]

    def make(dirty_bytes, hinting, auto_converge, seed):
        return Scenario(
            memory=memory,
            workload="dirty-loop",
            workload_options={"dirty_bytes": int(dirty_bytes), "dirty_interval_ms": dirty_interval},
            downtime_limit=downtime_limit,
            max_bandwidth=max_bandwidth,
            max_time=max_time,
            auto_converge=bool(auto_converge),
            profile=profile,
            seed=seed,
            **_design(hinting),
        )

    ds = run_grid(
        {"dirty_bytes": sizes, "hinting": list(hinting), "auto_converge": list(auto_converge)},
        make,
        seeds,
        progress=progress,
        desc="non-convergence",
        attrs={"study": "non_convergence", "memory": _size(memory), "profile": profile,
               "max_time_ms": parse_duration_ms(max_time, what="max_time")},
    )  # fmt: skip
    sc = make(sizes[0], hinting[0], auto_converge[0], 0)
    rate = min(sc.max_bandwidth, sc.load_profile().params["link_bytes_per_s"])
    ds.attrs["threshold_bytes"] = rate * sc.downtime_limit / 1e3
    ds.attrs["dirty_interval_ms"] = parse_duration_ms(dirty_interval, what="dirty_interval")
    ds["dirty_bytes"].attrs["units"] = "bytes"
    ds["converged"] = (ds["status"] == "completed").astype(float)
    ds["converged"].attrs = {"units": "1", "description": "1: the migration completed"}
    interval = parse_duration_ms(dirty_interval, what="dirty_interval")
    ds["dirty-rate"] = ds["dirty_bytes"] / (interval / 1e3)
    ds["dirty-rate"].attrs = {"units": "bytes/s", "description": "the dirty loop's write rate"}
    return _add_derived(ds)
