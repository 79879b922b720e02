"""Scenario validation and unit parsing."""

import pytest

import fphint_kernels as fk
from fphint_kernels.config import HostProfile, Workload
from fphint_kernels.units import (
    format_bytes,
    format_number,
    parse_duration_ms,
    parse_fraction,
    parse_on_off,
    parse_size,
)


@pytest.mark.parametrize(
    "text,default,expected",
    [
        ("8G", "", 8 << 30),
        ("512M", "", 512 << 20),
        ("100G", "", 100 << 30),
        ("4096", "", 4096),
        ("1.5K", "", 1536),
        ("2GiB", "", 2 << 30),
        ("64KB", "", 64 << 10),
        (512, "M", 512 << 20),
        ("1024", "M", 1 << 30),
        ("1T", "", 1 << 40),
    ],
)
def test_parse_size(text, default, expected):
    assert parse_size(text, default_unit=default) == expected


@pytest.mark.parametrize("bad", ["abc", "-1G", "1X", "", "G", True, float("nan"), "1e400G"])
def test_parse_size_rejects(bad):
    with pytest.raises(fk.ScenarioError):
        parse_size(bad)


@pytest.mark.parametrize(
    "text,expected",
    [
        ("400ms", 400.0),
        ("2s", 2000.0),
        ("1min", 60000.0),
        ("250us", 0.25),
        (300, 300.0),
        ("1.5s", 1500.0),
    ],
)
def test_parse_duration(text, expected):
    assert parse_duration_ms(text) == pytest.approx(expected)


@pytest.mark.parametrize("bad", ["abc", "-2s", "2 hours", None])
def test_parse_duration_rejects(bad):
    with pytest.raises(fk.ScenarioError):
        parse_duration_ms(bad)


def test_parse_fraction_and_format():
    assert parse_fraction("60%") == pytest.approx(0.6)
    assert parse_fraction(0.25) == 0.25
    with pytest.raises(fk.ScenarioError):
        parse_fraction("150%")
    with pytest.raises(fk.ScenarioError):
        parse_fraction("lots")
    assert format_bytes(8 << 30) == "8.00 GiB"
    assert format_bytes(1536) == "1.50 KiB"
    assert format_bytes(10) == "10 B"
    assert format_number(1234.5, 1, " %") == "1,234.5 %"
    assert format_number(float("inf")) == "n/a"


@pytest.mark.parametrize(
    "value, want", [("on", True), (" Yes", True), ("0", False), (False, False)]
)
def test_parse_on_off(value, want):
    assert parse_on_off(value) is want


def test_parse_on_off_rejects_with_the_option_name():
    with pytest.raises(fk.ScenarioError, match=r"^--hint: expected on or off, got 'maybe'$"):
        parse_on_off("maybe", what="--hint")
    with pytest.raises(fk.ScenarioError, match=r"^expected on or off, got 2$"):
        parse_on_off(2)


def test_scenario_normalises_units():
    sc = fk.Scenario(memory="8G", downtime_limit="2s", max_bandwidth="100G", hint=True)
    assert sc.memory == 8 << 30
    assert sc.downtime_limit == 2000.0
    assert sc.max_bandwidth == float(100 << 30)
    assert sc.nr_pages == 2 * 1024 * 1024
    assert fk.Scenario(memory="1024").memory == 1 << 30  # a bare number string: MiB, like -m
    assert fk.Scenario(memory=1 << 30).memory == 1 << 30  # numbers are bytes


def test_scenario_is_frozen_hashable_and_round_trips():
    sc = fk.Scenario(
        memory="1G",
        workload="fill-free",
        workload_options={"fill": "30%"},
        seed=4,
        faults=frozenset({"sync-no-rearm"}),
    )
    assert sc == fk.Scenario.from_attrs(sc.to_attrs())
    assert hash(sc) == hash(fk.Scenario.from_attrs(sc.to_attrs()))
    assert sc.replace(hint=True) != sc
    with pytest.raises(AttributeError):
        sc.memory = 1


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"memory": 0}, "memory"),
        ({"memory": "3M"}, "at least"),
        ({"memory": "1025K"}, "memory"),
        ({"memory": 1024}, "at least"),
        ({"downtime_limit": 0}, "downtime"),
        ({"max_bandwidth": "0"}, "max-bandwidth"),
        ({"workload": "nope"}, "unknown workload"),
        ({"profile": "nope"}, "unknown profile"),
        ({"hint": "yes"}, "hint"),
        ({"vcpus": 0}, "vcpus"),
        ({"seed": -1}, "seed"),
        ({"faults": {"bogus"}}, "unknown fault"),
        ({"page_poison": "x"}, "page-poison"),
        ({"hint_release": "x"}, "hint-release"),
        ({"max_time": 0}, "max-time"),
        ({"memory": "128M", "workload": "kernel-build"}, "needs at least"),
        ({"workload_options": {"jobs": 1.5}}, "whole number"),
        ({"workload_options": {"nonsense": 1}}, "unknown parameter"),
        ({"workload_options": {"anon_order": 11}}, "order"),
        ({"workload": "dirty-loop", "workload_options": {"dirty_interval_ms": 0}}, "> 0"),
    ],
)
def test_scenario_rejects(kwargs, match):
    with pytest.raises(fk.ScenarioError, match=match):
        fk.Scenario(**kwargs)


def test_profiles_and_workloads_load():
    assert "v36" in fk.available_profiles()
    assert {"idle", "kernel-build", "fill-free", "dirty-loop"} <= set(fk.available_workloads())
    hp = HostProfile.load("prior")
    assert hp.params["cpu_speed"] == 1.0
    assert hp.with_params(zero_page_ns=1).params["zero_page_ns"] == 1.0
    with pytest.raises(fk.ScenarioError):
        hp.with_params(nonsense=1)
    with pytest.raises(fk.ScenarioError):
        HostProfile.from_dict({"params": {"zero_page_ns": 1}})
    wl = Workload.load("kernel-build", {"jobs": 8})
    assert wl.params["jobs"] == 8
    guest = fk.Guest.load("testbed-2018")
    assert wl.min_memory(guest) > Workload.load("idle").min_memory(guest)
    for name in fk.available_workloads():
        w = Workload.load(name)
        # every parameter a workload sets is documented in its file
        assert w.description


def test_profile_parameter_validation():
    p = dict(HostProfile.load("prior").params)
    p["cpu_speed"] = 0
    with pytest.raises(fk.ScenarioError):
        HostProfile.from_dict({"params": p})
    p["cpu_speed"] = 1
    p["zero_page_ns"] = -1
    with pytest.raises(fk.ScenarioError):
        HostProfile.from_dict({"params": p})
