"""Everything recorded about one measured migration (:class:`RunResult`) and its raw JSON file.

:func:`fphint_kernels.qemu.runner.migrate_once` fills a :class:`RunResult` and keeps it as
``result.json`` beside the console logs of the run (:func:`dump_raw`), so that a Dataset can be
rebuilt later (:func:`load_raw`, then :func:`fphint_kernels.qemu.measurement.to_dataset`).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from . import health
from .runconfig import RunConfig


@dataclass
class RunResult:
    """Everything recorded about one migration."""

    config: RunConfig
    status: str = "failed"
    failure: str = ""
    final: dict = field(default_factory=dict)  # last query-migrate reply
    trace: list = field(default_factory=list)  # (t_ms, query-migrate reply)
    accelerator: str = ""
    qemu_version: str = ""
    guest: dict = field(default_factory=dict)
    host: dict = field(default_factory=dict)
    source_log: str = ""
    dest_log: str = ""
    source_qemu_log: str = ""  # what the source QEMU printed, its trace events included
    health: health.Health | None = None
    dest_status: str = ""
    fill_bytes: int = -1
    timings: dict = field(default_factory=dict)
    probes: dict = field(default_factory=dict)  # thread CPU samples, vmstat (runner._Migration)
    started: str = ""
    workdir: str = ""


def dump_raw(res: RunResult, path: Path) -> None:
    """Keep the raw result next to the console logs (to rebuild a Dataset later)."""
    raw = {
        "config": asdict(res.config),
        "status": res.status,
        "failure": res.failure,
        "final": res.final,
        "trace": res.trace,
        "accelerator": res.accelerator,
        "qemu_version": res.qemu_version,
        "guest": res.guest,
        "host": res.host,
        "dest_status": res.dest_status,
        "fill_bytes": res.fill_bytes,
        "timings": res.timings,
        "probes": res.probes,
        "started": res.started,
        "health": asdict(res.health) if res.health else None,
    }
    try:
        path.write_text(json.dumps(raw, default=str) + "\n")
    except OSError:
        pass


def load_raw(path: str | os.PathLike) -> RunResult:
    """Rebuild a :class:`RunResult` from a ``result.json`` and the console logs beside it."""
    p = Path(path)
    raw = json.loads(p.read_text())
    res = RunResult(config=RunConfig(**raw["config"]))
    for k in (
        "status",
        "failure",
        "final",
        "accelerator",
        "qemu_version",
        "guest",
        "host",
        "dest_status",
        "fill_bytes",
        "timings",
        "started",
    ):
        setattr(res, k, raw[k])
    res.trace = [(t, i) for t, i in raw["trace"]]
    res.probes = raw.get("probes", {})
    if raw.get("health"):
        res.health = health.Health(**raw["health"])
        res.health.trouble = [tuple(x) for x in res.health.trouble]
    for side, attr in (("src", "source_log"), ("dst", "dest_log")):
        f = p.parent / f"{side}-console.log"
        if f.exists():
            setattr(res, attr, f.read_text(errors="replace"))
    f = p.parent / "src-qemu.err"
    if f.exists():
        res.source_qemu_log = f.read_text(errors="replace")
    res.workdir = str(p.parent)
    return res
