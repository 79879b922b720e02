"""The explorer panel driven from Python: change a control, check the result moves as the model
says, and that the panel stays usable (errors shown, cache, background runs, progress)."""

from __future__ import annotations

import threading

import pytest

import fphint_kernels as fk
from fphint_kernels import widgets
from fphint_kernels.errors import ScenarioError

# guests of 1 GiB and more: minutes each with NUMBA_DISABLE_JIT=1 (the coverage pass skips
# slow tests; widgets.py is omitted from coverage)
pytestmark = pytest.mark.slow

GIB = 1 << 30
PNG = b"\x89PNG\r\n\x1a\n"
SYNC = 1 << 62  # background_from: every control change runs in the callback itself


@pytest.fixture
def panel():
    """A 1 GiB idle guest, 100 GiB/s, 300 ms: every update takes a fraction of a second."""
    return widgets.Explorer(
        memory="1G", downtime_limit="300ms", page_map_bins=32, background_from=SYNC
    )


def test_initial_state(panel):
    r = panel.result
    assert panel.error is None
    assert r["shown"] == "hinting"
    assert r["status"] == "completed"
    assert r["total-time"] == pytest.approx(float(panel.hinted["total-time"]))
    assert r["legacy"]["total-time"] == pytest.approx(float(panel.legacy["total-time"]))
    assert r["legacy"]["lost-pages"] == 0 and r["hinting"]["lost-pages"] == 0
    assert panel.png.startswith(PNG) and panel.image.value == panel.png
    assert bytes(panel.page_map_image.value).startswith(PNG)
    assert "hinting saves" in panel.numbers.value
    assert "updated in" in panel.status.value
    assert set(panel.timings) == {"simulate", "numbers", "render", "total"}
    assert panel.timings["numbers"] <= panel.timings["total"]


def test_controls_cover_the_scenario(panel):
    sc_legacy, sc_hint = panel.scenarios()
    assert (sc_legacy.hint, sc_hint.hint) == (False, True)
    assert sc_hint.memory == GIB
    assert sc_hint.downtime_limit == 300.0
    assert sc_hint.max_bandwidth == 100 * GIB
    assert dict(sc_hint.workload_options) == {"intensity": 1.0}
    assert set(panel.controls) == {
        "memory", "workload", "intensity", "downtime_limit", "max_bandwidth", "hint",
        "init_on_alloc", "page_poison", "hint_release", "auto_converge", "profile", "seed",
    }  # fmt: skip
    assert [v for _, v in widgets.MEMORY_OPTIONS] == [GIB << k for k in range(11)]
    assert set(panel.profile.options) == set(fk.available_profiles())
    assert set(panel.workload.options) == set(fk.available_workloads())


def test_hint_lowers_total_time_of_idle_guest(panel):
    hinted_total = panel.result["total-time"]
    panel.hint.value = False  # the callback re-runs (both runs come from the cache)
    assert panel.result["shown"] == "legacy"
    legacy_total = panel.result["total-time"]
    assert hinted_total < legacy_total
    assert panel.result["reduction"] == pytest.approx(1 - hinted_total / legacy_total)
    assert panel.result["reduction"] > 0


def test_larger_guest_takes_longer(panel):
    small = panel.result
    png = panel.png
    panel.memory.value = 2 * GIB
    big = panel.result
    assert big["legacy"]["nr-pages"] == 2 * small["legacy"]["nr-pages"]
    assert big["legacy"]["total-time"] > small["legacy"]["total-time"]
    assert big["hinting"]["total-time"] > small["hinting"]["total-time"]
    assert big["ram-transferred"] > 0
    assert panel.png != png  # the figure was redrawn
    assert "2.00 GiB" in panel.status.value


def test_init_on_alloc_loses_the_benefit(panel):
    without = panel.result["reduction"]
    panel.init_on_alloc.value = True
    with_zeroing = panel.result["reduction"]
    assert with_zeroing < without
    assert panel.result["hinting"]["zeroing-cpu-time"] > 0


def test_tighter_downtime_limit_means_shorter_downtime():
    p = widgets.Explorer(
        memory="2G", workload="kernel-build", downtime_limit="2s", hint=False, background_from=SYNC
    )
    loose = p.result
    p.downtime_limit.value = 30.0
    tight = p.result
    assert tight["downtime"] < loose["downtime"]
    assert tight["rounds"] >= loose["rounds"]
    assert tight["downtime"] <= 30.0 * 2  # the limit, with the fixed switchover costs


def test_every_control_reruns(panel):
    """Each scenario control changes the simulated scenario (a new cache entry)."""
    changes = {
        "workload": "fill-free",
        "intensity": 2.0,
        "downtime_limit": 100.0,
        "max_bandwidth": 1 << 30,
        "init_on_alloc": True,
        "page_poison": "pattern",
        "hint_release": "shrinker",
        "auto_converge": True,
        "seed": 7,
    }
    for name, value in changes.items():
        before = panel.updates
        keys = len(panel._cache)
        panel.controls[name].value = value
        assert panel.updates == before + 1, name
        assert panel.error is None, (name, panel.error)
        assert len(panel._cache) == min(keys + 2, panel.cache_size), name


def test_fill_free_legacy_sends_more_bytes(panel):
    idle = panel.result["legacy"]["ram-transferred"]
    panel.workload.value = "fill-free"
    assert panel.result["legacy"]["ram-transferred"] > idle


def test_hint_toggle_uses_the_cache(panel, monkeypatch):
    calls = []
    real = widgets.simulate
    monkeypatch.setattr(widgets, "simulate", lambda *a, **k: calls.append(a) or real(*a, **k))
    panel.hint.value = False
    panel.hint.value = True
    assert calls == []
    panel.seed.value = 3
    assert len(calls) == 2  # legacy and hinting


def test_invalid_scenario_keeps_previous_results(panel, monkeypatch):
    before = panel.result

    def bad():
        raise ScenarioError("memory: the kernel-build workload needs at least 1888 MiB")

    monkeypatch.setattr(panel, "scenarios", bad)
    assert panel.update() is None
    assert "1888 MiB" in panel.error
    assert "1888 MiB" in panel.status.value and "color" in panel.status.value
    assert panel.result is before


def test_background_update_with_progress(panel):
    panel.background_from = 0  # every change runs in the worker thread
    seen = []
    panel.progress.observe(lambda ch: seen.append(ch["new"]), names="value")
    panel.memory.value = 2 * GIB
    assert panel.wait(120)
    assert not panel.busy
    assert panel.error is None
    assert panel.result["legacy"]["nr-pages"] == 2 * GIB // 4096
    assert seen and max(seen) == 1.0
    assert panel.progress.layout.visibility == "hidden"


def test_background_changes_are_coalesced(panel):
    panel.background_from = 0
    gate = threading.Event()
    real = panel.update

    def slow_update():
        gate.wait(10)
        return real()

    panel.update = slow_update
    panel.memory.value = 2 * GIB  # starts the worker, which waits on the gate
    panel.seed.value = 5  # coalesced into one more run
    panel.intensity.value = 2.0  # likewise
    gate.set()
    assert panel.wait(120)
    sc = panel.scenarios()[1]
    assert panel.result["hinting"]["nr-pages"] == 2 * GIB // 4096
    assert panel.hinted.attrs["scenario_seed"] == sc.seed == 5
    assert '"intensity": 2.0' in panel.hinted.attrs["scenario_workload_options"]


def test_default_runs_changes_in_the_background():
    p = widgets.Explorer(memory="1G", page_map_bins=16)  # the initial update is synchronous
    assert p.background_from == 0 and p.result is not None
    p.memory.value = 2 * GIB
    assert p.wait(120)
    assert p.result["legacy"]["nr-pages"] == 2 * GIB // 4096
    assert "2.00 GiB: updated" in p.status.value


def test_not_converged_headline():
    row = {
        "total-time": 600_000.0,
        "downtime": float("nan"),
        "lost-pages": -1,
        "status": "not-converged",
    }
    result = {"legacy": row, "hinting": row, "shown": "hinting", "reduction": None}
    text = widgets.Explorer._numbers_html(result)
    assert "legacy not-converged, hinting not-converged" in text
    assert "saves" not in text
    assert "nan" not in text and ">-1<" not in text  # undefined values are shown as "-"


def test_no_auto_update():
    p = widgets.Explorer(memory="1G", auto_update=False)
    assert p.result is None and p.updates == 0
    p.memory.value = 2 * GIB  # no run
    assert p.updates == 0
    assert p.update()["legacy"]["nr-pages"] == 2 * GIB // 4096


def test_snapping_and_helpers():
    p = widgets.Explorer(memory="6G", downtime_limit="350ms", max_bandwidth="3G", auto_update=False)
    assert p.memory.value in (4 * GIB, 8 * GIB)
    assert p.downtime_limit.value in (300.0, 400.0)
    assert p.max_bandwidth.value == 4 << 30
    assert widgets.trace_interval_for(8 * GIB) == 2.0
    assert widgets.trace_interval_for(1 << 40) == 256.0
    assert widgets._reduction(0, 5) is None
    assert widgets._reduction(200.0, 50.0) == 0.75


def test_panel_displays(panel):
    bundle = panel._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert bundle["application/vnd.jupyter.widget-view+json"]["model_id"] == panel.panel.model_id
