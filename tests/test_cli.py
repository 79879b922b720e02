"""The fphint command: JSON and aligned text output, help with defaults, --version, feedback
on stderr, and one-line errors with exit code 2."""

import argparse
import json
import shutil
import subprocess
import sys

import pytest

import fphint_kernels as fk
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


def test_version_and_top_level_help(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"fphint {fk.__version__} (Python ") and "Numba" in out
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    assert "pre-copy live migration" in text and "free page hinting" in text
    for command in ("simulate", "reproduce", "calibrate", "qemu"):
        assert f"    {command}" in text  # listed, with its help on the same line
    assert "once, about 30 s" in text


@pytest.mark.parametrize("command", ["simulate", "reproduce", "calibrate"])
def test_every_option_shows_its_default(command, capsys):
    """Options with a value say their default (on|off switches as on/off), and only once."""
    from fphint_kernels.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices[command]
    with pytest.raises(SystemExit):
        main([command, "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for action in sub._actions:
        if action.nargs == 0 or action.default in (None, [], argparse.SUPPRESS):
            continue
        start = text.index(action.option_strings[-1] + " ", text.index("options:"))
        entry = text[start : start + 400]
        assert "default" in entry, action.option_strings
    assert "(default " not in text  # one style: "(default: X)"
    if command == "simulate":
        assert "--hint on|off shorthand: on = --hinting fph, off = --hinting none" in text
        assert "oracle (every free page skipped: the upper bound) (default: none)" in text
        assert "(default: 32M = 32 MiB/s" in text and "(default: 300ms" in text
        assert "(default: 10min)" in text and "(default: 60%)" in text


def test_text_result_is_aligned_with_units(capsys):
    assert main(["simulate", *SMALL, "--hint", "on", "--seed", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = {line.split()[0]: line for line in lines}
    assert rows["total-time"].split()[2] == "ms"
    assert rows["ram.transferred"].split()[2] == "MiB" and "bytes)" in rows["ram.transferred"]
    assert rows["ram.normal"].split()[2] == "pages"
    assert rows["scenario.max-bandwidth"].split()[1:] == ["1", "GiB/s"]
    assert rows["lost-pages"].split()[1:3] == ["0", "pages"]
    # numbers end in one column, their units start in the next
    ends = {rows[k].index(rows[k].split()[1]) + len(rows[k].split()[1]) for k in
            ("total-time", "ram.normal", "hinted-pages", "cpu-throttle-percentage")}  # fmt: skip
    assert len(ends) == 1


def test_not_converged_says_so_and_lost_pages_not_checked(capsys):
    args = ["simulate", *SMALL, "--max-time", "50ms"]
    assert main([*args, "--json"]) == 0
    captured = capsys.readouterr()
    out = json.loads(captured.out)
    assert out["status"] == "not-converged"
    assert out["lost-pages"] is None and out["stale-free-pages"] is None
    assert out["downtime"] is None
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("fphint: not converged: ")
    assert "pages still pending" in err[0] and "lost-pages not checked" in err[0]
    assert main(args) == 0
    text = capsys.readouterr().out
    lost = next(line for line in text.splitlines() if line.startswith("lost-pages"))
    assert "not checked (the migration did not complete)" in lost


def test_auto_converge_reported(capsys):
    """cpu-throttle-percentage is part of the result (0 without auto-converge)."""
    assert main(["simulate", *SMALL, "--json", "--compact"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["cpu-throttle-percentage"] == 0 and out["scenario"]["auto-converge"] is False


def test_compiling_line_before_a_cold_compile(monkeypatch, capsys):
    """The command says once, on stderr, that the kernels are about to compile."""
    from fphint_kernels import feedback

    monkeypatch.setattr(feedback, "_announced", False)
    monkeypatch.setattr(feedback, "will_compile", lambda: True)
    assert main(["simulate", *SMALL, "--json"]) == 0
    err = capsys.readouterr().err
    assert err == f"fphint: {feedback.COMPILING}\n"
    assert main(["simulate", *SMALL, "--json"]) == 0  # once per process
    assert capsys.readouterr().err == ""
