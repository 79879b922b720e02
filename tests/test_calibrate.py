"""Calibration (fphint_kernels.calibrate) and the fitted profiles in data/profiles/."""

import csv
import importlib
import json

import pytest
from test_published import fake_simulate

import fphint_kernels as fk
from fphint_kernels import calibrate, published
from fphint_kernels.cli import main
from fphint_kernels.config import PROFILE_PARAMS, data_dir


def published_rows(metric, **match):
    with open(data_dir() / "published" / published.PUBLISHED_FILE, newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["metric"] == metric]
    return [r for r in rows if all(r[k] == v for k, v in match.items())]


def legacy_build_ratio():
    (v36,) = published_rows("build-time", patch_version="v36", mode="legacy", guest_ram="8G")
    (v37,) = published_rows("build-time", patch_version="v37", mode="legacy", guest_ram="8G")
    return float(v36["value"]) / float(v37["value"])


def test_testbed_speed_is_the_ratio_of_the_legacy_build_times():
    ratio, rows = calibrate.testbed_speed()
    assert ratio == pytest.approx(legacy_build_ratio())
    assert 0.5 < ratio < 0.7  # 5.2 min vs 8.7 min
    assert rows == [
        "v36/8G/2s/kernel-build/legacy/build-time",
        "v37/8G/400ms/kernel-build/legacy/build-time",
    ]


@pytest.mark.parametrize("scale_link", [True, False])
def test_derived_profile_differs_only_in_speed(tmp_path, scale_link):
    path = calibrate.derive_testbed_profile(
        base="v36", name="v37-test", out_dir=tmp_path, scale_link=scale_link
    )
    doc = json.loads(path.read_text())
    new = fk.HostProfile.from_dict(doc)
    base = fk.HostProfile.load("v36")
    ratio = legacy_build_ratio()
    scaled = ["cpu_speed", "link_bytes_per_s"] if scale_link else ["cpu_speed"]
    for k in PROFILE_PARAMS:
        want = base.params[k] * (ratio if k in scaled else 1.0)
        assert new.params[k] == pytest.approx(want, rel=1e-5), k
    assert doc["provenance"]["calibration"]["scaled"] == scaled
    cal = doc["provenance"]["calibration"]
    assert cal["rows"] == []  # no v37 migration time is used
    assert len(cal["cpu_speed_rows"]) == 2


def test_the_default_profile_is_fitted_on_the_four_v36_migration_times():
    prof = fk.HostProfile.load("v36")
    cal = dict(prof.provenance)["calibration"]
    want = {published.row_id(r) for r in published_rows("total-time", patch_version="v36")}
    assert len(want) == 4
    assert set(cal["rows"]) == want
    assert cal["start_profile"] == "prior"
    prior = fk.HostProfile.load("prior")
    free = set(cal["free_params"])
    assert free and len(free) < len(want)  # fewer parameters than targets
    for k in PROFILE_PARAMS:
        if k in free:
            lo, hi = calibrate.BOUNDS[k]
            assert lo <= prof.params[k] <= hi, k
        else:
            assert prof.params[k] == pytest.approx(prior.params[k]), f"{k} is not free"
    pub = {published.row_id(r): float(r["value"]) for r in published_rows("total-time")}
    for t in cal["targets"]:
        assert t["published_ms"] == pub[t["row"]]
        assert t["residual_pct"] == pytest.approx(
            (t["simulated_ms_mean"] / t["published_ms"] - 1) * 100, abs=0.05
        )


def test_the_v37_profile_is_the_v36_profile_on_a_slower_testbed():
    v36, v37 = fk.HostProfile.load("v36"), fk.HostProfile.load("v37")
    ratio = legacy_build_ratio()
    for k in PROFILE_PARAMS:
        want = v36.params[k] * (ratio if k in ("cpu_speed", "link_bytes_per_s") else 1.0)
        assert v37.params[k] == pytest.approx(want, rel=1e-5), k
    assert dict(v37.provenance)["calibration"]["rows"] == []


def test_fit_with_a_stand_in_engine(monkeypatch):
    """Nelder-Mead on log-parameters finds the zero-page cost that produced the targets."""
    monkeypatch.setattr(
        importlib.import_module("fphint_kernels.simulate"), "simulate", fake_simulate
    )
    truth = fk.HostProfile.load("prior").with_params(zero_page_ns=900.0)
    targets = [
        calibrate.Target(t.row, t.config, t.hint,
                         calibrate.simulate_targets(truth, [t], [1, 2]).mean())
        for t in calibrate.published_targets("v36")
    ]  # fmt: skip
    start = fk.HostProfile.load("prior")
    fit = calibrate.fit_profile(targets, start, ("zero_page_ns",), seeds=2,
                                max_evals=120)  # fmt: skip
    assert fit.profile.params["zero_page_ns"] == pytest.approx(900.0, rel=0.02)
    assert fit.success
    assert abs(fit.residuals_pct).max() < 1.0
    assert fit.seeds == [1, 2]
    assert len(fit.history) == len({tuple(h["params"].values()) for h in fit.history})
    # least squares on the same problem
    fit = calibrate.fit_profile(targets, start, ("zero_page_ns",), seeds=2,
                                method="least-squares", max_evals=40)  # fmt: skip
    assert fit.profile.params["zero_page_ns"] == pytest.approx(900.0, rel=0.02)


def test_write_profile_records_its_provenance(monkeypatch, tmp_path):
    monkeypatch.setattr(
        importlib.import_module("fphint_kernels.simulate"), "simulate", fake_simulate
    )
    targets = calibrate.published_targets("v36")
    fit = calibrate.fit_profile(targets, fk.HostProfile.load("prior"), ("zero_page_ns",),
                                seeds=1, max_evals=5)  # fmt: skip
    path = calibrate.write_profile(fit, "test-fit", "prior", tmp_path, command="fphint calibrate")
    doc = json.loads(path.read_text())
    prof = fk.HostProfile.from_dict(doc)
    assert prof.params["zero_page_ns"] == pytest.approx(fit.profile.params["zero_page_ns"],
                                                        rel=1e-5)  # fmt: skip
    cal = doc["provenance"]["calibration"]
    assert cal["rows"] == [t.row for t in targets]
    assert cal["seeds"] == [1] and cal["start_profile"] == "prior"
    assert cal["free_params"] == ["zero_page_ns"]
    assert [t["residual_pct"] for t in cal["targets"]] == pytest.approx(
        list(fit.residuals_pct), abs=0.01
    )
    assert cal["optimiser"]["evaluations"] == fit.nfev
    assert doc["provenance"]["zero_page_ns"].startswith("fitted by fphint calibrate")


def test_write_guest_records_the_fitted_guest_parameter(monkeypatch, tmp_path):
    """A guest parameter fitted with the host's is written into the guest's file, with its
    source; nothing is written when no guest parameter was free."""
    monkeypatch.setattr(
        importlib.import_module("fphint_kernels.simulate"), "simulate", fake_simulate
    )
    targets = calibrate.published_targets("v36")
    shipped = fk.Guest.load("testbed-2018")
    start_guest = fk.Guest.load("testbed-2018", {"hint_block_us": 55.0})
    fit = calibrate.fit_profile(targets, fk.HostProfile.load("prior"),
                                ("zero_page_ns", "hint_block_us"), seeds=1, max_evals=6,
                                guest=start_guest)  # fmt: skip
    assert fit.start["hint_block_us"] == 55.0
    path = calibrate.write_guest(fit, "test-fit", tmp_path, command="fphint calibrate --x")
    assert path == tmp_path / "testbed-2018.json"
    doc = json.loads(path.read_text())
    assert doc["params"]["hint_block_us"] == pytest.approx(fit.guest.params["hint_block_us"])
    assert doc["sources"]["hint_block_us"].startswith("fitted by fphint calibrate")
    assert "test-fit.json" in doc["sources"]["hint_block_us"]
    assert "fphint calibrate --x" in doc["sources"]["hint_block_us"]
    for k, v in doc["params"].items():  # every other parameter as shipped
        if k != "hint_block_us":
            assert fk.Guest.load("testbed-2018", {k: v}).params[k] == shipped.params[k]
    host_only = calibrate.fit_profile(targets, fk.HostProfile.load("prior"), ("zero_page_ns",),
                                      seeds=1, max_evals=3)  # fmt: skip
    assert calibrate.write_guest(host_only, "test-fit", tmp_path / "none") is None
    assert not (tmp_path / "none").exists()


@pytest.mark.slow
def test_fit_recovers_a_known_parameter():
    """Targets simulated with a known zero-page cost; the fit from a wrong start must find it."""
    truth = fk.HostProfile.load("prior").with_params(zero_page_ns=900.0)
    cfg = published.Config(
        source="synthetic",
        patch_version="synthetic",
        memory="512M",
        downtime_limit="2s",
        workload="idle",
        vcpus=4,
        max_bandwidth="100G",
    )
    targets = []
    for hint in (False, True):
        t = calibrate.Target(f"synthetic/{hint}", cfg, hint, 1.0)
        ms = calibrate.simulate_targets(truth, [t], [1])[0, 0]
        targets.append(calibrate.Target(t.row, cfg, hint, ms))
    start = fk.HostProfile.load("prior").with_params(zero_page_ns=400.0)
    fit = calibrate.fit_profile(targets, start, ("zero_page_ns",), seeds=1, max_evals=30)
    assert fit.profile.params["zero_page_ns"] == pytest.approx(900.0, rel=0.05)
    assert abs(fit.residuals_pct).max() < 2.0
    assert fit.nfev <= 34  # Nelder-Mead may overrun maxfev by one iteration
    assert fit.profile.params["normal_page_ns"] == start.params["normal_page_ns"]


def test_calibrate_command(monkeypatch, tmp_path, capsys):
    """fphint calibrate with the stand-in engine: the fitted profile, then the derived one."""
    monkeypatch.setattr(
        importlib.import_module("fphint_kernels.simulate"), "simulate", fake_simulate
    )
    args = ["calibrate", "--free", "zero_page_ns", "--seeds", "1", "--max-evals", "8"]
    assert main([*args, "--name", "t36", "--quiet", "--out-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("t36: zero_page_ns=") and "evaluations" in out[0]
    assert [line.split()[0] for line in out[1:5]] == [
        t.row for t in calibrate.published_targets("v36")
    ]
    assert out[5] == f"wrote {tmp_path / 't36.json'}"
    assert out[6].startswith("v37: cpu_speed=") and out[7] == f"wrote {tmp_path / 'v37.json'}"
    derived = json.loads((tmp_path / "v37.json").read_text())
    assert derived["provenance"]["calibration"]["derived_from"] == "t36.json"
    fitted = json.loads((tmp_path / "t36.json").read_text())
    assert fitted["provenance"]["calibration"]["optimiser"]["evaluations"] >= 8
    # the derived profile again, keeping the stream rate of the fitted one
    assert main(["calibrate", "--derive-only", "--name", "t36", "--link", "fixed",
                 "--out-dir", str(tmp_path)]) == 0  # fmt: skip
    assert capsys.readouterr().out.startswith("v37: cpu_speed=")
    link = json.loads((tmp_path / "v37.json").read_text())["params"]["link_bytes_per_s"]
    assert link == fitted["params"]["link_bytes_per_s"]


def test_bad_input_is_one_line(capsys):
    assert main(["calibrate", "--free", "bogus", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "unknown parameter 'bogus'" in err and err.count("\n") == 1
    with pytest.raises(fk.FphintError):
        calibrate.published_targets("v99")
    with pytest.raises(fk.FphintError):
        calibrate.fit_profile([], fk.HostProfile.load("prior"), ("zero_page_ns",), method="newton")


def test_calibrate_writes_results_not_the_shipped_profiles(monkeypatch, tmp_path, capsys):
    """By default into results/calibration/ of the working folder; data/profiles/ only with
    --update-profiles (here a copy of data/, through FPHINT_DATA)."""
    import shutil

    from fphint_kernels.config import data_dir

    monkeypatch.setattr(
        importlib.import_module("fphint_kernels.simulate"), "simulate", fake_simulate
    )
    shipped = data_dir() / "profiles" / "v36.json"
    before = shipped.read_text()
    monkeypatch.chdir(tmp_path)
    args = ["calibrate", "--free", "zero_page_ns", "--seeds", "1", "--max-evals", "4"]
    assert main([*args, "--quiet"]) == 0
    out = capsys.readouterr().out
    assert (tmp_path / "results" / "calibration" / "v36.json").is_file()
    assert (tmp_path / "results" / "calibration" / "v37.json").is_file()
    assert "wrote results/calibration/v36.json" in out and shipped.read_text() == before
    copy = tmp_path / "data"
    shutil.copytree(data_dir(), copy)
    monkeypatch.setenv("FPHINT_DATA", str(copy))
    assert main([*args, "--quiet", "--update-profiles"]) == 0
    assert json.loads((copy / "profiles" / "v36.json").read_text()) != json.loads(before)
    assert shipped.read_text() == before
    assert main([*args, "--update-profiles", "--out-dir", "x"]) == 2
    assert "not both" in capsys.readouterr().err


def test_the_calibration_bar_ends_full(monkeypatch, capsys):
    """The budget of evaluations is an upper bound: when the fit converges first, the bar is
    closed at 100 % (n of n), not left at n of the budget."""
    monkeypatch.setattr(
        importlib.import_module("fphint_kernels.simulate"), "simulate", fake_simulate
    )
    targets = calibrate.published_targets("v36")
    fit = calibrate.fit_profile(targets, fk.HostProfile.load("prior"), ("zero_page_ns",),
                                seeds=1, max_evals=150, progress=True)  # fmt: skip
    err = capsys.readouterr().err
    last = err.replace("\r", "\n").strip().splitlines()[-1]
    done = len(fit.history)
    assert done < 150 and f"{done}/{done}" in last and "100%" in last
