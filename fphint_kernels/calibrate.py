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
3. Search space: the logarithm of each free parameter, within documented bounds.
4. Optimiser: :func:`scipy.optimize.minimize` with Nelder-Mead (default; robust to the small
   steps the discrete simulation makes when a round more or less is needed), or
   :func:`scipy.optimize.least_squares` (trust region reflective, finite differences with a
   relative step of 5 %).
5. The fitted profile is written with its provenance: rows, residuals, seeds, optimiser, date,
   starting profile, engine version.

A second profile for the v37 testbed (:func:`derive_testbed_profile`) copies a fitted profile
and changes only ``cpu_speed``: the ratio of the two legacy build times of the same kernel on the
same CPU model (v36 / v37), read from the published file.  No v37 migration time is used.

References
----------
.. [1] J. A. Nelder, R. Mead, "A simplex method for function minimization", The Computer Journal
   7(4), 1965, doi:10.1093/comjnl/7.4.308.
.. [2] M. A. Branch, T. F. Coleman, Y. Li, "A subspace, interior, and conjugate gradient method
   for large-scale bound-constrained minimization problems", SIAM J. Sci. Comput. 21(1), 1999
   (the ``trf`` method of ``least_squares``).
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from .config import PROFILE_PARAMS, HostProfile, data_dir
from .errors import FphintError
from .experiments import FIRST_SEED, Config, load_published

__all__ = [
    "BOUNDS",
    "DEFAULT_FREE",
    "FitResult",
    "Target",
    "derive_testbed_profile",
    "fit_profile",
    "published_targets",
    "register_cli",
    "simulate_targets",
    "write_profile",
]

#: Free parameters of the default calibration: the migration thread's cost of a zero page (it
#: sets the legacy idle rows), the stream rate of normal pages (``link_bytes_per_s``: a normal
#: page costs ``max(normal_page_ns, 4104 B / link)``, and the prior's link is the slower of the
#: two, so ``normal_page_ns`` alone would have no effect), and the guest's cost of hinting one
#: 4 MiB block (it sets how fast hints outrun the sender, i.e. the hint rows).
DEFAULT_FREE = ("zero_page_ns", "link_bytes_per_s", "hint_block_us")

#: Bounds of every parameter that may be freed (physically plausible ranges for a 2016 Xeon).
BOUNDS = {
    "zero_page_ns": (50.0, 5000.0),
    "normal_page_ns": (100.0, 20000.0),
    "link_bytes_per_s": (1e8, 1e11),
    "scan_word_ns": (0.1, 50.0),
    "sync_ns_per_page": (0.05, 50.0),
    "setup_fixed_ms": (0.1, 500.0),
    "setup_ns_per_page": (0.05, 100.0),
    "switchover_fixed_ms": (0.1, 500.0),
    "hint_block_us": (1.0, 2000.0),
    "hint_start_ms": (0.01, 100.0),
    "hint_host_latency_ms": (0.001, 10.0),
    "zero_fill_ns_per_page": (10.0, 5000.0),
    "write_fault_ns": (100.0, 50000.0),
    "cpu_speed": (0.1, 10.0),
}

METHODS = ("nelder-mead", "least-squares")


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
    out = []
    for r in load_published(path):
        if r["metric"] != "total-time" or r["patch_version"] != patch_version:
            continue
        out.append(Target(r["id"], Config.from_row(r), r["mode"] == "hint", r["value"]))
    if not out:
        raise FphintError(f"no published total-time rows for {patch_version!r}")
    return out


def simulate_targets(
    profile: HostProfile, targets: list[Target], seeds: list[int], name: str = "prior"
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
            ds = simulate(t.config.scenario(t.hint, s, name), profile=profile)
            out[i, j] = float(ds["total-time"].values)
    return out


@dataclass
class FitResult:
    """Outcome of :func:`fit_profile`."""

    profile: HostProfile
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


def fit_profile(
    targets: list[Target],
    start: HostProfile,
    free=DEFAULT_FREE,
    *,
    seeds: int = 3,
    method: str = "nelder-mead",
    max_evals: int = 150,
    progress: bool = False,
) -> FitResult:
    """Fit the free parameters of ``start`` to the published total-time of ``targets``.

    Parameters
    ----------
    targets : list of Target
    start : HostProfile
        Starting point; every parameter not in ``free`` keeps its value.
    free : sequence of str
        Parameters to fit (names of ``PROFILE_PARAMS``, each with bounds in ``BOUNDS``).
    seeds : int
        Seeds ``1..seeds`` of every evaluation (common random numbers).
    method : {"nelder-mead", "least-squares"}
    max_evals : int
        Budget of objective evaluations (each one simulates every target with every seed).
    progress : bool
        A tqdm bar over evaluations on stderr.

    Returns
    -------
    FitResult
    """
    from scipy import optimize

    free = tuple(free)
    if not free:
        raise FphintError("calibration needs at least one free parameter")
    for k in free:
        if k not in PROFILE_PARAMS:
            raise FphintError(f"unknown profile parameter {k!r}")
    if method not in METHODS:
        raise FphintError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    if seeds < 1 or max_evals < 1:
        raise FphintError("seeds and max-evals must be >= 1")
    seed_list = list(range(FIRST_SEED, FIRST_SEED + seeds))
    pub = np.array([t.published_ms for t in targets])
    lo = np.log([BOUNDS[k][0] for k in free])
    hi = np.log([BOUNDS[k][1] for k in free])
    x0 = np.clip(np.log([max(start.params[k], 1e-12) for k in free]), lo, hi)
    cache: dict = {}
    history: list = []
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=max_evals, desc="calibrate", unit="eval", file=sys.stderr)

    def residuals(x):
        key = tuple(np.round(x, 12))
        if key not in cache:
            x = np.clip(x, lo, hi)
            prof = start.with_params(**dict(zip(free, np.exp(x), strict=True)))
            sim = simulate_targets(prof, targets, seed_list)
            r = np.log(sim.mean(axis=1) / pub)
            cache[key] = (r, sim)
            history.append({"params": dict(zip(free, np.exp(x).tolist(), strict=True)),
                            "objective": float(np.sum(r**2))})  # fmt: skip
            if bar is not None:
                bar.update(1)
                bar.set_postfix(rms_pct=f"{100 * math.sqrt(np.mean(r**2)):.1f}")
        return cache[key][0]

    t0 = time.perf_counter()
    try:
        if method == "nelder-mead":
            # initial simplex: +-20 % steps in each parameter, inside the bounds
            res = optimize.minimize(
                lambda x: float(np.sum(residuals(x) ** 2)), x0, method="Nelder-Mead",
                bounds=list(zip(lo, hi, strict=True)),
                options={"maxfev": max_evals, "xatol": 0.01, "fatol": 1e-4,
                         "initial_simplex": _simplex(x0, lo, hi)},
            )  # fmt: skip
            x_best, nfev, ok, msg = res.x, int(res.nfev), bool(res.success), str(res.message)
        else:
            res = optimize.least_squares(
                residuals, x0, bounds=(lo, hi), method="trf", diff_step=0.05,
                max_nfev=max_evals, x_scale=1.0,
            )  # fmt: skip
            x_best, nfev, ok, msg = res.x, int(res.nfev), bool(res.success), str(res.message)
    finally:
        if bar is not None:
            bar.close()
    x_best = np.clip(x_best, lo, hi)
    r = residuals(x_best)
    sim = cache[tuple(np.round(x_best, 12))][1]
    best = start.with_params(**dict(zip(free, np.exp(x_best), strict=True)))
    return FitResult(
        profile=best,
        free=free,
        start={k: float(start.params[k]) for k in free},
        targets=targets,
        seeds=seed_list,
        simulated=sim,
        residuals_pct=(np.exp(r) - 1.0) * 100.0,
        objective=float(np.sum(r**2)),
        method=method,
        nfev=nfev,
        success=ok,
        message=msg,
        wall_time_s=time.perf_counter() - t0,
        history=history,
    )


def _simplex(x0, lo, hi, step=0.18232155679395462):  # log(1.2)
    pts = [x0]
    for i in range(len(x0)):
        p = x0.copy()
        p[i] = x0[i] + step if x0[i] + step <= hi[i] else x0[i] - step
        pts.append(p)
    return np.array(pts)


def _engine_version() -> dict:
    from . import __version__

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
    fitted = ", ".join(f"{k}={fit.profile.params[k]:.4g}" for k in fit.free)
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


def _clean(v: float):
    v = float(v)
    return int(v) if v.is_integer() and abs(v) < 1e15 else float(f"{v:.6g}")


def _dump(doc: dict, name: str, out_dir) -> Path:
    d = Path(out_dir) if out_dir is not None else data_dir() / "profiles"
    d.mkdir(parents=True, exist_ok=True)
    path = d / f"{name}.json"
    path.write_text(json.dumps(doc, indent=2) + "\n")
    return path


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
    for r in load_published(path):
        if (r["metric"] == "build-time" and r["mode"] == "legacy" and r["guest_ram"] == memory
                and r["patch_version"] in (reference, target)):  # fmt: skip
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


# --------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------


def _cmd_calibrate(args) -> int:
    free = tuple(s.strip() for s in args.free.split(",") if s.strip())
    for k in free:
        if k not in BOUNDS:
            raise FphintError(f"--free: unknown parameter {k!r} (known: {', '.join(BOUNDS)})")
    command = (
        "fphint calibrate " + " ".join(sys.argv[2:]) if len(sys.argv) > 2 else "fphint calibrate"
    )
    out = sys.stdout
    if not args.derive_only:
        targets = published_targets(args.rows)
        start = HostProfile.load(args.start)
        fit = fit_profile(targets, start, free, seeds=args.seeds, method=args.method,
                          max_evals=args.max_evals, progress=not args.quiet)  # fmt: skip
        path = write_profile(fit, args.name, args.start, args.out_dir, command)
        out.write(f"{args.name}: {', '.join(f'{k}={fit.profile.params[k]:.4g}' for k in free)} "
                  f"({fit.nfev} evaluations, {fit.wall_time_s:.0f} s, {fit.message})\n")  # fmt: skip
        for t, r, sim in zip(fit.targets, fit.residuals_pct, fit.simulated, strict=True):
            out.write(f"  {t.row:<40} published {t.published_ms:>9.0f} ms  simulated "
                      f"{sim.mean():>9.1f} ms  {r:+6.1f} %\n")  # fmt: skip
        out.write(f"wrote {path}\n")
    if args.derive:
        path = derive_testbed_profile(base=args.name, name=args.derive, reference=args.rows,
                                      target=args.derive, out_dir=args.out_dir,
                                      command=command,
                                      scale_link=args.link == "scale")  # fmt: skip
        speed = json.loads(path.read_text())["params"]["cpu_speed"]
        out.write(f"{args.derive}: cpu_speed={speed:.4f} (from legacy build times)\nwrote {path}\n")
    return 0


def register_cli(subparsers) -> None:
    """Add ``fphint calibrate`` to the ``fphint`` command."""
    p = subparsers.add_parser(
        "calibrate",
        help="fit a host profile to published migration times",
        description="Fit the free parameters of a host profile to published total-time rows "
        "(default: the four v36 rows) and write data/profiles/NAME.json with its provenance; "
        "then derive the v37 testbed profile from the legacy build times.",
    )
    p.add_argument("--rows", default="v36", help="patch version whose total-time rows are fitted")
    p.add_argument("--start", default="prior", help="starting profile (default prior)")
    p.add_argument("--name", default="v36", help="name of the fitted profile (default v36)")
    p.add_argument(
        "--free",
        default=",".join(DEFAULT_FREE),
        help=f"comma-separated free parameters (default {','.join(DEFAULT_FREE)})",
    )
    p.add_argument("--seeds", type=int, default=3, help="seeds per evaluation (default 3)")
    p.add_argument("--method", choices=METHODS, default="nelder-mead", help="optimiser")
    p.add_argument("--max-evals", type=int, default=150, help="budget of evaluations (default 150)")
    p.add_argument(
        "--derive",
        default="v37",
        metavar="NAME",
        help="also write this testbed profile from NAME's legacy build time "
        "(default v37; '' to skip)",
    )
    p.add_argument(
        "--link",
        choices=("scale", "fixed"),
        default="scale",
        help="derived profile: scale link_bytes_per_s with cpu_speed (default; the fitted "
        "stream rate is migration-thread CPU work) or keep it",
    )
    p.add_argument(
        "--derive-only",
        action="store_true",
        help="do not fit; only derive --derive from the existing --name profile",
    )
    p.add_argument("--out-dir", default=None, help="profiles folder (default data/profiles/)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_calibrate)
