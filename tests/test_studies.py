"""The studies (fphint_kernels.studies): grid plumbing, validation, what each study shows in
fast mode, and their figures."""

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")

import fphint_kernels as fk  # noqa: E402
from fphint_kernels import plot, studies  # noqa: E402


def _no_simulation(*args, **kwargs):
    raise AssertionError("a simulation ran before the study was validated")


def _make(memory, hinting, seed):
    return fk.Scenario(memory=memory, hinting=hinting, max_bandwidth="100G", seed=seed)


def test_run_grid_dims_units_and_savings():
    ds = studies.run_grid(
        {"memory": [256 << 20], "hinting": ["none", "fph"]}, _make, seeds=[3], progress=False
    )
    ds = studies._add_derived(ds)
    assert dict(ds.sizes) == {"memory": 1, "hinting": 2, "seed": 1}
    assert list(ds["seed"].values) == [3]
    assert (ds["status"] == "completed").all()
    assert ds["total-time"].attrs["units"] == "ms"
    assert ds["ram-transferred"].attrs["units"] == "bytes"
    assert (ds["run-seconds"] > 0).all()
    assert ds.attrs["points"] == 2
    # the saving is computed against hinting="none" of the same seed
    legacy = float(ds["total-time"].sel(hinting="none").squeeze())
    hinted = float(ds["total-time"].sel(hinting="fph").squeeze())
    saving = float(ds["total-time-saving"].sel(hinting="fph").squeeze())
    assert saving == pytest.approx(1 - hinted / legacy)
    assert float(ds["total-time-saving"].sel(hinting="none").squeeze()) == 0
    # the same point simulated alone gives the same numbers (seeds are passed through)
    one = fk.simulate(_make(256 << 20, "fph", 3))
    assert float(one["total-time"]) == hinted


@pytest.mark.parametrize(
    ("call", "words"),
    [
        (lambda: studies.designs(hinting=("none", "magic")), "hinting"),
        (lambda: studies.designs(seeds=0), "seeds"),
        (lambda: studies.designs(seeds=[1, 1]), "seeds"),
        (lambda: studies.big_idle_guest(in_use=(1.5,)), "in_use"),
        (lambda: studies.hint_rate(max_bandwidth=("fast",)), "max_bandwidth"),
        (lambda: studies.init_on_alloc(memory=()), "dimension"),
        (lambda: studies.non_convergence(dirty_bytes=("8G",), memory="1G"), "memory"),
    ],
)
def test_bad_studies_stop_before_any_run(call, words, monkeypatch):
    monkeypatch.setattr(studies, "simulate", _no_simulation)
    with pytest.raises(fk.ScenarioError, match=words):
        call()


def test_idle_guest_scenario_in_use_and_old_data():
    sc = studies.idle_guest_scenario("1G", 0.6, 0.5)
    own = studies._guest_own_bytes(fk.Scenario(memory="1G", workload="idle"))
    used = own + sc.workload_options["base_used"]
    assert used == pytest.approx(0.6 * sc.memory, abs=2 << 20)
    fill = sc.workload_options["fill"]
    assert 0.15 < fill < 0.2  # half of the free 40 %, less reserves
    # more in use than the guest's own memory: nothing to add
    assert studies.idle_guest_scenario("1G", 0.0, 0.0).workload_options["base_used"] == 0


def _labelled(fig):
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert axes
    for ax in axes:
        assert ax.get_xlabel() and ax.get_ylabel(), ax
        assert "(" in ax.get_ylabel()  # a unit
    assert fig.legends or any(ax.get_legend() is not None for ax in axes)


TINY = {
    "big_idle_guest": dict(memory=("512M",), in_use=(0.0,), downtime_limit=("300ms",)),
    "hint_rate": dict(hint_block_us=(30.0,), max_bandwidth=("1G",), memory="256M"),
    "init_on_alloc": dict(memory=("256M",), workload=("idle",), hinting=("fph",)),
    "designs": dict(hinting=("none", "oracle"), workload=("idle",), memory="256M", seeds=1),
    "non_convergence": dict(
        dirty_bytes=("32M",), hinting=("none",), auto_converge=(False,), memory="512M",
        max_time="5s", seeds=1,
    ),
}  # fmt: skip


@pytest.mark.parametrize("name", list(TINY))
def test_every_study_returns_a_dataset_and_draws_it(name):
    ds = getattr(studies, name)(progress=False, **TINY[name])
    assert ds.attrs["study"] == name
    assert "seed" in ds.dims
    assert (ds["status"] == "completed").all()
    assert (ds["lost-pages"] == 0).all()
    fig = getattr(plot, f"study_{name}")(ds)
    _labelled(fig)
    matplotlib.pyplot.close("all")


# --------------------------------------------------------------------------------------------
# what each study shows (fast mode, as the notebooks run in the suite)
# --------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_big_idle_guest_fast():
    ds = studies.big_idle_guest(fast=True, progress=False)
    assert dict(ds.sizes) == {"memory": 2, "in_use": 2, "downtime_limit": 2, "hinting": 2,
                              "seed": 1}  # fmt: skip
    assert (ds["status"] == "completed").all() and (ds["lost-pages"] == 0).all()
    saving = ds["total-time-saving"].sel(hinting="fph")
    assert (saving > 0).all()
    # the more free memory, the more hinting saves: larger guests, less in use
    assert (saving.isel(memory=-1) > saving.isel(memory=0)).all()
    assert (saving.isel(in_use=0) > saving.isel(in_use=-1)).all()
    # legacy sends more bytes when more is in use
    legacy = ds["ram-transferred"].sel(hinting="none")
    assert (legacy.isel(in_use=-1) > legacy.isel(in_use=0)).all()


@pytest.mark.slow
def test_hint_rate_fast():
    ds = studies.hint_rate(fast=True, progress=False)
    s = ds["total-time-saving"].sel(hinting="fph").isel(seed=0)
    fast_worker, slow_worker = s.isel(hint_block_us=0), s.isel(hint_block_us=-1)
    assert (fast_worker > slow_worker).all()
    # a throttled sender leaves the slow worker more of its saving than an unthrottled one
    assert float(slow_worker.isel(max_bandwidth=0)) > float(slow_worker.isel(max_bandwidth=-1))
    assert (ds["sender-block-us"] > ds["sender-zero-block-us"]).all()


@pytest.mark.slow
def test_init_on_alloc_fast():
    ds = studies.init_on_alloc(fast=True, progress=False).isel(seed=0)
    fph = ds.sel(hinting="fph")
    on, off = fph.sel(init_on_alloc=True), fph.sel(init_on_alloc=False)
    # hinted blocks zeroed by the guest come back dirty: sent again as zero pages
    assert (on["ram-duplicate"] > off["ram-duplicate"]).all()
    assert (on["guest-overhead-time"] > off["guest-overhead-time"]).all()
    assert (on["total-time-saving"] < off["total-time-saving"]).all()
    # without hinting init_on_alloc changes nothing in an idle migration
    legacy = ds.sel(hinting="none")
    np.testing.assert_array_equal(
        legacy["ram-transferred"].sel(init_on_alloc=True),
        legacy["ram-transferred"].sel(init_on_alloc=False),
    )


@pytest.mark.slow
def test_designs_fast():
    ds = studies.designs(fast=True, progress=False)
    assert list(ds["hinting"].values) == list(fk.config.HINTING)
    assert (ds["status"] == "completed").all() and (ds["lost-pages"] == 0).all()
    t = ds["total-time"]
    assert (t.sel(hinting="oracle") <= t.sel(hinting="fph")).all()
    assert (t.sel(hinting="fph") < t.sel(hinting="none")).all()
    held = ds["held-bytes-max"]
    assert (held.sel(hinting="fph") > 0).all()
    assert (held.sel(hinting=["none", "report-in-place", "oracle"]) == 0).all()


@pytest.mark.slow
def test_non_convergence_fast():
    ds = studies.non_convergence(fast=True, progress=False).isel(seed=0)
    small, big = ds.isel(dirty_bytes=0), ds.isel(dirty_bytes=-1)
    assert (small["converged"] == 1).all()
    # a buffer larger than bandwidth x downtime limit: only auto-converge finishes
    assert float(big["dirty_bytes"]) > ds.attrs["threshold_bytes"]
    assert (big["converged"].sel(auto_converge=False) == 0).all()
    assert (big["converged"].sel(auto_converge=True) == 1).all()
    assert (big["cpu-throttle-percentage"].sel(auto_converge=True) > 0).all()
