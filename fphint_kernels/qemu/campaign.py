"""A measurement campaign: many configurations, repeated, one netCDF file per run.

A plan is a JSON object ``{"name": ..., "repeats": 3, "runs": [{...RunConfig strings...}]}``
(or the built-in ``default`` plan, :func:`default_plan`).  Runs are ordered repeat by repeat
(all configurations once, then all again...) so that slow drifts of the host spread over every
configuration, and a cut campaign still covers them.  With ``"pairs": true`` the runs are
consecutive pairs (hinting on, then off, of one configuration) and every other repeat runs each
pair in the opposite order (A B, then B A...), so that drift cancels between the two modes.
Files that already exist are skipped, so a campaign can be resumed.
"""

from __future__ import annotations

import itertools
import json
import sys
import time
from pathlib import Path

from ..errors import FphintError
from .runconfig import RunConfig


def default_plan() -> dict:
    """The plan behind ``data/measurements/tcg-2cpu``: a 1 GiB grid, two larger sizes, a dirty loop.

    * 1 GiB: {idle, fill-free 60 %} x hint {on, off} x init_on_alloc {0, 1}
      x downtime-limit {50 ms, 400 ms} (16 configurations);
    * 2 and 4 GiB: {idle, fill-free 60 %} x hint {on, off}, init_on_alloc 0, 400 ms (8);
    * 1 GiB dirty-loop 64 MiB / 100 ms, hint {on, off}, init_on_alloc 0, 400 ms (2).
    """
    runs = []
    for mode, hint, ioa, dl in itertools.product(
        ("idle", "fill-free"), ("on", "off"), ("off", "on"), ("400ms", "50ms")
    ):
        runs.append(
            {"memory": "1G", "mode": mode, "hint": hint, "init_on_alloc": ioa, "downtime_limit": dl}
        )
    for mem, mode, hint in itertools.product(("2G", "4G"), ("idle", "fill-free"), ("on", "off")):
        runs.append(
            {
                "memory": mem,
                "mode": mode,
                "hint": hint,
                "init_on_alloc": "off",
                "downtime_limit": "400ms",
            }
        )
    for hint in ("on", "off"):
        runs.append(
            {
                "memory": "1G",
                "mode": "dirty-loop",
                "dirty_bytes": "64M",
                "dirty_interval": "100ms",
                "hint": hint,
                "init_on_alloc": "off",
                "downtime_limit": "400ms",
                "max_time": "120s",
            }
        )
    common = {"fill": "60%", "max_bandwidth": "100G", "vcpus": 1}
    return {"name": "tcg-2cpu", "repeats": 3, "runs": [{**common, **r} for r in runs]}


def load_plan(spec: str) -> dict:
    """``default`` or a JSON file."""
    if spec == "default":
        return default_plan()
    p = Path(spec)
    if not p.exists():
        raise FphintError(f"--plan: no such file {spec!r} (or use 'default')")
    try:
        plan = json.loads(p.read_text())
    except json.JSONDecodeError as exc:
        raise FphintError(f"--plan: {spec} is not valid JSON: {exc}") from None
    if not isinstance(plan, dict) or not isinstance(plan.get("runs"), list):
        raise FphintError("--plan: expected an object with a 'runs' list")
    return plan


def expand(plan: dict, repeats: int | None = None) -> list[tuple[int, RunConfig]]:
    """``(repeat, config)`` pairs in execution order (repeat-major)."""
    configs = [RunConfig.from_strings(**r) for r in plan["runs"]]
    n = int(repeats if repeats is not None else plan.get("repeats", 3))
    if n < 1:
        raise FphintError("--repeat must be at least 1")
    pairs = bool(plan.get("pairs", False))
    if pairs and len(configs) % 2:
        raise FphintError("a plan with pairs needs an even number of runs")
    out = []
    for r in range(n):
        order = list(range(len(configs)))
        if pairs and r % 2:
            order = [i ^ 1 for i in order]  # B A instead of A B
        out += [(r, configs[i]) for i in order]
    return out


def run_file(out: Path, cfg: RunConfig, rep: int) -> Path:
    """Where one run is stored."""
    return out / f"{cfg.key()}-r{rep}.nc"


def run_campaign(
    plan: dict,
    out: str | Path,
    *,
    repeats: int | None = None,
    only: str | None = None,
    max_runs: int | None = None,
    dry_run: bool = False,
    stream=None,
) -> list[Path]:
    """Run (or list) every missing run of a plan; returns the files written.

    Parameters
    ----------
    plan : dict
    out : path-like
        Directory of the campaign's netCDF files (``plan.json`` is written there too).
    repeats : int, optional
        Override the plan's repeat count.
    only : str, optional
        Run only configurations whose key contains this substring.
    max_runs : int, optional
        Stop after this many runs (for budgeting).
    dry_run : bool
        Only print what would run.
    stream : file, optional
        Progress output (default ``sys.stderr``).
    """
    from ..io import save_dataset
    from .guest import load_guest
    from .measurement import to_dataset
    from .runner import detect_accelerator, migrate_once

    stream = stream or sys.stderr
    out = Path(out)
    todo = [
        (r, c)
        for r, c in expand(plan, repeats)
        if (only is None or only in c.key()) and not run_file(out, c, r).exists()
    ]
    if max_runs is not None:
        todo = todo[:max_runs]
    stream.write(f"fphint qemu campaign {plan.get('name', '')}: {len(todo)} runs to do -> {out}\n")
    if dry_run:
        for r, c in todo:
            stream.write(f"  {run_file(out, c, r).name}\n")
        return []
    out.mkdir(parents=True, exist_ok=True)
    (out / "plan.json").write_text(json.dumps(plan, indent=1) + "\n")
    guest = load_guest()
    accel = detect_accelerator(guest)
    written = []
    t0 = time.monotonic()
    for i, (rep, cfg) in enumerate(todo, start=1):
        t1 = time.monotonic()
        res = migrate_once(cfg, guest=guest, accel=accel)
        ds = to_dataset(res, run=rep, campaign=str(plan.get("name", "")))
        path = save_dataset(ds, run_file(out, cfg, rep))
        written.append(path)
        elapsed = time.monotonic() - t0
        eta = elapsed / i * (len(todo) - i)
        fr = res.final.get("ram", {}) if res.final else {}
        stream.write(
            f"[{i}/{len(todo)}] {cfg.key()} r{rep}: {res.status} "
            f"total={res.final.get('total-time', '-')}ms zero={fr.get('duplicate', '-')} "
            f"normal={fr.get('normal', '-')} guest_ok={int(bool(res.health and res.health.ok))} "
            f"({time.monotonic() - t1:.0f}s; eta {eta / 60:.1f} min)"
            f"{' FAILURE: ' + res.failure if res.failure else ''}\n"
        )
        stream.flush()
    return written
