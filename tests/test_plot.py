"""Figures: the colours of the page map, what each plot draws, and labelled axes with units.

Hand-made Datasets (built through the variables registry) check the page-map colouring and the
cursor arithmetic exactly; small real runs (512 MiB: a fraction of a second each once compiled,
a few seconds with ``NUMBA_DISABLE_JIT=1`` in the coverage pass) check that every figure draws
from what ``fk.simulate`` returns.
"""

from __future__ import annotations

import re

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.colors import to_rgb  # noqa: E402

import fphint_kernels as fk  # noqa: E402
from fphint_kernels import plot  # noqa: E402
from fphint_kernels.variables import PAGE_STATES, make_dataset  # noqa: E402

UNIT = re.compile(r"\(([^()]+)\)\s*$")


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def runs():
    """An idle 512 MiB guest, legacy and hinting, with traces and a page map."""
    base = dict(
        memory="512M", workload="idle", downtime_limit="300ms", max_bandwidth="100G", seed=1
    )
    kw = dict(page_map_bins=32, trace_interval_ms=1.0)
    legacy = fk.simulate(fk.Scenario(**base, hint=False), **kw)
    hinted = fk.simulate(fk.Scenario(**base, hint=True), **kw)
    return legacy, hinted


def fake_run(page_map, memory_pages=None, hint=1, time=None, sender=None, hint_pfn=None):
    """A minimal run: a page map (rounds, bins, states) and optional cursor traces."""
    pm = np.asarray(page_map, dtype=np.int64)
    rounds, bins, _ = pm.shape
    n = int(memory_pages or pm[0, :, :3].sum())
    data = {"page-map": pm, "nr-pages": np.int64(n), "total-time": 100.0}
    coords = {
        "round": np.arange(1, rounds + 1),
        "pfn_bin": np.arange(bins) * n // bins,
        "page_state": list(PAGE_STATES),
    }
    if time is not None:
        data["sender-pfn"] = np.asarray(sender, dtype=float)
        data["hint-pfn"] = np.asarray(hint_pfn, dtype=float)
        data["round-index"] = np.ones(len(time))
        coords["time"] = np.asarray(time, dtype=float)
    return make_dataset(data, coords=coords, attrs={"scenario_hint": hint})


def counts(**kw):
    """One bin's counts in PAGE_STATES order."""
    return [kw.get(s, 0) for s in PAGE_STATES]


def assert_labelled(ax):
    """Both axes carry a label that ends with a unit in parentheses (or name rounds)."""
    for label in (ax.get_xlabel(), ax.get_ylabel()):
        assert label, f"unlabelled axis in {ax.get_title()!r}"
        assert UNIT.search(label) or label == "round", f"no unit in {label!r}"


# ---- units -------------------------------------------------------------------------------


def test_units():
    assert plot.size_unit(8 << 30) == (1 << 30, "GiB")
    assert plot.size_unit(1 << 40) == (1 << 40, "TiB")
    assert plot.size_unit(300 << 20) == (1 << 20, "MiB")
    assert plot.size_unit(10) == (1, "B")
    assert plot.time_unit(9_999) == (1.0, "ms")
    assert plot.time_unit(41_651) == (1000.0, "s")
    assert plot.format_bytes(3 << 29) == "1.50 GiB"
    assert plot.format_ms(409.2) == "409 ms"
    assert plot.format_ms(41_651) == "41.65 s"


# ---- page map colours --------------------------------------------------------------------


def test_page_map_rgb_layers():
    used, free, held = (to_rgb(plot.STATE_COLORS[s]) for s in ("used", "free", "held"))
    sent, skipped, dirty = (to_rgb(plot.STATE_COLORS[s]) for s in ("sent", "skipped", "dirty"))
    pm = [
        [
            counts(used=100),  # untouched used memory
            counts(free=100, sent=100),  # all sent this round
            counts(held=100, skipped=50, sent=50),  # half skipped, half sent
            counts(used=50, free=50),  # half used, half free, untouched
            counts(used=100, dirty=100),  # all dirty
            counts(free=100, dirty=25),  # a quarter dirty: sqrt weight 0.5
        ],
        [counts(held=100)] * 6,
        [counts()] * 6,  # no map (stop-and-copy): dropped
    ]
    rgb, rounds = plot.page_map_rgb(fake_run(pm, memory_pages=600))
    assert rgb.shape == (2, 6, 3)
    assert rounds.tolist() == [1, 2]
    np.testing.assert_allclose(rgb[0, 0], used)
    np.testing.assert_allclose(rgb[0, 1], sent)
    np.testing.assert_allclose(rgb[0, 2], 0.5 * np.array(skipped) + 0.5 * np.array(sent))
    np.testing.assert_allclose(rgb[0, 3], 0.5 * np.array(used) + 0.5 * np.array(free))
    np.testing.assert_allclose(rgb[0, 4], dirty)
    np.testing.assert_allclose(rgb[0, 5], 0.5 * np.array(free) + 0.5 * np.array(dirty))
    np.testing.assert_allclose(rgb[1], np.tile(held, (6, 1)))
    assert rgb.min() >= 0 and rgb.max() <= 1


def test_page_map_needs_page_map(runs):
    legacy, _ = runs
    with pytest.raises(KeyError, match="page_map_bins"):
        plot.page_map(legacy.drop_vars("page-map"))


def test_page_map_image_extent_and_labels(runs):
    _, hinted = runs
    ax = plot.page_map(hinted)
    (img,) = ax.get_images()
    rgb, rounds = plot.page_map_rgb(hinted)
    assert img.get_array().shape == rgb.shape
    x0, x1, y0, y1 = img.get_extent()
    assert (x0, x1) == (0, pytest.approx(512.0))  # 512 MiB guest, axis in MiB
    assert "MiB" in ax.get_xlabel()
    assert (y1, y0) == (rounds[0] - 0.5, rounds[-1] + 0.5)
    assert ax.get_legend() is not None


def test_memory_picture_folds_address_space(runs):
    _, hinted = runs
    ax = plot.memory_picture(hinted, round=1, columns=8)
    (img,) = ax.get_images()
    assert img.get_array().shape == (4, 8, 3)  # 32 bins in rows of 8
    assert_labelled(ax)
    with pytest.raises(KeyError, match="round 99"):
        plot.memory_picture(hinted, round=99)


def test_page_map_rounds_one_picture_per_mapped_round(runs):
    _, hinted = runs
    fig = plot.page_map_rounds(hinted)
    _, rounds = plot.page_map_rgb(hinted)
    assert len(fig.axes) == len(rounds)
    assert_labelled(fig.axes[0])
    for ax in fig.axes[1:]:
        assert UNIT.search(ax.get_xlabel())


# ---- time lines ----------------------------------------------------------------------------


def test_timeline_draws_both_modes(runs):
    legacy, hinted = runs
    ax_p, ax_b = plot.timeline(legacy, hinted)
    assert_labelled(ax_b)
    assert UNIT.search(ax_p.get_ylabel())
    assert ax_p.get_shared_x_axes().joined(ax_p, ax_b)  # the time axis is labelled below
    labels = [line.get_label() for line in ax_p.get_lines() if not line.get_label().startswith("_")]
    assert len(labels) == 2 and labels[0].startswith("legacy") and labels[1].startswith("hinting")
    # pending is drawn in the unit of the label, sent bytes in MiB for a 512 MiB guest
    pend = ax_p.get_lines()[0].get_ydata()
    scale = {"pages": 1.0, "thousand pages": 1e3, "million pages": 1e6}[
        UNIT.search(ax_p.get_ylabel()).group(1)
    ]
    # the trace up to the VM stop, then the stop-and-copy: from the pages pending after the
    # final sync down to none, over the downtime
    stop = float(legacy["total-time"] - legacy["downtime"])
    before = legacy["pending"].values[legacy["time"].values < stop]
    np.testing.assert_allclose(pend[: len(before)] * scale, before)
    np.testing.assert_allclose(
        pend[-2:] * scale, [float(legacy["round-pending-after-sync"][-1]), 0.0]
    )
    times = ax_p.get_lines()[0].get_xdata()
    np.testing.assert_allclose(times[-2:], [stop, float(legacy["total-time"])])
    sent = ax_b.get_lines()[0].get_ydata() * 2**20
    assert sent[-2] == pytest.approx(
        float(legacy["ram-transferred"]) - float(legacy["round-bytes"][-1])
    )
    assert np.all(np.diff(sent) >= 0)
    # the downtime of each run is shaded, and labelled
    spans = [p for p in ax_p.patches if "VM stopped" in p.get_label()]
    assert len(spans) == 2
    assert "MiB" in ax_b.get_ylabel()
    # the completion dot of each run sits at (total-time, ram-transferred)
    dots = [ln for ln in ax_b.get_lines() if ln.get_marker() == "o"]
    assert len(dots) == 2
    assert dots[1].get_xdata()[0] == pytest.approx(float(hinted["total-time"]))
    assert dots[1].get_ydata()[0] == pytest.approx(float(hinted["ram-transferred"]) / 2**20)


def test_timeline_named_runs_and_errors(runs):
    legacy, hinted = runs
    ax_p, _ = plot.timeline(runs={"a": legacy, "b": hinted, "c": hinted})
    labels = [ln.get_label() for ln in ax_p.get_lines() if not ln.get_label().startswith("_")]
    assert [lab.split(":")[0] for lab in labels] == ["a", "b", "c"]
    with pytest.raises(ValueError):
        plot.timeline()


def test_race_cursors():
    t = np.arange(6.0)
    sender = np.array([0, 100, 200, 300, 900, 950])
    hint = np.array([-1, 800, 600, 400, 200, 200])
    ds = fake_run([[counts(used=1024)]], memory_pages=1024, time=t, sender=sender, hint_pfn=hint)
    ax = plot.race(ds)
    assert_labelled(ax)
    assert "MiB" in ax.get_ylabel()  # 4 MiB guest
    s_line, h_line = ax.get_lines()
    np.testing.assert_allclose(s_line.get_ydata(), sender * 4096 / 2**20)
    hy = h_line.get_ydata()
    assert np.isnan(hy[0])  # -1: nothing hinted yet
    np.testing.assert_allclose(hy[1:], hint[1:] * 4096 / 2**20)
    assert ax.get_ylim() == (0, 4.0)
    # shaded: ahead while hint > sender (t=1..3), behind while the cursor still moves below the
    # sender (t=4); t=5 the cursor stopped: no shade
    ahead, behind = ax.collections[:2]
    assert ahead.get_label().startswith("hint ahead")
    assert behind.get_label().startswith("hint behind")
    assert len(ahead.get_paths()) >= 1 and len(behind.get_paths()) >= 1


def test_race_legacy_has_no_hint_cursor(runs):
    legacy, hinted = runs
    assert len(plot.race(legacy).get_lines()) == 1
    assert len(plot.race(hinted).get_lines()) == 2


def test_thin_keeps_long_traces_drawable():
    assert plot._thin(3).tolist() == [0, 1, 2]
    idx = plot._thin(600_001)
    assert idx[0] == 0 and idx[-1] == 600_000
    assert len(idx) <= plot.MAX_TRACE_POINTS + 1
    assert np.all(np.diff(idx) > 0)
    n = 50_000
    t = np.arange(n, dtype=float)
    ds = fake_run(
        [[counts(used=1024)]], memory_pages=1024, time=t, sender=t % 1024, hint_pfn=-np.ones(n)
    )
    (line,) = plot.race(ds).get_lines()
    assert len(line.get_xdata()) <= plot.MAX_TRACE_POINTS + 1
    assert line.get_xdata()[-1] == pytest.approx(t[-1])


def test_before_last_change():
    out = plot._before_last_change(np.array([5.0, 4, 4, 3, 3, 3]), np.zeros(6))
    assert out.tolist() == [True, True, True, True, False, False]
    # per round: a change in round 2 does not extend round 1
    v = np.array([5.0, 5, 4, 4, 9, 8, 8])
    g = np.array([1, 1, 1, 1, 2, 2, 2])
    assert plot._before_last_change(v, g).tolist() == [True, True, True, False, True, True, False]


# ---- rounds, compare, table, explorer ---------------------------------------------------


def test_rounds(runs):
    legacy, _ = runs
    ax = plot.rounds(legacy)
    assert_labelled(ax)
    assert ax.get_yscale() == "log"
    n = legacy.sizes["round"]
    assert len(ax.patches) == 2 * n
    heights = [p.get_height() for p in ax.patches[:n]]
    sent = legacy["round-bytes"].values.astype(float)
    np.testing.assert_allclose(np.nan_to_num(heights), np.where(sent > 0, sent, 0.0))


def test_rounds_name_the_stop_and_copy(runs):
    """One numbering: pre-copy rounds 1..rounds, then the stop-and-copy, labelled so; it has no
    pending bar or threshold of its own (what it sends is the pending bar before it)."""
    legacy, _ = runs
    ax = plot.rounds(legacy)
    ticks = [t.get_text() for t in ax.get_xticklabels()]
    n = int(legacy["rounds"])
    assert ticks == [str(i) for i in range(1, n + 1)] + ["stop-and-\ncopy"]
    pending = [p.get_height() for p in ax.patches[len(ticks) :]]
    assert np.isnan(pending[-1])
    labels = ax.get_legend_handles_labels()[1]
    assert any(lab.startswith("threshold") for lab in labels) and "sent in the round" in labels


def test_phases(runs):
    legacy, _ = runs
    fig = plot.phases(legacy)
    ax, ax_vm = fig.axes
    assert UNIT.search(ax.get_ylabel()) and UNIT.search(ax_vm.get_xlabel())
    texts = [t.get_text() for t in ax.texts]
    assert texts[0] == "round\n1" and texts[-1] == "stop-and-\ncopy"
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "stop-and-copy (VM stopped)" in legend
    assert "downtime" in ax.get_title()
    # the guest runs until the VM stops, then is stopped for the downtime
    running, stopped = ax_vm.collections
    stop = float(legacy["total-time"] - legacy["downtime"])
    assert running.get_paths()[0].vertices[:, 0].max() == pytest.approx(stop)
    assert stopped.get_paths()[0].vertices[:, 0].max() == pytest.approx(float(legacy["total-time"]))


def test_compare_and_table(runs):
    legacy, hinted = runs
    fig = plot.compare({"legacy": legacy, "hinting": hinted})
    assert len(fig.axes) == 3
    for ax in fig.axes:
        assert UNIT.search(ax.get_xlabel())
    widths = [p.get_width() for p in fig.axes[0].patches]
    assert widths[1] < widths[0]  # hinting is faster on an idle guest
    df = plot.table({"legacy": legacy, "hinting": hinted}, keys=("total-time", "rounds"))
    assert list(df.columns) == ["total-time (ms)", "rounds"]
    assert df.loc["legacy", "total-time (ms)"] == pytest.approx(
        float(legacy["total-time"]), abs=0.1
    )


def test_explorer_figure(runs):
    legacy, hinted = runs
    fig = plot.explorer_figure(legacy, hinted)
    assert len(fig.axes) == 4
    ax_p, ax_b, ax_r, ax_m = fig.axes
    assert ax_p.get_shared_x_axes().joined(ax_p, ax_b)  # pending and sent: one time axis
    assert UNIT.search(ax_p.get_ylabel())
    for ax in (ax_b, ax_r, ax_m):
        assert_labelled(ax)
    assert ax_p.get_legend() is not None and ax_r.get_legend() is not None
    fig2 = plot.explorer_figure(legacy, hinted, shown=legacy, with_page_map=False)
    assert len(fig2.axes) == 3
    assert "legacy" in fig2.axes[2].get_title()


def test_explorer_figure_without_annotations(runs):
    """No titles or legends in the figure; the labelled artists are still there to read."""
    legacy, hinted = runs
    fig = plot.explorer_figure(legacy, hinted, with_page_map=False, annotate=False)
    for ax in fig.axes:
        assert ax.get_title() == "" and ax.get_legend() is None
    ax_p, _, ax_r = fig.axes
    labels = ax_p.get_legend_handles_labels()[1]
    runs_ = [lab.split(":")[0] for lab in labels if "VM stopped" not in lab]
    stops = [lab.split(":")[0] for lab in labels if "VM stopped" in lab]
    assert runs_ == ["legacy", "hinting"] and stops == ["legacy", "hinting"]
    race_labels = ax_r.get_legend_handles_labels()[1]
    assert "sender (migration thread)" in race_labels
    assert "bitmap sync (a round ends)" in race_labels
    assert "VM stopped: stop-and-copy" in race_labels
    assert ax_r.get_position().x1 > 0.95  # the axes take the room of the legends


def test_use_style():
    plot.use_style()
    assert matplotlib.rcParams["axes.spines.top"] is False


def test_explorer_figure_redraw_replaces_data(runs):
    """Drawing again on the same figure keeps the axes but leaves no stale artists."""
    legacy, hinted = runs
    small = fk.simulate(
        fk.Scenario(memory="384M", workload="idle", max_bandwidth="100G", hint=True),
        page_map_bins=32,
    )
    fresh = plot.explorer_figure(legacy, small, with_page_map=False)
    fig = plot.explorer_figure(legacy, hinted, with_page_map=False)
    axes = list(fig.axes)
    plot.explorer_figure(legacy, small, fig=fig, with_page_map=False)
    assert fig.axes == axes  # the same Axes objects
    for old, new in zip(fresh.axes, fig.axes, strict=True):
        assert len(new.get_lines()) == len(old.get_lines())
        assert len(new.collections) == len(old.collections)
        assert len(new.patches) == len(old.patches)
        assert new.get_ylim() == pytest.approx(old.get_ylim())
        assert new.get_xlim() == pytest.approx(old.get_xlim())
        assert new.get_ylabel() == old.get_ylabel()


def test_trajectories_overlay_measured_and_simulated():
    from fphint_kernels.io import load_dataset
    from fphint_kernels.qemu import compare

    path = fk.config.data_dir() / "measurements" / "tcg-quiet"
    ds = load_dataset(path / "1G-idle-hint-ioa0-dl400-smp1-r1.nc")
    sims = [fk.simulate(compare.scenario_for(ds, seed=s)) for s in (0, 1)]
    fig = plot.trajectories(ds, sims)
    axes = fig.axes
    assert len(axes) == 4
    assert axes[0].get_ylabel() == "bytes transferred (MiB)"
    assert axes[3].get_xlabel().startswith("time since the migrate command (")
    labels = [t.get_text() for t in axes[0].get_legend().get_texts()]
    assert labels == ["measured (50 ms polls)", "simulated", "other seeds"]
    # the measured points are the polls, the simulated line ends at the simulated total time
    measured_line, sim_line = axes[0].lines[0], axes[0].lines[1]
    assert len(measured_line.get_xdata()) == ds.sizes["time"]
    assert sim_line.get_ydata()[-1] == pytest.approx(
        float(sims[0]["transferred"].values[-1]) / 2**20
    )
    plt.close(fig)


def test_pair_ratios_marks_the_misses():
    import pandas as pd

    ratios = pd.DataFrame({
        "pair": ["a", "b"], "measured_ratio": [0.8, 0.2], "simulated_ratio": [0.75, 0.4],
        "error": [-0.0625, 1.0], "within": [True, False], "held_out": [True, True],
    })  # fmt: skip
    ax = plot.pair_ratios(ratios)
    (ok,) = [ln for ln in ax.lines if ln.get_label() == "pair within target"]
    (miss,) = [ln for ln in ax.lines if ln.get_label() == "pair outside target"]
    assert list(ok.get_xdata()) == [0.8] and list(miss.get_ydata()) == [0.4]
    assert [t.get_text() for t in ax.texts] == ["b"]
    assert "ratio" in ax.get_xlabel() and "ratio" in ax.get_ylabel()
    with pytest.raises(ValueError, match="no configuration pair"):
        plot.pair_ratios(ratios.iloc[:0])
    plt.close(ax.figure)


def test_race_spread_shows_repeats_and_seeds():
    import pandas as pd

    from fphint_kernels.qemu import compare
    from fphint_kernels.qemu.measurement import load_all

    path = fk.config.data_dir() / "measurements" / "tcg-race"
    runs = [ds for ds in load_all(path) if ds.attrs["config_key"].startswith("1G-idle-")]
    samples = compare.race_samples(runs, seeds=(0, 1, 2))
    assert list(samples["source"]).count("measured") == len(runs) == 6
    assert list(samples["source"]).count("simulated") == 3
    spread = compare.seed_spread(runs, seeds=(0, 1, 2))
    sim = samples.loc[samples["source"] == "simulated", "ram-duplicate"]
    assert spread["simulated_min"].item() == sim.min()
    ax = plot.race_spread(samples)
    (meas,) = [ln for ln in ax.lines if ln.get_label() == "measured repeats"]
    assert sorted(meas.get_ydata()) == sorted(samples.loc[samples["source"] == "measured",
                                                          "ram-duplicate"])  # fmt: skip
    assert ax.get_yscale() == "log" and ax.get_ylabel() == "zero pages sent (pages)"
    with pytest.raises(ValueError, match="no hinted run"):
        plot.race_spread(pd.DataFrame(columns=["config", "source", "ram-duplicate"]))
    plt.close(ax.figure)
