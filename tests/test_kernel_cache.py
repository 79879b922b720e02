"""The on-disk kernel cache never returns the results of other code: it is keyed on the content
of every kernel source file and on the versions of Python, NumPy, Numba and llvmlite."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from fphint_kernels import _numba

ROOT = Path(__file__).resolve().parent.parent


def test_stamp_follows_sources_and_versions(tmp_path, monkeypatch):
    folder = tmp_path / "kernels"
    shutil.copytree(_numba.KERNELS, folder)
    first = _numba._kernels_stamp(folder)
    assert _numba._kernels_stamp(folder) == first
    layout = folder / "layout.py"
    layout.write_text(layout.read_text().replace("ZERO_RECORD = 9", "ZERO_RECORD = 10"))
    assert _numba._kernels_stamp(folder) != first
    changed = _numba._kernels_stamp(folder)
    import llvmlite
    import numba

    monkeypatch.setattr(numba, "__version__", numba.__version__ + ".other")
    assert _numba._kernels_stamp(folder) != changed
    monkeypatch.undo()
    monkeypatch.setattr(llvmlite, "__version__", llvmlite.__version__ + ".other")
    assert _numba._kernels_stamp(folder) != changed


def _transferred(pkg: Path, cache: Path, env_switch: bool = True) -> int:
    """ram.transferred of a small run of the package in ``pkg``, caching its kernels in
    ``cache``: switched on by FPHINT_NUMBA_CACHE=1, or by the command's own default."""
    env = {**os.environ, "PYTHONPATH": str(pkg), "FPHINT_DATA": str(ROOT / "data")}
    env["NUMBA_CACHE_DIR"] = str(cache)
    env.pop("FPHINT_NUMBA_CACHE", None)
    if env_switch:
        env["FPHINT_NUMBA_CACHE"] = "1"
    p = subprocess.run(
        [sys.executable, "-m", "fphint_kernels.cli", "simulate", "--memory", "256M",
         "--max-bandwidth", "1G", "--json", "--compact"],
        capture_output=True, text=True, env=env, cwd=pkg, timeout=600,
    )  # fmt: skip
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)["ram"]["transferred"]


@pytest.mark.slow
def test_a_changed_kernel_constant_reaches_the_result(tmp_path):
    pkg = tmp_path / "pkg"
    shutil.copytree(
        ROOT / "fphint_kernels", pkg / "fphint_kernels",
        ignore=shutil.ignore_patterns("__pycache__"),
    )  # fmt: skip
    cache = tmp_path / "cache"
    before = _transferred(pkg, cache)
    assert any(cache.rglob("*.nbi")), "the command did not cache its kernels"
    # a zero page's record on the wire: 9 bytes -> 10 (kernels/layout.py, imported by the
    # kernels of other files, which is what Numba's own staleness check does not see)
    layout = pkg / "fphint_kernels" / "kernels" / "layout.py"
    text = layout.read_text()
    assert "ZERO_RECORD = 9" in text
    layout.write_text(text.replace("ZERO_RECORD = 9", "ZERO_RECORD = 10"))
    after = _transferred(pkg, cache, env_switch=False)
    assert after > before
    # and back: the first version's cache is used again, with its result
    layout.write_text(text)
    assert _transferred(pkg, cache) == before
