"""The published figures of the free page hint series: which rows exist and how they are named.

The figures live in ``data/published/thread-figures.csv`` (one row per published number, see
its README); this module reads and checks them, names every row (:func:`row_id`), groups the
rows into configurations (:class:`Config`, one per guest RAM, downtime limit and workload of a
letter) and says which rows the calibration of a host profile used (:func:`fitted_rows`).
The reproduction (:mod:`fphint_kernels.experiments`), the calibration
(:mod:`fphint_kernels.calibrate`) and the report (:mod:`fphint_kernels.report`) all read the
rows through it; no published number is held in the package.

References
----------
.. [1] W. Wang, "[PATCH v36 0/5] Virtio-balloon: support free page reporting", 2018-07-20,
   virtualization@lists.linux-foundation.org.
.. [2] W. Wang, "[PATCH v37 0/3] Virtio-balloon: support free page reporting", 2018-08-27,
   https://lkml.org/lkml/2018/8/27/29.
"""

from __future__ import annotations

import csv
import math
import os
from dataclasses import dataclass
from pathlib import Path

from .config import Guest, HostProfile, Scenario, Workload, data_dir
from .errors import FphintError
from .units import parse_size

__all__ = [
    "MODES",
    "PUBLISHED_FILE",
    "Config",
    "calibration_of",
    "configurations",
    "fitted_rows",
    "load_published",
    "lookup",
    "published_path",
    "row_id",
    "select",
]

#: The published figures, inside ``data/published/``.
PUBLISHED_FILE = "thread-figures.csv"
#: The two modes of every published comparison: free page hinting on, and off (legacy).
MODES = ("hint", "legacy")
_COLUMNS = (
    "source", "url", "patch_version", "date", "guest_ram", "vcpus", "max_bandwidth",
    "downtime_limit", "workload", "mode", "metric", "value", "unit",
)  # fmt: skip
_METRIC_UNITS = {"total-time": "ms", "build-time": "s"}
_ID_KEYS = ("patch_version", "guest_ram", "downtime_limit", "workload", "mode", "metric")


def published_path() -> Path:
    """``data/published/thread-figures.csv`` (under ``$FPHINT_DATA`` when it is set)."""
    return data_dir() / "published" / PUBLISHED_FILE


def row_id(row) -> str:
    """Stable identifier of a published row, e.g. ``v36/8G/2s/idle/hint/total-time``.

    Parameters
    ----------
    row : mapping
        A row of :func:`load_published` (needs ``patch_version``, ``guest_ram``,
        ``downtime_limit``, ``workload``, ``mode``, ``metric``).

    Returns
    -------
    str

    Examples
    --------
    >>> row_id({"patch_version": "v37", "guest_ram": "128G", "downtime_limit": "400ms",
    ...         "workload": "kernel-build", "mode": "legacy", "metric": "total-time"})
    'v37/128G/400ms/kernel-build/legacy/total-time'
    """
    return "/".join(str(row[k]) for k in _ID_KEYS)


def load_published(path: str | os.PathLike | None = None) -> list[dict]:
    """Read and check the published figures.

    Parameters
    ----------
    path : path-like, optional
        CSV file (default :func:`published_path`).

    Returns
    -------
    list of dict
        One dict per row with the CSV columns (``value`` as float, ``vcpus`` as int) plus ``id``
        (:func:`row_id`).

    Raises
    ------
    FphintError
        Missing file, missing column, unknown mode/metric/workload, bad value or unit, or a
        duplicated row.
    """
    p = Path(path) if path is not None else published_path()
    if not p.is_file():
        raise FphintError(f"published figures not found: {p}")
    with open(p, newline="") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in _COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise FphintError(f"{p.name}: missing column(s) {', '.join(missing)}")
        rows = list(reader)
    out, seen = [], set()
    for n, r in enumerate(rows, start=2):
        where = f"{p.name} line {n}"
        if r["mode"] not in MODES:
            raise FphintError(f"{where}: mode must be hint or legacy, got {r['mode']!r}")
        if _METRIC_UNITS.get(r["metric"]) != r["unit"]:
            raise FphintError(f"{where}: metric {r['metric']!r} with unit {r['unit']!r}")
        try:
            value = float(r["value"])
            vcpus = int(r["vcpus"])
        except ValueError:
            raise FphintError(f"{where}: value and vcpus must be numbers") from None
        if not (value > 0 and math.isfinite(value)):
            raise FphintError(f"{where}: value must be > 0")
        Workload.load(r["workload"])  # one-line error for an unknown workload
        row = dict(r, value=value, vcpus=vcpus)
        row["id"] = row_id(row)
        if row["id"] in seen:
            raise FphintError(f"{where}: duplicate row {row['id']}")
        seen.add(row["id"])
        out.append(row)
    return out


def select(rows: list[dict], **fields) -> list[dict]:
    """The rows whose columns have the given values, in file order.

    Examples
    --------
    >>> rows = [{"metric": "total-time", "mode": "hint"}, {"metric": "build-time", "mode": "hint"}]
    >>> select(rows, metric="build-time")
    [{'metric': 'build-time', 'mode': 'hint'}]
    """
    return [r for r in rows if all(r[k] == v for k, v in fields.items())]


# --------------------------------------------------------------------------------------------
# Configurations
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Config:
    """One published configuration: both modes of one (source, RAM, downtime, workload)."""

    source: str
    patch_version: str
    memory: str
    downtime_limit: str
    workload: str
    vcpus: int
    max_bandwidth: str

    @classmethod
    def from_row(cls, row: dict) -> Config:
        """The configuration of a row of :func:`load_published`."""
        return cls(
            source=row["source"], patch_version=row["patch_version"], memory=row["guest_ram"],
            downtime_limit=row["downtime_limit"], workload=row["workload"], vcpus=row["vcpus"],
            max_bandwidth=row["max_bandwidth"],
        )  # fmt: skip

    @property
    def label(self) -> str:
        return f"{self.patch_version} {self.memory} {self.downtime_limit} {self.workload}"

    def run_memory(self, fast: bool = False) -> int:
        """Guest RAM to simulate (bytes).

        Fast mode divides the published RAM by 8, but keeps at least twice what the workload
        needs (rounded up to a whole GiB), so that free memory is left to hint: the code path is
        the same, the numbers are not comparable with the published ones.
        """
        mem = parse_size(self.memory, what="memory", default_unit="M")
        if not fast:
            return mem
        need = 2 * Workload.load(self.workload).min_memory(Guest.load("testbed-2018"))
        gib = 1 << 30
        return min(mem, max(mem // 8, -(-need // gib) * gib))

    def scenario(self, hint: bool, seed: int, profile: str, fast: bool = False) -> Scenario:
        """The :class:`~fphint_kernels.Scenario` of this configuration in one mode.

        Settings of the letters: ``migrate_set_speed 100G`` (max-bandwidth), the downtime limit,
        4 vCPUs, and a 2018 guest kernel (``init_on_alloc`` did not exist: off).
        """
        return Scenario(
            memory=f"{self.run_memory(fast) >> 20}M",  # a bare number would be MiB
            workload=self.workload,
            downtime_limit=self.downtime_limit,
            max_bandwidth=self.max_bandwidth,
            hint=hint,
            init_on_alloc=False,
            vcpus=self.vcpus,
            profile=profile,
            seed=seed,
        )


def configurations(rows: list[dict] | None = None) -> list[Config]:
    """The configurations that have a published migration time, in file order.

    Parameters
    ----------
    rows : list of dict, optional
        Output of :func:`load_published` (default: read it).

    Returns
    -------
    list of Config
    """
    rows = load_published() if rows is None else rows
    out: list[Config] = []
    for r in select(rows, metric="total-time"):
        c = Config.from_row(r)
        if c not in out:
            out.append(c)
    return out


def lookup(rows: list[dict], cfg: Config, mode: str, metric: str) -> dict | None:
    """The row of one configuration, mode and metric, or None when the letters give none."""
    for r in rows:
        if r["mode"] == mode and r["metric"] == metric and Config.from_row(r) == cfg:
            return r
    return None


# --------------------------------------------------------------------------------------------
# Rows used by calibrations
# --------------------------------------------------------------------------------------------


def calibration_of(profile: str) -> dict:
    """The ``provenance.calibration`` record of a host profile (empty if it was not calibrated).

    It names the published rows the profile was fitted on (``rows``) and, for a profile derived
    from another testbed, the build-time rows that set its speed (``cpu_speed_rows``).
    """
    return dict(dict(HostProfile.load(profile).provenance).get("calibration") or {})


def fitted_rows(profile: str) -> set[str]:
    """Ids of the published rows the calibration of ``profile`` used (empty if none)."""
    return set(calibration_of(profile).get("rows", []))
