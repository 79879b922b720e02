"""Same results before and after a change that must not change behaviour (a refactoring).

Runs a fixed set of scenarios through ``fphint simulate --json --out`` and the reproduction
through ``fphint reproduce --json`` in two checkouts of the repository (two git revisions, or a
revision and the working tree), each in its own Python process with that checkout first on
``sys.path``, then compares every number: the JSON summaries exactly, and every variable of
every netCDF Dataset (scalars, per-round and per-time traces) exactly.

Usage::

    python benchmarks/same_results.py BASE            # BASE (a git revision) vs the working tree
    python benchmarks/same_results.py BASE OTHER      # two revisions
    python benchmarks/same_results.py BASE --quick    # the small scenarios only, no reproduce

Exit status 0 when everything is identical, 1 otherwise (each difference is listed).
With ``--allow-new``, what only the second checkout has (new JSON keys, new Dataset variables
and attributes, new scenario options) is not a difference: everything the first one has must
still be identical.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: Scenarios covering every workload, mode, guest option, fault and profile, kept small.
SCENARIOS = [
    ["--memory", "256M", "--workload", "idle", "--hint", "off", "--seed", "1"],
    ["--memory", "256M", "--workload", "idle", "--hint", "on", "--seed", "1"],
    ["--memory", "512M", "--workload", "kernel-build", "--hint", "on", "--seed", "2"],
    ["--memory", "512M", "--workload", "kernel-build", "--hint", "off", "--seed", "2"],
    [
        "--memory",
        "512M",
        "--workload",
        "fill-free",
        "--fill",
        "60%",
        "--hint",
        "on",
        "--init-on-alloc",
        "on",
        "--max-bandwidth",
        "100G",
    ],
    [
        "--memory",
        "512M",
        "--workload",
        "fill-free",
        "--fill",
        "60%",
        "--hint",
        "on",
        "--page-poison",
        "pattern",
        "--hint-release",
        "after-pass",
        "--max-bandwidth",
        "100G",
    ],
    [
        "--memory",
        "1G",
        "--workload",
        "dirty-loop",
        "--dirty-bytes",
        "64M",
        "--hint",
        "on",
        "--max-bandwidth",
        "100G",
        "--downtime-limit",
        "400ms",
        "--profile",
        "this-host-tcg",
    ],
    [
        "--memory",
        "512M",
        "--workload",
        "dirty-loop",
        "--dirty-bytes",
        "256M",
        "--auto-converge",
        "on",
        "--max-time",
        "20s",
        "--seed",
        "3",
    ],
    [
        "--memory",
        "512M",
        "--workload",
        "kernel-build",
        "--hint",
        "on",
        "--hint-release",
        "shrinker",
        "--page-poison",
        "zero",
        "--vcpus",
        "2",
        "--seed",
        "4",
    ],
    [
        "--memory",
        "512M",
        "--workload",
        "kernel-build",
        "--hint",
        "on",
        "--fault",
        "late-dirty-log",
        "--seed",
        "5",
    ],
    [
        "--memory",
        "512M",
        "--workload",
        "kernel-build",
        "--hint",
        "off",
        "--fault",
        "sync-no-rearm",
        "--seed",
        "5",
    ],
    [
        "--memory",
        "512M",
        "--workload",
        "kernel-build",
        "--hint",
        "on",
        "--fault",
        "hint-outside-start",
        "--fault",
        "stale-hint-after-sync",
        "--hint-release",
        "shrinker",
    ],
    [
        "--memory",
        "2G",
        "--workload",
        "idle",
        "--hint",
        "on",
        "--downtime-limit",
        "400ms",
        "--max-bandwidth",
        "100G",
        "--profile",
        "v37",
        "--seed",
        "1",
    ],
]
LARGE = [
    [
        "--memory",
        "8G",
        "--workload",
        "kernel-build",
        "--hint",
        "on",
        "--downtime-limit",
        "2s",
        "--max-bandwidth",
        "100G",
        "--profile",
        "v36",
        "--seed",
        "1",
    ],
    [
        "--memory",
        "8G",
        "--workload",
        "idle",
        "--hint",
        "off",
        "--downtime-limit",
        "400ms",
        "--max-bandwidth",
        "100G",
        "--profile",
        "v37",
        "--seed",
        "1",
    ],
]

#: Run inside the checkout: import its package, call its CLI entry point.
RUNNER = r"""
import contextlib, io, json, sys
sys.path.insert(0, sys.argv[1])
from fphint_kernels.cli import main
jobs = json.loads(sys.argv[2])
out = []
for argv in jobs:
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = main(argv)
    out.append({"argv": argv, "rc": rc, "stdout": buf.getvalue()})
json.dump(out, sys.stdout)
"""


def checkout(rev: str | None, where: Path) -> Path:
    """A read-only copy of ``rev`` (None: the working tree as it is)."""
    if rev is None:
        return ROOT
    dest = where / rev.replace("/", "_")
    subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "add", "--detach", "-f", str(dest), rev],
        check=True,
        capture_output=True,
    )
    return dest


def run_in(tree: Path, outdir: Path, quick: bool) -> list[dict]:
    outdir.mkdir(parents=True, exist_ok=True)
    jobs = []
    for i, argv in enumerate(SCENARIOS + ([] if quick else LARGE)):
        jobs.append(["simulate", *argv, "--json", "--out", str(outdir / f"s{i}.nc")])
    if not quick:
        jobs.append(
            [
                "reproduce",
                "--seeds",
                "2",
                "--json",
                "--quiet",
                "--jobs",
                "1",
                "--out",
                str(outdir / "repro"),
            ]
        )
    env = dict(os.environ, FPHINT_DATA=str(tree / "data"), PYTHONHASHSEED="0")
    env.pop("FPHINT_FAST", None)
    p = subprocess.run(
        [sys.executable, "-c", RUNNER, str(tree), json.dumps(jobs)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tree,
    )
    if p.returncode != 0:
        sys.exit(f"same_results: run in {tree} failed:\n{p.stderr[-3000:]}")
    return json.loads(p.stdout)


def restrict(b, a):
    """``b`` restricted to the keys ``a`` has (recursively): what ``a`` has to compare."""
    if isinstance(a, dict) and isinstance(b, dict):
        return {k: restrict(b[k], a[k]) for k in a if k in b}
    return b


def compare_datasets(a: Path, b: Path, allow_new: bool = False) -> list[str]:
    import numpy as np
    import xarray as xr

    diffs = []
    with xr.open_dataset(a) as da, xr.open_dataset(b) as db:
        names = sorted(set(da.variables) | set(db.variables))
        if allow_new:
            names = sorted(da.variables)
        for name in names:
            if name not in da.variables or name not in db.variables:
                diffs.append(f"{a.name}: variable {name} only in one of the two")
                continue
            x, y = da[name].values, db[name].values
            if x.shape != y.shape:
                diffs.append(f"{a.name}: {name} shape {x.shape} vs {y.shape}")
            elif x.dtype.kind in "fc":
                if not np.array_equal(x, y, equal_nan=True):
                    diffs.append(f"{a.name}: {name} differs")
            elif not np.array_equal(x, y):
                diffs.append(f"{a.name}: {name} differs")
    return diffs


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("base", help="git revision of the reference")
    ap.add_argument("other", nargs="?", help="git revision to compare (default: working tree)")
    ap.add_argument("--quick", action="store_true", help="small scenarios only, no reproduce")
    ap.add_argument(
        "--allow-new",
        action="store_true",
        help="keys and variables only the second checkout has are not differences",
    )
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="fphint-same-") as tmp:
        tmp = Path(tmp)
        trees = [checkout(args.base, tmp / "a"), checkout(args.other, tmp / "b")]
        try:
            results = [run_in(t, tmp / f"out{i}", args.quick) for i, t in enumerate(trees)]
        finally:
            for t in trees:
                if t != ROOT:
                    subprocess.run(
                        ["git", "-C", str(ROOT), "worktree", "remove", "-f", str(t)],
                        capture_output=True,
                    )
        diffs = []
        for ra, rb in zip(*results, strict=True):
            label = " ".join(ra["argv"][:8])
            if ra["rc"] != rb["rc"]:
                diffs.append(f"{label}: exit {ra['rc']} vs {rb['rc']}")
            ja, jb = json.loads(ra["stdout"] or "null"), json.loads(rb["stdout"] or "null")
            if args.allow_new:
                jb = restrict(jb, ja)
            if ja != jb:
                diffs.append(f"{label}: JSON output differs")
        for nc in sorted((tmp / "out0").glob("s*.nc")):
            diffs += compare_datasets(nc, tmp / "out1" / nc.name, args.allow_new)
        repro = tmp / "out0" / "repro" / "reproduction.nc"
        if repro.exists():
            diffs += compare_datasets(
                repro, tmp / "out1" / "repro" / "reproduction.nc", args.allow_new
            )
        n = len(results[0])
        if diffs:
            print(f"same_results: {len(diffs)} difference(s) over {n} runs:")
            for d in diffs:
                print("  " + d)
            return 1
        print(f"same_results: identical ({n} runs: JSON summaries and every netCDF variable)")
        return 0


if __name__ == "__main__":
    sys.exit(main())
