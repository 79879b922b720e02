"""Random scenarios for the property tests: small guests, every workload and option."""

from __future__ import annotations

import numpy as np

import fphint_kernels as fk

MEMORIES = ("256M", "384M", "512M", "768M")
WORKLOADS = ("idle", "kernel-build", "fill-free", "dirty-loop")


def random_scenario(i: int, *, faults=frozenset()) -> fk.Scenario:
    """Scenario ``i`` of the property test (the same for every ``i`` on every machine)."""
    r = np.random.default_rng([0x70726F70, i])
    wl = str(r.choice(WORKLOADS))
    mem = str(r.choice(MEMORIES))
    opts = {}
    bandwidth = str(r.choice(("64M", "256M", "1G", "100G")))
    if wl == "kernel-build":  # the longest runs: a guest of 768M and at least 256M/s
        mem = "768M"
        opts = {"pagecache_initial": "128M", "touched_free": "64M"}
        bandwidth = str(r.choice(("256M", "1G", "100G")))
    elif wl == "fill-free":
        opts = {"fill": float(r.choice((0.1, 0.4, 0.7)))}
    elif wl == "dirty-loop":
        mem = str(r.choice(("384M", "512M", "768M")))
        opts = {
            "dirty_bytes": str(r.choice(("8M", "32M", "64M"))),
            "dirty_interval_ms": float(r.choice((20.0, 100.0, 500.0))),
        }
    if r.random() < 0.3:
        opts["intensity"] = float(r.choice((0.5, 2.0, 4.0)))
    return fk.Scenario(
        memory=mem,
        workload=wl,
        workload_options=opts,
        hint=bool(r.random() < 0.6),
        init_on_alloc=bool(r.random() < 0.4),
        page_poison=str(r.choice(("off", "off", "zero", "pattern"))),
        hint_release=str(r.choice(("done", "shrinker", "after-pass"))),
        auto_converge=bool(r.random() < 0.3),
        vcpus=int(r.choice((1, 1, 2, 4))),
        guest=str(r.choice(("testbed-2018", "busybox-tcg"))),
        profile=str(r.choice(("v36", "v37", "this-host-tcg"))),
        downtime_limit=str(r.choice(("30ms", "100ms", "300ms", "2s"))),
        max_bandwidth=bandwidth,
        max_time="10s",
        seed=int(r.integers(0, 2**31)),
        faults=faults,
    )
