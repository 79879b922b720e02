"""The explorer: its controls, its worker and its rendering tested one by one, then the whole
panel driven from Python (change a control, check the result moves as the model says, and that
the panel stays usable: errors shown, cache, background runs, progress, stale requests).

The parts and the panel with a stand-in simulation (recorded 256 MiB runs) are quick even with
``NUMBA_DISABLE_JIT=1`` and count for coverage; the panel over real 1 GiB and 2 GiB guests is
marked slow (minutes each without the JIT).
"""

from __future__ import annotations

import math
import threading
import time

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")

import fphint_kernels as fk  # noqa: E402
from fphint_kernels.errors import ScenarioError  # noqa: E402
from fphint_kernels.explorer import Explorer, _shared, controls, render, worker  # noqa: E402

GIB = 1 << 30
PNG = b"\x89PNG\r\n\x1a\n"
SMALL = dict(workload="idle", downtime_limit="300ms", max_bandwidth="100G", seed=1)


@pytest.fixture(scope="module")
def runs():
    """An idle 256 MiB guest, legacy and hinting, with traces and a 16-bin page map."""
    kw = dict(trace_interval_ms=1.0, page_map_bins=16)
    legacy = fk.simulate(fk.Scenario(memory="256M", **SMALL, hint=False), **kw)
    hinted = fk.simulate(fk.Scenario(memory="256M", **SMALL, hint=True), **kw)
    return legacy, hinted


class Recorded:
    """A stand-in for ``fk.simulate``: the recorded 256 MiB run of the scenario's mode, with or
    without its page map as asked; every call is logged."""

    def __init__(self, runs, delay=0.0):
        self.runs = {False: runs[0], True: runs[1]}
        self.calls = []
        self.delay = delay

    def __call__(self, scenario, trace_interval_ms, page_map_bins):
        self.calls.append((scenario, trace_interval_ms, page_map_bins))
        if self.delay:
            time.sleep(self.delay)
        ds = self.runs[scenario.hint]
        return ds if page_map_bins else ds.drop_vars("page-map")


# ---- controls ----------------------------------------------------------------------------


def test_controls_snap_and_describe_the_scenario():
    c = controls.Controls(memory="6G", downtime_limit="350ms", max_bandwidth="3G", seed=4)
    assert c.memory.value in (4 * GIB, 8 * GIB)
    assert c.downtime_limit.value in (300.0, 400.0)
    assert c.max_bandwidth.value == 4 << 30
    legacy, hinting = c.scenarios()
    assert (legacy.hint, hinting.hint) == (False, True)
    assert legacy.memory == hinting.memory == c.memory.value
    assert hinting.seed == 4 and dict(hinting.workload_options) == {"intensity": 1.0}
    assert set(c.widgets) == {
        "memory", "workload", "intensity", "downtime_limit", "max_bandwidth", "hint",
        "init_on_alloc", "page_poison", "hint_release", "auto_converge", "profile", "guest",
        "seed", "hinting",
    }  # fmt: skip
    assert legacy.guest == hinting.guest == "testbed-2018"
    assert set(c.guest.options) == set(fk.available_guests())
    assert hinting.hinting == "fph" and legacy.hinting == "none"
    c.hinting.value = "report-in-place"
    legacy, other = c.scenarios()
    assert (legacy.hinting, other.hinting) == ("none", "report-in-place")
    c.hinting.value = "fph"
    assert [v for _, v in controls.MEMORY_OPTIONS] == [GIB << k for k in range(11)]
    assert set(c.profile.options) == set(fk.available_profiles())
    assert set(c.workload.options) == set(fk.available_workloads())
    assert "fphint-memory" in c.memory._dom_classes
    assert c.shown == "hinting"
    c.hint.value = False
    assert c.shown == "legacy" and c.scenario_kwargs()["hint"] is False


def test_controls_observe_every_widget():
    c = controls.Controls(memory="1G")
    seen = []
    c.observe(lambda change: seen.append(change["owner"]))
    c.seed.value = 9
    c.page_poison.value = "zero"
    assert seen == [c.seed, c.page_poison]


def test_closest_and_trace_interval():
    assert controls.closest(controls.DOWNTIME_OPTIONS, 1e9) == 5000
    assert controls.closest(controls.BANDWIDTH_OPTIONS, 0) == 32 << 20
    assert worker.trace_interval_for(8 * GIB) == 2.0
    assert worker.trace_interval_for(GIB) == 1.0  # never below the engine's step
    assert worker.trace_interval_for(1 << 40) == 256.0


# ---- shared helpers ----------------------------------------------------------------------


def test_format_and_saving():
    assert _shared.fmt(12.0, "ms") == "12 ms" and _shared.fmt(2 << 30, "bytes") == "2.00 GiB"
    assert _shared.fmt(None, "ms") == "-" and _shared.fmt(float("inf"), "bytes") == "-"
    assert _shared.fmt(-1, "pages") == "-" and _shared.fmt(1234567, "count") == "1,234,567"
    assert _shared.fmt("a<b", "text") == "a&lt;b"
    assert _shared.reduction(legacy=200.0, hinted=50.0) == 0.75
    assert _shared.reduction(legacy=100.0, hinted=150.0) == -0.5
    assert math.isnan(_shared.reduction(legacy=0, hinted=5))
    assert math.isnan(_shared.reduction(legacy=float("nan"), hinted=5))


def test_kernels_cold_follows_the_dispatchers(monkeypatch):
    from fphint_kernels import _numba

    class Dispatcher:
        def __init__(self, signatures):
            self.signatures = signatures

    monkeypatch.setattr(_numba, "DISPATCHERS", [Dispatcher([]), Dispatcher([])])
    assert _shared.kernels_cold()
    monkeypatch.setattr(_numba, "DISPATCHERS", [Dispatcher([]), Dispatcher(["(int64,)"])])
    assert not _shared.kernels_cold()
    monkeypatch.setattr(_numba, "DISPATCHERS", [len, print])  # NUMBA_DISABLE_JIT=1
    assert not _shared.kernels_cold()


# ---- worker: requests, cache, runner -----------------------------------------------------


def _request(memory="1G", shown="hinting", bins=16, **kw):
    sc = dict(SMALL, **kw)
    return worker.Request(
        fk.Scenario(memory=memory, **sc, hint=False),
        fk.Scenario(memory=memory, **sc, hint=True),
        shown=shown,
        page_map_bins=bins,
    )


def test_request_maps_only_the_shown_run():
    req = _request(memory="8G", shown="legacy")
    assert req.bins("legacy") == 16 and req.bins("hinting") == 0
    assert req.trace_interval_ms == 2.0 and req.nr_pages == 8 * GIB // 4096
    assert req.scenario("hinting").hint and not req.scenario("legacy").hint


def test_run_cache_lru_and_page_maps():
    cache = worker.RunCache(size=3)
    a, b, c = (fk.Scenario(memory=f"{m}M", **SMALL) for m in (256, 384, 512))
    cache.put(a, 1.0, 0, "a-plain")
    assert cache.get(a, 1.0, 0) == "a-plain"
    assert cache.get(a, 1.0, 16) is None  # a page map was asked for
    assert cache.get(a, 2.0, 0) is None  # another trace interval
    cache.put(a, 1.0, 16, "a-map")  # replaces the plain run, answers both
    assert cache.get(a, 1.0, 16) == "a-map" and cache.get(a, 1.0, 0) == "a-map"
    cache.put(a, 1.0, 0, "a-plain")  # does not replace the run with a map
    assert cache.get(a, 1.0, 16) == "a-map"
    cache.put(a, 2.0, 0, "a-2ms")
    cache.put(b, 1.0, 0, "b")
    cache.get(a, 1.0, 16)  # the oldest entry is now the most recently used
    cache.put(c, 1.0, 0, "c")
    assert len(cache) == 3
    assert cache.get(a, 2.0, 0) is None  # least recently used, evicted
    assert cache.get(a, 1.0, 16) == "a-map" and cache.get(c, 1.0, 0) == "c"
    cache.clear()
    assert len(cache) == 0


def test_runner_runs_both_modes_at_once():
    """With ``parallel`` the two runs overlap: each waits for the other at a barrier."""
    barrier = threading.Barrier(2, timeout=20)
    threads = []

    def sim(scenario, trace_interval_ms, page_map_bins):
        threads.append(threading.current_thread().name)
        barrier.wait()  # raises BrokenBarrierError if the runs were one after the other
        return f"{scenario.hint}-{page_map_bins}"

    runner = worker.Runner(simulate=sim, parallel=True)
    req = _request()
    out = runner.run(req, ["legacy", "hinting"])
    assert out == {"legacy": "False-0", "hinting": "True-16"}
    assert len(set(threads)) == 2
    assert runner.cached(req, "legacy") == "False-0"
    assert runner.cached(req, "hinting") == "True-16"
    assert worker.Runner().simulate is fk.simulate
    assert set(runner.speed) == {("legacy", False), ("hinting", True)}


def test_runner_one_after_the_other_and_errors():
    order = []

    def sim(scenario, trace_interval_ms, page_map_bins):
        order.append((threading.current_thread().name, scenario.hint))
        if scenario.seed == 13:
            raise ScenarioError("memory: too small")
        return scenario.hint

    runner = worker.Runner(simulate=sim, parallel=False)
    assert not runner.in_parallel(_request())
    assert runner.run(_request(), ["legacy", "hinting"]) == {"legacy": False, "hinting": True}
    assert len({name for name, _ in order}) == 1
    for parallel in (False, True):
        runner = worker.Runner(simulate=sim, parallel=parallel)
        with pytest.raises(ScenarioError, match="too small"):
            runner.run(_request(seed=13), ["legacy", "hinting"])


def test_runner_parallel_when_cores_and_memory_allow(monkeypatch):
    assert worker._available_memory() > 0 and worker._cores() >= 1
    runner = worker.Runner(simulate=lambda *a, **k: None)
    req = _request(memory="1T")
    monkeypatch.setattr(worker, "_cores", lambda: 2)
    monkeypatch.setattr(worker, "_available_memory", lambda: 64 << 30)
    assert runner.in_parallel(req)
    assert not runner.in_parallel(req, runs=1)
    monkeypatch.setattr(worker, "_available_memory", lambda: 4 << 30)  # not two 1 TiB guests
    assert not runner.in_parallel(req)
    assert runner.in_parallel(_request(memory="8G"))
    monkeypatch.setattr(worker, "_available_memory", lambda: None)  # unknown: assume enough
    assert runner.in_parallel(req)
    monkeypatch.setattr(worker, "_cores", lambda: 1)
    assert not runner.in_parallel(_request(memory="8G"))


def test_runner_estimate_from_the_runs_seen(monkeypatch):
    runner = worker.Runner(simulate=lambda sc, **kw: time.sleep(0.01 if sc.hint else 0.03))
    req = _request()
    assert runner.estimate(req, ["legacy"]) is None  # nothing seen yet
    assert runner.estimate(req, []) == 0.0
    runner.parallel = False
    runner.run(req, ["legacy", "hinting"])
    both = runner.estimate(req, ["legacy", "hinting"])
    legacy = runner.estimate(req, ["legacy"])
    assert both > legacy >= 0.02
    runner.parallel = True
    assert runner.estimate(req, ["legacy", "hinting"]) == pytest.approx(legacy)
    bigger = _request(memory="2G")
    runner.parallel = False
    assert runner.estimate(bigger, ["legacy", "hinting"]) == pytest.approx(2 * both)


def test_runner_warm_up_compiles_once(monkeypatch):
    calls = []
    runner = worker.Runner(simulate=lambda sc, **kw: calls.append((sc, kw)))
    monkeypatch.setattr(worker, "kernels_cold", lambda: False)
    assert runner.warm_up() is False and calls == []
    monkeypatch.setattr(worker, "kernels_cold", lambda: True)
    assert runner.warm_up() is True
    (sc, kw), = calls  # fmt: skip
    assert sc.memory == 256 << 20 and sc.hint and kw["page_map_bins"] > 0


# ---- worker: the thread ------------------------------------------------------------------


def test_worker_inline_runs_in_the_caller():
    seen = []
    wk = worker.Worker(
        lambda r: seen.append((r, threading.current_thread())) or r, background=False
    )
    wk.submit("a")
    assert seen == [("a", threading.current_thread())]
    assert wk.run("b") == "b" and not wk.busy
    wk.check()  # nothing waiting: no exception
    assert wk.wait(0)


def test_worker_background_runs_only_the_latest_request():
    """Requests made while a job runs: the job stops at its next check, only the last
    request waiting is run."""
    started, release = threading.Event(), threading.Event()
    log = []
    wk = None

    def job(request):
        log.append(("start", request))
        if request == 1:
            started.set()
            release.wait(10)
        wk.check()  # raises Superseded when a newer request waits
        log.append(("done", request))
        return request

    wk = worker.Worker(job)
    wk.submit(1)
    assert started.wait(10)
    assert wk.busy
    wk.submit(2)
    wk.submit(3)  # replaces 2, which never runs
    release.set()
    assert wk.wait(10)
    assert not wk.busy
    assert log == [("start", 1), ("start", 3), ("done", 3)]
    assert wk.superseded == 1
    wk.submit(4)  # a new burst starts a new thread
    assert wk.wait(10) and log[-1] == ("done", 4)


def test_worker_errors_and_ticks():
    errors, ticks = [], []

    def job(request):
        if request == "bad":
            raise RuntimeError("boom")
        time.sleep(0.6)

    wk = worker.Worker(job, on_error=errors.append, on_tick=ticks.append, tick=0.05)
    wk.submit("bad")
    assert wk.wait(10)
    assert [str(e) for e in errors] == ["boom"]
    wk.submit("slow")
    assert wk.wait(10)
    assert ticks.count(True) >= 2 and ticks[-1] is False
    assert not wk.wait(0) or not wk.busy


def test_worker_without_error_handler_ends_its_thread(monkeypatch):
    seen = []
    monkeypatch.setattr(threading, "excepthook", lambda args: seen.append(args.exc_value))

    def job(request):
        raise RuntimeError(request)

    wk = worker.Worker(job)
    wk.submit("first")
    assert wk.wait(10) and not wk.busy
    assert [str(e) for e in seen] == ["first"]
    wk.submit("second")  # a new thread serves the next request
    assert wk.wait(10) and [str(e) for e in seen] == ["first", "second"]


def test_worker_wait_times_out():
    release = threading.Event()
    wk = worker.Worker(lambda r: release.wait(10))
    wk.submit("x")
    assert wk.wait(0.05) is False
    release.set()
    assert wk.wait(10) is True


def test_progress_report():
    p = worker.Progress(stages=3)
    assert p.report() is None  # no job
    p.start()
    p.stage(1, "drawing", estimate=10.0)
    frac, text = p.report(now=p.since + 5.0)
    assert frac == pytest.approx((1 + 0.5) / 3)
    assert text.startswith("drawing: ") and "about 5 s left" in text
    frac, _ = p.report(now=p.since + 100.0)
    assert frac == pytest.approx((1 + 0.95) / 3)  # never full before the stage ends
    p.stage(2, "page map")
    frac, text = p.report()
    assert frac == pytest.approx(2 / 3) and "left" not in text
    p.finish()
    assert p.report() is None


# ---- rendering ---------------------------------------------------------------------------


def test_result_and_numbers(runs):
    legacy, hinted = runs
    r = render.result_of(legacy, hinted, "hinting")
    assert r["shown"] == "hinting" and r["status"] == "completed"
    assert r["total-time"] == pytest.approx(float(hinted["total-time"]))
    assert r["legacy"]["lost-pages"] == 0 and r["hinting"]["lost-pages"] == 0
    assert r["reduction"] == pytest.approx(
        1 - float(hinted["total-time"]) / float(legacy["total-time"])
    )
    assert render.result_of(legacy, hinted, "legacy")["ram-transferred"] == int(
        legacy["ram-transferred"]
    )
    text = render.numbers_html(r)
    assert "hinting saves" in text and "<u>hinting</u>" in text
    for _key, label, _kind, _saving in render.NUMBER_ROWS:
        assert label in text


def test_not_converged_headline():
    row = {
        "total-time": 600_000.0,
        "downtime": float("nan"),
        "lost-pages": -1,
        "status": "not-converged",
    }
    result = {"legacy": row, "hinting": row, "shown": "legacy", "reduction": None}
    text = render.numbers_html(result)
    assert "legacy not-converged, hinting not-converged" in text
    assert "saves" not in text and "<u>legacy</u>" in text
    assert "nan" not in text and ">-1<" not in text  # undefined values are shown as "-"


def test_scalars_are_plain_values(runs):
    s = render.scalars(runs[1])
    assert isinstance(s["status"], str) and isinstance(s["nr-pages"], int)
    assert "page-map" not in s and "pending" not in s  # only 0-d variables


def test_page_map_image_and_title(runs):
    hinted = runs[1]
    png = render.page_map_png(hinted, width=100, height=40)
    assert png.startswith(PNG)
    from io import BytesIO

    from PIL import Image

    img = Image.open(BytesIO(png))
    rounds = len(fk.plot.page_map_rgb(hinted)[1])
    assert img.size == (100, max(4, 40 // rounds) * rounds)
    title = render.page_map_title(hinted)
    assert "hinting" in title and "256.00 MiB" in title and "16.00 MiB per pixel" in title
    empty = hinted.copy(deep=True)
    empty["page-map"][:] = 0  # no round has a map: a blank image
    assert Image.open(BytesIO(render.page_map_png(empty, width=10))).size == (10, 120)


def test_legend_html_reads_the_artists():
    from matplotlib.figure import Figure

    ax = Figure().subplots()
    ax.plot([0, 1], [0, 1], color="#0072B2", ls="--", label="a <line>")
    ax.fill_between([0, 1], [0, 0], [1, 1], color="#009E73", alpha=0.25, label="area")
    ax.plot([0, 1], [1, 0], color="k")  # unlabelled: not in the legend
    text = render.legend_html(ax, marks=(("border-top:1px solid red", "extra"),))
    assert "dashed #0072b2" in text and "a &lt;line&gt;" in text
    assert "rgba(0,158,115,0.30)" in text and "area" in text
    assert "extra" in text and text.count("white-space:nowrap") == 3
    assert render._artist_css(object()) is None  # neither a line nor a filled area


def test_figure_renderer_png_and_caption(runs):
    legacy, hinted = runs
    r = render.FigureRenderer(dpi=40)
    png, caption = r.render(legacy, hinted, hinted)
    assert png.startswith(PNG)
    assert "the race, hinting" in caption and "sender (migration thread)" in caption
    assert f"legacy: {fk.plot.format_ms(float(legacy['total-time']))}" in caption
    fig = r._figure
    assert not any(ax.get_title() or ax.get_legend() for ax in fig.axes)
    png2, caption2 = r.render(legacy, hinted, legacy)
    assert r._figure is fig and "the race, legacy" in caption2 and png2 != png


def test_view_shows_everything(runs):
    legacy, hinted = runs
    v = render.View()
    v.show_status("a < b")
    assert v.status.value == "a &lt; b"
    v.show_status("bad", error=True)
    assert "color:#b00" in v.status.value
    v.show_progress(0.5)
    assert v.progress.value == 0.5 and v.progress.layout.visibility == "visible"
    v.show_progress(None)
    assert v.progress.layout.visibility == "hidden"
    v.show_numbers(render.result_of(legacy, hinted, "hinting"))
    assert "hinting saves" in v.numbers.value
    v.show_figure(PNG + b"x", "<b>caption</b>")
    assert v.image.value == PNG + b"x" and v.caption.value == "<b>caption</b>"
    v.show_page_map(hinted)
    assert bytes(v.page_map_image.value).startswith(PNG) and "hinting" in v.page_map_title.value
    assert "held by balloon" in v.page_map_legend.value


# ---- the panel with recorded runs --------------------------------------------------------


@pytest.fixture
def recorded(runs):
    return Recorded(runs)


@pytest.fixture
def panel(recorded):
    return Explorer(memory="1G", page_map_bins=16, background=False, simulate=recorded)


def test_panel_initial_state(panel, recorded, runs):
    r = panel.result
    assert panel.error is None and panel.updates == 1
    assert r["shown"] == "hinting" and r["status"] == "completed"
    assert r["total-time"] == pytest.approx(float(runs[1]["total-time"]))
    assert panel.png.startswith(PNG) and panel.image.value == panel.png
    assert bytes(panel.page_map_image.value).startswith(PNG)
    assert "hinting saves" in panel.numbers.value
    total = panel.timings["total"]
    assert panel.status.value == f"idle, 1.00 GiB: updated in {total:.2f} s"
    assert set(panel.timings) == {"simulate", "numbers", "figure", "page_map", "total"}
    assert panel.timings["numbers"] <= panel.timings["total"]
    # the shown run with its page map, the other one without
    assert sorted((sc.hint, bins) for sc, _, bins in recorded.calls) == [(False, 0), (True, 16)]
    assert {interval for _, interval, _ in recorded.calls} == {1.0}
    assert panel.controls.widgets["memory"] is panel.memory
    assert "application/vnd.jupyter.widget-view+json" in panel._repr_mimebundle_()


def test_panel_switching_the_shown_run(panel, recorded):
    recorded.calls.clear()
    panel.hint.value = False
    # numbers and figure from the cache; the legacy run again, for its page map only
    assert [(sc.hint, bins) for sc, _, bins in recorded.calls] == [(False, 16)]
    assert panel.result["shown"] == "legacy"
    assert "legacy" in panel.view.page_map_title.value
    assert "page-map" in panel.legacy
    panel.hint.value = True
    assert len(recorded.calls) == 1  # both runs with their maps are cached now
    assert panel.timings["simulate"] < 0.05


def test_panel_starting_from_legacy(recorded):
    p = Explorer(memory="1G", hint=False, page_map_bins=16, background=False, simulate=recorded)
    assert "page-map" in p.legacy and "page-map" not in p.hinted
    p.hint.value = True
    assert "page-map" in p.hinted and p.result["shown"] == "hinting"
    assert p.scenario_kwargs()["hint"] is True


def test_panel_reruns_on_every_control(panel, recorded):
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
        "memory": 2 * GIB,
        "profile": "v37",
    }
    for name, value in changes.items():
        before, calls = panel.updates, len(recorded.calls)
        panel.controls.widgets[name].value = value
        assert panel.updates == before + 1, name
        assert panel.error is None, (name, panel.error)
        assert len(recorded.calls) == calls + 2, name  # both modes of a new scenario
        legacy_sc = recorded.calls[-2][0] if not recorded.calls[-2][0].hint else None
        assert legacy_sc is None or legacy_sc == panel.scenarios()[0]
    assert recorded.calls[-1][1] == 1.0  # 2 GiB: still the 1 ms trace interval


def test_panel_invalid_scenario_keeps_previous_results(panel, monkeypatch):
    before = panel.result

    def bad():
        raise ScenarioError("memory: the kernel-build workload needs at least 1888 MiB")

    monkeypatch.setattr(panel.controls, "scenarios", bad)
    panel.seed.value = 2
    assert panel.error and "1888 MiB" in panel.error
    assert "1888 MiB" in panel.status.value and "color" in panel.status.value
    assert panel.result is before and panel.updates == 1
    assert panel.update() is None
    monkeypatch.undo()
    panel.seed.value = 3
    assert panel.error is None and panel.updates == 2


def test_panel_engine_refusal_is_shown(runs):
    def refuse(scenario, **kw):
        raise ScenarioError("memory: too small for the kernel's reserved memory")

    p = Explorer(memory="1G", background=False, simulate=refuse)
    assert p.result is None and "reserved memory" in p.error
    assert "reserved memory" in p.status.value


def test_panel_unexpected_error_in_the_background(runs):
    def crash(scenario, **kw):
        raise RuntimeError("kernel bug")

    p = Explorer(memory="1G", simulate=crash)
    assert p.wait(30)
    assert p.error == "RuntimeError: kernel bug" and "kernel bug" in p.status.value


def test_panel_no_auto_update(recorded):
    p = Explorer(memory="1G", auto_update=False, simulate=recorded)
    assert p.result is None and p.updates == 0 and p.status.value == ""
    p.memory.value = 2 * GIB  # no run
    assert p.updates == 0 and recorded.calls == []
    assert p.update()["status"] == "completed" and p.updates == 1


def test_panel_background_updates_with_progress(runs):
    recorded = Recorded(runs, delay=0.4)
    p = Explorer(memory="1G", page_map_bins=16, simulate=recorded, parallel=False)
    assert p.status.value == "simulating..."  # on screen before the first run
    shown, seen, statuses = [], [], []
    p.progress.layout.observe(lambda ch: shown.append(ch["new"]), names="visibility")
    p.progress.observe(lambda ch: seen.append(ch["new"]), names="value")
    p.status.observe(lambda ch: statuses.append(ch["new"]), names="value")
    assert p.wait(30) and not p.busy
    assert p.result is not None and p.error is None
    assert "updated in" in p.status.value
    assert shown[0] == "visible" and shown[-1] == "hidden"  # the runs took 0.8 s
    assert any(s.startswith("simulating legacy and hinting: ") for s in statuses)
    p.seed.value = 5  # now the panel knows how long a run takes
    assert p.wait(30) and p.result["hinting"]["nr-pages"] == 256 * 2**20 // 4096
    assert recorded.calls[-1][0].seed == 5
    assert any(0 < v < 1 / 3 for v in seen)  # moving within the first of three stages
    assert any(" s left" in s for s in statuses)
    assert p.progress.layout.visibility == "hidden"


def test_panel_stale_requests_are_dropped(runs):
    recorded = Recorded(runs, delay=0.3)
    p = Explorer(memory="1G", page_map_bins=16, simulate=recorded, parallel=False)
    assert p.wait(30)
    recorded.calls.clear()
    p.seed.value = 2  # starts an update...
    time.sleep(0.1)
    p.seed.value = 3  # ...made stale by this one,
    p.seed.value = 4  # ...which this one replaces before it starts
    assert p.wait(30)
    seeds = [sc.seed for sc, _, _ in recorded.calls]
    assert 3 not in seeds and seeds[-2:] == [4, 4]
    assert p.scenarios()[1].seed == 4 and p.worker.superseded >= 1
    assert p.updates == 2  # the first and the last


def test_panel_says_it_compiles_when_cold(runs, monkeypatch):
    from fphint_kernels import explorer as ex

    cold = {"value": True}
    monkeypatch.setattr(ex, "kernels_cold", lambda: cold["value"])
    monkeypatch.setattr(worker, "kernels_cold", lambda: cold["value"])
    gate = threading.Event()
    statuses = []

    def compile_then_run(scenario, **kw):
        if cold["value"]:  # the warm-up run
            gate.wait(10)
            cold["value"] = False
        return Recorded(runs)(scenario, **kw)

    p = Explorer(memory="1G", page_map_bins=16, simulate=compile_then_run)
    p.status.observe(lambda ch: statuses.append(ch["new"]), names="value")
    assert p.status.value.startswith("compiling the simulation kernels (once, about 30 s)")
    gate.set()
    assert p.wait(30)
    assert "updated in" in p.status.value and p.error is None


# ---- the panel over real guests (slow without the JIT) -----------------------------------


@pytest.fixture
def real():
    """A 1 GiB idle guest, 100 GiB/s, 300 ms: every update takes a fraction of a second."""
    return Explorer(memory="1G", downtime_limit="300ms", page_map_bins=32, background=False)


@pytest.mark.slow
def test_hint_lowers_total_time_of_idle_guest(real):
    hinted_total = real.result["total-time"]
    real.hint.value = False
    assert real.result["shown"] == "legacy"
    legacy_total = real.result["total-time"]
    assert hinted_total < legacy_total
    assert real.result["reduction"] == pytest.approx(1 - hinted_total / legacy_total)
    assert real.result["reduction"] > 0


@pytest.mark.slow
def test_page_map_does_not_change_the_run(real):
    """The shown run is simulated with a page map, the other without: same numbers."""
    legacy_plain = dict(real.result["legacy"])
    real.hint.value = False  # legacy simulated again, with its page map
    assert "page-map" in real.legacy
    assert real.result["legacy"] == legacy_plain
    np.testing.assert_array_equal(
        real.legacy["pending"].values, real.runner.cached(real.request(), "legacy")["pending"]
    )


@pytest.mark.slow
def test_larger_guest_takes_longer(real):
    small = real.result
    png = real.png
    real.memory.value = 2 * GIB
    big = real.result
    assert big["legacy"]["nr-pages"] == 2 * small["legacy"]["nr-pages"]
    assert big["legacy"]["total-time"] > small["legacy"]["total-time"]
    assert big["hinting"]["total-time"] > small["hinting"]["total-time"]
    assert big["ram-transferred"] > 0
    assert real.png != png
    assert "2.00 GiB" in real.status.value


@pytest.mark.slow
def test_init_on_alloc_loses_the_benefit(real):
    without = real.result["reduction"]
    real.init_on_alloc.value = True
    assert real.result["reduction"] < without
    assert real.result["hinting"]["zeroing-cpu-time"] > 0


@pytest.mark.slow
def test_fill_free_legacy_sends_more_bytes(real):
    idle = real.result["legacy"]["ram-transferred"]
    real.workload.value = "fill-free"
    assert real.result["legacy"]["ram-transferred"] > idle


@pytest.mark.slow
def test_tighter_downtime_limit_means_shorter_downtime():
    p = Explorer(
        memory="2G", workload="kernel-build", downtime_limit="2s", hint=False, background=False
    )
    loose = p.result
    p.downtime_limit.value = 30.0
    tight = p.result
    assert tight["downtime"] < loose["downtime"]
    assert tight["rounds"] >= loose["rounds"]
    assert tight["downtime"] <= 30.0 * 2  # the limit, with the fixed switchover costs


@pytest.mark.slow
def test_real_background_update():
    p = Explorer(memory="1G", page_map_bins=16)  # the first update runs in the background
    assert p.wait(300) and p.result is not None
    p.memory.value = 2 * GIB
    assert p.wait(120)
    assert p.result["legacy"]["nr-pages"] == 2 * GIB // 4096
    assert "2.00 GiB: updated" in p.status.value
