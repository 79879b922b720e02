"""``fphint calibrate``: fit a host profile to published migration times, derive the v37 one."""

from __future__ import annotations

import json
import sys

from ..calibrate import DEFAULT_FREE
from ..errors import FphintError
from ..fitting import BOUNDS, METHODS
from ._output import check_output_dir, say

#: where ``fphint calibrate`` writes unless told otherwise (the shipped profiles stay as they are)
DEFAULT_OUT = "results/calibration"


def _cmd_calibrate(args) -> int:
    from ..calibrate import (
        derive_testbed_profile,
        fit_profile,
        published_targets,
        write_guest,
        write_profile,
    )
    from ..config import HostProfile

    if args.update_profiles and args.out_dir is not None:
        raise FphintError("give either --out-dir or --update-profiles, not both")
    if args.update_profiles:
        from ..config import data_dir

        args.out_dir = str(data_dir() / "profiles")
        guest_dir = str(data_dir() / "guests")
    else:
        if args.out_dir is None:
            args.out_dir = DEFAULT_OUT
        guest_dir = f"{args.out_dir}/guests"
    check_output_dir(args.out_dir, "--out-dir")
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
        if not args.quiet:
            from ..simulate import warm_up

            warm_up(write=say)  # before the bar: its estimate is the fit's alone
        fit = fit_profile(targets, start, free, seeds=args.seeds, method=args.method,
                          max_evals=args.max_evals, progress=not args.quiet)  # fmt: skip
        path = write_profile(fit, args.name, args.start, args.out_dir, command)
        guest_path = write_guest(fit, args.name, guest_dir, command)
        out.write(f"{args.name}: {', '.join(f'{k}={fit.value(k):.4g}' for k in free)} "
                  f"({fit.nfev} evaluations, {fit.wall_time_s:.0f} s, {fit.message})\n")  # fmt: skip
        for t, r, sim in zip(fit.targets, fit.residuals_pct, fit.simulated, strict=True):
            out.write(f"  {t.row:<40} published {t.published_ms:>9.0f} ms  simulated "
                      f"{sim.mean():>9.1f} ms  {r:+6.1f} %\n")  # fmt: skip
        out.write(f"wrote {path}\n")
        if guest_path is not None:
            out.write(f"wrote {guest_path}\n")
    if args.derive:
        path = derive_testbed_profile(base=args.name, name=args.derive, reference=args.rows,
                                      target=args.derive, out_dir=args.out_dir,
                                      command=command,
                                      scale_link=args.link == "scale")  # fmt: skip
        speed = json.loads(path.read_text())["params"]["cpu_speed"]
        out.write(f"{args.derive}: cpu_speed={speed:.4f} (from legacy build times)\nwrote {path}\n")
    if not args.update_profiles and not args.quiet:
        say(
            "data/profiles/ and data/guests/ are unchanged; to simulate with what was just "
            "written, copy it there or rerun with --update-profiles"
        )
    return 0


def add_command(subparsers) -> None:
    """Add ``fphint calibrate``."""
    p = subparsers.add_parser(
        "calibrate",
        help="fit a host profile to published migration times",
        description="Fit the free parameters of a host profile to published total-time rows "
        "(default: the four v36 rows) and write NAME.json with its provenance into "
        f"{DEFAULT_OUT}/; then derive the v37 testbed profile from the legacy build times.  "
        "The shipped profiles in data/profiles/ change only with --update-profiles.",
    )
    p.add_argument("--rows", default="v36", help="patch version whose total-time rows are fitted")
    p.add_argument("--start", default="prior", help="starting profile (default: prior)")
    p.add_argument("--name", default="v36", help="name of the fitted profile (default: v36)")
    p.add_argument(
        "--free",
        default=",".join(DEFAULT_FREE),
        help=f"comma-separated free parameters (default: {','.join(DEFAULT_FREE)})",
    )
    p.add_argument("--seeds", type=int, default=3, help="seeds per evaluation (default: 3)")
    p.add_argument("--method", choices=METHODS, default="nelder-mead", help="optimiser")
    p.add_argument(
        "--max-evals",
        type=int,
        default=150,
        help="most evaluations; the fit may converge sooner (default: 150)",
    )
    p.add_argument(
        "--derive",
        default="v37",
        metavar="NAME",
        help="also write this testbed profile from NAME's legacy build time "
        "(default: v37; '' to skip)",
    )
    p.add_argument(
        "--link",
        choices=("scale", "fixed"),
        default="scale",
        help="derived profile: scale link_bytes_per_s with cpu_speed (the fitted stream rate "
        "is migration-thread CPU work) or keep it (default: scale)",
    )
    p.add_argument(
        "--derive-only",
        action="store_true",
        help="do not fit; only derive --derive from the existing --name profile",
    )
    p.add_argument(
        "--out-dir", default=None, help=f"folder of the written profiles (default: {DEFAULT_OUT}/)"
    )
    p.add_argument(
        "--update-profiles",
        action="store_true",
        help="write into data/profiles/ instead, replacing the shipped profiles NAME.json and "
        "the derived one (every later simulation with them changes)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_calibrate)
