"""The fphint command: JSON output and one-line errors with exit code 2."""

import json
import shutil
import subprocess
import sys

import pytest

from fphint_kernels.cli import main

SMALL = ["--memory", "512M", "--max-bandwidth", "1G"]


def test_simulate_json(capsys):
    assert main(["simulate", *SMALL, "--hint", "on", "--seed", "1", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    for key in (
        "status",
        "total-time",
        "downtime",
        "setup-time",
        "dirty-sync-count",
        "ram",
        "hinted-pages",
        "lost-pages",
    ):
        assert key in out
    for key in ("transferred", "duplicate", "normal"):
        assert key in out["ram"]
    assert out["status"] == "completed"
    assert out["lost-pages"] == 0
    assert out["scenario"]["hint"] is True


def test_simulate_text_and_netcdf(capsys, tmp_path):
    path = tmp_path / "run.nc"
    assert main(["simulate", *SMALL, "--out", str(path)]) == 0
    text = capsys.readouterr().out
    assert "total-time" in text and "ram.transferred" in text
    import xarray as xr

    with xr.open_dataset(path) as ds:
        assert "total-time" in ds and ds["total-time"].attrs["units"] == "ms"


@pytest.mark.parametrize(
    "args",
    [
        ["--memory", "0"],
        ["--memory", "-1G"],
        ["--downtime-limit", "abc"],
        ["--max-bandwidth", "0"],
        ["--workload", "nope"],
        ["--memory", "100M", "--workload", "kernel-build"],
        ["--hint", "maybe"],
        ["--profile", "nope"],
        ["--seed", "-3"],
        ["--fill", "150%"],
        ["--workload-param", "jobs"],
        ["--fault", "nope"],
        ["--vcpus", "x"],
    ],
)
def test_bad_input_one_line_exit_2(args, capsys):
    with pytest.raises(SystemExit) as exc:
        code = main(["simulate", *args, "--json"])
        raise SystemExit(code)
    assert exc.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and "error" in lines[0]
    assert "Traceback" not in captured.err


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("fphint") is None, reason="console script not installed")
def test_console_script_help_and_error():
    out = subprocess.run(["fphint", "simulate", "--help"], capture_output=True, text=True)
    assert out.returncode == 0
    for opt in (
        "--memory",
        "--workload",
        "--downtime-limit",
        "--max-bandwidth",
        "--hint",
        "--init-on-alloc",
        "--profile",
        "--seed",
        "--json",
    ):
        assert opt in out.stdout
    bad = subprocess.run(["fphint", "simulate", "--memory", "-1G"], capture_output=True, text=True)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1


def test_module_entry_point():
    out = subprocess.run(
        [sys.executable, "-m", "fphint_kernels.cli", "--help"], capture_output=True, text=True
    )
    assert out.returncode == 0 and "simulate" in out.stdout


def test_module_entry_point_runs_main(monkeypatch, capsys):
    import runpy

    monkeypatch.setattr(sys, "argv", ["fphint", "simulate", "--memory", "-1G"])
    with pytest.raises(SystemExit) as exc:
        runpy.run_module("fphint_kernels.cli", run_name="__main__")
    assert exc.value.code == 2
    assert capsys.readouterr().err.startswith("fphint simulate: error: memory")
