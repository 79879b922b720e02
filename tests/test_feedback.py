"""Feedback while the kernels compile: one line before a cold compile (package logger, the
command's stderr), and progress bars that start after the compilation."""

from __future__ import annotations

import io
import logging
import os
import subprocess
import sys

import fphint_kernels as fk
from fphint_kernels import feedback


def test_one_log_line_before_a_cold_compile(monkeypatch, caplog):
    monkeypatch.setattr(feedback, "_announced", False)
    monkeypatch.setattr(feedback, "will_compile", lambda: True)
    with caplog.at_level(logging.INFO, logger="fphint_kernels"):
        fk.simulate(fk.Scenario(memory="256M"))
        fk.simulate(fk.Scenario(memory="256M"))
    said = [r for r in caplog.records if r.name == "fphint_kernels"]
    assert [r.getMessage() for r in said] == [feedback.COMPILING]
    assert said[0].levelno == logging.INFO


def test_nothing_said_when_nothing_compiles(monkeypatch, caplog):
    monkeypatch.setattr(feedback, "_announced", False)
    monkeypatch.setattr(feedback, "will_compile", lambda: False)
    with caplog.at_level(logging.INFO, logger="fphint_kernels"):
        assert feedback.announce_compile() is False
    assert not caplog.records


def test_the_package_handler_prints_only_where_logging_is_not_configured(monkeypatch):
    handler = next(h for h in feedback.LOGGER.handlers if isinstance(h, feedback._StderrHandler))
    err = io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    record = logging.LogRecord("fphint_kernels", logging.INFO, __file__, 1, "hello", (), None)
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", [])
    handler.handle(record)
    assert err.getvalue() == "hello\n"
    monkeypatch.setattr(root, "handlers", [logging.NullHandler()])  # the application decides
    handler.handle(record)
    assert err.getvalue() == "hello\n"


def test_a_fresh_process_says_it_compiles(tmp_path):
    """A plain script, no logging set up, no kernel cache: the kernels are cold, and the line
    is printed on stderr by the package's own handler, once (asked twice)."""
    code = (
        "from fphint_kernels import feedback\n"
        "import sys\n"
        "print(feedback.will_compile())\n"
        "feedback.announce_compile()\n"
        "feedback.announce_compile()\n"
    )
    env = {"PATH": "/usr/bin:/bin", "FPHINT_NUMBA_CACHE": "0", "HOME": str(tmp_path)}
    for key in ("PYTHONPATH", "NUMBA_DISABLE_JIT"):
        if key in os.environ:
            env[key] = os.environ[key]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    jit = os.environ.get("NUMBA_DISABLE_JIT") != "1"  # without the JIT nothing compiles
    assert out.stdout == f"{jit}\n"
    assert out.stderr == (feedback.COMPILING + "\n" if jit else "")


def test_warm_up_compiles_once(monkeypatch):
    import importlib

    engine = importlib.import_module("fphint_kernels.simulate")  # fk.simulate is the function
    calls = []
    monkeypatch.setattr(engine, "kernels_cold", lambda: not calls)
    monkeypatch.setattr(engine, "simulate", lambda *a, **k: calls.append((a, k)))
    monkeypatch.setattr(feedback, "will_compile", lambda: False)
    assert engine.warm_up() is True and len(calls) == 1
    assert engine.warm_up() is False and len(calls) == 1
