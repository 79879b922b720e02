"""Parameter sweeps on a Dask cluster: ``sweep(spec) -> xarray.Dataset``.

A sweep is a base scenario, a grid of scenario fields (and workload parameters) with a list of
values each, and seeds.  :func:`sweep` expands the grid (cartesian product x seeds), validates
every point before any work starts, runs the points that are not cached yet on a
``dask.distributed`` cluster (a ``LocalCluster`` of worker processes by default, or an existing
scheduler), stores every finished point in an on-disk cache, and returns one Dataset with one
dimension per grid key plus ``seed``.  ``fphint sweep SPEC.yaml`` is the same function on the
command line; ``docs/sweeps.md`` describes the spec.

Cache.  A point is stored under the SHA-256 of a canonical JSON document holding every field of
its :class:`~fphint_kernels.config.Scenario`, the engine hash (:func:`engine_hash`: the package
version and the contents of the engine's source files, :data:`ENGINE_SOURCES`) and the contents
of the data files the scenario loads (:func:`data_files`: host profile, workload, guest).  A
changed kernel, ``simulate.py``, ``config.py`` or data file gives new keys, so a stale point is
never returned; an interrupted sweep finds its finished points again and computes only the rest.
Each worker computes the key of the scenario it simulated with its own engine and data files;
the client refuses a result whose key differs (a worker running other code or other data).

Compiled kernels.  A cold Numba compile takes tens of seconds per process.  Before its first
simulation every worker process switches on the project's on-disk kernel cache
(:func:`fphint_kernels._numba.enable_cache`), so the workers of a machine compile once and
every later worker process (and every later sweep) loads the compiled kernels from disk.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import itertools
import json
import logging
import math
import os
import time
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from .errors import FphintError, ScenarioError

__all__ = [
    "DATA_FIELDS",
    "ENGINE_SOURCES",
    "Point",
    "PointCache",
    "SweepInterrupted",
    "SweepPlan",
    "data_files",
    "default_cache_dir",
    "engine_hash",
    "expand",
    "load_spec",
    "scenario_fields",
    "scenario_key",
    "sweep",
]

#: Source files of the engine, relative to the package folder (glob patterns): a change to any
#: of them changes :func:`engine_hash` and so every cache key.
ENGINE_SOURCES = ("kernels/**/*.py", "simulate.py", "config.py")

#: Scenario fields naming a data file, and the folder of ``data/`` that holds it.
DATA_FIELDS = {"profile": "profiles", "workload": "workloads", "guest": "guests"}

#: Top-level keys of a spec besides the scenario fields and workload parameters.
SPEC_KEYS = ("grid", "seeds", "description")

#: Units of the coordinates of numeric scenario fields (as normalised by ``Scenario``).
_FIELD_UNITS = {
    "memory": "bytes",
    "downtime_limit": "ms",
    "max_bandwidth": "bytes/s",
    "max_time": "ms",
}
_KIND_UNITS = {"size": "bytes", "ms": "ms", "frac": "1"}

_WORKLOAD_PREFIX = "workload_options."

#: How long to try to reach an existing scheduler.
CONNECT_TIMEOUT = "10s"


# --------------------------------------------------------------------------------------------
# Engine and scenario hashes
# --------------------------------------------------------------------------------------------


def _sha256_file(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def engine_hash(package_dir: str | os.PathLike | None = None) -> str:
    """Hash of the simulation engine: the package version and the contents of every file of
    :data:`ENGINE_SOURCES` (the kernels, ``simulate.py``, ``config.py``).

    Parameters
    ----------
    package_dir : path-like, optional
        Folder of the ``fphint_kernels`` package to hash (default: this package).

    Returns
    -------
    str
        64 hexadecimal digits.

    Examples
    --------
    >>> len(engine_hash()), engine_hash() == engine_hash()
    (64, True)
    """
    from ._version import __version__

    root = Path(package_dir) if package_dir is not None else Path(__file__).resolve().parent
    h = hashlib.sha256(f"fphint_kernels {__version__}\n".encode())
    files = set()
    for pattern in ENGINE_SOURCES:
        files.update(p for p in root.glob(pattern) if p.is_file() and "__pycache__" not in p.parts)
    if not files:
        raise FphintError(f"no engine source under {root}")
    for p in sorted(files, key=lambda p: p.relative_to(root).as_posix()):
        h.update(f"{p.relative_to(root).as_posix()} {_sha256_file(p)}\n".encode())
    return h.hexdigest()


def _plain(value):
    """A JSON-able, canonical form of a scenario field value."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, (set, frozenset)):
        return sorted((_plain(v) for v in value), key=lambda v: json.dumps(v, sort_keys=True))
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value)
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _plain({f.name: getattr(value, f.name) for f in dataclasses.fields(value)})
    raise FphintError(f"cannot describe the scenario value {value!r} in a sweep")


def scenario_fields(scenario) -> dict:
    """Every field of ``scenario`` as plain JSON values (mappings sorted, sets as sorted lists).

    ``Scenario(**scenario_fields(sc)) == sc``: the dictionary is what a worker receives.

    Examples
    --------
    >>> import fphint_kernels as fk
    >>> d = scenario_fields(fk.Scenario(memory="256M", hint=True))
    >>> d["memory"], d["hint"], fk.Scenario(**d) == fk.Scenario(memory="256M", hint=True)
    (268435456, True, True)
    """
    return {f.name: _plain(getattr(scenario, f.name)) for f in dataclasses.fields(scenario)}


def data_files(scenario) -> dict:
    """The data files ``scenario`` loads: ``{field: path}`` for :data:`DATA_FIELDS`.

    A field holding the path of an existing ``.json`` file names that file; otherwise the file
    is ``data/<folder>/<value>.json`` when it exists.
    """
    from .config import data_dir

    out = {}
    for name, folder in DATA_FIELDS.items():
        value = getattr(scenario, name, None)
        if not isinstance(value, (str, os.PathLike)) or not os.fspath(value):
            continue
        p = Path(value)
        if p.suffix == ".json" and p.is_file():
            out[name] = p
            continue
        cand = data_dir() / folder / f"{os.fspath(value)}.json"
        if cand.is_file():
            out[name] = cand
    return out


def scenario_key(scenario, engine: str, *, _file_hashes: dict | None = None) -> str:
    """Cache key of one point: SHA-256 of the canonical JSON of the scenario's fields, the
    engine hash and the hashes of the data files it loads.

    Examples
    --------
    >>> import fphint_kernels as fk
    >>> a = scenario_key(fk.Scenario(memory="256M"), "e1")
    >>> a == scenario_key(fk.Scenario(memory="256M"), "e1"), a == scenario_key(fk.Scenario(memory="256M"), "e2")
    (True, False)
    """
    memo = {} if _file_hashes is None else _file_hashes
    data = {}
    for name, path in data_files(scenario).items():
        if path not in memo:
            memo[path] = _sha256_file(path)
        data[name] = memo[path]
    doc = {"scenario": scenario_fields(scenario), "engine": engine, "data": data}
    text = json.dumps(doc, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()


# --------------------------------------------------------------------------------------------
# Spec: loading, validation, expansion
# --------------------------------------------------------------------------------------------


def load_spec(spec) -> dict:
    """The spec as a dict: ``spec`` itself (a mapping) or the YAML file at that path."""
    if isinstance(spec, Mapping):
        return json.loads(json.dumps(spec, default=_json_default))
    if not isinstance(spec, (str, os.PathLike)):
        raise FphintError("spec: a mapping or the path of a YAML file")
    path = Path(spec)
    if not path.is_file():
        raise FphintError(f"no such file: {path}")
    import yaml

    try:
        with open(path) as fh:
            data = yaml.safe_load(fh)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        problem = getattr(exc, "problem", None) or type(exc).__name__
        raise FphintError(f"{path}: not valid YAML{where}: {problem}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise FphintError(f"cannot read {path}: {exc}") from None
    if not isinstance(data, Mapping):
        raise FphintError(f"{path}: the spec must be a mapping (scenario fields, grid, seeds)")
    return json.loads(json.dumps(data, default=_json_default))


def _json_default(value):
    try:
        return _plain(value)
    except FphintError:
        return str(value)


@dataclasses.dataclass(frozen=True)
class Point:
    """One point of a sweep: its position in the grid, its scenario and its cache key."""

    index: tuple
    labels: dict
    scenario: object
    key: str
    where: str = ""

    def describe(self) -> str:
        """The point as the spec gives it (``memory=256M, hint=true, seed=0``)."""
        return self.where or ", ".join(f"{k}={v}" for k, v in self.labels.items())


@dataclasses.dataclass(frozen=True)
class SweepPlan:
    """A validated, expanded spec: dims (grid keys then ``seed``), their coordinates, the
    points in grid order, the engine hash and the spec."""

    spec: dict
    dims: tuple
    coords: dict
    coord_units: dict
    points: list
    engine: str
    fixed: dict

    @property
    def shape(self) -> tuple:
        return tuple(len(self.coords[d]) for d in self.dims)


def _param_names():
    from .config import WORKLOAD_PARAMS, Scenario

    fields = [f.name for f in dataclasses.fields(Scenario) if f.name != "seed"]
    return fields, WORKLOAD_PARAMS


def _resolve_key(key: str, where: str):
    """``("field", name)`` or ``("workload", name)`` for a spec key, or a ScenarioError."""
    fields, wparams = _param_names()
    if not isinstance(key, str):
        raise ScenarioError(f"{where}: keys are names, got {key!r}")
    if key == "seed":
        raise ScenarioError(f"{where}: seed: give the seeds with 'seeds' (a count or a list)")
    if key in fields:
        return "field", key
    name = key[len(_WORKLOAD_PREFIX) :] if key.startswith(_WORKLOAD_PREFIX) else key
    if name in wparams:
        return "workload", name
    raise ScenarioError(
        f"{where}: unknown key {key!r} (scenario fields: {', '.join(fields)}; "
        f"workload parameters: {', '.join(wparams)})"
    )


def _coerce(name: str, value):
    """YAML reads ``off`` as false: give string fields their string back."""
    if name == "page_poison" and value is False:
        return "off"
    return value


def _kwargs(assignments: list, where: str) -> dict:
    """Scenario keyword arguments from ``[(kind, name, value)]`` (later ones win)."""
    kw, wopts = {}, {}
    for kind, name, value in assignments:
        if kind == "field" and name == "workload_options":
            if value is None:
                value = {}
            if not isinstance(value, Mapping):
                raise ScenarioError(f"{where}: workload_options: a mapping, got {value!r}")
            wopts.update(value)
        elif kind == "field":
            kw[name] = _coerce(name, value)
        else:
            wopts[name] = value
    if wopts:
        kw["workload_options"] = wopts
    return kw


def _make_scenario(kw: dict, where: str):
    from .config import Scenario

    try:
        return Scenario(**kw)
    except FphintError as exc:
        raise ScenarioError(f"{where}: {exc}") from None
    except (TypeError, ValueError) as exc:
        raise ScenarioError(f"{where}: bad value ({exc})") from None


def _label(value):
    """Coordinate label of a normalised value: numbers stay numbers, the rest are strings."""
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value)
    if isinstance(value, str):
        return value
    return json.dumps(_plain(value), sort_keys=True, separators=(",", ":"))


def _given(value) -> str:
    """A spec value as written in YAML (``true``, ``256M``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, float)):
        return str(value)
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _normalised(scenario, kind: str, name: str):
    if kind == "workload":
        return scenario.load_workload().params[name]
    return getattr(scenario, name)


def _seeds(value) -> list:
    if value is None:
        return [0]
    if isinstance(value, bool):
        raise ScenarioError(f"seeds: a count or a list of whole numbers >= 0, got {value!r}")
    if isinstance(value, int):
        if value < 1:
            raise ScenarioError(f"seeds: a count >= 1, got {value}")
        return list(range(value))
    if isinstance(value, list):
        if not value:
            raise ScenarioError("seeds: empty list")
        for s in value:
            if isinstance(s, bool) or not isinstance(s, int) or s < 0:
                raise ScenarioError(f"seeds: whole numbers >= 0, got {s!r}")
        if len(set(value)) != len(value):
            raise ScenarioError("seeds: a seed is listed twice")
        return list(value)
    raise ScenarioError(f"seeds: a count or a list of whole numbers >= 0, got {value!r}")


def expand(spec, *, engine: str | None = None) -> SweepPlan:
    """Validate ``spec`` and expand it into points (grid product x seeds), building every
    :class:`~fphint_kernels.config.Scenario` up front.

    Parameters
    ----------
    spec : mapping or path-like
        The spec (see :func:`sweep`).
    engine : str, optional
        Engine hash of the cache keys (default :func:`engine_hash`).

    Returns
    -------
    SweepPlan

    Raises
    ------
    ScenarioError
        Unknown key, empty list, bad value or invalid combination, named in a one-line message.

    Examples
    --------
    >>> plan = expand({"memory": "256M", "grid": {"hint": [False, True]}, "seeds": 2})
    >>> plan.dims, plan.shape, plan.coords["hint"], len(plan.points)
    (('hint', 'seed'), (2, 2), ['false', 'true'], 4)
    """
    spec = load_spec(spec)
    base, grid_keys = [], []
    for key, value in spec.items():
        if key in SPEC_KEYS:
            continue
        kind, name = _resolve_key(key, "spec")
        base.append((kind, name, value))
    if not isinstance(spec.get("description", ""), str):
        raise ScenarioError("description: a string")
    grid = spec.get("grid") or {}
    if not isinstance(grid, Mapping):
        raise ScenarioError("grid: a mapping of scenario fields to lists of values")
    seeds = _seeds(spec.get("seeds"))
    base_names = {(k, n) for k, n, _ in base}
    for key, values in grid.items():
        kind, name = _resolve_key(key, "grid")
        if (kind, name) in base_names:
            raise ScenarioError(f"grid.{key}: also given as a base value")
        if any((kind, name) == (k, n) for _, k, n, _ in grid_keys):
            raise ScenarioError(f"grid.{key}: given twice")
        if not isinstance(values, list):
            raise ScenarioError(f"grid.{key}: a list of values, got {values!r}")
        if not values:
            raise ScenarioError(f"grid.{key}: empty list")
        grid_keys.append((key, kind, name, values))
    base_sc = _make_scenario(_kwargs(base, "spec"), "spec")

    # each grid value alone against the base: a bad value is named by its key
    dims, coords, units, choices = [], {}, {}, []
    for key, kind, name, values in grid_keys:
        dim = name if kind == "workload" else key
        if dim in dims or dim == "seed":
            raise ScenarioError(f"grid.{key}: given twice")
        labels = []
        for value in values:
            where = f"grid.{key} {value!r}"
            sc = _make_scenario(_kwargs(base + [(kind, name, value)], where), where)
            label = _label(_normalised(sc, kind, name))
            if label in labels:
                other = values[labels.index(label)]
                raise ScenarioError(f"grid.{key}: {other!r} and {value!r} are the same value")
            labels.append(label)
        if not all(isinstance(v, (int, float)) for v in labels):
            labels = [str(v) for v in labels]
        elif kind == "workload":
            from .config import WORKLOAD_PARAMS

            if WORKLOAD_PARAMS[name][0] in _KIND_UNITS:
                units[dim] = _KIND_UNITS[WORKLOAD_PARAMS[name][0]]
        elif name in _FIELD_UNITS:
            units[dim] = _FIELD_UNITS[name]
        dims.append(dim)
        coords[dim] = labels
        choices.append([(kind, name, v, lab) for v, lab in zip(values, labels, strict=True)])
    dims.append("seed")
    coords["seed"] = seeds

    engine = engine_hash() if engine is None else engine
    memo: dict = {}
    points = []
    grid_product = itertools.product(*[list(enumerate(c)) for c in choices])
    for combo in grid_product:
        assignments = base + [(k, n, v) for _, (k, n, v, _) in combo]
        labels = {d: lab for d, (_, (_, _, _, lab)) in zip(dims[:-1], combo, strict=True)}
        given = ", ".join(
            f"{key}={_given(v)}"
            for (key, *_), (_, (_, _, v, _)) in zip(grid_keys, combo, strict=True)
        )
        kw = _kwargs(assignments, "spec")
        for si, seed in enumerate(seeds):
            where = f"point {given}, seed={seed}" if given else f"point seed={seed}"
            sc = _make_scenario({**kw, "seed": seed}, where)
            points.append(
                Point(
                    index=tuple(i for i, _ in combo) + (si,),
                    labels={**labels, "seed": seed},
                    scenario=sc,
                    key=scenario_key(sc, engine, _file_hashes=memo),
                    where=where[len("point ") :],
                )
            )
    varied = {d for d in dims} | {name for _, _, name, _ in grid_keys} | {"seed"}
    fixed = {k: v for k, v in scenario_fields(base_sc).items() if k not in varied}
    return SweepPlan(
        spec=spec,
        dims=tuple(dims),
        coords=coords,
        coord_units=units,
        points=points,
        engine=engine,
        fixed=fixed,
    )


# --------------------------------------------------------------------------------------------
# Cache
# --------------------------------------------------------------------------------------------


def default_cache_dir() -> Path:
    """``FPHINT_SWEEP_CACHE``, or ``~/.cache/fphint/sweeps``."""
    env = os.environ.get("FPHINT_SWEEP_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "fphint" / "sweeps"


class PointCache:
    """Finished points on disk: ``ROOT/ab/abcdef....json``, one JSON file per cache key,
    written atomically (temporary file beside it, then :func:`os.replace`)."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    def path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"

    def get(self, key: str) -> dict | None:
        """The entry stored under ``key``, or None (missing, unreadable or not this key)."""
        try:
            with open(self.path(key)) as fh:
                entry = json.load(fh)
        except (OSError, ValueError):
            return None
        if not isinstance(entry, dict) or entry.get("key") != key or "summary" not in entry:
            return None
        return entry

    def put(self, key: str, entry: dict) -> Path:
        path = self.path(key)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.part")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(tmp, "w") as fh:
                json.dump({**entry, "key": key}, fh, sort_keys=True)
            os.replace(tmp, path)
        except OSError as exc:
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
            msg = exc.strerror or exc
            raise FphintError(f"cannot write the sweep cache {self.root}: {msg}") from None
        return path

    def __len__(self) -> int:
        return sum(1 for _ in self.root.glob("??/*.json")) if self.root.is_dir() else 0


# --------------------------------------------------------------------------------------------
# Worker side
# --------------------------------------------------------------------------------------------

_WORKER = {"engine": None, "kernel_cache": None}


def _prepare_worker(kernel_cache) -> None:
    """Switch on the on-disk kernel cache in this worker process, once, before its first
    simulation (``kernel_cache``: a folder, None for the default, False to leave it)."""
    if kernel_cache is False or _WORKER["kernel_cache"] is not None:
        return
    enabled = False
    if os.environ.get("FPHINT_NUMBA_CACHE", "1") == "1":
        from ._numba import enable_cache

        enabled = enable_cache(os.fspath(kernel_cache) if kernel_cache else None)
    _WORKER["kernel_cache"] = enabled


def _simulate_point(fields: dict, kernel_cache=None) -> dict:
    """The task of one point, run in a worker: simulate, return the summary and the key the
    worker computes for the scenario with its own engine and data files."""
    _prepare_worker(kernel_cache)
    from .config import Scenario
    from .simulate import simulate, summary

    if _WORKER["engine"] is None:
        _WORKER["engine"] = engine_hash()
    scenario = Scenario(**fields)
    t0 = time.perf_counter()
    ds = simulate(scenario)
    seconds = time.perf_counter() - t0
    return {
        "summary": summary(ds),
        "seconds": seconds,
        "engine": _WORKER["engine"],
        "key": scenario_key(scenario, _WORKER["engine"]),
    }


# --------------------------------------------------------------------------------------------
# Client side
# --------------------------------------------------------------------------------------------


class SweepInterrupted(KeyboardInterrupt):
    """The sweep was interrupted; its finished points are cached and a new run resumes."""

    def __init__(self, done: int, total: int, cache_dir):
        super().__init__(done, total, cache_dir)
        self.done, self.total, self.cache_dir = done, total, cache_dir

    def __str__(self):
        where = f" in {self.cache_dir}" if self.cache_dir else ""
        return (
            f"{self.done} of {self.total} points finished and cached{where}; "
            "run the same sweep again to resume"
        )


def _connect(scheduler, workers):
    """``(client, close)`` for ``scheduler``: ``close()`` closes what was opened here."""
    try:
        from distributed import Client, LocalCluster
    except ImportError:  # pragma: no cover - a dependency of the package
        raise FphintError("sweeps need dask.distributed: pip install 'dask[distributed]'") from None

    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int)):
        raise FphintError(f"workers: a whole number >= 1, got {workers!r}")
    if workers is not None and workers < 1:
        raise FphintError(f"workers: a whole number >= 1, got {workers}")
    if scheduler is None:
        n = workers or os.cpu_count() or 2
        # worker logs below ERROR stay quiet: an interrupted sweep cancels tasks, and each
        # cancelled task would print a warning under the sweep's own one-line message
        cluster = LocalCluster(
            n_workers=n,
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",  # no fixed port: another cluster may hold 8787
            silence_logs=logging.ERROR,
        )
        try:
            client = Client(cluster)
        except BaseException:
            cluster.close()
            raise

        def close():
            client.close()
            cluster.close()

        return client, close, f"LocalCluster ({n} workers)"
    if workers is not None:
        raise FphintError("workers: only for the local cluster (not with a scheduler)")
    if isinstance(scheduler, Client):
        return scheduler, lambda: None, scheduler.scheduler.address
    if hasattr(scheduler, "scheduler_address"):  # a cluster object (LocalCluster, ...)
        client = Client(scheduler)
        return client, client.close, scheduler.scheduler_address
    if not isinstance(scheduler, str) or not scheduler.strip():
        raise FphintError(f"scheduler: an address such as tcp://host:8786, got {scheduler!r}")
    try:
        client = Client(scheduler, timeout=CONNECT_TIMEOUT)
    except (OSError, TimeoutError, ValueError) as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise FphintError(f"cannot connect to the Dask scheduler {scheduler}: {msg}") from None
    return client, client.close, scheduler


def _flatten(summary: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in summary.items():
        if not prefix and k == "scenario":  # the coordinates and attrs describe the scenario
            continue
        if isinstance(v, Mapping):
            out.update(_flatten(v, f"{prefix}{k}-"))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _array(values: list, shape: tuple) -> np.ndarray:
    present = [v for v in values if v is not None]
    if present and all(isinstance(v, str) for v in present):
        return np.array(["" if v is None else v for v in values], dtype=str).reshape(shape)
    if present and all(isinstance(v, bool) for v in present) and len(present) == len(values):
        return np.array(values, dtype=bool).reshape(shape)
    if len(present) == len(values) and all(
        isinstance(v, int) and not isinstance(v, bool) for v in values
    ):
        return np.array(values, dtype=np.int64).reshape(shape)
    return np.array(
        [math.nan if v is None else float(v) for v in values], dtype=np.float64
    ).reshape(shape)


def _dataset(plan: SweepPlan, results: dict, attrs: dict):
    import xarray as xr

    from .variables import SPECS

    flat = [_flatten(results[p.key]["summary"]) for p in plan.points]
    names: list = []
    for f in flat:
        names.extend(n for n in f if n not in names)
    # points are in grid order (C order over dims), so a reshape puts each in its place
    data = {}
    for name in names:
        arr = _array([f.get(name) for f in flat], plan.shape)
        attrs_v = {}
        if name in SPECS:
            attrs_v = {"units": SPECS[name].units, "description": SPECS[name].description}
        data[name] = xr.Variable(plan.dims, arr, attrs=attrs_v)
    data["point-seconds"] = xr.Variable(
        plan.dims,
        np.array([results[p.key]["seconds"] for p in plan.points], dtype=float).reshape(plan.shape),
        attrs={"units": "s", "description": "wall time of the simulation on its worker"},
    )
    coords = {}
    for d in plan.dims:
        coords[d] = xr.Variable(
            d,
            np.array(plan.coords[d]),
            attrs={"units": plan.coord_units[d]} if d in plan.coord_units else {},
        )
    return xr.Dataset(data, coords=coords, attrs=attrs)


def _write(ds, out) -> Path:
    out = Path(out)
    if out.suffix == ".zarr":
        return _write_zarr(ds, out)
    from .io import save_dataset

    return save_dataset(ds, out)


def _need_zarr() -> None:
    try:
        import zarr  # noqa: F401
    except ImportError:
        raise FphintError("writing Zarr needs the zarr package: pip install zarr") from None


def _write_zarr(ds, out: Path) -> Path:
    """Write a Zarr store beside ``out`` and rename it into place (a store is a folder: an
    existing one is moved aside first and removed once the new one is in place)."""
    import shutil

    _need_zarr()
    tmp = out.with_name(f".{out.name}.{os.getpid()}.part")
    old = out.with_name(f".{out.name}.{os.getpid()}.old")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)
        # Zarr format 2: strings have no Zarr 3 specification yet
        ds.to_zarr(tmp, mode="w", zarr_format=2, consolidated=True)
        if out.exists():
            os.replace(out, old)
        os.replace(tmp, out)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if old.exists() and not out.exists():
            os.replace(old, out)
        raise FphintError(f"cannot write {out}: {exc.strerror or exc}") from None
    shutil.rmtree(old, ignore_errors=True)
    return out


def sweep(
    spec,
    *,
    scheduler=None,
    workers: int | None = None,
    cache_dir: str | os.PathLike | None = None,
    out: str | os.PathLike | None = None,
    progress: bool = True,
    kernel_cache=None,
):
    """Run a parameter sweep on a Dask cluster and return one Dataset.

    Parameters
    ----------
    spec : mapping or path-like
        A mapping, or the path of a YAML file, with: base scenario fields (any
        :class:`~fphint_kernels.config.Scenario` field but ``seed``, e.g. ``memory``,
        ``workload``, ``workload_options``, ``downtime_limit``, ``max_bandwidth``, ``hint``,
        ``profile``) and workload parameters (``fill``, or ``workload_options.fill``);
        ``grid``: a mapping of such keys to non-empty lists of values; ``seeds``: a count
        (seeds 0..N-1) or a list of seeds (default ``[0]``); ``description``: free text.
    scheduler : str, distributed.Client or cluster, optional
        Address of an existing scheduler (``"tcp://host:8786"``), a Client or a cluster object.
        Default: a ``LocalCluster`` of ``workers`` worker processes with one thread each,
        closed at the end.
    workers : int, optional
        Workers of the local cluster (default: the number of CPUs).
    cache_dir : path-like, optional
        Cache of finished points (default :func:`default_cache_dir`).
    out : path-like, optional
        Also write the Dataset there: netCDF-4 (:func:`fphint_kernels.io.save_dataset`), or a
        Zarr store when the name ends in ``.zarr``; both atomically.
    progress : bool
        A tqdm progress bar over finished points.
    kernel_cache : path-like or bool, optional
        Folder of the on-disk kernel cache of the workers (default: their ``NUMBA_CACHE_DIR``
        or ``~/.cache/fphint/numba``); False leaves the workers' Numba settings alone.

    Returns
    -------
    xarray.Dataset
        Dims: one per grid key (coordinate: the normalised values; numbers in the units of
        ``Scenario`` (bytes, ms, bytes/s), other values as strings, booleans as ``"true"`` /
        ``"false"``), then ``seed``.  One variable per field of :func:`fphint_kernels.summary`
        (``ram`` fields as ``ram-transferred``...), and ``point-seconds``.  Attrs: ``spec``
        (JSON), ``scenario_fixed`` (JSON of the fields not varied), ``engine`` (hash),
        ``engine_version``, ``wall_time_s``, ``points``, ``points_computed``,
        ``points_cached``, ``scheduler``.

    Raises
    ------
    ScenarioError
        A bad spec (before any cluster starts).
    FphintError
        No connection to the scheduler, a point failing with bad input, a worker running a
        different engine, an unwritable cache or output.
    SweepInterrupted
        On KeyboardInterrupt: pending points are cancelled, a cluster started here is closed,
        finished points stay cached.
    """
    t0 = time.perf_counter()
    plan = expand(spec)
    if out is not None and Path(out).suffix == ".zarr":
        _need_zarr()  # before any work, not after it
    cache = PointCache(cache_dir if cache_dir is not None else default_cache_dir())
    results: dict = {}
    for p in plan.points:
        if p.key not in results:
            entry = cache.get(p.key)
            if entry is not None:
                results[p.key] = entry
    cached = len(results)
    todo = [p for p in plan.points if p.key not in results]
    label = "none (every point cached)"
    if todo:
        label = _run(plan, todo, results, cache, scheduler, workers, progress, kernel_cache)
    attrs = {
        "spec": json.dumps(plan.spec, sort_keys=True),
        "scenario_fixed": json.dumps(plan.fixed, sort_keys=True),
        "engine": plan.engine,
        "engine_version": _version(),
        "points": len(plan.points),
        "points_computed": len(todo),
        "points_cached": cached,
        "scheduler": label,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    if plan.spec.get("description"):
        attrs["description"] = plan.spec["description"]
    ds = _dataset(plan, results, attrs)
    ds.attrs["wall_time_s"] = round(time.perf_counter() - t0, 3)
    if out is not None:
        _write(ds, out)
    return ds


def _version() -> str:
    from ._version import __version__

    return __version__


def _run(plan, todo, results, cache, scheduler, workers, progress, kernel_cache) -> str:
    """Compute ``todo`` on the cluster, storing each finished point in ``cache``."""
    from distributed import as_completed
    from tqdm.auto import tqdm

    client, close, label = _connect(scheduler, workers)
    futures = {}
    bar = tqdm(
        total=len(plan.points),
        initial=len(plan.points) - len(todo),
        unit="point",
        desc="sweep",
        disable=not progress,
        smoothing=0.05,
    )
    try:
        # one map and results gathered with their completion: a few ms per point less than
        # submit and result() one by one, which matters for points of 10-20 ms
        futs = client.map(
            _simulate_point,
            [scenario_fields(p.scenario) for p in todo],
            [kernel_cache] * len(todo),
            key=[f"fphint-point-{p.key}" for p in todo],
            pure=False,
        )
        futures = dict(zip(futs, todo, strict=True))
        for fut, res in as_completed(futs, with_results=True, raise_errors=False):
            p = futures[fut]
            if fut.status == "error":
                _, exc, tb = res
                if isinstance(exc, FphintError):
                    raise FphintError(f"{p.describe()}: {exc}") from None
                raise exc.with_traceback(tb)
            if res["key"] != p.key:
                if res["engine"] != plan.engine:
                    raise FphintError(
                        f"a worker runs another engine ({res['engine'][:12]}, this client "
                        f"{plan.engine[:12]}): install the same fphint_kernels on every worker"
                    )
                raise FphintError(
                    f"{p.describe()}: the worker's scenario or data files differ from this "
                    "client's (same data/ folder on every worker?)"
                )
            entry = {
                "summary": res["summary"],
                "seconds": res["seconds"],
                "engine": res["engine"],
                "scenario": scenario_fields(p.scenario),
            }
            cache.put(p.key, entry)
            results[p.key] = entry
            bar.update(1)
    except KeyboardInterrupt:
        done = sum(1 for p in plan.points if cache.path(p.key).is_file())
        raise SweepInterrupted(done, len(plan.points), cache.root) from None
    finally:
        bar.close()
        pending = [f for f in futures if not f.done()]
        if pending:
            client.cancel(pending)
        close()
    return label
