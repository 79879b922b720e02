"""Sweep benchmark: a 1,000-point sweep on a local Dask cluster, fresh, resumed and cached.

Usage::

    python benchmarks/sweep.py                        # benchmarks/sweep_1000.yaml, 2 workers
    python benchmarks/sweep.py --workers 4 --json results/sweep-bench.json
    python benchmarks/sweep.py SPEC.yaml --interrupt-at 0   # no interrupted run

Three runs, each with the cache in a new temporary folder unless said otherwise:

1. *fresh*: every point computed (the workers load the compiled kernels from the on-disk kernel
   cache, or compile them once each when it is cold);
2. *cached*: the same sweep again over the cache of run 1: nothing to compute, no cluster;
3. *resumed*: a sweep over a new cache interrupted (KeyboardInterrupt) once ``--interrupt-at``
   points are finished, then run again: the time of the second run, which computes only the
   points that were not finished.

Prints wall times and points per second (``--json``: also as a JSON file).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("spec", nargs="?", default=str(ROOT / "benchmarks" / "sweep_1000.yaml"))
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--interrupt-at", type=int, default=500, help="0: no interrupted run")
    p.add_argument("--json", help="also write the numbers to this file")
    args = p.parse_args(argv)

    from fphint_kernels import sweep as sw

    out = {"spec": args.spec, "workers": args.workers}
    with tempfile.TemporaryDirectory(prefix="fphint-sweep-bench-") as tmp:
        cache = Path(tmp) / "fresh"
        t0 = time.perf_counter()
        ds = sw.sweep(args.spec, workers=args.workers, cache_dir=cache, progress=False)
        fresh = time.perf_counter() - t0
        n = ds.attrs["points"]
        sim = ds["point-seconds"].values
        out.update(
            points=n,
            fresh_s=round(fresh, 2),
            fresh_points_per_s=round(n / fresh, 1),
            simulation_s_total=round(float(sim.sum()), 2),
            simulation_s_median=round(float(sorted(sim.ravel())[n // 2]), 4),
            simulation_s_max=round(float(sim.max()), 2),
        )
        print(f"fresh:   {n} points in {fresh:.1f} s ({n / fresh:.1f} points/s)")
        t0 = time.perf_counter()
        ds2 = sw.sweep(args.spec, workers=args.workers, cache_dir=cache, progress=False)
        cached = time.perf_counter() - t0
        assert ds2.attrs["points_computed"] == 0
        out["cached_s"] = round(cached, 2)
        print(f"cached:  {n} points from the cache in {cached:.2f} s")

        if args.interrupt_at > 0:
            cache = Path(tmp) / "resume"
            real_put = sw.PointCache.put
            count = [0]

            def put(self, key, entry):
                path = real_put(self, key, entry)
                count[0] += 1
                if count[0] == args.interrupt_at:
                    raise KeyboardInterrupt
                return path

            sw.PointCache.put = put
            try:
                sw.sweep(args.spec, workers=args.workers, cache_dir=cache, progress=False)
            except sw.SweepInterrupted as exc:
                done = exc.done
            else:
                done = n
            finally:
                sw.PointCache.put = real_put
            t0 = time.perf_counter()
            ds3 = sw.sweep(args.spec, workers=args.workers, cache_dir=cache, progress=False)
            resumed = time.perf_counter() - t0
            computed = ds3.attrs["points_computed"]
            assert computed == n - done, (computed, n, done)
            for name in ds.data_vars:
                if name != "point-seconds":
                    assert (ds3[name] == ds[name]).all(), name
            out.update(
                interrupted_after=done, resumed_computed=computed, resumed_s=round(resumed, 2)
            )
            print(
                f"resumed: interrupted after {done} points; the second run computed "
                f"{computed} in {resumed:.1f} s"
            )
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
    json.dump(out, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
