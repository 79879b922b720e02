"""The hinting designs and cancellation: each design's defining behaviour, pinned."""

import json
import subprocess
import sys

import numpy as np
import pytest

import fphint_kernels as fk
from fphint_kernels.config import HINTING
from fphint_kernels.errors import ScenarioError
from fphint_kernels.kernels import layout as S
from fphint_kernels.kernels.balloon import reporting_step
from fphint_kernels.kernels.buddy import (
    buddy_add_range,
    fl_next,
    free_mask64,
    new_buddy,
    page_is_free,
)
from fphint_kernels.simulate import _Run

SMALL = dict(memory="512M", max_bandwidth="1G")
#: stale free memory, a migration long enough for the reporting worker (2 s delay) to run
FILLED = dict(
    memory="512M", workload="fill-free", workload_options={"fill": 0.6}, max_bandwidth="64M"
)


def val(ds, name):
    return ds[name].values.item()


# ---- the API --------------------------------------------------------------------------------


def test_hint_is_shorthand_for_hinting():
    assert fk.Scenario(hint=True) == fk.Scenario(hinting="fph")
    assert fk.Scenario(hint=False) == fk.Scenario(hinting="none")
    assert fk.Scenario(hinting="oracle").hint is False
    assert fk.Scenario(hinting="fph").hint is True
    with pytest.raises(ScenarioError, match="conflicts"):
        fk.Scenario(hint=True, hinting="reporting")
    with pytest.raises(ScenarioError, match="hinting"):
        fk.Scenario(hinting="balloon")
    # replace() of one of the two sets the other
    sc = fk.Scenario(hint=True)
    assert sc.replace(hinting="reporting").hinting == "reporting"
    assert fk.Scenario(hinting="reporting").replace(hint=True).hinting == "fph"


def test_scenario_options_validate_and_round_trip():
    sc = fk.Scenario(
        hinting="report-in-place", hint_order=8, init_on_free=True, poison_val=False,
        cancel_at="3s", cancel_cleanup="qemu-4.0",
    )  # fmt: skip
    assert sc.cancel_at == 3000.0 and sc.block_order == 8
    assert fk.Scenario.from_attrs(sc.to_attrs()) == sc
    assert fk.Scenario.from_attrs(fk.Scenario().to_attrs()) == fk.Scenario()
    assert fk.Scenario(hinting="reporting").block_order == 9
    assert fk.Scenario(hinting="fph").block_order == S.MAX_ORDER
    for bad in (
        dict(hint_order=11),
        dict(hint_order=True),
        dict(cancel_at="-1s"),
        dict(cancel_cleanup="qemu-9"),
        dict(init_on_free="yes"),
    ):
        with pytest.raises(ScenarioError):
            fk.Scenario(**bad)


def test_every_design_completes_and_loses_nothing():
    for h in HINTING:
        ds = fk.simulate(fk.Scenario(**SMALL, hinting=h, seed=3))
        assert val(ds, "status") == "completed", h
        assert val(ds, "lost-pages") == 0, h
        assert val(ds, "hinting") == h
        sent = val(ds, "ram-duplicate") + val(ds, "ram-normal")
        if h in ("none", "reporting"):
            assert val(ds, "skipped-pages") == 0
            assert sent >= val(ds, "nr-pages")  # everything went over the wire
        else:
            assert val(ds, "skipped-pages") > 0
            assert sent < val(ds, "nr-pages")


def test_cli_hinting_and_conflict():
    cmd = [sys.executable, "-m", "fphint_kernels.cli", "simulate", "--memory", "256M"]
    bad = subprocess.run(cmd + ["--hint", "on", "--hinting", "oracle"], capture_output=True,
                         text=True)  # fmt: skip
    assert bad.returncode == 2
    assert bad.stderr.strip().count("\n") == 0 and "conflicts" in bad.stderr
    ok = subprocess.run(
        cmd + ["--hint", "off", "--hinting", "none", "--max-bandwidth", "100G", "--json"],
        capture_output=True,
        text=True,
    )
    assert ok.returncode == 0, ok.stderr
    s = json.loads(ok.stdout)
    assert s["scenario"]["hinting"] == "none" and s["skipped-pages"] == 0


# ---- free page reporting ----------------------------------------------------------------------


def test_reporting_step_discards_without_touching_the_migration_bitmap():
    sc = fk.Scenario(memory="512M", workload="fill-free", workload_options={"fill": 0.5},
                     hinting="reporting", seed=1)  # fmt: skip
    rn = _Run(sc, sc.load_profile(), sc.load_guest(), 10.0, 0, 1.0)
    st, prm, g = rn.st[0], rn.prm[0], rn.guest
    bmap0 = g.bm[S.BM_BMAP].copy()
    nonzero0 = g.bm[S.BM_NONZERO].copy()
    st["rep_next"] = 0.0
    reporting_step(st, prm, g, rn.host, 0.0)
    assert st["reported"] > 0
    assert st["rep_next"] == S.REPORTING_DELAY  # the worker re-arms itself
    np.testing.assert_array_equal(g.bm[S.BM_BMAP], bmap0)  # never a migration-bitmap bit
    # pages became zero (discarded), and only pages inside free blocks of order >= 9
    gone = nonzero0 & ~g.bm[S.BM_NONZERO]
    pages = np.flatnonzero(np.unpackbits(gone.view(np.uint8), bitorder="little"))
    assert 0 < len(pages) <= st["reported"] and st["reported"] % (1 << S.REPORTING_ORDER) == 0
    free = np.zeros(rn.n, dtype=bool)
    for pfn in np.flatnonzero(g.free_order >= S.REPORTING_ORDER):
        free[pfn : pfn + (1 << int(g.free_order[pfn]))] = True
    assert free[pages].all()
    # a pass reports about 1/16 of each list (in batches of 32): not everything at once
    assert st["reported"] < (g.free_order >= S.REPORTING_ORDER).sum() << S.MAX_ORDER


@pytest.mark.slow
def test_reporting_never_clears_bits_and_reported_pages_go_as_zero_pages():
    none = fk.simulate(fk.Scenario(**FILLED, hinting="none", seed=1))
    rep = fk.simulate(fk.Scenario(**FILLED, hinting="reporting", seed=1))
    assert val(rep, "reported-pages") > 0
    assert val(rep, "skipped-pages") == 0 and val(rep, "hinted-pages") == 0
    assert (rep["round-skipped"].values == 0).all()
    assert val(rep, "lost-pages") == 0
    # the discarded pages are still sent, as zero pages instead of normal ones
    assert val(rep, "ram-duplicate") > val(none, "ram-duplicate")
    assert val(rep, "ram-normal") < val(none, "ram-normal")
    sent = val(rep, "ram-duplicate") + val(rep, "ram-normal")
    assert sent >= val(rep, "nr-pages")


@pytest.mark.slow
def test_reporting_off_when_the_device_cannot_keep_the_poison_value():
    sc = fk.Scenario(**FILLED, hinting="reporting", page_poison="zero", poison_val=False, seed=1)
    assert val(fk.simulate(sc), "reported-pages") == 0


# ---- the oracle ---------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(
    "kw",
    [
        dict(memory="1G", workload="idle", max_bandwidth="100G"),
        dict(memory="1G", workload="kernel-build", max_bandwidth="100G"),
        dict(memory="512M", workload="fill-free", workload_options={"fill": 0.6},
             max_bandwidth="1G"),
    ],
)  # fmt: skip
def test_oracle_is_never_slower_than_fph(kw):
    for seed in (0, 1, 2):
        fph = fk.simulate(fk.Scenario(**kw, hinting="fph", seed=seed))
        oracle = fk.simulate(fk.Scenario(**kw, hinting="oracle", seed=seed))
        assert val(oracle, "status") == "completed"
        assert val(oracle, "lost-pages") == 0
        assert val(oracle, "total-time") <= val(fph, "total-time"), (kw, seed)
        assert val(oracle, "ram-transferred") <= val(fph, "ram-transferred"), (kw, seed)


# ---- report-in-place -------------------------------------------------------------------------


@pytest.mark.slow
def test_report_in_place_loses_nothing_although_the_guest_reuses_reported_blocks():
    sc = fk.Scenario(memory="1G", workload="kernel-build", max_bandwidth="100G",
                     hinting="report-in-place", seed=2)  # fmt: skip
    ds = fk.simulate(sc)
    assert val(ds, "held-pages-max") == 0  # nothing is taken from the guest
    assert val(ds, "skipped-pages") > 0
    # the guest wrote blocks it had reported (they stayed free), the dirty log caught it
    assert val(ds, "skipped-pages-redirtied") > 0
    assert val(ds, "status") == "completed" and val(ds, "lost-pages") == 0


@pytest.mark.slow
def test_report_in_place_skips_poisoned_free_pages_and_loses_them():
    # why v37 added poison_val: a skipped free page the guest has poisoned (or zeroed with
    # init_on_free) keeps its old contents on the destination; fph holds its blocks instead
    for kw in (dict(page_poison="pattern"), dict(init_on_free=True)):
        rip = fk.simulate(fk.Scenario(**FILLED, hinting="report-in-place", seed=1, **kw))
        fph = fk.simulate(fk.Scenario(**FILLED, hinting="fph", seed=1, **kw))
        assert val(rip, "lost-pages") > 0, kw
        assert val(fph, "lost-pages") == 0, kw


# ---- fph -----------------------------------------------------------------------------------------


@pytest.mark.slow
def test_fph_with_init_on_alloc_resends_hinted_blocks_as_zero_pages():
    plain = fk.simulate(fk.Scenario(**FILLED, hinting="fph", seed=1))
    ioa = fk.simulate(fk.Scenario(**FILLED, hinting="fph", init_on_alloc=True, seed=1))
    hinted = val(ioa, "skipped-pages")
    assert hinted > 0 and val(plain, "skipped-pages-redirtied") == 0
    # every hinted block was zeroed when the balloon took it: dirty, sent again, as zeros
    assert val(ioa, "skipped-pages-redirtied") == hinted
    extra = val(ioa, "ram-duplicate") - val(plain, "ram-duplicate")
    assert extra >= 0.95 * hinted
    assert abs(val(ioa, "ram-normal") - val(plain, "ram-normal")) < 0.01 * val(plain, "ram-normal")


def test_hint_order_sets_the_block_size():
    ds = fk.simulate(fk.Scenario(**SMALL, hinting="fph", hint_order=8, seed=3))
    assert val(ds, "lost-pages") == 0 and val(ds, "hinted-pages") % 256 == 0
    assert val(ds, "held-pages-max") % 256 == 0 and val(ds, "held-pages-max") > 0


# ---- cancellation -------------------------------------------------------------------------------


def test_cancel_qemu_40_keeps_blocks_held_and_51_returns_them():
    base = dict(memory="512M", max_bandwidth="16M", hinting="fph", cancel_at="1s", seed=1)
    old = fk.simulate(fk.Scenario(**base, cancel_cleanup="qemu-4.0"), page_map_bins=8)
    new = fk.simulate(fk.Scenario(**base, cancel_cleanup="qemu-5.1"), page_map_bins=8)
    for ds in (old, new):
        assert val(ds, "status") == "cancelled"
        assert val(ds, "cancel-time") == pytest.approx(1000.0, abs=2.0)
        assert val(ds, "held-pages-at-cancel") > 0
        assert val(ds, "lost-pages") == -1  # checked at switchover only
        assert ds["time"].values[-1] >= 1000.0 + S.AFTER_CANCEL_MS - 10.0  # followed after
    held = S.PAGE_STATES.index("held")
    assert val(old, "held-pages-at-end") == val(old, "held-pages-at-cancel")
    assert old["page-map-end"].values[:, held].sum() == val(old, "held-pages-at-cancel")
    assert val(new, "held-pages-at-end") == 0
    assert new["page-map-end"].values[:, held].sum() == 0
    after = new["time"].values > 1100.0
    assert (new["held-pages"].values[after] == 0).all()
    assert (old["held-pages"].values[after] > 0).all()


def test_no_cancel_when_the_migration_completes_first():
    ds = fk.simulate(fk.Scenario(**SMALL, hinting="fph", cancel_at="10min", seed=3))
    assert val(ds, "status") == "completed" and val(ds, "cancel-time") == -1.0


def test_plot_cancellation():
    import matplotlib

    matplotlib.use("Agg")
    from fphint_kernels import plot

    base = dict(memory="512M", max_bandwidth="16M", hinting="fph", cancel_at="500ms", seed=1)
    runs = {
        c: fk.simulate(fk.Scenario(**base, cancel_cleanup=c), page_map_bins=8)
        for c in ("qemu-4.0", "qemu-5.1")
    }
    axes = plot.cancellation(runs)
    assert len(axes) == 3 and len(axes[0].lines) >= 4
    with pytest.raises(ValueError):
        plot.cancellation({})


# ---- kernels ----------------------------------------------------------------------------------


def test_fl_next_walks_a_free_list_both_ways():
    st = np.zeros(1, dtype=S.STATE_DTYPE)[0]
    n = 1 << 14
    st["n"] = n
    bd = new_buddy(n)
    buddy_add_range(st, bd, 0, n)
    k = S.MAX_ORDER
    blocks = [i for i in range(n >> k)]
    assert fl_next(bd, k, 0, False) == blocks[0]
    assert fl_next(bd, k, 3, False) == 3
    assert fl_next(bd, k, (n >> k) - 1, True) == blocks[-1]
    assert fl_next(bd, k, -1, True) == -1
    assert fl_next(bd, k, n >> k, False) == -1
    assert fl_next(bd, 0, 0, False) == -1  # no free order-0 block


def test_free_mask64_agrees_with_page_is_free():
    sc = fk.Scenario(memory="1G", workload="kernel-build", seed=4)
    rn = _Run(sc, sc.load_profile(), sc.load_guest(), 10.0, 0, 1.0)
    g, n = rn.guest, rn.n
    rng = np.random.default_rng(0)
    for wi in rng.choice(n >> 6, size=400, replace=False):
        mask = int(free_mask64(g, n, np.int64(wi)))
        want = sum(1 << b for b in range(64) if page_is_free(g, n, np.int64((wi << 6) + b)))
        assert mask == want, wi


def test_per_page_bitmap_lock_costs_every_design():
    # QEMU 4.0-6.0 take bitmap_mutex around each page (386a907b37): a cost per page handled,
    # hinting on or off; the oracle skips free pages without taking it
    sc = fk.Scenario(**SMALL, seed=3)
    prof = sc.load_profile().with_params(bitmap_lock=0)
    costly = prof.with_params(bitmap_lock_ns=2000.0)
    for h in ("none", "fph", "oracle"):
        cheap = fk.simulate(sc.replace(hinting=h), profile=prof)
        dear = fk.simulate(sc.replace(hinting=h), profile=costly)
        assert val(dear, "cpu-migration-thread") > val(cheap, "cpu-migration-thread"), h
        assert val(dear, "total-time") >= val(cheap, "total-time"), h
