"""The reproduction (fphint reproduce) in fast mode: small guests, one seed."""

import json

import numpy as np
import pytest
import xarray as xr

import fphint_kernels as fk
from fphint_kernels import experiments, report
from fphint_kernels.cli import main

REQUIRED = {
    "source",
    "memory",
    "downtime-limit",
    "workload",
    "hint",
    "published-ms",
    "simulated-ms",
    "error-pct",
    "fitted",
}


@pytest.fixture(scope="module")
def res():
    return experiments.reproduce(3, fast=True, progress=False)


def test_every_published_configuration_runs_in_both_modes(res):
    rows = [r for r in experiments.load_published() if r["metric"] == "total-time"]
    assert res.sizes == {"config": len(rows) // 2, "mode": 2, "seed": 1}  # fast: one seed
    assert (res["status"].values == "completed").all()
    assert (res["lost-pages"].values == 0).all()
    assert np.isfinite(res["total-time"].values).all()
    assert np.isfinite(res["analytic-total-time"].values).all()
    for c, mem in zip(res["config"].values, res["simulated-memory"].values, strict=True):
        wl = str(res["workload"].sel(config=c).values)
        assert mem >= 2 * fk.Workload.load(wl).min_memory()
    # hinting skips free memory: faster in every configuration, also in small guests
    tt = res["total-time"].mean("seed")
    assert (tt.sel(mode="hint") < tt.sel(mode="legacy")).all()
    assert (res["hinted-pages"].sel(mode="hint") > 0).all()
    assert (res["hinted-pages"].sel(mode="legacy") == 0).all()


def test_fitted_rows_are_the_calibration_targets_of_their_profile(res):
    for r in experiments.table(res):
        used = experiments.fitted_rows(r["profile"])
        assert r["fitted"] == (r["row"] in used)
        assert r["profile"] == experiments.profile_for(r["patch-version"])


def test_table_records(res):
    rows = experiments.table(res)
    assert len(rows) == res.sizes["config"] * 2
    for r in rows:
        assert REQUIRED <= set(r)
        assert r["error-pct"] == pytest.approx(
            (r["simulated-ms"] / r["published-ms"] - 1) * 100, abs=0.1
        )
        assert 0 < r["published-reduction-pct"] < 100
    json.dumps(rows)  # plain JSON types only


def test_build_time_prediction(res):
    bt = experiments.build_time_table(res)
    assert [b["config"] for b in bt] == [
        "v36 8G 2s kernel-build",
        "v37 8G 400ms kernel-build",
        "v37 128G 400ms kernel-build",
    ]
    over = res["guest-overhead-time"].mean("seed")
    for b in bt:
        o = over.sel(config=b["config"])
        assert b["predicted-diff-s"] == pytest.approx(
            float(o.sel(mode="hint") - o.sel(mode="legacy")) / 4 / 1e3, abs=1e-4
        )
        assert b["predicted-hint-s"] == pytest.approx(
            b["published-legacy-s"] + b["predicted-diff-s"], abs=0.01
        )


def test_report_files(res, tmp_path):
    paths = report.write_report(res, tmp_path, runtime_s=1.0)
    names = {p.name for p in paths}
    assert {
        "report.md",
        "total-time.png",
        "reductions.png",
        "errors.png",
        "reproduction.nc",
        "table.json",
    } <= names
    text = (tmp_path / "report.md").read_text()
    assert "FAST MODE" in text
    assert "predicted" in text and "Kernel build time" in text
    back = xr.open_dataset(tmp_path / "reproduction.nc", engine=report.netcdf_engine())
    np.testing.assert_allclose(back["total-time"].values, res["total-time"].values)
    assert back["fitted"].values.tolist() == res["fitted"].values.astype(int).tolist()
    back.close()
    assert json.loads((tmp_path / "table.json").read_text()) == experiments.table(res)


def test_cli_json(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("FPHINT_FAST", "1")
    assert main(["reproduce", "--json", "--quiet", "--out", str(tmp_path)]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows and all(REQUIRED <= set(r) for r in rows)
    assert (tmp_path / "report.md").is_file()


def test_bad_input(capsys):
    assert main(["reproduce", "--seeds", "0", "--quiet"]) == 2
    assert capsys.readouterr().err.count("\n") == 1
    with pytest.raises(fk.FphintError, match="unknown profile"):
        experiments.reproduce(1, profile="nope", fast=True, progress=False)
    with pytest.raises(fk.FphintError, match="seeds"):
        experiments.reproduce(0, fast=True, progress=False)


def test_notebook_code_path(res):
    """What notebooks/01_reproduce_the_thread.ipynb calls, without executing the notebook."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fk.plot.use_style()
    frame = report.table_frame(res)
    assert len(frame) == res.sizes["config"] * 2
    assert len(report.build_time_frame(res)) == 3
    for fn in (report.plot_published_vs_simulated, report.plot_reductions, report.plot_errors):
        fig = fn(res)
        assert all(ax.get_xlabel() and ax.get_ylabel() for ax in fig.axes)
        plt.close(fig)
    widget = report.reproduction_widget(seeds=2, fast=True)
    controls = widget.children[0].children
    assert [type(c).__name__ for c in controls[:3]] == ["Dropdown", "IntSlider", "Button"]
