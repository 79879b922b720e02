"""The QEMU harness without QEMU: campaigns, the fphint qemu commands, the comparison with the
simulator and the fit of this host's profile, driven by recorded results and a stand-in engine.

What starts processes (qemu/prepare.py, qemu/process.py, qemu/runner.py) is replaced here by
stand-ins; it runs for real in tests/test_qemu_real.py.
"""

from __future__ import annotations

import importlib
import io
import json

import numpy as np
import pytest
import xarray as xr
from test_qemu import CRASH_DEST, MIGRATE_REPLIES, _result

import fphint_kernels as fk
from fphint_kernels.cli import main
from fphint_kernels.config import data_dir
from fphint_kernels.errors import FphintError
from fphint_kernels.io import save_dataset
from fphint_kernels.qemu import campaign, compare, guest, hostbench, measurement
from fphint_kernels.qemu.runconfig import RunConfig, qemu_args
from fphint_kernels.units import parse_size

PAGE = 4096


# ---------------------------------------------------------------------------- stand-ins
def fake_simulate(sc, profile=None, **kw):
    """Stand-in engine: page counts from the guest description, times from the profile's
    per-page costs and ``cpu_speed`` (so that a fit has something to find)."""
    p = (profile or sc.load_profile()).params
    pages = sc.memory // PAGE
    opts = dict(sc.workload_options)
    normal = parse_size(opts.get("base_used", "64M")) // PAGE
    if sc.workload == "fill-free" and not sc.hint:
        normal += int(float(opts.get("fill", 0.0)) * pages)
    duplicate = (pages - normal) // (10 if sc.hint else 1)
    work_ns = duplicate * p["zero_page_ns"] + normal * p["normal_page_ns"]
    setup = p["setup_fixed_ms"]
    total = work_ns / p["cpu_speed"] / 1e6 + setup
    return xr.Dataset({
        "status": ((), "completed"),
        "total-time": ((), total, {"units": "ms"}),
        "downtime": ((), 0.1 * total, {"units": "ms"}),
        "setup-time": ((), setup, {"units": "ms"}),
        "ram-duplicate": ((), duplicate),
        "ram-normal": ((), normal),
        "ram-transferred": ((), normal * 4104 + duplicate * 9),
        "dirty-sync-count": ((), 3),
    })  # fmt: skip


@pytest.fixture
def stand_in_engine(monkeypatch):
    monkeypatch.setattr(
        importlib.import_module("fphint_kernels.simulate"), "simulate", fake_simulate
    )


def measured_run(memory="1G", mode="idle", hint=True, run=0, total=800.0, normal=20_000, ioa=False):
    """A completed measured run as the harness records it."""
    final = {
        "status": "completed", "total-time": total, "downtime": 30, "setup-time": 2,
        "ram": {"transferred": normal * 4104, "duplicate": 200_000, "normal": normal,
                "normal-bytes": normal * PAGE, "dirty-sync-count": 3},
    }  # fmt: skip
    res = _result(final, [(0.0, MIGRATE_REPLIES[0]), (total, final)])
    res.config = RunConfig(
        memory=parse_size(memory), mode=mode, hint=hint, init_on_alloc=ioa, downtime_limit_ms=400
    )
    return measurement.to_dataset(res, run=run, campaign="test")


@pytest.fixture
def campaign_dir(tmp_path):
    """A small campaign on disk: two configurations, two repeats each."""
    root = tmp_path / "measurements" / "test"
    for run in (0, 1):
        for hint in (False, True):
            ds = measured_run(hint=hint, run=run, total=(400.0 if hint else 1200.0) + 10 * run)
            save_dataset(ds, root / f"{ds.attrs['config_key']}-r{run}.nc")
    return tmp_path / "measurements"


# ---------------------------------------------------------------------------- configuration
def test_qemu_command_line_of_both_sides(tmp_path):
    g = guest.Guest(tmp_path, tmp_path / "vmlinuz", tmp_path / "initrd", "6.1.0-1", "pkg", "1")
    cfg = RunConfig(memory=2 << 30, mode="fill-free", fill=0.25, hint=False, vcpus=2)
    src = qemu_args(g, cfg, "tcg", incoming=False)
    dst = qemu_args(g, cfg, "kvm", incoming=True)
    assert src[src.index("-m") + 1] == "2048M" and src[src.index("-smp") + 1] == "2"
    assert "tcg,thread=multi" in src and "-incoming" not in src
    assert dst[-2:] == ["-incoming", "defer"] and dst[dst.index("-accel") + 1] == "kvm"
    append = src[src.index("-append") + 1]
    assert "fphint.mode=fill-free" in append and "fphint.fill=0.2500" in append
    assert "init_on_alloc=0" in append
    assert any("free-page-hint=off" in a for a in src)


def test_load_guest_checks_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("FPHINT_QEMU_CACHE", str(tmp_path))
    assert guest.cache_dir() == tmp_path and guest.cache_dir(tmp_path / "x") == tmp_path / "x"
    with pytest.raises(FphintError, match="no guest prepared"):
        guest.load_guest()
    g = guest.Guest(tmp_path, tmp_path / "vmlinuz", tmp_path / "initrd.gz", "6.1.0-1", "p", "1")
    (tmp_path / "guest.json").write_text(json.dumps(g.to_dict()))
    with pytest.raises(FphintError, match="missing"):
        guest.load_guest()
    g.kernel.write_bytes(b"k")
    g.initrd.write_bytes(b"i")
    assert guest.load_guest() == g
    (tmp_path / "guest.json").write_text(json.dumps({**g.to_dict(), "format": 0}))
    with pytest.raises(FphintError, match="older harness"):
        guest.load_guest()


def test_host_facts_and_microbenchmarks():
    info = hostbench.host_info()
    assert info["cpu_count"] >= 1 and info["memory_bytes"] > 0 and info["kernel"]
    bench = hostbench.run_all(quick=True)
    for k in ("zero_page_ns", "page_copy_ns", "link_bytes_per_s", "normal_page_ns"):
        assert np.isfinite(bench[k]) and bench[k] > 0, k
    # a normal page costs its copy plus 4104 bytes on the wire
    assert bench["normal_page_ns"] == pytest.approx(
        bench["page_copy_ns"] + 4104 / bench["link_bytes_per_s"] * 1e9
    )


# ---------------------------------------------------------------------------- campaign
def test_campaign_runs_every_missing_run(tmp_path, monkeypatch):
    calls = []

    def fake_migrate_once(cfg, *, guest=None, accel=None, **kw):
        calls.append((cfg.key(), accel))
        res = _result(MIGRATE_REPLIES[-1], [(0.0, MIGRATE_REPLIES[-1])], dest=CRASH_DEST)
        res.config = cfg
        return res

    runner = importlib.import_module("fphint_kernels.qemu.runner")
    monkeypatch.setattr(runner, "migrate_once", fake_migrate_once)
    monkeypatch.setattr(runner, "detect_accelerator", lambda g: "tcg")
    monkeypatch.setattr(guest, "load_guest", lambda path=None: "a guest")
    plan = {
        "name": "tiny",
        "repeats": 2,
        "runs": [{"memory": "1G"}, {"memory": "2G", "hint": "off"}],
    }
    out = tmp_path / "tiny"
    s = io.StringIO()
    written = campaign.run_campaign(plan, out, only="1G", stream=s)
    assert [p.name for p in written] == [f"1G-idle-hint-ioa0-dl300-smp1-r{r}.nc" for r in (0, 1)]
    assert calls == [("1G-idle-hint-ioa0-dl300-smp1", "tcg")] * 2
    assert json.loads((out / "plan.json").read_text()) == plan
    assert "[2/2] 1G-idle-hint-ioa0-dl300-smp1 r1: completed" in s.getvalue()
    runs = measurement.load_all(out)
    assert [int(ds.attrs["run"]) for ds in runs] == [0, 1]
    assert all(ds.attrs["campaign"] == "tiny" and ds.attrs["guest_ok"] == 0 for ds in runs)
    # resumed: the files exist, only the 2G runs are left; max_runs cuts the list
    written = campaign.run_campaign(plan, out, max_runs=1, stream=io.StringIO())
    assert [p.name for p in written] == ["2G-idle-nohint-ioa0-dl300-smp1-r0.nc"]
    with pytest.raises(FphintError, match="repeat"):
        campaign.expand(plan, repeats=0)


# ---------------------------------------------------------------------------- fphint qemu ...
def test_cli_summary(campaign_dir, capsys):
    assert main(["qemu", "summary", str(campaign_dir)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 5 and out[-1] == "4 runs, 4 completed, 0 with guest_ok=0"
    assert "1G-idle-hint-ioa0-dl400-smp1" in out[0] and "total=" in out[0]
    assert main(["qemu", "summary", str(campaign_dir), "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert {r["run"] for r in rows} == {0, 1} and all(r["guest_ok"] for r in rows)
    assert rows[0]["ram-normal"] == 20_000 and rows[0]["status"] == "completed"
    empty = campaign_dir / "empty"
    empty.mkdir()
    assert main(["qemu", "summary", str(empty)]) == 2


def test_cli_migrate_check_prepare_and_campaign(tmp_path, monkeypatch, capsys):
    runner = importlib.import_module("fphint_kernels.qemu.runner")
    fake_guest = guest.Guest(tmp_path, tmp_path / "k", tmp_path / "i", "6.1.0-1", "pkg", "1")

    def fake_migrate_once(cfg, *, guest=None, accel=None, progress=None, **kw):
        progress("migrating")
        res = _result(MIGRATE_REPLIES[-1], [(0.0, MIGRATE_REPLIES[-1])])
        res.config = cfg
        return res

    monkeypatch.setattr(runner, "migrate_once", fake_migrate_once)
    monkeypatch.setattr(runner, "detect_accelerator", lambda g, **kw: "tcg")
    monkeypatch.setattr(guest, "load_guest", lambda path=None: fake_guest)
    monkeypatch.setattr(importlib.import_module("fphint_kernels.qemu.process"), "qemu_version",
                        lambda: "7.2.0")  # fmt: skip
    monkeypatch.setattr(importlib.import_module("fphint_kernels.qemu.prepare"), "prepare",
                        lambda cache, **kw: fake_guest)  # fmt: skip
    out = tmp_path / "runs"
    args = [
        "qemu",
        "migrate",
        "--memory",
        "2G",
        "--hint",
        "off",
        "--repeat",
        "2",
        "--out",
        str(out),
    ]
    assert main([*args, "--json"]) == 0
    captured = capsys.readouterr()
    rows = [json.loads(line) for line in captured.out.splitlines()]
    assert [r["run"] for r in rows] == [0, 1] and rows[0]["config"].startswith("2G-idle-nohint")
    assert "[2/2]: migrating" in captured.err
    assert sorted(p.name for p in out.iterdir()) == [
        "2G-idle-nohint-ioa0-dl300-smp1-r0.nc", "2G-idle-nohint-ioa0-dl300-smp1-r1.nc"
    ]  # fmt: skip
    assert main(["qemu", "migrate", "--out", str(tmp_path / "one.nc")]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith("1G-idle-hint-ioa0-dl300-smp1") and " r0 completed " in line
    assert str(tmp_path / "one.nc") in [ds.attrs["path"] for ds in measurement.load_all(tmp_path)]
    assert main(["qemu", "migrate", "--repeat", "0"]) == 2
    assert main(["qemu", "migrate", "--accel", "xen"]) == 2
    assert main(["qemu", "check"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["qemu"] == "7.2.0" and info["accelerator"] == "tcg" and info["host"]["cpu_count"]
    assert main(["qemu", "prepare"]) == 0
    assert json.loads(capsys.readouterr().out)["kernel_version"] == "6.1.0-1"
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"name": "p", "runs": [{"memory": "1G"}]}))
    assert main(["qemu", "campaign", "--plan", str(plan), "--out", str(tmp_path / "c"),
                 "--dry-run", "--repeat", "1"]) == 0  # fmt: skip
    assert "1G-idle-hint-ioa0-dl300-smp1-r0.nc" in capsys.readouterr().err


def test_cli_bench(monkeypatch, capsys):
    monkeypatch.setattr(hostbench, "run_all", lambda quick=False: {"quick": quick})
    assert main(["qemu", "bench", "--quick"]) == 0
    assert json.loads(capsys.readouterr().out) == {"quick": True}


# ---------------------------------------------------------------------------- comparison
def test_compare_tables(stand_in_engine, campaign_dir):
    runs = measurement.load_all(campaign_dir)
    table = compare.compare(runs, profile="prior", host_profile=fk.HostProfile.load("prior"))
    assert len(table) == 4 and table["held_out"].all()
    for f in compare.FIELDS:
        m, s = table[f"m:{f}"], table[f"s:{f}"]
        np.testing.assert_allclose(table[f"err:{f}"], (s - m) / m)
    sim = fake_simulate(compare.scenario_for(runs[0], profile="prior"))
    assert table["s:ram-normal"].iloc[0] == int(sim["ram-normal"])
    summ = compare.error_summary(table)
    assert summ.loc["total-time", "runs"] == 4 and summ.loc["total-time", "target"] == 0.30
    assert 0 <= summ.loc["ram-normal", "within_target"] <= 1
    spread = compare.repeat_spread(table)
    # the two repeats of a configuration are 10 ms apart, 5 ms from their median
    devs = [5 / 405, 5 / 405, 5 / 1205, 5 / 1205]
    assert spread.loc["total-time", "median_abs_dev"] == pytest.approx(np.median(devs))
    assert spread.loc["ram-normal", "median_abs_dev"] == 0
    text = compare.format_table(table)
    assert "noise floor" in text
    assert [line.split()[1] for line in text.splitlines()[:4]] == ["held"] * 4
    health = compare.health_summary(runs)
    assert health["runs"].sum() == 4 and health["guest_bad"].sum() == 0
    per_config = compare.config_summary(runs)
    assert list(per_config["runs"]) == [2, 2]
    fig = fk.plot.measured_vs_simulated(table, fields=("ram-normal", "total-time"))
    shown = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in shown] == [
        "ram-normal (target ±15%)",
        "total-time (target ±30%)",
    ]
    # units on both axes, one shared legend that explains every mark, the band included
    assert [ax.get_xlabel() for ax in shown] == ["measured (thousand pages)", "measured (ms)"]
    assert [ax.get_ylabel() for ax in shown] == ["simulated (thousand pages)", "simulated (ms)"]
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "simulated = measured" in labels and any("target band" in t for t in labels)
    assert "hinting, held out" in labels and "legacy, used by the fit" in labels
    import matplotlib.pyplot as plt

    plt.close(fig)


def test_compare_dir_and_the_command(stand_in_engine, campaign_dir, capsys):
    table = compare.compare_dir(campaign_dir, profile="this-host-tcg")
    assert len(table) == 4
    fit_runs = set(compare.profile_doc("this-host-tcg")["fit_runs"])
    assert list(table["held_out"]) == [r not in fit_runs for r in table["run"]]
    assert main(["qemu", "compare", str(campaign_dir), "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 4
    assert main(["qemu", "compare", str(campaign_dir), "--held-out"]) == 0
    assert "simulated vs measured, held-out runs:" in capsys.readouterr().out
    with pytest.raises(FphintError, match="no profile"):
        compare.profile_doc("no-such-profile")
    failed = measurement.to_dataset(_result({}, [], dest=""))
    save_dataset(failed, campaign_dir.parent / "failed" / "run.nc")
    with pytest.raises(FphintError, match="no completed"):
        compare.compare_dir(campaign_dir.parent / "failed")


def test_fit_host_profile_finds_the_cpu_speed(stand_in_engine, tmp_path):
    """Runs 'measured' with a known cpu_speed on the harness's guest: the fit must find it (the
    guest is data, not fitted)."""
    truth = fk.HostProfile.load("prior").params
    bench = {"zero_page_ns": truth["zero_page_ns"], "normal_page_ns": truth["normal_page_ns"],
             "link_bytes_per_s": truth["link_bytes_per_s"], "page_copy_ns": 500.0}  # fmt: skip
    true_speed = 0.5
    runs = []
    for hint in (False, True):
        prof = fk.HostProfile.load("prior").with_params(
            zero_page_ns=bench["zero_page_ns"], normal_page_ns=bench["normal_page_ns"],
            link_bytes_per_s=bench["link_bytes_per_s"], cpu_speed=true_speed,
        )  # fmt: skip
        ds = measured_run(hint=hint)
        sim = fake_simulate(compare.scenario_for(ds, profile="prior"), prof)
        ds["total-time"] = ds["total-time"].copy(data=float(sim["total-time"]))
        ds["setup-time"] = ds["setup-time"].copy(data=float(sim["setup-time"]))
        ds["downtime"] = ds["downtime"].copy(data=float(sim["downtime"]))
        for f in ("ram-normal", "ram-duplicate"):
            ds[f] = ds[f].copy(data=int(sim[f]))
        runs.append(ds)
    ids = tuple(compare.run_id(ds) for ds in runs)
    log = io.StringIO()
    doc = compare.fit_host_profile(runs, fit_runs=ids, free=("cpu_speed",), bench=bench,
                                   start="prior", out_dir=tmp_path, name="test-host",
                                   stream=log)  # fmt: skip
    assert doc["params"]["cpu_speed"] == pytest.approx(true_speed, rel=1e-3)
    assert doc["provenance"]["guest"] == "busybox-tcg" and "guest_workload_options" not in doc
    assert doc["fit_runs"] == list(ids)
    assert max(abs(r) for r in doc["provenance"]["fit_residuals_log"]) < 1e-3
    assert doc["provenance"]["fit_evaluations"] >= 2
    assert json.loads((tmp_path / "test-host.json").read_text()) == doc
    assert "fphint qemu fit: host" in log.getvalue() and "wrote" in log.getvalue()
    with pytest.raises(FphintError, match="not measured"):
        compare.fit_host_profile(runs, fit_runs=("nope-r0",), bench=bench, out_dir=tmp_path)


def test_cli_fit(stand_in_engine, campaign_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(hostbench, "run_all", lambda quick=False: {
        "zero_page_ns": 100.0, "normal_page_ns": 900.0, "link_bytes_per_s": 2e9,
        "page_copy_ns": 400.0,
    })  # fmt: skip
    run = "1G-idle-nohint-ioa0-dl400-smp1-r0"
    args = ["qemu", "fit", str(campaign_dir), "--fit-run", run, "--name", "t", "--out-dir"]
    assert main([*args, str(tmp_path)]) == 0
    params = json.loads(capsys.readouterr().out)
    assert params == json.loads((tmp_path / "t.json").read_text())["params"]
    assert params["link_bytes_per_s"] == 2e9  # measured on the host, not fitted


def test_cli_fit_takes_trace_statistics_from_trace_runs(
    stand_in_engine, campaign_dir, tmp_path, monkeypatch, capsys
):
    monkeypatch.setattr(hostbench, "run_all", lambda quick=False: {"link_bytes_per_s": 2e9})
    run = "1G-idle-nohint-ioa0-dl400-smp1-r0"
    race = data_dir() / "measurements" / "tcg-race"
    args = ["qemu", "fit", str(campaign_dir), "--fit-run", run, "--trace-dir", str(race)]
    assert main([*args, "--name", "t", "--out-dir", str(tmp_path)]) == 0
    doc = json.loads((tmp_path / "t.json").read_text())
    traced = compare.trace_statistics(measurement.load_all(race))
    assert doc["params"]["flush_wait_p"] == pytest.approx(traced["flush_wait_p"])
    assert len(doc["trace_runs"]) == len(list(race.glob("*.nc"))) > 0
    assert doc["trace_runs"][0].startswith("tcg-race/")
    assert "tcg-race" in doc["provenance"]["flush_wait_p"]
    assert main(["qemu", "fit", "--quick", "--trace-dir", str(race)]) == 2


def _traced_run(slice_ends, hint_times, setup=2.0):
    ds = xr.Dataset(
        {
            "setup-done-time": setup,
            "slice-end-time": ("slice", np.asarray(slice_ends, float)),
            "hint-time": ("hint", np.asarray(hint_times, float)),
        }
    )
    ds.attrs["scenario_hint"] = 1
    return ds


def test_trace_statistics_of_slice_ends():
    """A queue of 100 blocks: drained at the first slice end of one run; at the second of the
    other (3 blocks got through at the first): one drain of two first ends, one of one after a
    miss."""
    queued = np.linspace(5.0, 40.0, 100)
    drained_first = _traced_run([50.0, 100.0], np.r_[1.0, 50.1 + queued / 1e3])
    drained_later = _traced_run([50.0, 100.0], np.r_[1.0, 50.2, 50.3, 50.4, 100.1 + queued / 1e3],
                                setup=5.0)  # fmt: skip
    st = compare.trace_statistics([drained_first, drained_later], min_ends=1)
    assert st["flush_wait_p"] == 0.5 and st["flush_wait_p_after"] == 1.0
    # two slice ends are no measurement of a share: left out at the default
    few = compare.trace_statistics([drained_first, drained_later])
    assert "flush_wait_p" not in few and "flush_wait_p_after" not in few
    assert few["boundary_hints"] == pytest.approx(3.0)
    assert st["boundary_hints"] == pytest.approx(3.0)
    assert st["setup_fixed_ms"] == 2.0 and st["setup_jitter_ms"] == pytest.approx(1.5)


def test_trace_statistics_bound_the_sync_cost():
    """A bitmap sync costs at most the time from the start of the last sync before the
    switchover to the switchover, per page: the median over runs (here 0.1 ms at 1 GiB and
    0.8 ms at 2 GiB: 0.38 and 1.53 ns a page, median 0.95); a run without its sync events
    adds nothing."""
    runs = []
    for gib, gap in ((1, 0.1), (2, 0.8)):
        ds = _traced_run([50.0], [1.0])
        ds["sync-time"] = ("sync", np.array([1.5, 300.0 - gap, 300.5]))
        ds["switchover-time"] = 300.0
        ds.attrs["scenario_memory"] = gib << 30
        runs.append(ds)
    st = compare.trace_statistics([*runs, _traced_run([50.0], [1.0])])
    per_page = [0.1e6 / (1 << 18), 0.8e6 / (1 << 19)]
    assert st["sync_ns_per_page"] == pytest.approx(np.median(per_page))
    assert "sync_ns_per_page" not in compare.trace_statistics([_traced_run([50.0], [1.0])])


def test_cli_fit_bench_from_a_profile(stand_in_engine, campaign_dir, tmp_path, monkeypatch, capsys):
    """`--bench-from PROFILE` takes the host's microbenchmarks from what PROFILE recorded when
    it was fitted, and measures nothing; a profile that recorded none is an error (exit 2)."""

    def no_bench(quick=False):
        raise AssertionError("measured the host")

    monkeypatch.setattr(hostbench, "run_all", no_bench)
    run = "1G-idle-nohint-ioa0-dl400-smp1-r0"
    args = ["qemu", "fit", str(campaign_dir), "--fit-run", run, "--name", "t", "--out-dir",
            str(tmp_path)]  # fmt: skip
    assert main([*args, "--bench-from", "this-host-tcg"]) == 0
    doc = json.loads((tmp_path / "t.json").read_text())
    host = compare.profile_doc("this-host-tcg")["provenance"]["host"]
    assert doc["provenance"]["host"] == host
    assert doc["params"]["link_bytes_per_s"] == host["link_bytes_per_s"]
    capsys.readouterr()
    assert main([*args, "--bench-from", "v36"]) == 2
    assert "records no host" in capsys.readouterr().err
    assert main(["qemu", "fit", "--quick", "--bench-from", "this-host-tcg"]) == 2


@pytest.mark.parametrize(
    "run",
    [
        "1G-idle-hint-ioa1-dl400-smp1-r0",
        "1G-dirty-loop-d64M-100ms-nohint-ioa0-dl400-smp1-r0",
    ],
)
def test_simulate_with_the_harness_guest_is_what_compare_simulates(run, capsys):
    """`fphint simulate --guest busybox-tcg --profile this-host-tcg` with a measured run's
    settings gives the numbers `fphint qemu compare` sets beside that run."""
    from fphint_kernels.io import load_dataset

    ds = load_dataset(data_dir() / "measurements" / "tcg-quiet" / f"{run}.nc")
    sc = compare.scenario_for(ds)
    want = fk.summary(fk.simulate(sc))
    args = ["simulate", "--memory", f"{sc.memory >> 20}M", "--workload", sc.workload,
            "--downtime-limit", f"{sc.downtime_limit}ms", "--max-bandwidth",
            f"{int(sc.max_bandwidth)}B", "--hint", "on" if sc.hint else "off",
            "--init-on-alloc", "on" if sc.init_on_alloc else "off", "--vcpus", str(sc.vcpus),
            "--guest", "busybox-tcg", "--profile", "this-host-tcg", "--max-time",
            f"{sc.max_time}ms", "--json"]  # fmt: skip
    for k, v in sc.workload_options.items():
        args += ["--workload-param", f"{k}={v}"]
    assert main(args) == 0
    got = json.loads(capsys.readouterr().out)
    assert got == json.loads(json.dumps(want))
    assert got["scenario"]["guest"] == "busybox-tcg"


def test_quick_fit_measures_five_runs_and_writes_a_machine_profile(
    stand_in_engine, tmp_path, monkeypatch
):
    """`fphint qemu fit --quick` with a stand-in host and stand-in migrations: five short runs
    of QUICK_RUNS are measured, saved and fitted; the profile is named for the machine."""
    monkeypatch.setattr(hostbench, "run_all", lambda quick=False: {
        "link_bytes_per_s": 2e9, "host_cpus": 2.0, "cpu_model": "test",
    })  # fmt: skip
    seen = []

    def migrate(cfg):
        seen.append(cfg)
        total = 300.0 * cfg.memory / (1 << 30) * (0.5 if cfg.hint else 1.0)
        final = {
            "status": "completed", "total-time": total, "downtime": 30, "setup-time": 2,
            "ram": {"transferred": 20_000 * 4104, "duplicate": 200_000, "normal": 20_000,
                    "normal-bytes": 20_000 * PAGE, "dirty-sync-count": 3},
        }  # fmt: skip
        res = _result(final, [(0.0, MIGRATE_REPLIES[0]), (total, final)])
        res.config = cfg
        return res

    log = io.StringIO()
    doc = compare.quick_fit(tmp_path / "runs", out_dir=tmp_path / "profiles", stream=log,
                            migrate=migrate)  # fmt: skip
    assert len(seen) == len(compare.QUICK_RUNS) == 5
    assert all(cfg.max_time_s == 60 for cfg in seen)
    files = sorted(p.name for p in (tmp_path / "runs").glob("*.nc"))
    assert len(files) == 5 and "4G-idle-nohint-ioa0-dl400-smp1-r0.nc" in files
    name = compare.machine_profile_name("tcg")
    assert doc["name"] == name and name.startswith("host-") and name.endswith("-tcg")
    assert (tmp_path / "profiles" / f"{name}.json").exists()
    assert len(doc["fit_runs"]) == 5 and doc["params"]["link_bytes_per_s"] == 2e9
    assert "done in" in log.getvalue()


def test_cli_fit_quick_refuses_fit_runs(capsys):
    assert main(["qemu", "fit", "--quick", "--fit-run", "x-r0"]) == 2
    assert "--fit-run: not with --quick" in capsys.readouterr().err
