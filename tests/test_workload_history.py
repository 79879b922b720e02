"""The workload's history at migration start: what it wrote since boot, as far as the guest's
memory holds it (page cache up to reclaim, freed memory with old data up to the high watermark)."""

import numpy as np
import pytest

import fphint_kernels as fk
from fphint_kernels.config import Workload
from fphint_kernels.kernels import layout as S
from fphint_kernels.kernels.layout import PAGE_SIZE
from fphint_kernels.simulate import _Run

MIB = 1 << 20


def initial_state(memory, **options):
    """The guest's memory when migration starts (no migration run)."""
    sc = fk.Scenario(
        memory=memory,
        workload="kernel-build",
        guest="testbed-2018",
        workload_options=options,
        seed=1,
    )
    return sc, _Run(sc, sc.load_profile(), sc.load_guest(), 10.0, 0, 1.0)


def free_mask(rn):
    fo = rn.guest.free_order
    mask = np.zeros(fo.size, dtype=bool)
    for p in np.flatnonzero(fo >= 0):
        mask[p : p + (1 << int(fo[p]))] = True
    return mask


def nonzero_mask(rn):
    bits = np.unpackbits(rn.guest.bm[S.BM_NONZERO].view(np.uint8), bitorder="little")
    return bits[: rn.n].astype(bool)


def footprint(rn):
    """Pages of page cache, free pages that hold old data, free pages never written."""
    s = rn.st[0]
    free, nonzero = free_mask(rn), nonzero_mask(rn)
    pc = int(s["pc_count"]) << int(rn.prm[0]["pc_order"])
    return pc, int(np.count_nonzero(free & nonzero)), int(np.count_nonzero(free & ~nonzero))


def test_history_is_the_builds_output_over_history_s():
    w = Workload.load("kernel-build", {"history_s": 0})
    assert w.history() == (0.0, 0.0)
    p = Workload.load("kernel-build", {"history_s": 10}).params
    pc, freed = Workload.load("kernel-build", {"history_s": 10}).history()
    assert pc == pytest.approx(10 * p["pagecache_rate"])
    rate = p["jobs"] * p["proc_rss_mean"] / (p["proc_lifetime_ms"] / 1e3)
    assert freed == pytest.approx(10 * rate)
    # intensity scales the history like every other rate; workloads without jobs free nothing
    assert Workload.load("kernel-build", {"history_s": 10, "intensity": 0.5}).history()[
        1
    ] == pytest.approx(5 * rate)
    assert Workload.load("idle", {"history_s": 100}).history() == (0.0, 0.0)
    # the scenario's initial layout adds it to the guest's own and the workload's own
    sc = fk.Scenario(memory="8G", workload="kernel-build", guest="testbed-2018",
                     workload_options={"history_s": 10})  # fmt: skip
    lay = sc.memory_layout()
    g = sc.load_guest().params
    assert lay["touched_free"] == pytest.approx(g["touched_free"] + p["touched_free"] + freed)
    assert lay["pagecache_initial"] == pytest.approx(
        g["pagecache_initial"] + p["pagecache_initial"] + pc
    )


@pytest.mark.slow
def test_old_data_grows_with_the_guest_up_to_the_documented_size():
    # documented: the guest's 64 MiB + 3 s of a -j4 build (4 x 48 MiB every 0.45 s) = ~1.3 GiB
    opts = {"pagecache_initial": "64M", "history_s": 3}
    old, zero_free, whigh, documented = {}, {}, {}, 0
    for mem in ("1G", "1536M", "4G", "6G"):
        sc, rn = initial_state(mem, **opts)
        assert rn.running
        _pc, old[mem], zero_free[mem] = footprint(rn)
        whigh[mem] = int(rn.st[0]["wmark_high"])
        documented = sc.memory_layout()["touched_free"] / PAGE_SIZE
    # small guests: every free page above the high watermark holds old data (kswapd would
    # keep free memory there; nothing more can have been left free)
    for mem in ("1G", "1536M"):
        assert old[mem] < 0.9 * documented
        assert whigh[mem] <= zero_free[mem] <= whigh[mem] + 64
    assert old["1G"] < old["1536M"] < old["4G"]
    # large guests: all of it, and no more; the rest of free memory was never written
    for mem in ("4G", "6G"):
        assert old[mem] == pytest.approx(documented, rel=0.02)
        assert zero_free[mem] > 4 * whigh[mem]
    assert old["6G"] == pytest.approx(old["4G"], rel=0.02)


@pytest.mark.slow
def test_page_cache_is_capped_by_reclaim_in_a_small_guest():
    opts = {"pagecache_initial": "2G", "history_s": 0}
    sc, big = initial_state("4G", **opts)
    documented = sc.memory_layout()["pagecache_initial"] / PAGE_SIZE
    pc_big, _old, _zero = footprint(big)
    assert pc_big == pytest.approx(documented, rel=0.01)  # nothing reclaimed
    _sc, small = initial_state("1G", **opts)
    s = small.st[0]
    pc_small, old_small, zero_small = footprint(small)
    assert small.running
    assert pc_small < 0.5 * documented
    # reclaim kept free memory between the watermarks (kswapd's band) and the page cache
    # filled the rest: free memory is no more than the high watermark
    assert s["wmark_min"] <= s["nr_free_pages"] <= s["wmark_high"]
    assert old_small + zero_small == s["nr_free_pages"]
    assert pc_small > 0.5 * small.n
