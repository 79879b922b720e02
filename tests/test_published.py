"""The published figures (data/published/) and how the reproduction reads them."""

import csv
import importlib
import re
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import fphint_kernels as fk
from fphint_kernels import experiments, published
from fphint_kernels.config import data_dir

PKG = Path(fk.__file__).resolve().parent
CSV = data_dir() / "published" / published.PUBLISHED_FILE


def raw_rows(path=CSV):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_every_row_is_tidy_and_complete():
    rows = published.load_published()
    assert len(rows) == len(raw_rows())
    ids = [r["id"] for r in rows]
    assert len(set(ids)) == len(ids)
    for r in rows:
        assert r["url"].startswith("https://")
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", r["date"])
        assert r["vcpus"] == 4 and r["max_bandwidth"] == "100G"
        fk.Workload.load(r["workload"])
    # every configuration has both modes, for each metric it reports
    by = {}
    for r in rows:
        by.setdefault(
            (r["patch_version"], r["guest_ram"], r["downtime_limit"], r["workload"], r["metric"]),
            set(),
        ).add(r["mode"])
    assert all(modes == {"hint", "legacy"} for modes in by.values())
    # the letters: v36 at 8 GiB / 2 s, v37 at 8 and 128 GiB / 400 ms, idle and kernel build
    tt = {k[:4] for k in by if k[4] == "total-time"}
    assert tt == {
        ("v36", "8G", "2s", "idle"),
        ("v36", "8G", "2s", "kernel-build"),
        ("v37", "8G", "400ms", "idle"),
        ("v37", "8G", "400ms", "kernel-build"),
        ("v37", "128G", "400ms", "idle"),
        ("v37", "128G", "400ms", "kernel-build"),
    }
    assert {k[:4] for k in by if k[4] == "build-time"} == {
        ("v36", "8G", "2s", "kernel-build"),
        ("v37", "8G", "400ms", "kernel-build"),
        ("v37", "128G", "400ms", "kernel-build"),
    }


def test_hinting_is_faster_in_every_published_pair():
    rows = published.load_published()
    val = {r["id"]: r["value"] for r in rows if r["metric"] == "total-time"}
    for rid, v in val.items():
        if "/hint/" in rid:
            assert v < val[rid.replace("/hint/", "/legacy/")]


def test_the_package_holds_no_published_number():
    numbers = {str(int(float(r["value"]))) for r in raw_rows()}
    pattern = re.compile(r"\b(" + "|".join(sorted(numbers)) + r")\b")
    hits = []
    for path in PKG.rglob("*.py"):
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if pattern.search(line):
                hits.append(f"{path.name}:{n}: {line.strip()}")
    assert not hits, hits


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda r: r.update(mode="optimization"), "mode must be hint or legacy"),
        (lambda r: r.update(unit="s"), "with unit"),
        (lambda r: r.update(value="fast"), "must be numbers"),
        (lambda r: r.update(workload="gaming"), "unknown workload"),
    ],
)
def test_bad_rows_are_one_line_errors(tmp_path, edit, message):
    rows = raw_rows()
    edit(rows[0])
    path = tmp_path / "bad.csv"
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    with pytest.raises(fk.FphintError, match=message):
        published.load_published(path)


def fake_simulate(sc, profile=None, **kw):
    """Stand-in engine for plumbing tests (also used by test_experiments and test_calibrate):
    total-time is a simple function of the scenario and of the profile's zero_page_ns."""
    prof = profile or sc.load_profile()
    t = sc.memory / 2**20 * (0.1 if sc.hint else 0.3) * prof.params["zero_page_ns"] / 500
    t += sc.seed
    return xr.Dataset({
        "status": ((), "completed"),
        "total-time": ((), t, {"units": "ms"}),
        "lost-pages": ((), 0),
        "hinted-pages": ((), 1000 if sc.hint else 0),
        "guest-overhead-time": ((), 3.0 if sc.hint else 1.0),
        "held-pages-max": ((), 1000 if sc.hint else 0),
    })  # fmt: skip


def test_the_reproduction_reads_the_published_file(tmp_path, monkeypatch):
    """Change the published numbers on disk: the reproduction must report the changed ones."""
    rows = raw_rows()
    for r in rows:
        r["value"] = str(float(r["value"]) * 3 + 1)
    path = tmp_path / "figures.csv"
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    # fk.simulate is the function; the engine module is in sys.modules
    monkeypatch.setattr(
        importlib.import_module("fphint_kernels.simulate"), "simulate", fake_simulate
    )
    res = experiments.reproduce(2, published=path, progress=False, fast=False)
    table = experiments.table(res)
    want = {
        published.row_id(dict(r, value=float(r["value"]))): float(r["value"])
        for r in rows
        if r["metric"] == "total-time"
    }
    got = {t["row"]: t["published-ms"] for t in table}
    assert got == pytest.approx(want)
    for t in table:
        sim = t["simulated-ms"]
        assert t["error-pct"] == pytest.approx(
            (sim - t["published-ms"]) / t["published-ms"] * 100, abs=0.06
        )
    # build times come from the same file
    bt = {b["config"]: b for b in experiments.build_time_table(res)}
    v36 = [r for r in rows if r["metric"] == "build-time" and r["patch_version"] == "v36"]
    assert bt["v36 8G 2s kernel-build"]["published-hint-s"] == pytest.approx(
        float(next(r["value"] for r in v36 if r["mode"] == "hint"))
    )
    assert np.all(res["seed"].values == [1, 2])
