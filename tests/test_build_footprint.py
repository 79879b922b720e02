"""The measured kernel build (data/measurements/host-build) and the model's build beside it."""

import json

import numpy as np
import pytest

from fphint_kernels.build_footprint import first_pass_dirty_set, load_host_build, measured_distinct
from fphint_kernels.config import data_dir
from fphint_kernels.errors import ScenarioError


@pytest.fixture(scope="module")
def build():
    return load_host_build()


def test_fresh_pages_are_a_subset_of_those_taken(build):
    fresh, taken = build["fresh"].values, build["taken"].values
    assert np.all(np.diff(fresh) >= 0) and np.all(np.diff(taken) >= 0)
    assert np.all(fresh <= taken + 1e-6)
    assert build.attrs["fresh_mib"] == pytest.approx(fresh[-1], abs=1.0)


def test_window_ranges_are_ordered(build):
    lo, med, hi = (build[f"window_distinct_{k}"].values for k in ("min", "median", "max"))
    assert np.all(lo <= med) and np.all(med <= hi)
    assert np.all(np.diff(build["window_objects"].values) > 0)


def test_measured_distinct_interpolates_and_clamps(build):
    x = build["window_objects"].values
    med = build["window_distinct_median"].values
    assert measured_distinct(build, x[3])[0] == pytest.approx(med[3])
    between = measured_distinct(build, np.sqrt(x[3] * x[4]))[0]
    assert min(med[3], med[4]) <= between <= max(med[3], med[4])
    assert measured_distinct(build, x[0] / 100)[0] == pytest.approx(med[0])
    assert measured_distinct(build, x[-1] * 100)[0] == pytest.approx(med[-1])


def test_missing_measurement_is_a_one_line_error(tmp_path):
    with pytest.raises(ScenarioError, match="not found"):
        load_host_build(tmp_path)


def test_summary_is_read_into_attrs(tmp_path):
    root = data_dir() / "measurements" / "host-build"  # the shipped files, copied
    for name in ("footprint.csv", "windows.csv"):
        (tmp_path / name).write_text((root / name).read_text())
    summary = json.loads((root / "summary.json").read_text())
    summary["objects"] = 7
    (tmp_path / "summary.json").write_text(json.dumps(summary))
    ds = load_host_build(tmp_path)
    assert ds.attrs["objects"] == 7
    assert ds.attrs["fresh_at_end_lru_mib"] == summary["fresh_at_end"]["lru_mib"]


@pytest.mark.slow
def test_model_first_pass_dirty_set_is_of_the_measured_order():
    """The model's build writes, in a first pass, about what the real build takes from its
    allocator in as many compile units: not less than the measured lower bound, and not
    several times more than it plus what per-cpu lists and rewrites can add."""
    ds = first_pass_dirty_set(memories=("8G", "128G"), seeds=(1,))
    sim = ds["simulated"].values
    assert np.all(sim >= ds["measured_min"].values)
    assert np.all(sim <= 3 * ds["measured_max"].values)
    # a 128 GiB guest's 40 s first pass covers ten times the compile units of an 8 GiB one
    units = ds["compile_units"].sel(seed=1).values
    assert units[1] > 5 * units[0]
