"""Calibration of host profiles against published rows (``fphint calibrate``).

A host profile (``data/profiles/NAME.json``, parameters in
:data:`fphint_kernels.config.PROFILE_PARAMS`) holds per-page and fixed costs.  Most of them stay
as documented in the starting profile (``prior.json``, order-of-magnitude costs of the testbed's
CPU); calibration moves only a few *free* parameters so that the simulated ``total-time`` matches
chosen published rows.

Procedure (see ``docs/calibration.md``):

1. Targets: published ``total-time`` rows (default: the four v36 rows, 8 GiB, 2 s downtime limit,
   idle and ``make bzImage -j4``, hint and legacy).
2. Objective: residual ``r_i = log(mean_s T_sim(i, s) / T_pub(i))`` for every target ``i``, the mean
   taken over a fixed list of seeds (common random numbers: every evaluation sees the same guest
   behaviour, so the objective is a deterministic function of the parameters); the optimiser
   minimises ``sum_i r_i**2``.
3. Search space and optimiser: :func:`fphint_kernels.fitting.fit_log_params`, the loop shared
   with ``fphint qemu fit``: the logarithm of each free parameter within documented bounds,
   :func:`scipy.optimize.minimize` with Nelder-Mead (default; robust to the small steps the
   discrete simulation makes when a round more or less is needed), or
   :func:`scipy.optimize.least_squares` (trust region reflective, finite differences with a
   relative step of 5 %).
4. The fitted profile is written with its provenance: rows, residuals, seeds, optimiser, date,
   starting profile, engine version.  A free parameter of the guest (``hint_block_us``, the
   guest's cost of reporting one block, is one) is fitted on the guest the published runs used
   (``data/guests/testbed-2018.json``), which is written beside the profile.

A second profile for the v37 testbed (:func:`derive_testbed_profile`) copies a fitted profile
and changes only ``cpu_speed``: the ratio of the two legacy build times of the same kernel on the
same CPU model (v36 / v37), read from the published file.  No v37 migration time is used.

References
----------
.. [1] W. Wang, "[PATCH v36 0/5] Virtio-balloon: support free page reporting", 2018-07-20, and
   "[PATCH v37 0/3] ...", 2018-08-27, https://lkml.org/lkml/2018/8/27/29 (the published rows).
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from ._version import __version__
from .config import GUEST_PARAMS, PROFILE_PARAMS, Guest, HostProfile, Scenario, data_dir
from .errors import FphintError
from .experiments import FIRST_SEED
from .fitting import BOUNDS, METHODS, fit_log_params
from .published import Config, load_published, select

__all__ = [
    "BOUNDS",
    "DEFAULT_FREE",
    "FitResult",
    "Target",
    "derive_testbed_profile",
    "fit_profile",
    "published_targets",
    "simulate_targets",
    "write_guest",
    "write_profile",
]

#: Free parameters of the default calibration: the migration thread's cost of a zero page (it
#: sets the legacy idle rows), the stream rate of normal pages (``link_bytes_per_s``: a normal
#: page costs ``max(normal_page_ns, 4104 B / link)``, and the prior's link is the slower of the
#: two, so ``normal_page_ns`` alone would have no effect), and the guest's cost of hinting one
#: 4 MiB block (it sets how fast hints outrun the sender, i.e. the hint rows).
DEFAULT_FREE = ("zero_page_ns", "link_bytes_per_s", "hint_block_us")


@dataclass(frozen=True)
class Target:
    """One published row to fit: the configuration, the mode and the published total-time."""

    row: str
    config: Config
    hint: bool
    published_ms: float


def published_targets(patch_version: str = "v36", path=None) -> list[Target]:
    """The published ``total-time`` rows of one patch version, as calibration targets.

    Parameters
    ----------
    patch_version : str
        ``v36`` (default, the seed's figures) or ``v37``.
    path : path-like, optional
        Published CSV (default ``data/published/thread-figures.csv``).

    Returns
    -------
    list of Target
    """
    out = [
        Target(r["id"], Config.from_row(r), r["mode"] == "hint", r["value"])
        for r in select(load_published(path), metric="total-time", patch_version=patch_version)
    ]
    if not out:
        raise FphintError(f"no published total-time rows for {patch_version!r}")
    return out


def simulate_targets(
    profile: HostProfile,
    targets: list[Target],
    seeds: list[int],
    name: str = "prior",
    guest: Guest | None = None,
) -> np.ndarray:
    """Simulated total-time (ms) of every target and seed with an in-memory profile.

    Parameters
    ----------
    profile : HostProfile
        The candidate profile (passed to :func:`fphint_kernels.simulate`, not written to disk).
    targets : list of Target
    seeds : list of int
    name : str
        Profile name stored in the scenarios (any profile in ``data/profiles/``; the costs come
        from ``profile``).
    guest : Guest, optional
        The candidate guest (default: the scenarios' own, loaded from ``data/guests/``).

    Returns
    -------
    numpy.ndarray
        Shape (targets, seeds).  A run that does not complete counts with its total-time at the
        cut (``max_time``), so the optimiser is pushed away from it.
    """
    from .simulate import simulate

    out = np.empty((len(targets), len(seeds)))
    for i, t in enumerate(targets):
        for j, s in enumerate(seeds):
            ds = simulate(t.config.scenario(t.hint, s, name), profile=profile, guest=guest)
            out[i, j] = float(ds["total-time"].values)
    return out


@dataclass
class FitResult:
    """Outcome of :func:`fit_profile`."""

    profile: HostProfile
    guest: Guest
    free: tuple
    start: dict
    targets: list
    seeds: list
    simulated: np.ndarray  # (targets, seeds) at the optimum
    residuals_pct: np.ndarray  # (targets,) mean simulated vs published, %
    objective: float
    method: str
    nfev: int
    success: bool
    message: str
    wall_time_s: float
    history: list = field(default_factory=list)

    def value(self, name: str) -> float:
        """The fitted value of a free parameter (of the profile or of the guest)."""
        return float((self.guest if name in GUEST_PARAMS else self.profile).params[name])


def fit_profile(
    targets: list[Target],
    start: HostProfile,
    free=DEFAULT_FREE,
    *,
    seeds: int = 3,
    method: str = "nelder-mead",
    max_evals: int = 150,
    progress: bool = False,
    guest: Guest | None = None,
) -> FitResult:
    """Fit the free parameters of ``start`` to the published total-time of ``targets``.

    Parameters
    ----------
    targets : list of Target
    start : HostProfile
        Starting point; every parameter not in ``free`` keeps its value.
    free : sequence of str
        Parameters to fit (names of ``PROFILE_PARAMS`` or ``GUEST_PARAMS``, each with bounds
        in ``BOUNDS``); the guest's ones are fitted on ``guest``.
    seeds : int
        Seeds ``1..seeds`` of every evaluation (common random numbers).
    method : {"nelder-mead", "least-squares"}
    max_evals : int
        Budget of objective evaluations (each one simulates every target with every seed).
    progress : bool
        A tqdm bar over evaluations on stderr.
    guest : Guest, optional
        The guest of the published runs (default: the scenarios' default guest,
        ``testbed-2018``).

    Returns
    -------
    FitResult
    """
    free = tuple(free)
    if not free:
        raise FphintError("calibration needs at least one free parameter")
    for k in free:
        if k not in PROFILE_PARAMS and k not in GUEST_PARAMS:
            raise FphintError(f"unknown profile or guest parameter {k!r}")
    guest = guest or Guest.load(Scenario.guest)
    if method not in METHODS:
        raise FphintError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    if seeds < 1 or max_evals < 1:
        raise FphintError("seeds and max-evals must be >= 1")
    seed_list = list(range(FIRST_SEED, FIRST_SEED + seeds))
    pub = np.array([t.published_ms for t in targets])

    def split(params):
        host = {k: v for k, v in params.items() if k not in GUEST_PARAMS}
        own = {k: v for k, v in params.items() if k in GUEST_PARAMS}
        return start.with_params(**host), guest.with_params(**own)

    def model(params):
        profile, own = split(params)
        sim = simulate_targets(profile, targets, seed_list, guest=own)
        return np.log(sim.mean(axis=1) / pub), sim

    bar = None
    if progress:
        from tqdm.auto import tqdm

        from .simulate import warm_up

        warm_up()  # compile first: the bar's estimate is the evaluations' alone
        # the budget is an upper bound: the bar ends where the fit converges
        bar = tqdm(total=max_evals, desc="calibrate", unit="eval", file=sys.stderr)

    def on_eval(_calls, r, new):
        if new and bar is not None:
            bar.update(1)
            bar.set_postfix(rms_pct=f"{100 * math.sqrt(np.mean(r**2)):.1f}")

    x0 = {k: (guest if k in GUEST_PARAMS else start).params[k] for k in free}
    try:
        fit = fit_log_params(
            model, x0, method=method, max_evals=max_evals, on_eval=on_eval
        )  # fmt: skip
    finally:
        if bar is not None:
            bar.total = bar.n  # converged before the budget: the bar ends full
            bar.refresh()
            bar.close()
    profile, fitted_guest = split(fit.params)
    return FitResult(
        profile=profile,
        guest=fitted_guest,
        free=free,
        start={k: float(x0[k]) for k in free},
        targets=targets,
        seeds=seed_list,
        simulated=fit.extra,
        residuals_pct=(np.exp(fit.residuals) - 1.0) * 100.0,
        objective=fit.objective,
        method=method,
        nfev=fit.nfev,
        success=fit.success,
        message=fit.message,
        wall_time_s=fit.wall_time_s,
        history=fit.history,
    )


def _engine_version() -> dict:
    out = {"fphint_kernels": __version__}
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5,
            cwd=Path(__file__).resolve().parent,
        )  # fmt: skip
        if rev.returncode == 0:
            out["git"] = rev.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return out


def write_profile(
    fit: FitResult, name: str, start_name: str, out_dir=None, command: str = ""
) -> Path:
    """Write a fitted profile with its provenance to ``OUT_DIR/NAME.json``.

    Parameters
    ----------
    fit : FitResult
    name : str
        Profile name (file stem).
    start_name : str
        Name of the starting profile (recorded).
    out_dir : path-like, optional
        Default ``data/profiles/``.
    command : str
        The command line that produced it (recorded).

    Returns
    -------
    pathlib.Path
    """
    start = HostProfile.load(start_name)
    prov = {k: v for k, v in dict(start.provenance).items() if k in PROFILE_PARAMS}
    for k in fit.free:
        if k in PROFILE_PARAMS:
            prov[k] = f"fitted by fphint calibrate (start {fit.start[k]:g} from {start_name}.json)"
    rows = []
    for t, sim, res in zip(fit.targets, fit.simulated, fit.residuals_pct, strict=True):
        rows.append({
            "row": t.row,
            "published_ms": t.published_ms,
            "simulated_ms_mean": round(float(sim.mean()), 2),
            "simulated_ms_sd": round(float(sim.std(ddof=1)) if sim.size > 1 else 0.0, 2),
            "residual_pct": round(float(res), 2),
        })  # fmt: skip
    prov["calibration"] = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": command,
        "start_profile": start_name,
        "guest": fit.guest.name,
        "free_params": list(fit.free),
        "fixed_params": "every other parameter as in the starting profile",
        "rows": [t.row for t in fit.targets],
        "targets": rows,
        "seeds": fit.seeds,
        "objective": "sum of squared log(mean simulated total-time / published), mean over seeds",
        "objective_value": fit.objective,
        "rms_error_pct": float(np.sqrt(np.mean(fit.residuals_pct**2))),
        "optimiser": {
            "method": "scipy.optimize.minimize(method='Nelder-Mead') on log-parameters"
            if fit.method == "nelder-mead"
            else "scipy.optimize.least_squares(method='trf', diff_step=0.05) on log-parameters",
            "bounds": {k: list(BOUNDS[k]) for k in fit.free},
            "evaluations": fit.nfev,
            "success": fit.success,
            "message": fit.message,
            "wall_time_s": round(fit.wall_time_s, 1),
        },
        "engine": _engine_version(),
    }
    fitted = ", ".join(f"{k}={fit.value(k):.4g}" for k in fit.free)
    doc = {
        "name": name,
        "description": (
            f"Fitted by `fphint calibrate` from {start_name}.json on {len(fit.targets)} published "
            f"rows ({', '.join(t.row for t in fit.targets)}): {fitted}; every other parameter as "
            f"in {start_name}.json."
        ),
        "params": {k: _clean(fit.profile.params[k]) for k in PROFILE_PARAMS},
        "provenance": prov,
    }
    return _dump(doc, name, out_dir)


def write_guest(fit: FitResult, profile_name: str, out_dir=None, command: str = "") -> Path | None:
    """Write the guest with its fitted parameters to ``OUT_DIR/GUEST.json``, if any was free.

    Parameters
    ----------
    fit : FitResult
    profile_name : str
        Name of the profile fitted with it (recorded in the sources).
    out_dir : path-like, optional
        Default ``data/guests/``.
    command : str
        The command line that produced it (recorded).

    Returns
    -------
    pathlib.Path or None
        None when no guest parameter was free (nothing written).
    """
    own = [k for k in fit.free if k in GUEST_PARAMS]
    if not own:
        return None
    try:
        raw = json.loads((data_dir() / "guests" / f"{fit.guest.name}.json").read_text())
    except (OSError, ValueError):
        raw = {"name": fit.guest.name, "description": fit.guest.description, "params": {}}
    params = dict(raw.get("params", {}))
    sources = dict(raw.get("sources", {}))
    rows = ", ".join(t.row for t in fit.targets)
    for k in own:
        params[k] = _clean(fit.guest.params[k])
        sources[k] = (
            f"fitted by fphint calibrate with the host profile {profile_name}.json on {rows} "
            f"(start {fit.start[k]:g}; `{command or 'fphint calibrate'}`)"
        )
    doc = dict(raw, params=params, sources=sources)
    d = Path(out_dir) if out_dir is not None else data_dir() / "guests"
    return _dump(doc, fit.guest.name, d)


def _clean(v: float):
    v = float(v)
    return int(v) if v.is_integer() and abs(v) < 1e15 else float(f"{v:.6g}")


def _dump(doc: dict, name: str, out_dir) -> Path:
    from .io import save_json

    d = Path(out_dir) if out_dir is not None else data_dir() / "profiles"
    return save_json(doc, d / f"{name}.json")  # whole or absent


def testbed_speed(reference: str = "v36", target: str = "v37", memory: str = "8G", path=None):
    """Relative CPU speed of two testbeds from the legacy build times of the same kernel.

    Parameters
    ----------
    reference, target : str
        Patch versions (``v36``, ``v37``).
    memory : str
        Guest RAM of the two build-time rows to compare (the same in both letters: 8G).
    path : path-like, optional
        Published CSV.

    Returns
    -------
    (float, list of str)
        ``build_time(reference) / build_time(target)`` (legacy mode: no hinting involved) and
        the ids of the two rows.
    """
    found = {}
    for r in select(load_published(path), metric="build-time", mode="legacy", guest_ram=memory):
        if r["patch_version"] in (reference, target):
            found[r["patch_version"]] = r
    if set(found) != {reference, target}:
        raise FphintError(
            f"need legacy build-time rows of {reference} and {target} at {memory} in the "
            "published file"
        )
    ratio = found[reference]["value"] / found[target]["value"]
    return ratio, [found[reference]["id"], found[target]["id"]]


def derive_testbed_profile(
    base: str = "v36", name: str = "v37", reference: str = "v36", target: str = "v37",
    out_dir=None, path=None, command: str = "", scale_link: bool = True,
) -> Path:  # fmt: skip
    """Write the profile of another testbed: ``base`` with ``cpu_speed`` scaled by build times.

    Parameters
    ----------
    base : str
        Fitted profile to copy (read from ``out_dir`` if given, else ``data/profiles/``).
    name : str
        Name of the new profile.
    reference, target : str
        Patch versions of the testbed ``base`` was fitted on and of the other testbed.
    out_dir, path : path-like, optional
        Profiles folder and published CSV.
    command : str
        Recorded in the provenance.
    scale_link : bool
        Also scale ``link_bytes_per_s`` by the same ratio (default): the migration stream is
        bounded by the CPU of the migration thread, not by a network (see Notes).

    Returns
    -------
    pathlib.Path

    Notes
    -----
    Evidence that the testbeds differ: the same ``make bzImage -j4`` on the same CPU model took
    about 5.2 min in the v36 letter and 8.7 min in the v37 letter, without hinting in both.
    ``cpu_speed`` divides every CPU cost of the profile and multiplies every guest rate
    (``PROFILE_PARAMS``), so this one number carries the whole difference; no migration time of
    the target testbed is used.

    The engine does not scale ``link_bytes_per_s`` with ``cpu_speed`` (a network does not slow
    down with the CPU).  The stream rate fitted on the v36 rows, about 1.3 GB/s, is above the
    line rate of 10 GbE (1.25 GB/s); the letters describe one host and no network; and QEMU
    3.x/4.0 sends the stream from a single migration thread (no multifd) that copies every page
    into the socket.  So the fitted "link" is migration-thread CPU work, and ``scale_link``
    scales it with the testbed's speed.  ``docs/calibration.md`` shows the predictions with and
    without it, and says when this choice was made.
    """
    src_file = Path(out_dir) / f"{base}.json" if out_dir is not None else None
    if src_file is not None and src_file.is_file():
        src = HostProfile.from_dict(json.loads(src_file.read_text()), name=base)
    else:
        src = HostProfile.load(base)
    ratio, rows = testbed_speed(reference=reference, target=target, path=path)
    params = {k: _clean(v) for k, v in src.params.items()}
    params["cpu_speed"] = _clean(src.params["cpu_speed"] * ratio)
    prov = {k: v for k, v in dict(src.provenance).items() if k in PROFILE_PARAMS}
    prov["cpu_speed"] = (
        f"{base} cpu_speed x legacy build time {reference} / {target} "
        f"({rows[0]} / {rows[1]} = {ratio:.4f})"
    )
    if scale_link:
        params["link_bytes_per_s"] = _clean(src.params["link_bytes_per_s"] * ratio)
        prov["link_bytes_per_s"] = (
            f"{base} link_bytes_per_s x the same ratio {ratio:.4f}: the stream rate fitted on "
            f"{reference} is migration-thread CPU work (above 10 GbE line rate, one host, "
            "single-threaded QEMU stream), so it scales with the testbed's speed"
        )
    base_cal = dict(src.provenance).get("calibration", {})
    prov["calibration"] = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": command,
        "derived_from": f"{base}.json",
        "base_calibration_rows": base_cal.get("rows", []),
        "rows": [],  # no migration time is fitted here: every v37 total-time row is predicted
        "cpu_speed_rows": rows,
        "cpu_speed_ratio": ratio,
        "evidence": "same kernel build (make bzImage -j4), same CPU model, legacy mode: "
        f"{rows[0]} vs {rows[1]}; the testbeds differ by this factor in speed",
        "scaled": ["cpu_speed"] + (["link_bytes_per_s"] if scale_link else []),
        "engine": _engine_version(),
    }
    doc = {
        "name": name,
        "description": (
            f"The {target} testbed: {base}.json with cpu_speed"
            + (" and the CPU-bound stream rate (link_bytes_per_s)" if scale_link else "")
            + f" scaled by the ratio of the legacy kernel build times ({reference}/{target} = "
            f"{ratio:.3f}); no {target} migration time used."
        ),
        "params": params,
        "provenance": prov,
    }
    return _dump(doc, name, out_dir)
