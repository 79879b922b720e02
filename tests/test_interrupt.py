"""Ctrl-C and SIGTERM stop ``fphint simulate`` and ``fphint reproduce`` within a second, with
exit code 130 and no partial output; results are whole or absent."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fphint_kernels.io import MANIFEST, publish_folder

ROOT = Path(__file__).resolve().parent.parent

#: runs the command's main() once the kernels are compiled (or loaded from the cache), saying
#: "ready" first, so that the signal lands in the simulation and not in the compiler
RUNNER = """
import sys
from fphint_kernels.cli import _enable_kernel_cache, main
_enable_kernel_cache()
from fphint_kernels.simulate import warm_up
warm_up()
print("ready", flush=True)
sys.exit(main())  # as the fphint command does: the arguments from sys.argv
"""


def _start(args, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "FPHINT_NUMBA_CACHE": "1"}
    env.setdefault("NUMBA_CACHE_DIR", str(tmp_path / "numba"))
    p = subprocess.Popen(
        [sys.executable, "-c", RUNNER, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    line = p.stdout.readline()  # blocks until the kernels are there (at most one compile)
    assert line.strip() == "ready", p.stderr.read()
    return p


def _stop(p, sig, after_s):
    time.sleep(after_s)
    assert p.poll() is None, "the command ended before the signal"
    t0 = time.perf_counter()
    p.send_signal(sig)
    try:
        code = p.wait(timeout=30)
    except subprocess.TimeoutExpired:  # pragma: no cover - the failure this test catches
        p.kill()
        raise
    took = time.perf_counter() - t0
    err = p.stderr.read()
    p.stdout.close()
    p.stderr.close()
    return code, took, err


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_stops_simulate(sig, tmp_path):
    out = tmp_path / "runs" / "run.nc"
    p = _start(
        ["simulate", "--memory", "512M", "--workload", "dirty-loop", "--max-time", "1000min",
         "--out", str(out)],
        tmp_path,
    )  # fmt: skip
    code, took, err = _stop(p, sig, 1.5)
    print(f"simulate: {signal.Signals(sig).name} -> exit {code} in {took:.3f} s")
    assert code == 130, err
    assert took < 1.0, took
    assert "Traceback" not in err and "interrupted" in err
    assert not out.exists()
    assert not out.parent.exists() or not list(out.parent.iterdir())


def test_sigint_stops_reproduce_and_keeps_the_last_run(tmp_path):
    out = tmp_path / "results"
    out.mkdir()
    old = tmp_path / "old"
    old.mkdir()
    (old / "report.md").write_text("the previous run\n")
    (old / "table.json").write_text("[]\n")
    publish_folder(old, out, {"what": "an earlier run"})
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    p = _start(["reproduce", "--seeds", "40", "--jobs", "2", "--out", str(out)], tmp_path)
    code, took, err = _stop(p, signal.SIGINT, 2.0)
    print(f"reproduce: SIGINT -> exit {code} in {took:.3f} s")
    assert code == 130, err
    assert took < 1.0, took
    assert "Traceback" not in err
    # the previous run is there as it was, with its manifest; nothing of the new one
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_publish_folder_replaces_a_run_whole(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("not ours\n")
    first = tmp_path / "a"
    first.mkdir()
    (first / "x.txt").write_text("1")
    (first / "y.txt").write_text("1")
    publish_folder(first, out, {"run": 1})
    second = tmp_path / "b"
    second.mkdir()
    (second / "x.txt").write_text("2")
    written = publish_folder(second, out, {"run": 2})
    assert written[-1].name == MANIFEST
    names = sorted(p.name for p in out.iterdir())
    assert names == [MANIFEST, "notes.txt", "x.txt"]  # y.txt of run 1 is gone
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["run"] == 2 and list(manifest["files"]) == ["x.txt"]
    assert (out / "x.txt").read_text() == "2"
