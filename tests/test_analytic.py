"""The geometric pre-copy model (fphint_kernels.analytic) against its closed form and invariants."""

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fphint_kernels as fk
from fphint_kernels.analytic import estimate_scenario, precopy_geometric, scenario_inputs

GIB = 2**30


def closed_form_total_ms(v0, rate, dirty, downtime_ms):
    """Naive reference: Liu et al. (HPDC 2011) without the cap.

    n = smallest n >= 1 with V0 * lambda**n <= threshold; live time (V0/R)(1 - lambda**n)/(1 - lambda),
    then V0 * lambda**n over the link with the VM stopped.
    """
    lam = dirty / rate
    thd = rate * downtime_ms / 1e3
    n = max(1, math.ceil(math.log(thd / v0) / math.log(lam))) if lam > 0 else 1
    live = v0 / rate * (1 - lam**n) / (1 - lam)
    last = v0 * lam**n
    return (live + last / rate) * 1e3, n


@pytest.mark.parametrize(
    "v0, rate, dirty, dl",
    [(8 * GIB, 1e9, 1e8, 300.0), (128 * GIB, 3e9, 6e8, 400.0), (GIB, 1e9, 5e8, 30.0)],
)
def test_matches_closed_form(v0, rate, dirty, dl):
    est = precopy_geometric(v0, rate, dirty, dl)
    ref, n = closed_form_total_ms(v0, rate, dirty, dl)
    assert est.converged
    assert est.rounds == n
    assert est.total_time == pytest.approx(ref, rel=1e-12)
    assert est.round_bytes[1] == pytest.approx(v0 * dirty / rate)


def test_no_dirtying_is_one_round():
    est = precopy_geometric(8 * GIB, 1e9, 0.0, 300.0)
    assert est.rounds == 1
    assert est.downtime == 0.0
    assert est.total_time == pytest.approx(8 * GIB / 1e9 * 1e3)
    assert est.traffic == 8 * GIB


def test_does_not_converge_when_dirtying_outruns_the_link():
    est = precopy_geometric(8 * GIB, 1e9, 2e9, 300.0, max_rounds=12)
    assert not est.converged
    assert est.rounds == 12
    # capped by the dirtyable set, the rounds stop growing
    est = precopy_geometric(8 * GIB, 1e9, 2e9, 300.0, dirtyable_bytes=GIB, max_rounds=12)
    assert not est.converged
    assert est.round_bytes[2:].max() == GIB


def test_hinting_is_a_smaller_first_round():
    legacy = precopy_geometric(8 * GIB, 1e9, 1e8, 300.0)
    hint = precopy_geometric(8 * GIB, 1e9, 1e8, 300.0, first_round_bytes=GIB)
    assert hint.total_time < legacy.total_time
    assert hint.round_bytes[0] == GIB
    assert hint.traffic < legacy.traffic


@pytest.mark.parametrize(
    "kw",
    [
        {
            "memory_bytes": 0,
            "link_bytes_per_s": 1e9,
            "dirty_bytes_per_s": 0,
            "downtime_limit_ms": 1,
        },
        {
            "memory_bytes": GIB,
            "link_bytes_per_s": -1,
            "dirty_bytes_per_s": 0,
            "downtime_limit_ms": 1,
        },
        {
            "memory_bytes": GIB,
            "link_bytes_per_s": 1e9,
            "dirty_bytes_per_s": -1,
            "downtime_limit_ms": 1,
        },
        {
            "memory_bytes": GIB,
            "link_bytes_per_s": 1e9,
            "dirty_bytes_per_s": 0,
            "downtime_limit_ms": 0,
        },
        {
            "memory_bytes": GIB,
            "link_bytes_per_s": 1e9,
            "dirty_bytes_per_s": 0,
            "downtime_limit_ms": 1,
            "first_round_bytes": 2 * GIB,
        },
    ],
)
def test_bad_input_is_an_fphint_error(kw):
    with pytest.raises(fk.FphintError):
        precopy_geometric(**kw)


@settings(max_examples=200, deadline=None)
@given(
    mem=st.floats(1e6, 1e12),
    rate=st.floats(1e6, 1e11),
    frac=st.floats(0.0, 0.99),
    dl=st.floats(1.0, 5000.0),
    first=st.floats(0.0, 1.0),
)
def test_invariants(mem, rate, frac, dl, first):
    kw = {"first_round_bytes": first * mem, "max_rounds": 100_000}
    est = precopy_geometric(mem, rate, frac * rate, dl, **kw)
    assert est.converged  # lambda < 1 always converges
    assert est.downtime <= dl * (1 + 1e-9)
    assert est.total_time >= first * mem / rate * 1e3 * (1 - 1e-9)
    assert est.traffic == pytest.approx(est.round_bytes.sum())
    more = precopy_geometric(mem, rate, min(frac * 1.5, 0.995) * rate, dl, **kw)
    assert more.total_time >= est.total_time * (1 - 1e-9)


def test_scenario_inputs_follow_the_documented_parameters():
    sc = fk.Scenario(
        memory="8G", workload="idle", downtime_limit="2s", max_bandwidth="100G", profile="prior"
    )
    sc_hint = fk.Scenario(
        memory="8G",
        workload="idle",
        downtime_limit="2s",
        max_bandwidth="100G",
        profile="prior",
        hint=True,
    )
    sc_build = fk.Scenario(
        memory="8G",
        workload="kernel-build",
        downtime_limit="2s",
        max_bandwidth="100G",
        profile="prior",
    )
    legacy = scenario_inputs(sc)
    hint = scenario_inputs(sc_hint)
    build = scenario_inputs(sc_build)
    assert legacy["first_round_bytes"] == 8 * GIB
    assert 0 < hint["first_round_bytes"] < GIB  # only memory in use is sent
    assert build["dirty_bytes_per_s"] > 10 * legacy["dirty_bytes_per_s"]
    assert legacy["downtime_limit_ms"] == 2000.0
    # a slower testbed (cpu_speed < 1) has a slower migration thread and a slower guest
    prof = fk.HostProfile.load("prior")
    slow = scenario_inputs(sc, prof.with_params(cpu_speed=0.5))
    assert slow["link_bytes_per_s"] < legacy["link_bytes_per_s"]
    assert slow["dirty_bytes_per_s"] == pytest.approx(legacy["dirty_bytes_per_s"] / 2)
    assert estimate_scenario(sc_hint).total_time < estimate_scenario(sc).total_time
