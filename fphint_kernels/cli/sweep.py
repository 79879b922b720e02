"""``fphint sweep``: a parameter grid on a Dask cluster, one Dataset out (netCDF or Zarr)."""

from __future__ import annotations

import sys
from pathlib import Path

from ..errors import FphintError
from ._output import check_output_dir, check_output_file
from .simulate import whole


def _cmd_sweep(args) -> int:
    from ..sweep import SweepInterrupted, sweep

    if args.workers is not None and args.workers < 1:
        raise FphintError(f"--workers: a whole number >= 1, got {args.workers}")
    if args.workers is not None and args.scheduler:
        raise FphintError("--workers: only for the local cluster (not with --scheduler)")
    out = Path(args.out) if args.out else Path(Path(args.spec).stem + ".nc")
    if out.suffix == ".zarr":
        check_output_dir(str(out))
    else:
        check_output_file(str(out))
    try:
        ds = sweep(
            args.spec,
            scheduler=args.scheduler,
            workers=args.workers,
            cache_dir=args.cache,
            out=out,
            progress=not args.no_progress,
        )
    except SweepInterrupted as exc:
        sys.stderr.write(f"fphint sweep: interrupted: {exc}\n")
        return 130
    a = ds.attrs
    sys.stdout.write(
        f"wrote {out}: {a['points']} points ({a['points_computed']} computed, "
        f"{a['points_cached']} from the cache) in {a['wall_time_s']:.1f} s\n"
    )
    return 0


def add_command(subparsers) -> None:
    """Add ``fphint sweep``."""
    p = subparsers.add_parser(
        "sweep",
        help="run a parameter grid on a Dask cluster",
        description="Expand the grid of SPEC (a YAML file: base scenario fields, grid, seeds; "
        "see docs/sweeps.md), run every point not cached yet on a Dask cluster, and write one "
        "Dataset (netCDF, or Zarr when --out ends in .zarr).  Interrupted sweeps resume.",
    )
    p.add_argument("spec", metavar="SPEC.yaml", help="the sweep spec")
    p.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="address of a running Dask scheduler, e.g. tcp://HOST:8786 (default: a local cluster)",
    )
    p.add_argument(
        "--workers",
        type=whole,
        default=None,
        metavar="N",
        help="worker processes of the local cluster (default: number of CPUs)",
    )
    p.add_argument(
        "--out", metavar="FILE", help="output file, .nc or .zarr (default: SPEC's name with .nc)"
    )
    p.add_argument(
        "--cache",
        metavar="DIR",
        help="cache of finished points (default: FPHINT_SWEEP_CACHE or ~/.cache/fphint/sweeps)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_sweep)
