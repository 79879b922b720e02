"""Saving and loading result Datasets."""

import pytest

import fphint_kernels as fk
from fphint_kernels.io import load_dataset, save_dataset


def test_round_trip(tmp_path):
    ds = fk.simulate(fk.Scenario(memory="512M", max_bandwidth="1G", hint=True, seed=5))
    path = save_dataset(ds, tmp_path / "sub" / "run.nc")
    assert path.is_file() and not list(path.parent.glob(".*.part"))
    back = load_dataset(path)
    assert float(back["total-time"]) == float(ds["total-time"])
    assert str(back["status"].values) == "completed"
    assert fk.Scenario.from_attrs(back.attrs) == fk.Scenario.from_attrs(ds.attrs)


def test_errors_are_one_line(tmp_path):
    with pytest.raises(fk.FphintError, match="no such file"):
        load_dataset(tmp_path / "missing.nc")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    ds = fk.simulate(fk.Scenario(memory="512M", max_bandwidth="1G"))
    with pytest.raises(fk.FphintError, match="cannot"):
        save_dataset(ds, blocker / "run.nc")
