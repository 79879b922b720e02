"""The harness's probes: QEMU trace parsing and per-thread CPU sampling."""

import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from fphint_kernels.qemu import probes

DATA = Path(__file__).parent / "data"


def test_parse_trace_of_a_hinted_migration():
    # A real source log (QEMU 7.2, TCG, 1 GiB idle guest, hinting on), hint pops thinned out.
    s = probes.parse_trace((DATA / "qemu-trace-hint.log").read_text())
    assert s.found
    # boot-time events (the guest's first config read, a pop before the migration) are dropped
    assert s.config_read_ms.min() > 0
    assert s.setup_done_ms == pytest.approx(5.995, abs=1e-3)
    assert s.stop_ms == pytest.approx(117.933, abs=1e-3)
    assert s.completed_ms == pytest.approx(255.561, abs=1e-3)
    # START at 3 ms, STOP after the first slice, and the stop of the second pass at the switchover
    np.testing.assert_allclose(s.command_ms, [3.056, 64.687, 117.849, 117.855], atol=1e-3)
    assert len(s.hint_ms) > 0 and np.all(np.diff(s.hint_ms) >= 0)
    assert s.hints_before_first_slice() >= 1
    assert not np.any((s.hint_ms > s.setup_done_ms + 3) & (s.hint_ms < 64.0)), (
        "while the migration thread holds the bitmap mutex no hint gets through"
    )
    np.testing.assert_array_equal(s.slice_pages, [11520, 5504])
    np.testing.assert_allclose(s.slice_ms, [58, 52])
    np.testing.assert_array_equal(s.sync_dirty_pages, [0, 21, 21])
    assert s.threshold_pages[-1] == pytest.approx(153512768 / 4096)
    assert s.window_bytes_per_ms[0] == 383781
    assert s.pending_pages[0] == pytest.approx(174210, abs=1)


def test_parse_trace_without_migration():
    s = probes.parse_trace("qemu-system-x86_64: a warning\n123@1.5:runstate_set new_state 9\n")
    assert not s.found
    assert len(s.hint_ms) == 0 and s.hints_before_first_slice() == 0


def test_trace_args_and_events_file(tmp_path):
    f = probes.write_events_file(tmp_path / "ev")
    assert f.read_text().split() == list(probes.TRACE_EVENTS)
    args = probes.qemu_trace_args(f, "fphint-src")
    assert args[:2] == ["-name", "fphint-src,debug-threads=on"]
    assert f"events={f}" in args


@pytest.mark.parametrize(
    "comm, role",
    [
        ("CPU 0/TCG", "vcpu"),
        ("CPU 1/KVM", "vcpu"),
        ("live_migration", "migration"),
        ("IO io0", "iothread"),
        ("qemu-system-x86", "main"),
        ("worker", "other"),
    ],
)
def test_thread_role(comm, role):
    assert probes.thread_role(comm) == role


def test_sampler_sees_a_busy_thread():
    # this process stands in for a QEMU: a thread named like a migration thread spins
    stop = threading.Event()

    def spin():
        try:
            with open(f"/proc/self/task/{threading.get_native_id()}/comm", "w") as f:
                f.write("live_migration")
        except OSError:
            pytest.skip("cannot name threads here")
        while not stop.is_set():
            pass

    th = threading.Thread(target=spin)
    try:
        with probes.ThreadSampler({"src": os.getpid()}, period_s=0.01) as sampler:
            th.start()
            time.sleep(0.15)
        # the thread stops after the last sample: a thread that has exited has no CPU time
        # left to read in /proc
    finally:
        stop.set()
        th.join()
    ser = sampler.series()
    mig = ser["cpu"][("src", "migration")]
    assert mig[-1] > 0.02e9, "the spinning thread got at least 20 ms of CPU"
    assert np.all(np.diff(mig) >= 0)
    assert len(ser["time"]) == len(ser["host_busy"]) >= 3
    assert np.nanmax(ser["host_busy"]) > 0.1


def test_vmstat_and_host_cpu():
    total, idle = probes.read_host_cpu()
    assert total >= idle > 0
    v = probes.read_vmstat()
    assert "pgfault" in v and v["pgfault"] > 0


def test_probe_variables_in_the_measured_dataset():
    from fphint_kernels.qemu.measurement import PROBE_VARS, to_dataset
    from fphint_kernels.qemu.result import RunResult
    from fphint_kernels.qemu.runconfig import RunConfig

    log = (DATA / "qemu-trace-hint.log").read_text()
    t0 = probes.parse_trace(log).t0
    res = RunResult(config=RunConfig(memory=1 << 30, hint=True), status="completed")
    res.final = {"status": "completed", "total-time": 256, "downtime": 138, "ram": {}}
    res.source_qemu_log = log
    ms = [-20.0, 0.5, 100.0, 200.0, 300.0]
    res.probes = {
        "time_ms": ms,
        # the destination's main thread busy all along, the migration thread a little
        "cpu_ns": {"dst/main": [0, 0, 95e6, 190e6, 280e6], "src/migration": [0, 0, 5e6, 9e6, 12e6]},
        "wait_ns": {"dst/main": [0, 0, 1e6, 2e6, 3e6], "src/migration": [0] * 5},
        "host_busy": [None, 1.0, 1.2, 1.2, 1.1],
        "migrate_wall_time": t0 - 0.002,
        "vmstat": {"thp_fault_alloc": 54},
    }
    ds = to_dataset(res)
    assert set(PROBE_VARS) <= set(ds.data_vars)
    assert ds.attrs["trace_offset_ms"] == pytest.approx(2.0, abs=1e-3)  # float seconds
    # event times are shifted to the migrate command
    assert float(ds["setup-done-time"]) == pytest.approx(5.995 + 2.0, abs=1e-3)
    assert int(ds["hints-before-first-slice"]) >= 1
    assert float(ds["cpu-destination"]) == pytest.approx(280.0)
    assert float(ds["cpu-migration-thread"]) == pytest.approx(12.0)
    assert float(ds["cpu-vcpus"]) == 0.0
    # from the last sample before the command to the first after the end:
    # busy CPUs x interval = 1.0*20.5 + 1.2*99.5 + 1.2*100 + 1.1*100 ms, minus the QEMUs' 292 ms
    assert float(ds["cpu-other"]) == pytest.approx(369.9 - 292.0, abs=0.01)
    assert ds["cpu-time"].sel(side="dst", role="main").values[-1] == pytest.approx(280.0)
    assert '"thp_fault_alloc": 54' in ds.attrs["host_vmstat_delta"]


def test_measured_run_without_probes_has_none_of_their_variables():
    from fphint_kernels.qemu.measurement import PROBE_VARS, to_dataset
    from fphint_kernels.qemu.result import RunResult
    from fphint_kernels.qemu.runconfig import RunConfig

    ds = to_dataset(RunResult(config=RunConfig(), status="failed"))
    assert not set(PROBE_VARS) & set(ds.data_vars)


def test_first_touch_probe_and_reporting_counter():
    p = probes.FirstTouchProbe(mib=8)
    try:
        assert p.ms_per_region > 0
    finally:
        p.release()
    p.release()  # twice is harmless
    v = probes.read_reported_kib()
    assert v is None or v >= 0


def test_wait_for_settled_memory(monkeypatch):
    # a host that reports three more times, then stops
    values = iter([10, 20, 30, 40] + [40] * 100)
    monkeypatch.setattr(probes, "read_reported_kib", lambda: next(values))
    waited = probes.wait_for_settled_memory(quiet_s=0.05, timeout_s=5.0, poll_s=0.01)
    assert 0.05 <= waited < 1.0
    monkeypatch.setattr(probes, "read_reported_kib", lambda: None)
    assert probes.wait_for_settled_memory() == 0.0
    counter = iter(range(10**6))
    monkeypatch.setattr(probes, "read_reported_kib", lambda: next(counter))  # never settles
    assert probes.wait_for_settled_memory(quiet_s=1.0, timeout_s=0.1, poll_s=0.01) >= 0.1
