"""The engine (``fk.simulate``) against ``naive.naive_simulate`` on small scenarios.

The naive simulation shares no code with the kernels (only the configuration parsing and the
seeding of the random streams), so equal results, to the last page, byte and float bit, mean
that both implement the same model.  Where the kernels departed from their own documentation
the naive version follows the documentation; ``REGRESSION_CASES`` are the scenarios that showed
it.
"""

import math

import pytest
from naive import ROUND_NAMES, naive_simulate

import fphint_kernels as fk

V36 = fk.HostProfile.load("v36")
# a slow hint worker and a slow iothread: blocks are still in the virtqueue at a sync
SLOW_HINT = V36.with_params(hint_host_latency_ms=3.0)
# a slow hint worker in the guest
SLOW_GUEST = {"hint_block_us": 3000}
TCG = fk.HostProfile.load("this-host-tcg")
KB_SMALL = {"pagecache_initial": "64M", "touched_free": "64M"}
TINY = {"reserved_low": "8M", "base_used": "16M", "pagecache_initial": "16M", "touched_free": "0"}


def sc(**kw):
    base = {"max_bandwidth": "100G", "downtime_limit": "300ms", "seed": 2}
    return fk.Scenario(**{**base, **kw})


# (id, scenario, profile, step_ms, slow when interpreted)
CASES = [
    ("idle-256M-legacy", sc(memory="256M", workload="idle"), None, 1.0, False),
    ("idle-512M-hint", sc(memory="512M", workload="idle", hint=True), None, 1.0, False),
    (
        "idle-512M-hint-init-on-alloc-step0.5",
        sc(memory="512M", workload="idle", hint=True, init_on_alloc=True, seed=5),
        None,
        0.5,
        False,
    ),
    ("idle-256M-legacy-tcg", sc(memory="256M", workload="idle"), TCG, 1.0, False),
    (
        "fill-free-512M-legacy-32M",
        sc(memory="512M", workload="fill-free", max_bandwidth="32M"),
        None,
        1.0,
        False,
    ),
    (
        "fill-free-512M-hint-pattern-shrinker",
        sc(
            memory="512M",
            workload="fill-free",
            hint=True,
            page_poison="pattern",
            hint_release="shrinker",
        ),
        None,
        1.0,
        False,
    ),
    (
        "idle-512M-hint-after-pass-pattern-slow-hint-20ms",
        sc(
            guest_options=SLOW_GUEST,
            memory="512M",
            workload="idle",
            hint=True,
            hint_release="after-pass",
            page_poison="pattern",
            downtime_limit="20ms",
        ),
        SLOW_HINT,
        1.0,
        False,
    ),
    (
        "dirty-loop-512M-hint-autoconverge-not-converged",
        sc(
            memory="512M",
            workload="dirty-loop",
            hint=True,
            auto_converge=True,
            max_bandwidth="64M",
            max_time="5s",
            workload_options={"dirty_bytes": "32M"},
        ),
        None,
        1.0,
        True,
    ),
    (
        "kernel-build-1G-hint",
        sc(memory="1G", workload="kernel-build", hint=True, workload_options=KB_SMALL),
        None,
        1.0,
        False,
    ),
    (
        "kernel-build-1G-hint-shrinker-reclaim",
        sc(
            memory="1G",
            workload="kernel-build",
            hint=True,
            hint_release="shrinker",
            workload_options={"pagecache_initial": "256M", "touched_free": "64M"},
        ),
        None,
        1.0,
        True,
    ),
    (
        # eight jobs and little page cache to reclaim (the workload's 64 MiB, none of the
        # guest's own: it adds to the workload's) run the guest out of memory
        "kernel-build-1G-oom",
        sc(
            memory="1G",
            workload="kernel-build",
            hint=True,
            guest_options={"pagecache_initial": "0"},
            workload_options={"jobs": 8, "pagecache_initial": "64M"},
        ),
        None,
        1.0,
        False,
    ),
]

# the four faults, each on a scenario where it loses pages
FAULT_CASES = [
    (
        "late-dirty-log",
        sc(
            memory="1G",
            workload="kernel-build",
            hint=True,
            workload_options=KB_SMALL,
            faults=frozenset({"late-dirty-log"}),
        ),
        None,
        1.0,
        False,
    ),
    (
        "sync-no-rearm",
        sc(
            memory="512M",
            workload="dirty-loop",
            max_bandwidth="64M",
            workload_options={"dirty_bytes": "16M"},
            faults=frozenset({"sync-no-rearm"}),
        ),
        None,
        1.0,
        True,
    ),
    (
        "hint-outside-start",
        sc(
            guest_options=SLOW_GUEST,
            memory="512M",
            workload="idle",
            hint=True,
            hint_release="after-pass",
            page_poison="pattern",
            faults=frozenset({"hint-outside-start"}),
        ),
        SLOW_HINT,
        1.0,
        False,
    ),
    (
        "stale-hint-after-sync",
        sc(
            guest_options=SLOW_GUEST,
            memory="512M",
            workload="idle",
            hint=True,
            hint_release="after-pass",
            page_poison="pattern",
            faults=frozenset({"stale-hint-after-sync"}),
        ),
        SLOW_HINT,
        1.0,
        False,
    ),
]

# Scenarios on which the naive reference found the kernels departing from their documentation
# (fixed in 72a6568): the dirty-loop cap took guest time for host time (cpu_speed != 1); touched
# memory was freed without page poisoning; the guest ended its hint pass, freeing and poisoning
# its blocks, while the VM was stopped at completion.
REGRESSION_CASES = [
    (
        "regression-dirty-loop-cap-1G-tcg",
        sc(memory="1G", workload="dirty-loop", hint=True, max_time="8s"),
        TCG,
        1.0,
        True,
    ),
    (
        "regression-touched-poisoned-fill-free-512M-zero",
        sc(memory="512M", workload="fill-free", page_poison="zero"),
        None,
        1.0,
        False,
    ),
    (
        "regression-frozen-guest-128M-completes-in-first-window",
        sc(
            memory="128M",
            workload="idle",
            guest_options={**TINY, "hint_block_us": 2000},
            hint=True,
            hint_release="after-pass",
            page_poison="pattern",
        ),
        V36,
        1.0,
        False,
    ),
]


def params(cases):
    out = []
    for case in cases:
        cid, scenario, profile, step, slow = case[:5]
        marks = [pytest.mark.slow] if slow else []
        out.append(pytest.param(scenario, profile, step, id=cid, marks=marks))
    return out


def compare(scenario, profile, step_ms):
    ds = fk.simulate(scenario, profile=profile, step_ms=step_ms)
    ref = naive_simulate(scenario, profile, step_ms)
    got = fk.summary(ds)
    got.pop("scenario")
    diff = {k: (got[k], ref[k]) for k in got if got[k] != ref[k]}
    assert diff == {}
    for name in (
        "hint-cpu-time",
        "zeroing-cpu-time",
        "write-faults",
        "held-pages-max",
        "zero-pages-at-start",
        "free-pages-at-start",
        "cpu-migration-thread",
        "cpu-destination",
        "cpu-vcpus",
        "hints-before-first-slice",
        "slice-end-drains",
    ):
        v = ds[name].values.item()
        assert v == ref[name] or (math.isnan(v) and math.isnan(ref[name])), name
    for name in ROUND_NAMES:
        assert ds[name].values.tolist() == ref[name], name
    return got


@pytest.mark.parametrize("scenario,profile,step_ms", params(CASES))
def test_engine_equals_naive(scenario, profile, step_ms):
    compare(scenario, profile, step_ms)


@pytest.mark.parametrize("scenario,profile,step_ms", params(FAULT_CASES))
def test_faults_equal_naive_and_lose_pages(scenario, profile, step_ms):
    got = compare(scenario, profile, step_ms)
    assert got["status"] == "completed"
    assert got["lost-pages"] > 0


@pytest.mark.parametrize("scenario,profile,step_ms", params(REGRESSION_CASES))
def test_engine_equals_naive_regressions(scenario, profile, step_ms):
    compare(scenario, profile, step_ms)


def test_cases_cover_the_model():
    """The scenarios above exercise what they claim to (so the comparisons are not vacuous)."""
    results = {c[0]: naive_simulate(c[1], c[2], c[3]) for c in CASES + REGRESSION_CASES if not c[4]}
    assert results["idle-256M-legacy"]["hinted-pages"] == 0
    assert results["idle-512M-hint"]["skipped-pages"] > 0
    assert results["kernel-build-1G-oom"]["status"] == "failed"
    assert results["kernel-build-1G-oom"]["failure"] == "guest out of memory"
    slow_hint = results["idle-512M-hint-after-pass-pattern-slow-hint-20ms"]
    assert slow_hint["rounds"] >= 3 and slow_hint["lost-pages"] == 0
    init = results["idle-512M-hint-init-on-alloc-step0.5"]
    assert init["zeroing-cpu-time"] > 0 and init["status"] == "completed"
    # touched memory freed with page_poison=zero is zero: sent as duplicates, not normal pages
    poisoned = results["regression-touched-poisoned-fill-free-512M-zero"]
    unpoisoned = naive_simulate(CASES[0][1].replace(memory="512M", workload="fill-free"))
    assert unpoisoned["ram"]["normal"] - poisoned["ram"]["normal"] > 40000  # most of the 60 %
    # completion before the first bandwidth window closes: no sync ends the hint pass, so the
    # frozen guest still holds its blocks at the final sync (nothing newly dirtied by it)
    frozen = results["regression-frozen-guest-128M-completes-in-first-window"]
    assert frozen["rounds"] == 1 and frozen["round-dirtied"][0] < 100
    assert frozen["hinted-pages"] > 0 and frozen["lost-pages"] == 0
