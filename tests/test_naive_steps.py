"""Single kernel steps against the same steps of ``naive.NaiveMigration``, on small guests.

Each case is a small scenario (64 MiB, 16384 pages) run by both sides to the same point of a
migration (``simulate._Run.advance`` and ``NaiveMigration.run(until)``); one step of the
workload, the hint channel or the migration thread is then applied to copies of both states,
and the whole state is compared: every bitmap, version, free list, pool, queue element, counter
and clock.  Hypothesis chooses the case, the point in the run and the step's arguments.
"""

import copy
import functools
import math
from types import SimpleNamespace

import naive
import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import fphint_kernels as fk
from fphint_kernels.kernels import layout as L
from fphint_kernels.kernels.balloon import guest_hint_step, host_hint_step
from fphint_kernels.kernels.precopy import (
    migration_completion,
    send_pages,
    sender_run,
    sync_point,
)
from fphint_kernels.kernels.workload import workload_step
from fphint_kernels.simulate import _Run

#: a small guest (every scenario below runs on it) ...
SMALL_GUEST = {
    "reserved_low": "4M",
    "base_used": "8M",
    "pagecache_initial": "8M",
    "touched_free": "8M",
}
#: ... to which the workloads add nothing unless told
SMALL = {"background_hot": "1M", "base_used": "0", "pagecache_initial": "0", "touched_free": "0"}
SMALL_BUILD = {
    **SMALL,
    "jobs": 2,
    "proc_rss_mean": "4M",
    "proc_lifetime_ms": 30,
    "pagecache_rate": "64M",
    "proc_rewrite_per_s": 200.0,
}
V36 = fk.HostProfile.load("v36")
SLOW_HINT = V36.with_params(hint_host_latency_ms=2.0)
#: the 2-core TCG host, with a stream a small guest fills (256 KiB)
TCG = fk.HostProfile.load("this-host-tcg").with_params(stream_buffer_bytes=262144)
#: the harness's guest, its boot's memory shrunk to fit (its freed boot data, SMALL_GUEST's
#: touched_free, spread over 12 MiB from 20 MiB)
TCG_GUEST = {
    "low_span": "8M",
    "low_used": "2M",
    "kaslr_image": "4M",
    "kaslr_bss": "1M",
    "boot_free_at": "20M",
    "thp": 1,
}
# a slow hint worker in the guest
SLOW_GUEST = {"hint_block_us": 400}


def sc(**kw):
    base = {"memory": "64M", "max_bandwidth": "128M", "downtime_limit": "50ms", "seed": 3}
    kw["guest_options"] = {**SMALL_GUEST, **kw.get("guest_options", {})}
    return fk.Scenario(**{**base, **kw})


#: id: (scenario, profile, points in the run in ms where single steps are tried): small guests
#: covering the workloads, release policies, page poisoning, init_on_alloc, auto-converge and
#: the faults; the points catch a hint pass with blocks in the virtqueue, slices in progress
#: and a throttled guest
CASES = {
    "idle-hint-after-pass-pattern-no-rearm": (
        sc(
            guest_options=SLOW_GUEST,
            workload="idle",
            workload_options=SMALL,
            hint=True,
            hint_release="after-pass",
            page_poison="pattern",
            faults=frozenset({"sync-no-rearm"}),
        ),
        SLOW_HINT,
        (0.0, 8.0, 9.5, 60.0),
    ),
    "build-hint-shrinker-init-on-alloc": (
        sc(
            guest_options=SLOW_GUEST,
            workload="kernel-build",
            workload_options={**SMALL_BUILD, "pagecache_initial": "16M"},
            hint=True,
            hint_release="shrinker",
            init_on_alloc=True,
        ),
        SLOW_HINT,
        (0.0, 8.0, 9.5, 60.0, 250.0),
    ),
    "build-hint-zero-poison-stale-outside": (
        sc(
            guest_options=SLOW_GUEST,
            workload="kernel-build",
            workload_options=SMALL_BUILD,
            hint=True,
            page_poison="zero",
            faults=frozenset({"stale-hint-after-sync", "hint-outside-start"}),
            seed=7,
        ),
        SLOW_HINT,
        (8.0, 9.5, 10.5, 250.0),
    ),
    "dirty-loop-autoconverge": (
        sc(
            workload="dirty-loop",
            workload_options={**SMALL, "dirty_bytes": "8M", "dirty_interval_ms": 50},
            auto_converge=True,
            max_bandwidth="16M",
        ),
        None,
        (0.0, 1500.0, 5000.0),
    ),
    "fill-free-hint-late-log": (
        sc(
            workload="fill-free",
            workload_options={**SMALL, "fill": 0.5},
            hint=True,
            faults=frozenset({"late-dirty-log"}),
            seed=11,
        ),
        None,
        (8.0, 9.5, 60.0),
    ),
    # the harness's guest on the TCG host: the destination, the stream, contention, the
    # per-slice lock (a hint waits in the queue at 24 ms), first touches of the source's RAM
    "tcg-idle-hint-init-on-alloc": (
        sc(
            guest="busybox-tcg",
            guest_options=TCG_GUEST,
            workload="idle",
            workload_options=SMALL,
            hint=True,
            init_on_alloc=True,
            max_bandwidth="1G",
        ),
        TCG,
        (3.0, 24.0, 56.0, 76.0),
    ),
    # two compiler jobs share the host's CPUs; slice ends let a few hints through (Poisson)
    "tcg-build-hint-slice-end-trickle": (
        sc(
            guest="busybox-tcg",
            guest_options=TCG_GUEST,
            workload="kernel-build",
            workload_options=SMALL_BUILD,
            hint=True,
            max_bandwidth="1G",
            seed=5,
        ),
        TCG.with_params(boundary_hints=1.0, boundary_drain_p=0.3),
        (2.0, 12.0, 60.0),
    ),
    # a slow vCPU's dirty loop falls behind; QEMU 4.0's per-page lock; a stream smaller than
    # the destination's checkpoints (48 KiB)
    "tcg-dirty-loop-hint-per-page-lock": (
        sc(
            guest="busybox-tcg",
            guest_options={**TCG_GUEST, "store_ns_per_page": 600},
            workload="dirty-loop",
            workload_options={**SMALL, "dirty_bytes": "8M", "dirty_interval_ms": 1},
            hint=True,
            max_bandwidth="1G",
        ),
        TCG.with_params(bitmap_lock=0, bitmap_lock_ns=100, stream_buffer_bytes=49152),
        (3.0, 18.0, 36.0, 60.0),
    ),
}
POINTS = [(case, t0) for case, (_, _, times) in sorted(CASES.items()) for t0 in times]
HOST = {L.S_STOP: "stop", L.S_REQUESTED: "requested", L.S_START: "start", L.S_DONE: "done"}
KIND = {L.Q_BLOCK: "block", L.Q_START: "start", L.Q_STOP: "stop"}
STATUS = {L.RUNNING: "running", L.COMPLETED: "completed", L.NOT_CONVERGED: "not-converged"}
STATUS[L.FAILED] = "failed"
REASON = {0: "until", 1: "slice", 2: "empty"}


@functools.cache
def warm(case: str, t0: float):
    """Both sides of ``case``, run to ``t0`` (read-only: every test step works on copies)."""
    scenario, profile, _ = CASES[case]
    profile = profile or scenario.load_profile()
    rn = _Run(scenario, profile, scenario.load_guest(), 10.0, 0, 1.0)
    rn.advance(t0)
    ref = naive.NaiveMigration(scenario, profile)
    if ref.status == "running":
        ref.run(until=t0)
    assert kernel_snapshot(copy_kernel(rn)) == naive_snapshot(ref)  # the same starting point
    return rn, ref


def copy_kernel(rn):
    """The kernel state of a run, copied: ``st``, ``prm`` and the four bundles."""
    return SimpleNamespace(
        rec_st=rn.st.copy(),
        prm=rn.prm[0],
        g=L.Guest(*(a.copy() for a in rn.guest)),
        wl=L.Workload(*(a.copy() for a in rn.workload)),
        hc=L.HintChannel(*(a.copy() for a in rn.hints)),
        rec=L.Recorders(*(a.copy() for a in rn.rec)),
        h=L.Host(*(a.copy() for a in rn.host)),
    )


def start(point):
    rn, ref = warm(*point)
    k = copy_kernel(rn)
    k.st = k.rec_st[0]
    return k, copy.deepcopy(ref)


def bits(words, n):
    return np.unpackbits(words.view(np.uint8), bitorder="little")[:n].astype(bool).tolist()


def kernel_snapshot(k):
    """Everything the naive migration also keeps, in its representation."""
    s = k.rec_st[0]
    g, wl, hc = k.g, k.wl, k.hc
    n = int(s["n"])
    free = [set() for _ in range(L.MAX_ORDER + 1)]
    for pfn in np.flatnonzero(g.free_order >= 0):
        free[int(g.free_order[pfn])].add(int(pfn))
    cap = g.pc_ring.shape[0]
    tail = int(s["pc_head"] - s["pc_count"])
    pagecache = [int(g.pc_ring[(tail + i) % cap]) for i in range(int(s["pc_count"]))]
    queue = []
    for i in range(int(s["q_count"])):
        j = (int(s["q_head"]) + i) % L.QUEUE_SIZE
        queue.append((KIND[int(hc.kind[j])], int(hc.pfn[j]), int(hc.cmd[j]), float(hc.ready[j])))
    jobs = [
        (
            float(wl.job_age[j]),
            float(wl.job_life[j]),
            int(wl.job_target[j]),
            wl.job_pool[j, : wl.job_nblk[j]].tolist(),
            float(wl.job_acc[j]),
        )
        for j in range(wl.job_age.shape[0])
    ]
    rounds = [
        {name: float(v) for name, v in zip(L.ROUND_COLUMNS, row, strict=True)}
        for row in k.rec.rounds[: int(s["n_rounds"])]
    ]
    h = k.h
    ring = h.ck_bytes.shape[0]
    checkpoints = []
    for i in range(int(s["ck_count"])):
        j = (int(s["ck_head"]) + i) % ring
        checkpoints.append((int(h.ck_bytes[j]), float(h.ck_time[j])))
    out = {name: s[name].item() for name in SCALARS}
    out.update({name: bool(s[name]) for name in FLAGS})
    out.update(
        {
            "status": STATUS[int(s["status"])],
            "failure": int(s["failure"]) == L.FAIL_OOM,
            "host_status": HOST[int(s["host_status"])],
            "r": {n_: int(s["r_" + n_]) for n_ in ("dup", "normal", "bytes", "skipped")},
            "bmap": bits(g.bm[L.BM_BMAP], n),
            "dlog": bits(g.bm[L.BM_DLOG], n),
            "armed": [not b for b in bits(g.bm[L.BM_UNARMED], n)],
            "nonzero": bits(g.bm[L.BM_NONZERO], n),
            "held": bits(g.bm[L.BM_HELD], n),
            "ver_src": g.ver_src.tolist(),
            "ver_dst": g.ver_dst.tolist(),
            "free": free,
            "nr_free": g.nr_free.tolist(),
            "held_blocks": g.held_blocks[: int(s["held_n"])].tolist(),
            "pagecache": pagecache,
            "base_pool": wl.base_pool[: int(s["base_n"])].tolist(),
            "dl_pool": wl.dl_pool[: int(s["dl_n"])].tolist(),
            "jobs": jobs,
            "rng": wl.rngs[0].tolist(),
            "queue": queue,
            "stale": hc.stale[: int(s["stale_n"])].tolist(),
            "rounds": rounds,
            "busy": {
                "migration": float(s["busy_mig"]),
                "vcpus": float(s["busy_vcpu"]),
                "iothread": float(s["busy_io"]),
            },
            "dst_touched": set(np.flatnonzero(bits(h.dst_touched, h.dst_touched.size * 64))),
            "src_touched": set(np.flatnonzero(bits(h.src_touched, h.src_touched.size * 64))),
            "checkpoints": checkpoints,
            "host_rng": h.rng.tolist(),
        }
    )
    return out


#: scalars kept under the same name on both sides
SCALARS = (
    "now end_time log_start_at setup_time downtime_start expected_downtime pending sender_time "
    "cursor slice_start slice_pages window_start window_bytes bandwidth threshold sync_count "
    "round_start dup normal bytes hinted skipped throttle ac_cnt period_start period_dirty "
    "period_bytes nr_free_pages wmark_min wmark_low wmark_high write_faults zero_cpu_ns "
    "held_pages held_max pc_acc dl_cursor dl_acc host_cmd guest_start_at guest_start_cmd "
    "guest_cmd_active hint_budget hint_cpu_ns slices dst_clock ck_next share cpu_mig cpu_dst "
    "cpu_vcpu hints_early hints_boundary boundary_drains img_start img_pages"
).split()
FLAGS = ("vm_running", "logging", "setup_done", "in_slice", "guest_reporting")


def naive_snapshot(m):
    out = {name: getattr(m, name) for name in SCALARS if name != "nr_free_pages"}
    out.update({name: bool(getattr(m, name)) for name in FLAGS})
    out.update(
        {
            "nr_free_pages": m.buddy.nr_free_pages,
            "status": m.status,
            "failure": m.failure != "",
            "host_status": m.host_status,
            "r": dict(m.r),
            "bmap": list(m.bmap),
            "dlog": list(m.dlog),
            "armed": list(m.armed),
            "nonzero": list(m.nonzero),
            "held": list(m.held),
            "ver_src": list(m.ver_src),
            "ver_dst": list(m.ver_dst),
            "free": [set(f) for f in m.buddy.free],
            "nr_free": m.buddy.nr_free(),
            "held_blocks": list(m.held_blocks),
            "pagecache": list(m.pagecache),
            "base_pool": list(m.base_pool),
            "dl_pool": list(m.dl_pool),
            "jobs": [
                (j["age"], j["life"], j["target"], list(j["blocks"]), j["acc"]) for j in m.jobs
            ],
            "rng": m.rng.state(),
            "queue": [(kind, pfn, cmd, ready) for kind, pfn, cmd, ready in m.queue],
            "stale": list(m.stale),
            "rounds": [{k: float(v) for k, v in r.items()} for r in m.rounds],
            "busy": dict(m.busy),
            "dst_touched": set(m.dst_touched),
            "src_touched": set(m.src_touched),
            "checkpoints": list(m.checkpoints),
            "host_rng": m.host_rng.state(),
        }
    )
    return out


def assert_same(k, ref):
    got, want = kernel_snapshot(k), naive_snapshot(ref)
    diff = sorted(key for key in want if got[key] != want[key])
    assert diff == [], {
        key: (got[key], want[key]) for key in diff if not isinstance(want[key], list)
    }


POINT = st.sampled_from(POINTS)
SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(POINT, st.floats(0.0, 4.0))
def test_workload_step(point, dt):
    k, ref = start(point)
    workload_step(k.st, k.prm, k.g, k.wl, dt)
    ref.workload_step(dt)
    assert_same(k, ref)


@SETTINGS
@given(POINT, st.floats(0.0, 30.0), st.floats(0.0, 4.0))
def test_guest_hint_step(point, ahead, dt):
    k, ref = start(point)
    now = ref.now + ahead
    guest_hint_step(k.st, k.prm, k.g, k.hc, k.h, now, dt)
    ref.guest_hint_step(now, dt)
    assert_same(k, ref)


@SETTINGS
@given(POINT, st.floats(0.0, 30.0))
def test_host_hint_step(point, ahead):
    k, ref = start(point)
    now = ref.now + ahead
    host_hint_step(k.st, k.prm, k.g, k.hc, now)
    ref.host_hint_step(now)
    assert_same(k, ref)


@SETTINGS
@given(
    POINT,
    st.floats(0.0, 60.0),
    st.one_of(st.just(math.inf), st.integers(0, 1 << 22)),
    st.booleans(),
)
def test_send_pages(point, ahead, budget, check_slice):
    k, ref = start(point)
    until = ref.sender_time + ahead
    reason = send_pages(k.st, k.prm, k.g, k.h, until, float(budget), np.int64(check_slice))
    assert REASON[int(reason)] == ref.send_pages(until, float(budget), check_slice)
    assert_same(k, ref)


@SETTINGS
@given(POINT, st.booleans())
def test_sync_point(point, last):
    k, ref = start(point)
    sync_point(k.st, k.prm, k.g, k.hc, k.rec, k.h, np.int64(last))
    ref.sync_point(last)
    assert_same(k, ref)


@SETTINGS
@given(POINT, st.floats(0.0, 300.0))
def test_sender_run(point, ahead):
    k, ref = start(point)
    assume(ref.setup_done)  # the sender runs from setup's first sync on
    until = ref.sender_time + ahead
    sender_run(k.st, k.prm, k.g, k.hc, k.rec, k.h, until)
    ref.sender_run(until)
    assert_same(k, ref)


@pytest.mark.parametrize("point", [p for p in POINTS if p[1] > 0], ids=str)
def test_migration_completion(point):
    k, ref = start(point)
    migration_completion(k.st, k.prm, k.g, k.hc, k.rec, k.h)
    ref.migration_completion()
    assert_same(k, ref)


def test_states_are_not_trivial():
    """The mid-run states the steps start from hold what the steps act on."""
    states = {point: warm(*point)[1] for point in POINTS}
    assert any(m.guest_reporting and m.queue for m in states.values())  # a pass, blocks queued
    assert any(m.host_status == "start" for m in states.values())
    assert any(m.queue and "stale-hint-after-sync" in m.faults for m in states.values())
    assert any(m.held_blocks and m.release == "shrinker" for m in states.values())
    assert any(m.in_slice for m in states.values())
    assert any(any(j["blocks"] for j in m.jobs) for m in states.values())
    assert any(m.throttle > 0 for m in states.values())
    assert any(m.sync_count > 2 for m in states.values())
    assert all(m.status == "running" for m in states.values())
    # the TCG host: the destination behind the sender, the stream's checkpoints, threads
    # sharing the CPUs, a block waiting for QEMU 6.1's lock, QEMU 4.0's lock, the Poisson
    # slice ends, a dirty loop that fell behind, a kernel image placed by KASLR
    assert any(m.dst_clock > m.sender_time and m.checkpoints for m in states.values())
    assert any(m.share < 1.0 for m in states.values())
    assert any(
        m.lock_per_slice and m.in_slice and any(e[0] == "block" for e in m.queue)
        for m in states.values()
    )
    assert any(not m.lock_per_slice and m.p["t_lock"] > 0 for m in states.values())
    assert any(m.p["boundary_hints"] > 0 and m.slices > 1 for m in states.values())
    assert any(m.dl_dropped > 0 for m in states.values())
    assert any(m.img_pages > 0 and m.src_touched for m in states.values())
