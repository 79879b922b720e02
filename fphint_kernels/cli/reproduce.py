"""``fphint reproduce``: every published configuration, both modes, several seeds; the report."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from ..errors import FphintError
from ._output import check_output_dir, say
from .simulate import whole


def _cmd_reproduce(args) -> int:
    from ..experiments import reproduce, table
    from ..report import write_report

    if not 1 <= args.seeds <= 1000:
        raise FphintError(f"--seeds: a whole number from 1 to 1000, got {args.seeds}")
    if args.jobs is not None and not 1 <= args.jobs <= 256:
        raise FphintError(f"--jobs: a whole number from 1 to 256, got {args.jobs}")
    if args.profile is not None:
        from ..experiments import profile_for

        profile_for("v36", args.profile)  # an unknown profile: refused before any run
    check_output_dir(args.out)
    fast = True if args.fast else None
    t0 = time.perf_counter()
    if not args.quiet:
        from ..simulate import warm_up

        warm_up(write=say)  # before the bar: its estimate is the runs' alone
    res = reproduce(
        args.seeds, profile=args.profile, fast=fast, progress=not args.quiet, workers=args.jobs
    )
    out = Path(args.out)
    paths = write_report(res, out, runtime_s=time.perf_counter() - t0)
    if args.json:
        sys.stdout.write(json.dumps(table(res), indent=2) + "\n")
    elif not args.quiet:
        sys.stdout.write(f"wrote {', '.join(str(p) for p in paths)}\n")
    return 0


def add_command(subparsers) -> None:
    """Add ``fphint reproduce``."""
    p = subparsers.add_parser(
        "reproduce",
        help="reproduce every published figure of the thread",
        description="Run every published configuration of the free page hint thread (v36, v37) "
        "in both modes over several seeds; write report.md, PNG figures and a netCDF file.",
    )
    p.add_argument(
        "--seeds", type=whole, default=5, help="runs per configuration and mode (default: 5)"
    )
    p.add_argument("--out", default="results", help="output folder (default: results/)")
    p.add_argument(
        "--profile",
        default=None,
        help="host profile for every row (default: v36 rows with v36, v37 rows with v37)",
    )
    p.add_argument(
        "--fast",
        action="store_true",
        help="small guests, one seed (also FPHINT_FAST=1): checks the code path only",
    )
    p.add_argument(
        "--jobs",
        type=whole,
        default=None,
        help="simulations run side by side, 1 to 256 (default: number of CPUs)",
    )
    p.add_argument("--json", action="store_true", help="print the table as JSON records")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_reproduce)
