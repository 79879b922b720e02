"""Witnesses of the planted faults: for each fault, scenarios in which it must lose data.

Each generator returns ``(scenario, profile)`` for a seed; docs/model.md ("Planted faults and
their witnesses") says why the fault must bite in every one of them.  ``fault=False`` gives
the same run without the fault (the control: nothing lost).
"""

from __future__ import annotations

import numpy as np

import fphint_kernels as fk

#: how long the iothread leaves a hint in the queue, so that the hints of a pass are still
#: there at the sync that ends the round (ms; longer than any first round here)
SLOW_IOTHREAD_MS = 30_000.0


def _draw(fault: str, seed: int):
    return np.random.default_rng([0x77697473, sum(map(ord, fault)), seed])


def late_dirty_log(seed: int, fault: bool = True):
    """A dirty loop in low memory of a guest with little else in it, no bandwidth limit."""
    r = _draw("late-dirty-log", seed)
    sc = fk.Scenario(
        memory=str(r.choice(["256M", "384M", "512M"])),
        workload="dirty-loop",
        workload_options={
            "dirty_bytes": str(r.choice(["16M", "32M", "64M"])),
            "dirty_interval_ms": float(r.choice([5.0, 10.0, 20.0])),
        },
        guest="busybox-tcg",
        max_bandwidth="100G",
        downtime_limit="1s",
        hint=bool(r.integers(2)),
        vcpus=int(r.choice([1, 2, 4])),
        profile=str(r.choice(["v36", "v37"])),
        seed=int(r.integers(2**31)),
        faults={"late-dirty-log"} if fault else set(),
    )
    return sc, sc.load_profile()


def sync_no_rearm(seed: int, fault: bool = True):
    """A dirty loop larger than what one downtime can send, rewritten faster than it is sent."""
    r = _draw("sync-no-rearm", seed)
    sc = fk.Scenario(
        memory=str(r.choice(["512M", "768M", "1G"])),
        workload="dirty-loop",
        workload_options={
            "dirty_bytes": str(r.choice(["64M", "96M", "128M"])),
            "dirty_interval_ms": float(r.choice([10.0, 20.0])),
        },
        max_bandwidth=str(r.choice(["512M", "1G"])),
        downtime_limit=str(r.choice(["10ms", "20ms", "30ms"])),
        hint=bool(r.integers(2)),
        vcpus=int(r.choice([2, 4])),
        profile=str(r.choice(["v36", "v37"])),
        seed=int(r.integers(2**31)),
        faults={"sync-no-rearm"} if fault else set(),
        max_time="10s",
    )
    return sc, sc.load_profile()


def _hinted_page_cache(name: str, seed: int, fault: bool, latency_ms: float | None):
    r = _draw(name, seed)
    sc = fk.Scenario(
        memory=str(r.choice(["384M", "512M", "768M"])),
        workload="idle",
        workload_options={"pagecache_rate": str(r.choice(["64M", "128M"]))},
        max_bandwidth=str(r.choice(["512M", "1G", "2G"])),
        downtime_limit=str(r.choice(["5ms", "10ms"])),
        hint=True,
        hint_release="after-pass",
        vcpus=int(r.choice([2, 4])),
        profile=str(r.choice(["v36", "v37"])),
        seed=int(r.integers(2**31)),
        faults={name} if fault else set(),
    )
    profile = sc.load_profile().with_params(hint_host_latency_ms=latency_ms or SLOW_IOTHREAD_MS)
    return sc, profile


def stale_hint_after_sync(seed: int, fault: bool = True):
    """Hinting with the v36 release after each pass, a growing page cache and an iothread slower
    than the first round."""
    return _hinted_page_cache("stale-hint-after-sync", seed, fault, None)


def hint_outside_start(seed: int, fault: bool = True):
    """As :func:`stale_hint_after_sync`, with the iothread's delay set so that the first pass's
    hints reach the host just after the sync that ends round 1 (read off the same run without
    hints applied in round 1: the delay does not change what happens before that sync)."""
    sc, slow = _hinted_page_cache("hint-outside-start", seed, False, None)
    probe = fk.simulate(sc, profile=slow)
    sync2 = float(probe["round-end"].values[0])  # the sync that ends round 1
    guest = sc.load_guest().params  # no START jitter in these guests
    start = float(probe["setup-time"]) + guest["hint_start_ms"] / slow.params["cpu_speed"]
    latency = (sync2 - start + 2.0) * slow.params["cpu_speed"]
    sc, profile = _hinted_page_cache("hint-outside-start", seed, fault, latency)
    return sc, profile


WITNESSES = {
    "late-dirty-log": late_dirty_log,
    "sync-no-rearm": sync_no_rearm,
    "stale-hint-after-sync": stale_hint_after_sync,
    "hint-outside-start": hint_outside_start,
}
