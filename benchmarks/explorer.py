"""Explorer benchmark: the time of a warm update beside the engine alone, for the same scenarios.

Usage::

    python benchmarks/explorer.py               # 8 GiB, 128 GiB and 1 TiB (about 2 minutes)
    python benchmarks/explorer.py --quick       # 8 GiB and 128 GiB
    python benchmarks/explorer.py --sizes 8G 32G --repeat 5 --json results/explorer.json

For each guest size, the explorer's default scenario (idle guest, downtime-limit 2 s,
max-bandwidth 100 GiB/s, profile v36, hinting shown), best of ``--repeat`` warm runs:

* **engine alone**: ``fk.simulate`` of the legacy and the hinting scenario, one after the other,
  with the default recorders;
* **engine, explorer's recorders**: the same two runs as the explorer asks for them (its trace
  interval; a page map for the shown run), still one after the other;
* **explorer update**: ``Explorer.update()`` with an empty run cache, so both modes are
  simulated and the numbers, the figure and the page map are drawn (what a user waits for after
  moving a control), and its parts: ``simulate`` (both modes, on two threads when the machine
  allows) and ``draw`` (numbers, figure and page map).

Targets: 0.1 s at 8 GiB, 0.5 s at 128 GiB, 5 s at 1 TiB.  The load average is printed before
and after: the machine should be quiet.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from run import best_of  # noqa: E402  (benchmarks/run.py: the same timing loop)

import fphint_kernels as fk  # noqa: E402
from fphint_kernels.explorer import Explorer  # noqa: E402
from fphint_kernels.explorer.worker import Request  # noqa: E402

#: seconds a warm update may take, by guest size
TARGETS = {"8G": 0.1, "128G": 0.5, "1T": 5.0}
SCENARIO = dict(workload="idle", downtime_limit="2s", max_bandwidth="100G", profile="v36")


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def measure(memory: str, repeat: int) -> dict:
    legacy = fk.Scenario(memory=memory, hint=False, **SCENARIO)
    hinting = fk.Scenario(memory=memory, hint=True, **SCENARIO)
    req = Request(legacy, hinting, shown="hinting")

    def engine_alone():
        return [fk.simulate(legacy), fk.simulate(hinting)]

    def engine_explorer_recorders():
        return [
            fk.simulate(
                req.scenario(m),
                trace_interval_ms=req.trace_interval_ms,
                page_map_bins=req.bins(m),
            )
            for m in ("legacy", "hinting")
        ]

    engine_alone()  # first touch of this size's memory, outside the timed runs
    t_engine, _ = best_of(engine_alone, repeat)
    t_recorders, _ = best_of(engine_explorer_recorders, repeat)

    panel = Explorer(memory=memory, background=False, auto_update=False, **SCENARIO)
    panel.update()
    updates = []
    for _ in range(repeat):
        panel.runner.cache.clear()
        panel.update()
        updates.append(dict(panel.timings))
    best = min(updates, key=lambda t: t["total"])
    assert panel.error is None, panel.error
    return {
        "memory": memory,
        "engine-alone-s": round(t_engine, 4),
        "engine-explorer-recorders-s": round(t_recorders, 4),
        "explorer-update-s": round(best["total"], 4),
        "explorer-simulate-s": round(best["simulate"], 4),
        "explorer-draw-s": round(best["total"] - best["simulate"], 4),
        "parallel": panel.runner.in_parallel(req),
        "target-s": TARGETS.get(memory),
    }


def table(rows) -> str:
    head = (
        f"{'guest':>6} | {'engine alone':>12} | {'engine, explorer':>16} | "
        f"{'explorer update':>15} | {'simulate':>8} | {'draw':>6} | {'target':>6}\n"
        f"{'':>6} | {'both modes':>12} | {'recorders':>16} | {'warm, total':>15} | "
        f"{'':>8} | {'':>6} | {'':>6}\n"
    )
    lines = [head + "-" * len(head.splitlines()[0])]
    for r in rows:
        target = f"{r['target-s']:.1f} s" if r["target-s"] else "-"
        lines.append(
            f"{r['memory']:>6} | {r['engine-alone-s']:>10.3f} s | "
            f"{r['engine-explorer-recorders-s']:>14.3f} s | {r['explorer-update-s']:>13.3f} s | "
            f"{r['explorer-simulate-s']:>6.3f} s | {r['explorer-draw-s']:>4.3f} s | {target:>6}"
        )
    return "\n".join(lines) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", nargs="+", default=None, help="guest sizes (default 8G 128G 1T)")
    ap.add_argument("--quick", action="store_true", help="8 GiB and 128 GiB only")
    ap.add_argument("--repeat", type=int, default=5, help="warm runs per case (best is kept)")
    ap.add_argument("--json", help="write the results to this file")
    args = ap.parse_args(argv)
    sizes = args.sizes or (["8G", "128G"] if args.quick else ["8G", "128G", "1T"])
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    before = load()
    sys.stdout.write(f"== explorer vs engine, best of {args.repeat}; {cores} cores\n")
    sys.stdout.write(f"load average before: {before}\n")
    # compile (or load from the cache) outside the timed runs
    Explorer(memory="1G", background=False, **SCENARIO)
    rows = []
    for memory in sizes:
        rows.append(measure(memory, args.repeat))
        sys.stdout.write(f"{memory}: {json.dumps(rows[-1])}\n")
    after = load()
    sys.stdout.write(table(rows))
    sys.stdout.write(f"load average after: {after}\n")
    if args.json:
        out = {"rows": rows, "cores": cores, "load-before": before, "load-after": after}
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
