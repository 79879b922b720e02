"""Sweeps on Dask: spec validation, grid expansion, cache keys, runs on local and separately
started clusters, resume after an interruption, the fphint sweep command."""

import functools
import json
import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import fphint_kernels as fk
from fphint_kernels import sweep as sw
from fphint_kernels.cli import main
from fphint_kernels.io import load_dataset

ROOT = Path(__file__).resolve().parents[1]

#: 8 points of 256 MiB guests
SMALL = {
    "memory": "256M",
    "max_bandwidth": "1G",
    "grid": {"workload": ["idle", "fill-free"], "hint": [False, True]},
    "seeds": 2,
}


#: 2 points
TINY = {"memory": "256M", "max_bandwidth": "1G", "grid": {"hint": [False, True]}}


def _no_cluster(*args, **kwargs):
    raise AssertionError("a cluster was started for a spec that is not valid")


# --------------------------------------------------------------------------------------------
# spec validation and expansion
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ({"memroy": "1G"}, ["spec", "'memroy'"]),
        ({"grid": {"hnt": [True]}}, ["grid", "'hnt'"]),
        ({"grid": {"hint": []}}, ["grid.hint", "empty"]),
        ({"grid": {"hint": True}}, ["grid.hint", "list"]),
        ({"grid": {"memory": ["256M", "3Q"]}}, ["grid.memory", "3Q"]),
        ({"grid": {"memory": ["1G", "1024M"]}}, ["grid.memory", "same value"]),
        ({"memory": "1G", "grid": {"memory": ["2G"]}}, ["grid.memory", "base"]),
        ({"grid": {"seed": [1, 2]}}, ["seed", "seeds"]),
        ({"seed": 3}, ["seed", "seeds"]),
        ({"seeds": 0}, ["seeds"]),
        ({"seeds": [1, 1]}, ["seeds", "twice"]),
        ({"seeds": "many"}, ["seeds"]),
        ({"seeds": [-1]}, ["seeds"]),
        ({"grid": ["memory"]}, ["grid", "mapping"]),
        ({"hint": "maybe"}, ["spec", "hint"]),
        ({"grid": {"fill": [0.5, "150%"]}}, ["grid.fill", "150%"]),
        ({"workload_options": "x"}, ["workload_options"]),
        ({"grid": {"faults": [["nope"]]}}, ["grid.faults", "nope"]),
        ({"description": 3}, ["description"]),
        (
            {"grid": {"memory": ["256M", "1G"], "workload": ["idle", "kernel-build"]}},
            ["point memory=256M, workload=kernel-build, seed=0: memory: the kernel-build"],
        ),
        ("no-such-spec.yaml", ["no such file"]),
        (42, ["spec"]),
    ],
)
def test_bad_specs_fail_before_any_cluster(spec, words, monkeypatch):
    monkeypatch.setattr(sw, "_connect", _no_cluster)
    with pytest.raises(fk.FphintError) as err:
        sw.sweep(spec, progress=False)
    msg = str(err.value)
    assert "\n" not in msg
    for w in words:
        assert w in msg


def test_zarr_output_needs_zarr_before_any_work(tmp_path, monkeypatch):
    monkeypatch.setattr(sw, "_connect", _no_cluster)
    monkeypatch.setitem(sys.modules, "zarr", None)  # import zarr fails
    with pytest.raises(fk.FphintError, match="needs the zarr package"):
        sw.sweep(SMALL, out=tmp_path / "x.zarr", cache_dir=tmp_path / "c", progress=False)


def test_bad_yaml_files(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("grid: [1, 2\nseeds: 3\n")
    with pytest.raises(fk.FphintError, match=r"bad.yaml: not valid YAML \(line"):
        sw.load_spec(bad)
    lst = tmp_path / "list.yaml"
    lst.write_text("- 1\n- 2\n")
    with pytest.raises(fk.FphintError, match="must be a mapping"):
        sw.load_spec(lst)


def test_grid_expansion_order_labels_and_scenarios():
    spec = {
        "workload": "fill-free",
        "workload_options": {"intensity": 2},
        "downtime_limit": "2s",
        "grid": {
            "memory": ["256M", "512M"],
            "hint": [False, True],
            "workload_options.fill": ["20%", 0.6],
            "page_poison": [False, "zero"],  # YAML reads a bare off as false
        },
        "seeds": [5, 7, 9],
    }
    plan = sw.expand(spec)
    assert plan.dims == ("memory", "hint", "fill", "page_poison", "seed")
    assert plan.shape == (2, 2, 2, 2, 3)
    assert plan.coords["memory"] == [256 << 20, 512 << 20]
    assert plan.coords["hint"] == ["false", "true"]
    assert plan.coords["fill"] == [0.2, 0.6]
    assert plan.coords["page_poison"] == ["off", "zero"]
    assert plan.coords["seed"] == [5, 7, 9]
    assert plan.coord_units == {"memory": "bytes", "fill": "1"}
    assert len(plan.points) == 48 and len({p.key for p in plan.points}) == 48
    # C order over the dims, the seed last
    for flat, p in enumerate(plan.points):
        assert np.unravel_index(flat, plan.shape) == p.index
        sc = p.scenario
        assert sc.memory == plan.coords["memory"][p.index[0]]
        assert sc.hint is (p.index[1] == 1)
        assert sc.load_workload().params["fill"] == plan.coords["fill"][p.index[2]]
        assert sc.page_poison == plan.coords["page_poison"][p.index[3]]
        assert sc.seed == plan.coords["seed"][p.index[4]]
        assert sc.workload == "fill-free" and sc.downtime_limit == 2000.0
        assert sc.workload_options["intensity"] == 2
        assert p.labels["seed"] == sc.seed
    assert plan.fixed["workload"] == "fill-free" and "memory" not in plan.fixed
    assert "seed" not in plan.fixed


def test_no_grid_is_a_seed_sweep_and_bare_workload_parameters():
    plan = sw.expand({"memory": "256M", "workload": "fill-free", "fill": "30%", "seeds": 3})
    assert plan.dims == ("seed",) and plan.shape == (3,)
    assert all(p.scenario.load_workload().params["fill"] == 0.3 for p in plan.points)


def test_scenario_fields_round_trip():
    sc = fk.Scenario(
        memory="1G",
        workload="dirty-loop",
        workload_options={"dirty_bytes": "64M"},
        hint=True,
        faults=frozenset({"late-dirty-log", "hint-outside-start"}),
        max_bandwidth="100G",
        downtime_limit="2s",
        seed=4,
    )
    d = sw.scenario_fields(sc)
    assert json.loads(json.dumps(d)) == d
    assert d["faults"] == ["hint-outside-start", "late-dirty-log"]
    assert fk.Scenario(**d) == sc


# --------------------------------------------------------------------------------------------
# cache keys
# --------------------------------------------------------------------------------------------


def test_engine_hash_follows_engine_sources_only(tmp_path):
    pkg = tmp_path / "fphint_kernels"
    shutil.copytree(ROOT / "fphint_kernels", pkg, ignore=shutil.ignore_patterns("__pycache__"))
    h0 = sw.engine_hash(pkg)
    assert h0 == sw.engine_hash(ROOT / "fphint_kernels")
    # not part of the engine: plots
    (pkg / "plot.py").write_text((pkg / "plot.py").read_text() + "\n# a comment\n")
    assert sw.engine_hash(pkg) == h0
    # one byte in a kernel
    kernel = sorted((pkg / "kernels").glob("*.py"))[-1]
    text = kernel.read_text()
    kernel.write_text(text + "\n")
    h1 = sw.engine_hash(pkg)
    assert h1 != h0
    kernel.write_text(text)
    assert sw.engine_hash(pkg) == h0
    for name in ("simulate.py", "config.py"):
        f = pkg / name
        text = f.read_text()
        f.write_text(text + "\n# changed\n")
        assert sw.engine_hash(pkg) != h0, name
        f.write_text(text)
    (pkg / "kernels" / "new_kernel.py").write_text("X = 1\n")
    assert sw.engine_hash(pkg) != h0
    with pytest.raises(fk.FphintError, match="no engine source"):
        sw.engine_hash(tmp_path / "empty")


def test_engine_sources_list_is_what_is_hashed(monkeypatch):
    h0 = sw.engine_hash()
    monkeypatch.setattr(sw, "ENGINE_SOURCES", ("kernels/**/*.py", "simulate.py"))
    assert sw.engine_hash() != h0


def test_scenario_key_follows_scenario_engine_and_data_files(tmp_path, monkeypatch):
    sc = fk.Scenario(memory="256M", workload="idle", seed=1)
    k0 = sw.scenario_key(sc, "engine-a")
    assert k0 == sw.scenario_key(fk.Scenario(memory="256M", workload="idle", seed=1), "engine-a")
    assert k0 != sw.scenario_key(sc, "engine-b")
    assert k0 != sw.scenario_key(sc.replace(seed=2), "engine-a")
    assert k0 != sw.scenario_key(sc.replace(downtime_limit="301ms"), "engine-a")
    files = sw.data_files(sc)
    assert set(files) == {"guest", "profile", "workload"}
    assert files["workload"].name == "idle.json" and files["profile"].name == "v36.json"
    assert files["guest"].name == "testbed-2018.json"
    # the same names, other contents: another key
    data = tmp_path / "data"
    shutil.copytree(ROOT / "data" / "profiles", data / "profiles")
    shutil.copytree(ROOT / "data" / "workloads", data / "workloads")
    shutil.copytree(ROOT / "data" / "guests", data / "guests")
    monkeypatch.setenv("FPHINT_DATA", str(data))
    assert sw.scenario_key(sc, "engine-a") == k0
    guest = data / "guests" / "testbed-2018.json"
    text = guest.read_text()
    raw = json.loads(text)
    guest.write_text(json.dumps({**raw, "description": raw["description"] + " (edited)"}))
    assert sw.scenario_key(sc, "engine-a") != k0
    guest.write_text(text)
    assert sw.scenario_key(sc, "engine-a") == k0
    wl = data / "workloads" / "idle.json"
    raw = json.loads(wl.read_text())
    raw["description"] += " (edited)"
    wl.write_text(json.dumps(raw))
    assert sw.scenario_key(sc, "engine-a") != k0
    # a field holding the path of a JSON file names that file
    monkeypatch.setattr(sw, "DATA_FIELDS", {**sw.DATA_FIELDS, "workload": "nowhere"})
    assert "workload" not in sw.data_files(sc)


def test_point_cache_is_atomic_and_checks_its_key(tmp_path):
    cache = sw.PointCache(tmp_path / "c")
    assert cache.get("ab" * 32) is None and len(cache) == 0
    path = cache.put("ab" * 32, {"summary": {"status": "completed"}, "seconds": 0.1})
    assert path.parent.name == "ab" and cache.get("ab" * 32)["summary"]["status"] == "completed"
    assert not list(path.parent.glob(".*.part"))
    path.write_text("{truncated")
    assert cache.get("ab" * 32) is None
    path.write_text(json.dumps({"key": "cd" * 32, "summary": {}}))
    assert cache.get("ab" * 32) is None
    ro = tmp_path / "ro"
    ro.write_text("a file, not a folder")
    with pytest.raises(fk.FphintError, match="cannot write the sweep cache"):
        sw.PointCache(ro).put("ab" * 32, {"summary": {}})


def test_worker_enables_the_kernel_cache_once(monkeypatch, tmp_path):
    from fphint_kernels import _numba

    calls = []
    monkeypatch.setattr(_numba, "enable_cache", lambda d=None: calls.append(d) or True)
    monkeypatch.setattr(sw, "_WORKER", {"engine": None, "kernel_cache": None})
    monkeypatch.setenv("FPHINT_NUMBA_CACHE", "1")
    sw._prepare_worker(tmp_path)
    sw._prepare_worker(tmp_path)
    assert calls == [str(tmp_path)]
    monkeypatch.setattr(sw, "_WORKER", {"engine": None, "kernel_cache": None})
    sw._prepare_worker(None)
    assert calls == [str(tmp_path), None]
    monkeypatch.setattr(sw, "_WORKER", {"engine": None, "kernel_cache": None})
    monkeypatch.setenv("FPHINT_NUMBA_CACHE", "0")
    sw._prepare_worker(None)
    sw._prepare_worker(False)
    assert len(calls) == 2


# --------------------------------------------------------------------------------------------
# runs
# --------------------------------------------------------------------------------------------


@functools.cache
def _reference(workload, hint, seed):
    sc = fk.Scenario(memory="256M", max_bandwidth="1G", workload=workload, hint=hint, seed=seed)
    return fk.summary(fk.simulate(sc))


def _check_small(ds):
    assert ds.sizes == {"workload": 2, "hint": 2, "seed": 2}
    assert list(ds["workload"].values) == ["idle", "fill-free"]
    assert (ds["status"] == "completed").all()
    assert (ds["lost-pages"] == 0).all()
    assert ds["ram-transferred"].dtype == np.int64 and ds["total-time"].attrs["units"] == "ms"
    # each point is the summary of its own simulation
    for wl, hint, seed in (("idle", "false", 0), ("fill-free", "true", 1)):
        one = _reference(wl, hint == "true", seed)
        pt = ds.sel(workload=wl, hint=hint, seed=seed)
        assert float(pt["total-time"]) == one["total-time"]
        assert int(pt["ram-transferred"]) == one["ram"]["transferred"]
        assert int(pt["skipped-pages"]) == one["skipped-pages"]


def test_small_sweep_on_a_two_worker_local_cluster(tmp_path):
    t0 = time.perf_counter()
    out = tmp_path / "small.nc"
    ds = sw.sweep(SMALL, workers=2, cache_dir=tmp_path / "cache", out=out, progress=False)
    _check_small(ds)
    assert ds.attrs["points"] == 8 and ds.attrs["points_computed"] == 8
    assert ds.attrs["scheduler"] == "LocalCluster (2 workers)"
    assert ds.attrs["engine"] == sw.engine_hash()
    assert json.loads(ds.attrs["spec"]) == json.loads(json.dumps(SMALL))
    assert 0 < ds.attrs["wall_time_s"] <= time.perf_counter() - t0
    assert len(sw.PointCache(tmp_path / "cache")) == 8
    back = load_dataset(out)
    assert (back["total-time"] == ds["total-time"]).all()
    assert (back["status"] == ds["status"]).all()
    assert multiprocessing.active_children() == []
    # everything cached: no cluster, the same numbers
    again = sw.sweep(SMALL, workers=2, cache_dir=tmp_path / "cache", progress=False)
    assert again.attrs["points_computed"] == 0 and again.attrs["points_cached"] == 8
    for name in ds.data_vars:
        assert (again[name] == ds[name]).all(), name


@pytest.fixture
def threads_cluster():
    from distributed import LocalCluster

    cluster = LocalCluster(
        n_workers=1, threads_per_worker=2, processes=False, dashboard_address=":0"
    )
    yield cluster
    cluster.close()


def test_sweep_on_a_cluster_object_writes_zarr(tmp_path, threads_cluster):
    pytest.importorskip("zarr")
    import xarray as xr

    out = tmp_path / "small.zarr"
    out.mkdir()
    (out / "old-file").write_text("replaced")
    ds = sw.sweep(
        TINY, scheduler=threads_cluster, cache_dir=tmp_path / "c", out=out, kernel_cache=False
    )
    assert ds.sizes == {"hint": 2, "seed": 1}
    for hint in (False, True):
        ref = _reference("idle", hint, 0)
        pt = ds.sel(hint="true" if hint else "false", seed=0)
        assert str(pt["status"].values) == ref["status"] == "completed"
        assert int(pt["ram-transferred"]) == ref["ram"]["transferred"]
    assert ds.attrs["scheduler"] == threads_cluster.scheduler_address
    assert not (out / "old-file").exists()
    assert not list(tmp_path.glob(".small.zarr*"))
    with xr.open_zarr(out) as z:
        back = z.load()
    assert (back["status"] == ds["status"]).all()
    assert (back["ram-transferred"] == ds["ram-transferred"]).all()
    assert list(back["hint"].values) == ["false", "true"]


def test_a_worker_with_another_engine_is_refused(tmp_path, threads_cluster, monkeypatch):
    from distributed import Client

    monkeypatch.setattr(sw, "_WORKER", {"engine": "0" * 64, "kernel_cache": False})
    with Client(threads_cluster) as client:
        with pytest.raises(fk.FphintError, match="another engine"):
            sw.sweep(SMALL, scheduler=client, cache_dir=tmp_path / "c", progress=False)
        assert client.status == "running"  # a Client given by the caller stays open
    assert len(sw.PointCache(tmp_path / "c")) == 0


def test_a_point_failing_on_its_worker_is_named(tmp_path, threads_cluster, monkeypatch):
    simulate_module = sys.modules["fphint_kernels.simulate"]  # fk.simulate is the function

    def fail(scenario, **kwargs):
        raise fk.ScenarioError("simulated failure")

    monkeypatch.setattr(simulate_module, "simulate", fail)
    with pytest.raises(fk.FphintError, match=r"workload=idle, hint=false, seed=0: simulated"):
        sw.sweep(
            {**SMALL, "seeds": 1, "grid": {"workload": ["idle"], "hint": [False]}},
            scheduler=threads_cluster,
            cache_dir=tmp_path / "c",
            progress=False,
            kernel_cache=False,
        )


def test_resume_after_an_interruption(tmp_path, monkeypatch):
    spec = SMALL
    cache_dir = tmp_path / "cache"
    real_put = sw.PointCache.put
    puts = []

    def put_then_interrupt(self, key, entry):
        path = real_put(self, key, entry)
        puts.append(key)
        if len(puts) == 3:
            raise KeyboardInterrupt
        return path

    monkeypatch.setattr(sw.PointCache, "put", put_then_interrupt)
    with pytest.raises(sw.SweepInterrupted) as err:
        sw.sweep(spec, workers=2, cache_dir=cache_dir, out=tmp_path / "r.nc", progress=False)
    assert (err.value.done, err.value.total) == (3, 8)
    assert "3 of 8 points finished" in str(err.value)
    assert not (tmp_path / "r.nc").exists()
    assert multiprocessing.active_children() == []  # the local cluster is closed
    assert len(sw.PointCache(cache_dir)) == 3
    monkeypatch.setattr(sw.PointCache, "put", real_put)

    ds = sw.sweep(spec, workers=2, cache_dir=cache_dir, out=tmp_path / "r.nc", progress=False)
    assert ds.attrs["points_cached"] == 3 and ds.attrs["points_computed"] == 5
    assert len(sw.PointCache(cache_dir)) == 8
    _check_small(ds)
    assert load_dataset(tmp_path / "r.nc").sizes == ds.sizes
    # the points computed before the interruption are the ones reused
    plan = sw.expand(spec)
    first = {p.key: p for p in plan.points if p.key in puts}
    for p in first.values():
        entry = sw.PointCache(cache_dir).get(p.key)
        assert entry["scenario"] == sw.scenario_fields(p.scenario)
        assert float(ds["total-time"].values[p.index]) == entry["summary"]["total-time"]


def test_interrupt_leaves_no_task_on_a_shared_cluster(tmp_path, threads_cluster, monkeypatch):
    from distributed import Client

    def interrupt(self, key, entry):
        raise KeyboardInterrupt

    monkeypatch.setattr(sw.PointCache, "put", interrupt)
    with pytest.raises(sw.SweepInterrupted):
        sw.sweep(SMALL, scheduler=threads_cluster, cache_dir=tmp_path / "c", kernel_cache=False)
    with Client(threads_cluster) as client:
        deadline = time.monotonic() + 10
        while client.run_on_scheduler(lambda dask_scheduler: len(dask_scheduler.tasks)):
            assert time.monotonic() < deadline, "tasks left on the scheduler"
            time.sleep(0.1)


# --------------------------------------------------------------------------------------------
# the command, and a separately started scheduler and worker
# --------------------------------------------------------------------------------------------


def _write_spec(path, spec):
    import yaml

    path.write_text(yaml.safe_dump(spec))
    return path


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--workers", "0"], ["--workers"]),
        (["--workers", "two"], ["--workers", "whole number"]),
        (["--workers", "2", "--scheduler", "tcp://127.0.0.1:1"], ["--workers", "local"]),
        (["--scheduler", "tcp://127.0.0.1:1"], ["cannot connect", "127.0.0.1:1"]),
    ],
)
def test_cli_errors(args, words, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(sw, "CONNECT_TIMEOUT", "1s")
    spec = _write_spec(tmp_path / "s.yaml", SMALL)
    with pytest.raises(SystemExit) as exc:
        raise SystemExit(main(["sweep", str(spec), "--cache", str(tmp_path / "c"), *args]))
    assert exc.value.code == 2
    captured = capsys.readouterr()
    err = captured.err
    assert err.count("\n") == 1 and captured.out == "" and "Traceback" not in err
    for w in words:
        assert w in err


def test_cli_bad_spec(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(sw, "_connect", _no_cluster)
    spec = _write_spec(tmp_path / "s.yaml", {"grid": {"memory": ["256M", "x"]}})
    assert main(["sweep", str(spec)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("fphint sweep: error: grid.memory 'x'") and err.count("\n") == 1
    assert main(["sweep", str(tmp_path / "missing.yaml")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_example_spec_is_valid():
    plan = sw.expand(ROOT / "data" / "sweeps" / "example.yaml")
    assert len(plan.points) == 48
    bench = sw.expand(ROOT / "benchmarks" / "sweep_1000.yaml")
    assert len(bench.points) == 1000


#: the modules behind ``python -m dask scheduler`` and ``python -m dask worker``
DASK_CLI = ("dask.__main__", "distributed.cli.dask_scheduler", "distributed.cli.dask_worker")


@pytest.fixture
def dask_cluster_processes(tmp_path):
    """``dask scheduler`` and one ``dask worker``, separate processes on 127.0.0.1."""
    import importlib.util

    missing = [m for m in DASK_CLI if importlib.util.find_spec(m) is None]
    if missing:
        pytest.skip(f"the dask command line is not installed (no {', '.join(missing)})")
    sched_file = tmp_path / "scheduler.json"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    common = {"env": env, "stdout": subprocess.DEVNULL, "stderr": subprocess.PIPE}
    procs = []
    scheduler = subprocess.Popen(
        [sys.executable, "-m", "dask", "scheduler", "--host", "127.0.0.1", "--port", "0",
         "--no-dashboard", "--scheduler-file", str(sched_file)],
        **common,
    )  # fmt: skip
    procs.append(scheduler)
    try:
        deadline = time.monotonic() + 60
        while not sched_file.exists() or not sched_file.read_text().strip():
            assert scheduler.poll() is None, scheduler.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, "dask scheduler did not start"
            time.sleep(0.2)
        address = json.loads(sched_file.read_text())["address"]
        worker = subprocess.Popen(
            [sys.executable, "-m", "dask", "worker", "--scheduler-file", str(sched_file),
             "--host", "127.0.0.1", "--nworkers", "1", "--nthreads", "1", "--no-dashboard"],
            **common,
        )  # fmt: skip
        procs.append(worker)
        yield address
    finally:
        for p in reversed(procs):
            p.send_signal(signal.SIGINT)
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
            p.stderr.close()


def test_cli_against_a_separately_started_scheduler_and_worker(
    tmp_path, capsys, dask_cluster_processes
):
    address = dask_cluster_processes
    assert address.startswith("tcp://127.0.0.1:")
    spec = _write_spec(tmp_path / "small.yaml", SMALL)
    out = tmp_path / "small.nc"
    argv = ["sweep", str(spec), "--scheduler", address, "--cache", str(tmp_path / "c")]
    assert main([*argv, "--out", str(out), "--no-progress"]) == 0
    assert capsys.readouterr().out == (
        f"wrote {out}: 8 points (8 computed, 0 from the cache) in "
        f"{load_dataset(out).attrs['wall_time_s']:.1f} s\n"
    )
    ds = load_dataset(out)
    _check_small(ds)
    assert ds.attrs["scheduler"] == address
    # a second run: nothing to compute; the default output name is the spec's
    os.chdir(tmp_path)
    assert main([*argv, "--no-progress"]) == 0
    assert "8 points (0 computed, 8 from the cache)" in capsys.readouterr().out
    assert (load_dataset(tmp_path / "small.nc")["total-time"] == ds["total-time"]).all()


@pytest.mark.slow
def test_cli_interrupted_by_sigint_resumes(tmp_path):
    # points that take about a second each when compiled, so that the signal comes mid-way
    spec = _write_spec(
        tmp_path / "slow.yaml",
        {
            "memory": "512M",
            "workload": "dirty-loop",
            "max_time": "60s",
            "grid": {"hint": [False, True]},
            "seeds": 4,
        },
    )
    cache = tmp_path / "cache"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    cmd = [sys.executable, "-m", "fphint_kernels.cli", "sweep", str(spec), "--workers", "2",
           "--cache", str(cache), "--out", str(tmp_path / "slow.nc"), "--no-progress"]  # fmt: skip
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while len(sw.PointCache(cache)) < 2:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    done = len(sw.PointCache(cache))
    assert 2 <= done < 8
    assert err.strip().endswith("run the same sweep again to resume"), err
    assert "Traceback" not in err
    assert not (tmp_path / "slow.nc").exists()
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    assert f"8 points ({8 - done} computed, {done} from the cache)" in res.stdout
