"""Reduce a kernel build's page-allocator trace to the files of ``data/measurements/host-build``.

Input: a folder written by ``tools/measure_build_footprint.sh`` (``trace.txt`` of the
``kmem:mm_page_alloc_zone_locked`` tracepoint, ``flags0.npy``/``flags1.npy`` copies of
``/proc/kpageflags`` before and after, ``meminfo.csv``, ``t0.txt``, ``make.err``).

    python tools/build_footprint.py RUN_DIR data/measurements/host-build

Writes ``footprint.csv`` (one row a second: objects built, distinct pages the build has taken
from the buddy allocator that were free before it started ("fresh"), all pages it has taken,
MemFree, Cached), ``windows.csv`` (distinct pages taken within windows of several lengths, and
the objects built in them) and ``summary.json``.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import numpy as np

KPF_LRU, KPF_SLAB, KPF_BUDDY, KPF_ANON = 5, 7, 10, 12
EVENT = re.compile(
    rb"\s(\d+\.\d+): mm_page_alloc_zone_locked: page=\S+ pfn=0x([0-9a-f]+) order=(\d+) "
    rb"migratetype=(-?\d+)"
)
WINDOWS_S = (2.5, 5, 10, 20, 40, 70, 120, 200, 400)


def flag(flags: np.ndarray, bit: int) -> np.ndarray:
    return (flags & np.uint64(1 << bit)) != 0


def load_events(run: Path, t0: float):
    cache = run / "events.npz"
    if cache.exists():
        e = np.load(cache)
        return e["t"], e["pfn"], e["order"]
    t, pfn, order = [], [], []
    with open(run / "trace.txt", "rb") as fh:
        for line in fh:
            m = EVENT.search(line)
            if m:
                t.append(float(m.group(1)))
                pfn.append(int(m.group(2), 16))
                order.append(int(m.group(3)))
    t = np.array(t) - t0
    pfn, order = np.array(pfn, np.int64), np.array(order, np.int64)
    np.savez_compressed(cache, t=t, pfn=pfn, order=order)
    return t, pfn, order


def main(run: Path, out: Path) -> None:
    t0 = float((run / "t0.txt").read_text())
    t1 = float((run / "t1.txt").read_text()) - t0
    flags0, flags1 = np.load(run / "flags0.npy"), np.load(run / "flags1.npy")
    free0 = flag(flags0, KPF_BUDDY)
    t, pfn, order = load_events(run, t0)
    mem = np.genfromtxt(run / "meminfo.csv", delimiter=",", names=True)
    mem_t = mem["t"] - t0
    touched = np.zeros(flags0.size, bool)
    grid = np.arange(0.0, np.ceil(t1) + 1)
    fresh = np.zeros(grid.size, np.int64)
    taken = np.zeros(grid.size, np.int64)
    n_fresh = n_taken = 0
    ends = np.searchsorted(t, grid, side="right")
    start = 0
    for g, end in enumerate(ends):
        for a, k in zip(pfn[start:end], order[start:end], strict=True):
            b = a + (1 << k)
            n_fresh += int((free0[a:b] & ~touched[a:b]).sum())
            touched[a:b] = True
            n_taken += 1 << k
        fresh[g], taken[g] = n_fresh, n_taken
        start = end
    mib = 4096 / 2**20
    objects = np.interp(grid, mem_t, mem["objs"])
    table = np.column_stack([
        grid, np.round(objects), fresh * mib, taken * mib,
        np.interp(grid, mem_t, mem["memfree_kb"]) / 1024,
        np.interp(grid, mem_t, mem["cached_kb"]) / 1024,
    ])  # fmt: skip
    np.savetxt(out / "footprint.csv", table, delimiter=",", fmt="%.1f",
               header="t_s,objects,fresh_mib,taken_mib,memfree_mib,cached_mib", comments="")  # fmt: skip
    rows = []
    for w in WINDOWS_S:
        for a in np.arange(30.0, t1 - w, max(w, 30.0)):
            i, j = np.searchsorted(t, [a, a + w])
            seen = np.zeros(flags0.size, bool)
            for p, k in zip(pfn[i:j], order[i:j], strict=True):
                seen[p : p + (1 << k)] = True
            objs = float(np.interp(a + w, mem_t, mem["objs"]) - np.interp(a, mem_t, mem["objs"]))
            rows.append((w, a, objs, seen.sum() * mib))
    np.savetxt(out / "windows.csv", np.array(rows), delimiter=",", fmt="%.1f",
               header="window_s,start_s,objects,distinct_mib", comments="")  # fmt: skip
    t_fresh = touched & free0
    free1 = flag(flags1, KPF_BUDDY)
    err = (run / "make.err").read_text()

    def stat(name: str) -> float:
        return float(re.search(rf"{re.escape(name)}: ([\d.:]+)", err).group(1).split(":")[-1])

    summary = {
        "build_s": round(t1, 1),
        "objects": int(mem["objs"][-1]),
        "user_s": stat("User time (seconds)"),
        "system_s": stat("System time (seconds)"),
        "minor_faults": int(stat("Minor (reclaiming a frame) page faults")),
        "free_before_mib": round(free0.sum() * mib, 1),
        "free_after_mib": round(free1.sum() * mib, 1),
        "taken_mib": round(n_taken * mib, 1),
        "fresh_mib": round(t_fresh.sum() * mib, 1),
        "fresh_at_end": {
            "free_mib": round((t_fresh & free1).sum() * mib, 1),
            "lru_mib": round((t_fresh & flag(flags1, KPF_LRU)).sum() * mib, 1),
            "anon_mib": round((t_fresh & flag(flags1, KPF_ANON)).sum() * mib, 1),
            "slab_mib": round((t_fresh & flag(flags1, KPF_SLAB)).sum() * mib, 1),
        },
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    sys.stdout.write(json.dumps(summary, indent=1) + "\n")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(Path(sys.argv[1]), Path(sys.argv[2]))
