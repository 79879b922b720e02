"""A measured migration as an ``xarray.Dataset`` in the simulator's vocabulary, and its file.

Scalars carry the names of the simulator's Dataset (``total-time``, ``downtime``,
``setup-time``, ``ram-transferred``, ``ram-duplicate``, ``ram-normal``, ``ram-normal-bytes``,
``dirty-sync-count``, ``expected-downtime``, ``mbps``, ``status``, ``failure``); every other
``query-migrate`` field is kept as ``qmp-<name>``.  The poll trace uses the simulator's ``time``
dim (ms since the ``migrate`` command) with ``transferred`` (bytes) and ``pending`` (pages, from
``remaining``), plus ``qmp-duplicate``, ``qmp-normal``, ``qmp-dirty-sync-count`` and
``qmp-status``.  The configuration is in ``attrs["scenario_*"]`` (the simulator's scenario
fields), the host, QEMU, guest kernel, accelerator and guest health in the other attrs.
Files are written and read by :mod:`fphint_kernels.io` (:func:`load_all` reads a campaign).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import xarray as xr

from ..errors import FphintError
from ..io import load_dataset
from ..kernels.layout import PAGE_SIZE
from ..variables import SPECS
from .result import RunResult
from .runconfig import RunConfig

#: 2: destination check waits for "running", touch 0.3 (1: 0.5);
#: 3: trace events, per-thread CPU samples, final reply re-read until its times are set
HARNESS_VERSION = 3

_SCALARS = {
    # dataset name: (path in query-migrate, dtype)
    "total-time": (("total-time",), "f8"),
    "downtime": (("downtime",), "f8"),
    "setup-time": (("setup-time",), "f8"),
    "expected-downtime": (("expected-downtime",), "f8"),
    "ram-transferred": (("ram", "transferred"), "i8"),
    "ram-duplicate": (("ram", "duplicate"), "i8"),
    "ram-normal": (("ram", "normal"), "i8"),
    "ram-normal-bytes": (("ram", "normal-bytes"), "i8"),
    "dirty-sync-count": (("ram", "dirty-sync-count"), "i8"),
    "mbps": (("ram", "mbps"), "f8"),
}
_EXTRA_UNITS = {
    "total": "bytes",
    "remaining": "bytes",
    "skipped": "pages",
    "dirty-pages-rate": "pages/s",
    "pages-per-second": "pages/s",
    "page-size": "bytes",
    "multifd-bytes": "bytes",
    "precopy-bytes": "bytes",
    "downtime-bytes": "bytes",
    "postcopy-bytes": "bytes",
    "postcopy-requests": "1",
    "dirty-sync-missed-zero-copy": "1",
}


def _get(d: dict, path: tuple, default=np.nan):
    for k in path:
        if not isinstance(d, dict) or k not in d:
            return default
        d = d[k]
    return d


def _var(name: str, value, dims=(), units: str | None = None, description: str | None = None):
    spec = SPECS.get(name)
    attrs = {
        "units": units if units is not None else (spec.units if spec else ""),
        "description": description
        if description is not None
        else (spec.description if spec else ""),
    }
    return xr.Variable(dims, value, attrs=attrs)


def scenario_attrs(cfg: RunConfig) -> dict:
    """The configuration as the simulator's ``scenario_*`` attrs (netCDF-safe types)."""
    return {
        "scenario_memory": int(cfg.memory),
        "scenario_workload": cfg.mode,
        "scenario_workload_options": json.dumps(cfg.workload_options(), sort_keys=True),
        "scenario_hint": int(cfg.hint),
        "scenario_init_on_alloc": int(cfg.init_on_alloc),
        "scenario_downtime_limit": float(cfg.downtime_limit_ms),
        "scenario_max_bandwidth": float(cfg.max_bandwidth),
        "scenario_vcpus": int(cfg.vcpus),
    }


def config_from_attrs(attrs: dict) -> RunConfig:
    """Inverse of :func:`scenario_attrs` (plus ``harness_max_time_s``)."""
    opts = json.loads(attrs.get("scenario_workload_options", "{}") or "{}")
    kw = {
        "memory": int(attrs["scenario_memory"]),
        "mode": str(attrs["scenario_workload"]),
        "hint": bool(int(attrs["scenario_hint"])),
        "init_on_alloc": bool(int(attrs["scenario_init_on_alloc"])),
        "downtime_limit_ms": float(attrs["scenario_downtime_limit"]),
        "max_bandwidth": int(attrs["scenario_max_bandwidth"]),
        "vcpus": int(attrs["scenario_vcpus"]),
    }
    if "fill" in opts:
        kw["fill"] = float(opts["fill"])
    if "dirty_bytes" in opts:
        kw["dirty_bytes"] = int(opts["dirty_bytes"])
    if "dirty_interval_ms" in opts:
        kw["dirty_interval_ms"] = float(opts["dirty_interval_ms"])
    if "harness_max_time_s" in attrs:
        kw["max_time_s"] = float(attrs["harness_max_time_s"])
    return RunConfig(**kw)


def to_dataset(res: RunResult, *, run: int = 0, campaign: str = "") -> xr.Dataset:
    """Turn a :class:`RunResult` into a Dataset (see the module docstring for the layout).

    Parameters
    ----------
    res : RunResult
    run : int
        Repeat index within its configuration.
    campaign : str
        Name of the campaign the run belongs to.
    """
    final = res.final or {}
    data: dict = {
        "status": _var("status", np.array(res.status, dtype=object)),
        "failure": _var("failure", np.array(res.failure, dtype=object)),
    }
    for name, (path, dtype) in _SCALARS.items():
        v = _get(final, path)
        if dtype == "i8":
            v = -1 if v is None or (isinstance(v, float) and np.isnan(v)) else int(v)
        data[name] = _var(name, np.array(v, dtype=dtype))
    ram = final.get("ram", {}) if isinstance(final, dict) else {}
    for key, units in _EXTRA_UNITS.items():
        if key in ram:
            v = ram[key]
            arr = np.array(v, dtype="f8" if isinstance(v, float) else "i8")
            data[f"qmp-{key}"] = _var(
                f"qmp-{key}", arr, units=units, description=f"query-migrate ram.{key}"
            )
    # the poll trace
    t = np.array([p[0] for p in res.trace], dtype="f8")
    infos = [p[1] for p in res.trace]

    def col(path, dtype="f8"):
        return np.array([_get(i, path, np.nan) for i in infos], dtype=dtype)

    remaining = col(("ram", "remaining"))
    data["transferred"] = _var("transferred", col(("ram", "transferred")), dims=("time",))
    data["pending"] = _var("pending", remaining / PAGE_SIZE, dims=("time",))
    data["qmp-duplicate"] = _var(
        "qmp-duplicate", col(("ram", "duplicate")), ("time",), "pages", "zero pages sent so far"
    )
    data["qmp-normal"] = _var(
        "qmp-normal", col(("ram", "normal")), ("time",), "pages", "normal pages sent so far"
    )
    data["qmp-dirty-sync-count"] = _var(
        "qmp-dirty-sync-count", col(("ram", "dirty-sync-count")), ("time",), "1", "bitmap syncs"
    )
    data["qmp-status"] = _var(
        "qmp-status",
        np.array([str(i.get("status", "")) for i in infos], dtype=object),
        ("time",),
        "",
        "query-migrate status at each poll",
    )
    h = res.health
    attrs = {
        "title": f"fphint measured migration {res.config.key()} run {run}",
        "source": "measured: fphint qemu migrate (real QEMU, loopback)",
        "harness_version": HARNESS_VERSION,
        "campaign": campaign,
        "config_key": res.config.key(),
        "run": int(run),
        "started": res.started,
        **scenario_attrs(res.config),
        "harness_max_time_s": float(res.config.max_time_s),
        "harness_settle_s": float(res.config.settle_s),
        "accelerator": res.accelerator,
        "qemu_version": res.qemu_version,
        "guest_kernel": res.guest.get("kernel_version", ""),
        "guest_kernel_package": f"{res.guest.get('kernel_package', '')} "
        f"{res.guest.get('kernel_package_version', '')}".strip(),
        "host_cpu_model": res.host.get("cpu_model", ""),
        "host_cpu_count": int(res.host.get("cpu_count", 0)),
        "host_memory": int(res.host.get("memory_bytes", 0)),
        "host_kernel": res.host.get("kernel", ""),
        "host_loadavg_at_start": res.host.get("loadavg", ""),
        "host_note": "shared machine: other CPU-heavy jobs may run at the same time; "
        "both QEMUs (TCG) and the migration share its cores",
        "guest_ok": int(bool(h and h.ok)),
        "guest_alive": int(bool(h and h.alive)),
        "guest_trouble_counts": json.dumps(h.counts() if h else {}, sort_keys=True),
        "guest_evidence": json.dumps(h.evidence if h else [])[:3000],
        "guest_touch": h.touch if h else "",
        "guest_heartbeats_after": int(h.heartbeats_after if h else 0),
        "guest_bad_heartbeats": int(h.bad_heartbeats if h else 0),
        "destination_run_state": res.dest_status,
        "guest_fill_bytes": int(res.fill_bytes),
        "wall_boot_s": float(res.timings.get("boot_s", np.nan)),
        "wall_migrate_s": float(res.timings.get("migrate_wall_s", np.nan)),
        "wall_total_s": float(res.timings.get("wall_s", np.nan)),
        "poll_interval_ms": 50.0,
    }
    # guest facts from the source console (boot) log
    from . import health as _h

    feats = _h.feature_bits(res.source_log)
    fph = _h.free_page_hint_negotiated(feats)
    ioa = _h.init_on_alloc_reported(res.source_log)
    attrs["guest_features"] = feats or ""
    attrs["guest_free_page_hint_negotiated"] = -1 if fph is None else int(fph)
    attrs["guest_init_on_alloc_reported"] = -1 if ioa is None else int(ioa)
    src_trouble = _h.trouble_lines(res.source_log)
    attrs["source_trouble_counts"] = json.dumps(
        {k: sum(1 for kk, _ in src_trouble if kk == k) for k, _ in src_trouble}, sort_keys=True
    )
    if h and h.trouble:
        attrs["guest_console_excerpt"] = _excerpt(res.dest_log)
    coords = {"time": ("time", t, {"units": "ms"})}
    if res.probes:
        pdata, pcoords, pattrs = probe_variables(res)
        data.update(pdata)
        coords.update(pcoords)
        attrs.update(pattrs)
    return xr.Dataset(data, coords=coords, attrs=attrs)


#: What the probes add to a measured run: name -> (dims, units, description).
PROBE_VARS = {
    "cpu-time": (
        ("sample", "side", "role"),
        "ms",
        "CPU time of each QEMU's threads of a role since the migrate command "
        "(/proc/PID/task/TID/schedstat)",
    ),
    "cpu-wait": (
        ("sample", "side", "role"),
        "ms",
        "time those threads waited for a CPU (run-queue delay) since the migrate command",
    ),
    "host-busy": (("sample",), "CPUs", "busy CPUs of the whole host over each sample interval"),
    "hint-time": (("hint",), "ms", "the source's iothread pops a hinted 4 MiB block"),
    "command-time": (("command",), "ms", "it pops a command id (the guest's START or STOP)"),
    "slice-end-time": (("slice",), "ms", "a ram_save_iterate slice ends after MAX_WAIT"),
    "slice-pages": (("slice",), "pages", "pages that slice handled"),
    "check-time": (("check",), "ms", "a pending check before an iteration (migrate_pending)"),
    "check-pending": (("check",), "pages", "pending RAM at that check"),
    "check-threshold": (("check",), "pages", "the threshold (bandwidth x downtime-limit)"),
    "sync-time": (("sync",), "ms", "a bitmap sync starts"),
    "sync-dirty-pages": (("sync",), "pages", "dirty pages after that sync"),
    "setup-done-time": ((), "ms", "migration setup complete: the first iteration starts"),
    "switchover-time": ((), "ms", "the source VM stops for the switchover"),
    "hints-before-first-slice": ((), "blocks", "hinted blocks popped before the first slice"),
    "cpu-migration-thread": ((), "ms", "CPU time of the source's migration thread"),
    "cpu-vcpus": ((), "ms", "CPU time of the source's vCPU threads during the migration"),
    "cpu-iothread": ((), "ms", "CPU time of the source's iothread (free page hints)"),
    "cpu-destination": ((), "ms", "CPU time of every thread of the destination QEMU"),
    "cpu-other": (
        (),
        "ms",
        "CPU time used on the host by anything but the two QEMUs during the migration",
    ),
}


def probe_variables(res: RunResult) -> tuple[dict, dict, dict]:
    """Data variables, coordinates and attrs from the run's probes (see :data:`PROBE_VARS`).

    Times are ms from the ``migrate`` command: the CPU samples are taken against the host
    clock at that command; the trace events count from QEMU's ``setup`` state, which the
    command enters at once (the offset is recorded as ``trace_offset_ms``).
    """
    from .probes import ROLES, parse_trace

    pr = res.probes
    tm = np.asarray(pr.get("time_ms", []), dtype=float)
    sides = ("src", "dst")
    cpu = np.zeros((len(tm), len(sides), len(ROLES)))
    wait = np.zeros_like(cpu)
    for i, side in enumerate(sides):
        for j, role in enumerate(ROLES):
            key = f"{side}/{role}"
            if key in pr.get("cpu_ns", {}):
                cpu[:, i, j] = np.asarray(pr["cpu_ns"][key], dtype=float) / 1e6
                wait[:, i, j] = np.asarray(pr["wait_ns"][key], dtype=float) / 1e6
    busy = np.array([np.nan if v is None else v for v in pr.get("host_busy", [])], dtype=float)
    total_ms = float(_get(res.final or {}, ("total-time",), np.nan))
    # over the migration: the last sample before the command to the first after the end
    i0 = int(np.searchsorted(tm, 0.0, side="right") - 1) if len(tm) else 0
    i1 = int(min(len(tm) - 1, np.searchsorted(tm, total_ms))) if len(tm) else 0
    i0 = max(i0, 0)

    def used(side, role=None):
        k = sides.index(side)
        v = cpu[:, k, :] if role is None else cpu[:, k, ROLES.index(role)]
        v = v.sum(axis=1) if role is None else v
        return float(v[i1] - v[i0]) if len(tm) else np.nan

    dt = np.diff(tm)
    ncpu_ms = float(np.nansum(busy[i0 + 1 : i1 + 1] * dt[i0:i1])) if len(tm) > 1 else np.nan
    qemu_ms = used("src") + used("dst")
    tr = parse_trace(res.source_qemu_log)
    off = 0.0
    if tr.found and pr.get("migrate_wall_time"):
        off = (tr.t0 - float(pr["migrate_wall_time"])) * 1000.0
    values = {
        "cpu-time": cpu,
        "cpu-wait": wait,
        "host-busy": busy,
        "hint-time": tr.hint_ms + off,
        "command-time": tr.command_ms + off,
        "slice-end-time": tr.slice_end_ms + off,
        "slice-pages": tr.slice_pages,
        "check-time": tr.pending_ms + off,
        "check-pending": tr.pending_pages,
        "check-threshold": tr.threshold_pages,
        "sync-time": tr.sync_start_ms + off,
        "sync-dirty-pages": tr.sync_dirty_pages,
        "setup-done-time": tr.setup_done_ms + off,
        "switchover-time": tr.stop_ms + off,
        "hints-before-first-slice": tr.hints_before_first_slice(),
        "cpu-migration-thread": used("src", "migration"),
        "cpu-vcpus": used("src", "vcpu"),
        "cpu-iothread": used("src", "iothread"),
        "cpu-destination": used("dst"),
        "cpu-other": max(0.0, ncpu_ms - qemu_ms) if np.isfinite(ncpu_ms) else np.nan,
    }
    data = {
        name: _var(name, np.asarray(values[name]), dims, units, desc)
        for name, (dims, units, desc) in PROBE_VARS.items()
    }
    coords = {
        "sample": ("sample", tm, {"units": "ms"}),
        "side": ("side", list(sides)),
        "role": ("role", list(ROLES)),
    }
    attrs = {
        "trace_offset_ms": float(off),
        "host_vmstat_delta": json.dumps(pr.get("vmstat", {}), sort_keys=True),
        # the cost of new memory on the host just before the migrate command (ms per 2 MiB
        # huge page) and the free memory the host reported to its hypervisor during the run
        "host_first_touch_ms_per_2m": float(pr.get("first_touch_ms_per_2m", np.nan)),
        "host_reported_kib": -1 if pr.get("reported_kib") is None else int(pr["reported_kib"]),
        "harness_memory_settle_s": float(res.timings.get("memory_settle_s", np.nan)),
    }
    return data, coords, attrs


def _excerpt(log: str, limit: int = 2500) -> str:
    """The destination console around the first trouble line (for the evidence)."""
    from .health import clean, trouble_lines

    text = clean(log)
    tr = trouble_lines(text)
    if not tr:
        return text[-limit:]
    i = text.find(tr[0][1])
    start = max(0, i - 300)
    return text[start : start + limit]


def load_all(root: str | os.PathLike, *, completed: bool = False) -> list[xr.Dataset]:
    """Every measured run under a directory (recursively), sorted by file name; with
    ``completed``, only the runs whose migration completed."""
    r = Path(root)
    if not r.exists():
        raise FphintError(f"no such directory: {r}")
    out = []
    for f in sorted(r.rglob("*.nc")):
        ds = load_dataset(f)
        ds.attrs["path"] = str(f)
        if not completed or str(ds["status"].values) == "completed":
            out.append(ds)
    return out
