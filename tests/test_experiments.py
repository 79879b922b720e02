"""The reproduction (fphint reproduce): plumbing with a stand-in engine, then the real engine
in fast mode (small guests, one seed; marked slow: skipped by the JIT-disabled coverage pass)."""

import importlib
import json

import numpy as np
import pytest
from test_published import fake_simulate

import fphint_kernels as fk
from fphint_kernels import experiments, io, plot, published, report
from fphint_kernels.cli import main

REQUIRED = {"source", "memory", "downtime-limit", "workload", "hint", "published-ms",
            "simulated-ms", "error-pct", "fitted"}  # fmt: skip
ENGINE = "fphint_kernels.simulate"  # the engine module (fk.simulate is the function)


@pytest.fixture(scope="module")
def fake_res():
    """Every configuration, 2 seeds, with the stand-in engine (fast, no Numba)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(importlib.import_module(ENGINE), "simulate", fake_simulate)
        yield experiments.reproduce(2, fast=False, progress=False)


@pytest.fixture(scope="module")
def res():
    """The real engine in fast mode."""
    return experiments.reproduce(3, fast=True, progress=False)


# ---- plumbing (stand-in engine) ----------------------------------------------------------------


def test_table_records(fake_res):
    rows = experiments.table(fake_res)
    assert fake_res.sizes == {"config": 6, "mode": 2, "seed": 2}
    assert len(rows) == 12
    tt = fake_res["total-time"].values
    for r in rows:
        assert REQUIRED <= set(r)
        assert r["error-pct"] == pytest.approx(
            (r["simulated-ms"] / r["published-ms"] - 1) * 100, abs=0.1
        )
        assert 0 < r["published-reduction-pct"] < 100
        assert r["seeds"] == 2 and r["completed"] == 2
    # the stand-in engine adds the seed: mean over seeds 1, 2 and sd of two runs 1 ms apart
    assert rows[0]["simulated-ms"] == pytest.approx(tt[0, 0].mean(), abs=0.05)
    assert rows[0]["simulated-sd-ms"] == pytest.approx(np.std([0, 1], ddof=1), abs=0.05)
    json.dumps(rows)  # plain JSON types only


def test_fitted_rows_are_the_calibration_targets_of_their_profile(fake_res):
    rows = experiments.table(fake_res)
    for r in rows:
        assert r["fitted"] == (r["row"] in published.fitted_rows(r["profile"]))
        assert r["profile"] == experiments.profile_for(r["patch-version"])
    assert sum(r["fitted"] for r in rows) == 4  # the four v36 migration times
    assert all(r["fitted"] == (r["patch-version"] == "v36") for r in rows)


def test_build_time_prediction(fake_res):
    bt = experiments.build_time_table(fake_res)
    assert [b["config"] for b in bt] == [
        "v36 8G 2s kernel-build", "v37 8G 400ms kernel-build", "v37 128G 400ms kernel-build"
    ]  # fmt: skip
    over = fake_res["guest-overhead-time"].mean("seed")
    for b in bt:
        o = over.sel(config=b["config"])
        diff = float(o.sel(mode="hint") - o.sel(mode="legacy")) / 4 / 1e3  # 4 vCPUs, ms -> s
        assert b["predicted-diff-s"] == pytest.approx(diff, abs=1e-4)
        assert b["predicted-hint-s"] == pytest.approx(
            b["published-legacy-s"] + b["predicted-diff-s"], abs=0.01
        )


def test_report_files(fake_res, tmp_path):
    paths = report.write_report(fake_res, tmp_path, runtime_s=1.0)
    names = {p.name for p in paths}
    assert {"report.md", "total-time.png", "reductions.png", "errors.png", "reproduction.nc",
            "table.json"} <= names  # fmt: skip
    text = (tmp_path / "report.md").read_text()
    assert "FAST MODE" not in text
    assert "predicted" in text and "Kernel build time" in text
    assert "## Rows used to fit the profiles" in text
    back = io.load_dataset(tmp_path / "reproduction.nc")
    np.testing.assert_allclose(back["total-time"].values, fake_res["total-time"].values)
    assert back["fitted"].values.tolist() == fake_res["fitted"].values.astype(int).tolist()
    assert json.loads((tmp_path / "table.json").read_text()) == experiments.table(fake_res)


def test_reproduce_command(tmp_path, capsys, monkeypatch):
    """fphint reproduce with the stand-in engine: the JSON table and the report's files."""
    monkeypatch.setattr(importlib.import_module(ENGINE), "simulate", fake_simulate)
    assert main(["reproduce", "--seeds", "1", "--jobs", "1", "--json", "--quiet",
                 "--out", str(tmp_path)]) == 0  # fmt: skip
    rows = json.loads(capsys.readouterr().out)
    assert rows == json.loads((tmp_path / "table.json").read_text())
    assert len(rows) == 12 and all(r["seeds"] == 1 for r in rows)
    assert main(["reproduce", "--seeds", "1", "--out", str(tmp_path / "b")]) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith(f"wrote {tmp_path / 'b' / 'report.md'}, ")
    assert "reproduce" in captured.err  # the progress bar


def test_reproduction_widget_runs(monkeypatch):
    monkeypatch.setattr(importlib.import_module(ENGINE), "simulate", fake_simulate)
    import matplotlib

    matplotlib.use("Agg")
    widget = report.reproduction_widget(seeds=1, profile="v36", fast=False)
    profile, seeds, run, status = widget.children[0].children
    assert status.value == ""
    run.click()
    assert status.value.startswith("done: 1 seed(s)")


def test_notebook_code_path(fake_res):
    """What notebooks/01_reproduce_the_thread.ipynb calls, without executing the notebook."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fk.plot.use_style()
    assert len(report.table_frame(fake_res)) == 12
    assert len(report.build_time_frame(fake_res)) == 3
    for fn in (plot.published_vs_simulated, plot.reproduction_reductions, plot.reproduction_errors):
        fig = fn(fake_res)
        assert all(ax.get_xlabel() and ax.get_ylabel() for ax in fig.axes)
        plt.close(fig)
    widget = report.reproduction_widget(seeds=2, fast=True)
    controls = widget.children[0].children
    assert [type(c).__name__ for c in controls[:3]] == ["Dropdown", "IntSlider", "Button"]


def test_fast_mode_keeps_free_memory():
    for c in published.configurations():
        mem = c.run_memory(fast=True)
        assert (
            2 * fk.Workload.load(c.workload).min_memory(fk.Guest.load("testbed-2018"))
            <= mem
            <= c.run_memory()
        )
        assert mem % (1 << 30) == 0


def test_bad_input(capsys):
    assert main(["reproduce", "--seeds", "0", "--quiet"]) == 2
    assert capsys.readouterr().err.count("\n") == 1
    with pytest.raises(fk.FphintError, match="unknown profile"):
        experiments.reproduce(1, profile="nope", fast=True, progress=False)
    with pytest.raises(fk.FphintError, match="seeds"):
        experiments.reproduce(0, fast=True, progress=False)


# ---- the real engine, fast mode ------------------------------------------------------------------


@pytest.mark.slow
def test_every_published_configuration_runs_in_both_modes(res):
    rows = [r for r in published.load_published() if r["metric"] == "total-time"]
    assert res.sizes == {"config": len(rows) // 2, "mode": 2, "seed": 1}  # fast: one seed
    assert (res["status"].values == "completed").all()
    assert (res["lost-pages"].values == 0).all()
    assert np.isfinite(res["total-time"].values).all()
    assert np.isfinite(res["analytic-total-time"].values).all()
    # hinting skips free memory: faster in every configuration, also in small guests
    tt = res["total-time"].mean("seed")
    assert (tt.sel(mode="hint") < tt.sel(mode="legacy")).all()
    assert (res["hinted-pages"].sel(mode="hint") > 0).all()
    assert (res["hinted-pages"].sel(mode="legacy") == 0).all()
    # the migration costs the guest vCPU time in both modes
    assert (res["guest-overhead-time"].values > 0).all()


@pytest.mark.slow
def test_cli_json(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("FPHINT_FAST", "1")
    assert main(["reproduce", "--json", "--quiet", "--out", str(tmp_path)]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 12 and all(REQUIRED <= set(r) for r in rows)
    assert all(r["seeds"] == 1 and r["completed"] == 1 for r in rows)
    assert "FAST MODE" in (tmp_path / "report.md").read_text()
