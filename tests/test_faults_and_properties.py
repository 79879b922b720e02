"""The planted faults lose data in every one of their witness scenarios, and the protocol
without faults loses nothing over 1,000 random scenarios with every invariant holding."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from fault_witnesses import WITNESSES
from property_scenarios import random_scenario

import fphint_kernels as fk
from fphint_kernels.simulate import invariant_violations

WITNESS_SEEDS = 25


def _lost(fault, seed, with_fault=True):
    sc, profile = WITNESSES[fault](seed, fault=with_fault)
    ds = fk.simulate(sc, profile=profile)
    return str(ds["status"].values), int(ds["lost-pages"])


@pytest.mark.parametrize("fault", sorted(fk.FAULTS))
def test_witness_quick(fault):
    status, lost = _lost(fault, 0)
    assert status == "completed" and lost > 0, (fault, status, lost)


@pytest.mark.slow
@pytest.mark.parametrize("fault", sorted(fk.FAULTS))
def test_every_witness_loses_data(fault):
    results = [_lost(fault, seed) for seed in range(WITNESS_SEEDS)]
    caught = sum(1 for status, lost in results if status == "completed" and lost > 0)
    print(f"{fault}: caught in {caught}/{WITNESS_SEEDS} witness scenarios")
    assert caught == WITNESS_SEEDS, results
    # the same scenarios without the fault lose nothing (or, for sync-no-rearm, whose dirty
    # loop outruns the link once write tracking works, do not converge)
    for seed in range(3):
        status, lost = _lost(fault, seed, with_fault=False)
        assert lost == (0 if status == "completed" else -1), (fault, seed, status, lost)


PROPERTY_RUNS = 1000


@pytest.mark.slow
def test_random_scenarios_lose_nothing_and_keep_invariants():
    def one(i):
        ds = fk.simulate(random_scenario(i))
        return (
            str(ds["status"].values),
            int(ds["lost-pages"]),
            invariant_violations(ds),
        )

    fk.simulate(random_scenario(0))  # compile once before the threads start
    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(one, range(PROPERTY_RUNS)))
    took = time.perf_counter() - t0
    statuses = [r[0] for r in results]
    print(
        f"{PROPERTY_RUNS} random scenarios in {took:.0f} s: "
        + ", ".join(f"{s} {statuses.count(s)}" for s in sorted(set(statuses)))
    )
    assert set(statuses) <= {"completed", "not-converged", "failed"}
    assert statuses.count("completed") > PROPERTY_RUNS // 2
    assert [r for r in results if r[1] > 0] == []
    assert [r for r in results if r[2]] == []
