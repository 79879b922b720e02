"""A corpus of bad inputs, kept as a test: every bad command line gets exit code 2 and one line
on stderr naming the argument; every bad call of the Python API raises ``ScenarioError``
(``TypeError`` only for a misuse of Python itself).  Nothing hangs, nothing runs a simulation.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import fphint_kernels as fk
from fphint_kernels.cli import main
from fphint_kernels.config import HostProfile
from fphint_kernels.errors import ScenarioError

ROOT = Path(__file__).resolve().parent.parent

# ---- malformed data files ---------------------------------------------------------------------

V36 = json.loads((ROOT / "data" / "profiles" / "v36.json").read_text())
GUEST = json.loads((ROOT / "data" / "guests" / "testbed-2018.json").read_text())


def _profile(**changes):
    raw = json.loads(json.dumps(V36))
    raw["params"].update(changes)
    return json.dumps(raw)


#: file name -> text of a data file that must be refused in one line
BAD_FILES = {
    "truncated.json": '{"params": {"zero_page_ns": 1',
    "list.json": "[1, 2, 3]",
    "null.json": "null",
    "string.json": '"v36"',
    "empty.json": "",
    "binary.json": "\x00\x01\x02",
    "params-list.json": '{"params": [1, 2]}',
    "nan.json": _profile(zero_page_ns=float("nan")),
    "huge.json": _profile(cpu_speed="1e400"),
    "text-value.json": _profile(normal_page_ns="fast"),
    "null-value.json": _profile(normal_page_ns=None),
    "negative.json": _profile(scan_word_ns=-1),
    "zero-speed.json": _profile(cpu_speed=0),
    "unknown-key.json": _profile(warp_drive=1),
    "empty-key.json": _profile(**{"": 1}),
    "bool-value.json": _profile(cpu_speed=True),
    "list-value.json": _profile(cpu_speed=[1]),
}
GUEST_BAD = {
    "guest-unknown.json": json.dumps({"params": {"warp": 1}}),
    "guest-text.json": json.dumps({"params": {"hint_block_us": "slow"}}),
    "guest-null.json": json.dumps({"params": {"base_used": None}}),
    "guest-huge.json": json.dumps({"params": {"base_used": "1e300E"}}),
    "guest-list.json": json.dumps([GUEST]),
    "guest-zero-start.json": json.dumps({"params": {"hint_start_ms": 0}}),
}


@pytest.fixture(scope="module")
def bad_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("bad-data")
    for name, text in {**BAD_FILES, **GUEST_BAD}.items():
        (d / name).write_text(text)
    (d / "a-file").write_text("not a folder")
    return d


# ---- the command line -------------------------------------------------------------------------

#: (what the message must name, arguments after ``fphint``); "{d}" is the folder of bad files
SIM = "simulate"
CLI_CASES = []


def _add(name, *args):
    CLI_CASES.append((name, list(args)))


for v in ("", "abc", "-1G", "1e300E", "1e400", "nan", "inf", "0", "1Q", "8GG", "0x10", "8 G B",
          "15M", "17M", "5T", "1E", "--", "8G8", "1,5G", "½G"):  # fmt: skip
    _add("memory", SIM, "--memory", v)
for v in ("", "abc", "-1M", "1e300E", "1e400", "nan", "0", "1", "2P", "1Q"):
    _add("max-bandwidth", SIM, "--max-bandwidth", v)
for v in ("", "abc", "-5ms", "1e400s", "nan", "0", "5h", "2days", "1e12s", "10 mins", "inf"):
    _add("downtime-limit", SIM, "--downtime-limit", v)
for v in ("", "abc", "-5ms", "1e400s", "nan", "0", "0.1ms", "1e12s", "2days", "1441min", "inf"):
    _add("max-time", SIM, "--max-time", v)
for v in ("150%", "-1%", "abc", "", "nan", "1e400", "2"):
    _add("fill", SIM, "--workload", "fill-free", "--fill", v)
_add("fill", SIM, "--fill", "30%")
_add("fill", SIM, "--workload", "dirty-loop", "--fill", "30%")
for v in ("abc", "-1M", "1e300E", "2P", "nan"):
    _add("dirty-bytes", SIM, "--workload", "dirty-loop", "--dirty-bytes", v)
_add("dirty-bytes", SIM, "--dirty-bytes", "64M")
_add("dirty-bytes", SIM, "--workload", "kernel-build", "--dirty-bytes", "64M")
for v in ("0", "abc", "-1ms", "2days", "nan"):
    _add("dirty-interval", SIM, "--workload", "dirty-loop", "--dirty-interval", v)
_add("dirty-interval", SIM, "--dirty-interval", "50ms")
for v in ("abc", "-1", "1e6", "nan", "inf", "", "101"):
    _add("intensity", SIM, "--intensity", v)
for v in ("-3", "x", "1.5", "99999999999999999999999", "", "1e3"):
    _add("seed", SIM, "--seed", v)
for v in ("0", "-1", "x", "1025", "2.5", ""):
    _add("vcpus", SIM, "--vcpus", v)
for opt in ("--hint", "--init-on-alloc", "--auto-converge"):
    for v in ("maybe", "", "2", "onn"):
        _add(opt.lstrip("-"), SIM, opt, v)
_add("page-poison", SIM, "--page-poison", "maybe")
_add("hint-release", SIM, "--hint-release", "never")
_add("fault", SIM, "--fault", "nope")
_add("fault", SIM, "--fault", "")
for v in ("nope", "", "x" * 300, "../../etc/passwd", "/nonexistent/p.json", "a b", "v36\n"):
    _add("profile", SIM, "--profile", v)
    _add("workload", SIM, "--workload", v)
for name in BAD_FILES:
    _add("profile", SIM, "--profile", "{d}/" + name)
for name in ("truncated.json", "list.json", "null.json", "empty.json", "params-list.json"):
    _add("workload", SIM, "--workload", "{d}/" + name)
for v in ("nope", "", "x" * 300, "../guests/testbed-2018"):
    _add("guest", SIM, "--guest", v)
for name in GUEST_BAD:
    _add("guest", SIM, "--guest", "{d}/" + name)
for kv, name in (
    ("hint_block_us", "guest-param"),
    ("=3", "guest-param"),
    ("warp=1", "warp"),
    ("hint_block_us=slow", "hint_block_us"),
    ("base_used=1e300E", "base_used"),
    ("write_fault_ns=nan", "write_fault_ns"),
    ("alloc_low_first=2", "alloc_low_first"),
    ("memmap_bytes_per_page=1e9", "memmap_bytes_per_page"),
):
    _add(name, SIM, "--guest-param", kv)
for kv, name in (
    ("jobs", "workload-param"),
    ("=3", "workload-param"),
    ("", "workload-param"),
    ("nope=1", "nope"),
    ("jobs=-1", "jobs"),
    ("jobs=1.5", "jobs"),
    ("jobs=1e9", "jobs"),
    ("jobs=", "jobs"),
    ("proc_rss_sigma=1000", "proc_rss_sigma"),
    ("intensity=1e6", "intensity"),
    ("fill=2", "fill"),
    ("anon_order=11", "anon_order"),
    ("dirty_interval_ms=5", "dirty_interval_ms"),
    ("proc_rss_mean=64M", "proc_rss_mean"),
    ("dirty_bytes=1e300E", "dirty_bytes"),
    ("background_dirty_pages_per_s=nan", "background_dirty_pages_per_s"),
    ("background_dirty_pages_per_s=1e300", "background_dirty_pages_per_s"),
    ("pagecache_order=x", "pagecache_order"),
    ("pagecache_rate=-4M", "pagecache_rate"),
    ("base_used=1e300E", "base_used"),
    ("proc_lifetime_ms=0", "proc_lifetime_ms"),
    ("x" * 300 + "=1", "unknown"),
):
    _add(name, SIM, "--workload-param", kv)
_add("proc_rss_sigma", SIM, "--workload", "kernel-build", "--workload-param", "proc_rss_sigma=4")
_add("compact", SIM, "--compact")
_add("out", SIM, "--json", "--out", "{d}")
_add("out", SIM, "--json", "--out", "{d}/a-file/run.nc")
_add("out", SIM, "--json", "--out", "")
_add("nope", SIM, "--nope")
_add("unrecognized", SIM, "extra")
_add("memory", SIM, "--memory")
_add("command", "nope")
_add("command")
for v in ("-3", "0", "1000", "x", "1.5"):
    _add("jobs", "reproduce", "--jobs", v)
for v in ("0", "-1", "5000", "x"):
    _add("seeds", "reproduce", "--seeds", v)
_add("out", "reproduce", "--out", "{d}/a-file")
_add("out", "reproduce", "--out", "{d}/a-file/sub")
_add("out", "reproduce", "--out", "")
_add("out-dir", "calibrate", "--out-dir", "{d}/a-file")
_add("out", "sweep", str(ROOT / "data" / "sweeps" / "example.yaml"), "--out", "{d}/a-file/x.nc")
_add("profile", "reproduce", "--profile", "nope")
_add("profile", "reproduce", "--profile", "x" * 300)


def _one_line_exit_2(capsys, argv):
    t0 = time.perf_counter()
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse
        code = exc.code
    elapsed = time.perf_counter() - t0
    err = capsys.readouterr()
    return code, err.out, err.err, elapsed


def test_cli_corpus_is_large_enough():
    assert len(CLI_CASES) >= 150


@pytest.fixture
def alarm():
    """Fail instead of hanging: SIGALRM after 30 s."""

    def fail(signum, frame):
        raise TimeoutError("a bad input hung")

    old = signal.signal(signal.SIGALRM, fail)
    signal.alarm(30)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)


def _words(name: str) -> list[str]:
    return {name, name.replace("-", "_"), name.replace("_", "-")}


@pytest.mark.parametrize("name,args", CLI_CASES, ids=[f"{i}" for i in range(len(CLI_CASES))])
def test_bad_command_line(name, args, bad_dir, capsys, alarm, monkeypatch):
    monkeypatch.setenv("FPHINT_NUMBA_CACHE", "0")
    argv = [a.replace("{d}", str(bad_dir)) for a in args]
    code, out, err, elapsed = _one_line_exit_2(capsys, argv)
    assert code == 2, (argv, code, err)
    assert out == ""
    lines = err.strip("\n").split("\n")
    assert len(lines) == 1, err
    assert "Traceback" not in err and "error" in lines[0]
    assert any(w in lines[0].lower() for w in _words(name)), (name, lines[0])
    assert elapsed < 10


@pytest.mark.parametrize(
    "args",
    [
        ["simulate", "--memory", "1e300E"],
        ["simulate", "--max-time", "1e12s"],
        ["simulate", "--workload-param", "proc_rss_sigma=1000"],
        ["simulate", "--fill", "30%", "--workload", "idle"],
        ["reproduce", "--jobs", "-3"],
    ],
)
def test_bad_command_line_subprocess(args):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "FPHINT_NUMBA_CACHE": "0"}
    p = subprocess.run(
        [sys.executable, "-m", "fphint_kernels.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=ROOT,
    )
    assert p.returncode == 2, p.stderr
    assert p.stdout == "" and len(p.stderr.strip().splitlines()) == 1, p.stderr


# ---- the Python API ---------------------------------------------------------------------------

SC = fk.Scenario(memory="256M", workload="idle")

#: (label, call) pairs: each must raise ScenarioError
API_CASES = [
    ("memory list", lambda: fk.Scenario(memory=[1])),
    ("memory None", lambda: fk.Scenario(memory=None)),
    ("memory huge", lambda: fk.Scenario(memory=1e300)),
    ("memory inf", lambda: fk.Scenario(memory=float("inf"))),
    ("memory nan", lambda: fk.Scenario(memory=float("nan"))),
    ("memory negative", lambda: fk.Scenario(memory=-1)),
    ("memory bool", lambda: fk.Scenario(memory=True)),
    ("memory np bool", lambda: fk.Scenario(memory=np.True_)),
    ("memory text", lambda: fk.Scenario(memory="1e300E")),
    ("memory odd", lambda: fk.Scenario(memory=(256 << 20) + 4096)),
    ("memory 5T", lambda: fk.Scenario(memory="5T")),
    ("bandwidth zero", lambda: fk.Scenario(max_bandwidth=0)),
    ("bandwidth dict", lambda: fk.Scenario(max_bandwidth={})),
    ("bandwidth huge", lambda: fk.Scenario(max_bandwidth="1E")),
    ("downtime nan", lambda: fk.Scenario(downtime_limit=float("nan"))),
    ("downtime zero", lambda: fk.Scenario(downtime_limit=0)),
    ("downtime 1e400", lambda: fk.Scenario(downtime_limit="1e400s")),
    ("max_time 1e9", lambda: fk.Scenario(max_time=1e9)),
    ("max_time tiny", lambda: fk.Scenario(max_time=1e-9)),
    ("max_time text", lambda: fk.Scenario(max_time="forever")),
    ("hint text", lambda: fk.Scenario(hint="yes")),
    ("hint int", lambda: fk.Scenario(hint=1)),
    ("init_on_alloc None", lambda: fk.Scenario(init_on_alloc=None)),
    ("auto_converge list", lambda: fk.Scenario(auto_converge=[])),
    ("poison", lambda: fk.Scenario(page_poison="maybe")),
    ("poison list", lambda: fk.Scenario(page_poison=["off"])),
    ("release", lambda: fk.Scenario(hint_release="never")),
    ("release dict", lambda: fk.Scenario(hint_release={})),
    ("vcpus zero", lambda: fk.Scenario(vcpus=0)),
    ("vcpus float", lambda: fk.Scenario(vcpus=2.0)),
    ("vcpus bool", lambda: fk.Scenario(vcpus=True)),
    ("vcpus big", lambda: fk.Scenario(vcpus=np.int64(5000))),
    ("vcpus text", lambda: fk.Scenario(vcpus="4")),
    ("seed negative", lambda: fk.Scenario(seed=-1)),
    ("seed huge", lambda: fk.Scenario(seed=2**64)),
    ("seed float", lambda: fk.Scenario(seed=1.5)),
    ("seed np float", lambda: fk.Scenario(seed=np.float64(3))),
    ("faults unknown", lambda: fk.Scenario(faults={"nope"})),
    ("faults letters", lambda: fk.Scenario(faults="late-dirty-logs")),
    ("faults int", lambda: fk.Scenario(faults=3)),
    ("faults unhashable", lambda: fk.Scenario(faults=[["x"]])),
    ("workload None", lambda: fk.Scenario(workload=None)),
    ("workload path", lambda: fk.Scenario(workload="../profiles/v36")),
    ("workload long", lambda: fk.Scenario(workload="x" * 300)),
    ("workload unknown", lambda: fk.Scenario(workload="nope")),
    ("profile int", lambda: fk.Scenario(profile=36)),
    ("profile unknown", lambda: fk.Scenario(profile="nope")),
    ("guest unknown", lambda: fk.Scenario(guest="nope")),
    ("guest list", lambda: fk.Scenario(guest=["testbed-2018"])),
    ("workload_options text", lambda: fk.Scenario(workload_options="fill=1")),
    ("workload_options list", lambda: fk.Scenario(workload_options=[("fill", 1)])),
    ("workload_options key", lambda: fk.Scenario(workload_options={1: 2})),
    ("workload_options unknown", lambda: fk.Scenario(workload_options={"nope": 1})),
    ("workload_options sigma", lambda: fk.Scenario(workload_options={"proc_rss_sigma": 1000})),
    ("workload_options intensity", lambda: fk.Scenario(workload_options={"intensity": 1e6})),
    ("workload_options jobs", lambda: fk.Scenario(workload_options={"jobs": 1e9})),
    ("workload_options nan", lambda: fk.Scenario(workload_options={"fill": float("nan")})),
    ("workload_options bool", lambda: fk.Scenario(workload_options={"jobs": True})),
    ("workload_options None", lambda: fk.Scenario(workload_options={"jobs": None})),
    ("not applicable", lambda: fk.Scenario(workload_options={"dirty_interval_ms": 5})),
    ("not applicable 2", lambda: fk.Scenario(workload_options={"anon_order": 2})),
    ("guest_options text", lambda: fk.Scenario(guest_options="x")),
    ("guest_options unknown", lambda: fk.Scenario(guest_options={"warp": 1})),
    ("guest_options huge", lambda: fk.Scenario(guest_options={"base_used": "1e300E"})),
    ("guest_options inf", lambda: fk.Scenario(guest_options={"write_fault_ns": float("inf")})),
    ("workload needs memory", lambda: fk.Scenario(memory="64M", workload="kernel-build")),
    ("simulate not a scenario", lambda: fk.simulate({"memory": "1G"})),
    ("simulate step 1e-6", lambda: fk.simulate(SC, step_ms=1e-6)),
    ("simulate step text", lambda: fk.simulate(SC, step_ms="1")),
    ("simulate step nan", lambda: fk.simulate(SC, step_ms=float("nan"))),
    ("simulate trace zero", lambda: fk.simulate(SC, trace_interval_ms=0)),
    (
        "simulate trace tiny",
        lambda: fk.simulate(SC.replace(max_time="1440min"), step_ms=0.01, trace_interval_ms=0.01),
    ),  # fmt: skip
    ("simulate bins negative", lambda: fk.simulate(SC, page_map_bins=-1)),
    ("simulate bins float", lambda: fk.simulate(SC, page_map_bins=2.5)),
    ("simulate bins huge", lambda: fk.simulate(SC, page_map_bins=10**9)),
    ("simulate bins bool", lambda: fk.simulate(SC, page_map_bins=True)),
    ("simulate profile", lambda: fk.simulate(SC, profile="v36")),
    ("simulate guest", lambda: fk.simulate(SC, guest="testbed-2018")),
    ("simulate cancel", lambda: fk.simulate(SC, cancel=True)),
    ("profile from list", lambda: HostProfile.from_dict([1, 2])),
    ("profile inf", lambda: HostProfile.load("v36").with_params(cpu_speed=float("inf"))),
    ("profile speed 1e9", lambda: HostProfile.load("v36").with_params(cpu_speed=1e9)),
]


def test_api_corpus_is_large_enough():
    assert len(API_CASES) >= 60


@pytest.mark.parametrize("label,call", API_CASES, ids=[c[0] for c in API_CASES])
def test_bad_api_call(label, call, alarm):
    t0 = time.perf_counter()
    with pytest.raises(ScenarioError) as exc:
        call()
    assert "\n" not in str(exc.value)
    assert time.perf_counter() - t0 < 10


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_bad_profile_file_api(name, bad_dir):
    with pytest.raises(ScenarioError):
        fk.Scenario(memory="256M", profile=str(bad_dir / name))


@pytest.mark.parametrize("name", sorted(GUEST_BAD))
def test_bad_guest_file_api(name, bad_dir):
    with pytest.raises(ScenarioError):
        fk.Scenario(memory="256M", guest=str(bad_dir / name))


def test_python_misuse_is_a_type_error():
    with pytest.raises(TypeError):
        fk.Scenario(memroy="1G")  # a misspelt keyword
    with pytest.raises(TypeError):
        fk.simulate()


def test_numpy_scalars_are_accepted():
    sc = fk.Scenario(
        memory=np.int64(256 << 20),
        max_bandwidth=np.float64(1 << 30),
        downtime_limit=np.float32(300.0),
        hint=np.True_,
        init_on_alloc=np.False_,
        vcpus=np.int32(2),
        seed=np.uint64(5),
        workload_options={"intensity": np.float64(1.0)},
    )
    assert sc.vcpus == 2 and type(sc.vcpus) is int and sc.hint is True and sc.seed == 5
    assert sc == fk.Scenario(
        memory="256M",
        max_bandwidth="1G",
        hint=True,
        vcpus=2,
        seed=5,
        workload_options={"intensity": 1.0},
    )
    assert fk.Scenario(faults="late-dirty-log").faults == frozenset({"late-dirty-log"})
    ds = fk.simulate(sc, step_ms=np.float64(1.0), page_map_bins=np.int64(4))
    assert str(ds["status"].values) == "completed"
