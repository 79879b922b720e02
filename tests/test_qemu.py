"""Unit tests of the real-QEMU harness: QMP client, result parsing, health, files, plans."""

from __future__ import annotations

import gzip
import json
import socket
import threading

import numpy as np
import pytest

from fphint_kernels.errors import FphintError
from fphint_kernels.io import load_dataset, save_dataset
from fphint_kernels.qemu import campaign, health, measurement
from fphint_kernels.qemu.guest import _cpio_newc
from fphint_kernels.qemu.qmp import QMPClient, QMPError
from fphint_kernels.qemu.result import RunResult
from fphint_kernels.qemu.runconfig import RunConfig


# ---------------------------------------------------------------------------- fake QMP server
class FakeQMP:
    """A QMP server on one end of a socketpair: greeting, then scripted replies."""

    def __init__(self, handler, greeting=None):
        self.client_sock, self.server_sock = socket.socketpair()
        self.received: list[dict] = []
        self.handler = handler
        self.greeting = greeting or {"QMP": {"version": {"qemu": {"major": 7}}, "capabilities": []}}
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _send(self, obj):
        # QEMU ends every message with \r\n
        self.server_sock.sendall((json.dumps(obj) + "\r\n").encode())

    def _serve(self):
        f = self.server_sock.makefile("rb")
        self._send(self.greeting)
        for line in f:
            msg = json.loads(line)
            self.received.append(msg)
            for reply in self.handler(msg):
                if reply is None:  # close the connection
                    self.server_sock.close()
                    return
                self._send(reply)

    def close(self):
        self.client_sock.close()
        try:
            self.server_sock.close()
        except OSError:
            pass


def _ret(msg, value):
    return {"return": value, "id": msg.get("id")}


MIGRATE_REPLIES = [
    {"status": "setup"},
    {
        "status": "active",
        "total-time": 120,
        "setup-time": 2,
        "ram": {
            "transferred": 1000,
            "remaining": 8192 * 4096,
            "duplicate": 10,
            "normal": 0,
            "dirty-sync-count": 1,
        },
    },
    {
        "status": "completed",
        "total-time": 830,
        "downtime": 41,
        "setup-time": 2,
        "ram": {
            "transferred": 123456789,
            "remaining": 0,
            "total": 1 << 30,
            "duplicate": 200000,
            "normal": 29000,
            "normal-bytes": 29000 * 4096,
            "dirty-sync-count": 3,
            "mbps": 1234.5,
            "skipped": 0,
            "dirty-pages-rate": 0,
            "page-size": 4096,
        },
    },
]


def test_qmp_handshake_execute_and_events():
    calls = iter(MIGRATE_REPLIES)

    def handler(msg):
        cmd = msg["execute"]
        if cmd == "qmp_capabilities":
            return [_ret(msg, {})]
        if cmd == "query-migrate":
            # an event arrives before the reply: it must be kept, not taken as the reply
            return [{"event": "MIGRATION", "data": {"status": "active"}}, _ret(msg, next(calls))]
        if cmd == "migrate-set-parameters":
            return [_ret(msg, {})]
        return [
            {
                "error": {
                    "class": "CommandNotFound",
                    "desc": f"The command {cmd} has not been found",
                },
                "id": msg.get("id"),
            }
        ]

    srv = FakeQMP(handler)
    q = QMPClient(None, timeout=5, sock=srv.client_sock)
    assert q.greeting["QMP"]["version"]["qemu"]["major"] == 7
    assert srv.received[0]["execute"] == "qmp_capabilities"
    q.execute("migrate-set-parameters", **{"downtime-limit": 300, "max-bandwidth": 1 << 30})
    assert srv.received[-1]["arguments"] == {"downtime-limit": 300, "max-bandwidth": 1 << 30}
    statuses = [q.execute("query-migrate")["status"] for _ in range(3)]
    assert statuses == ["setup", "active", "completed"]
    assert len(q.events) == 3 and q.events[0]["event"] == "MIGRATION"
    with pytest.raises(QMPError, match="CommandNotFound"):
        q.execute("no-such-command")
    q.close()
    srv.close()


def test_qmp_skips_stale_reply_ids():
    def handler(msg):
        if msg["execute"] == "qmp_capabilities":
            return [_ret(msg, {})]
        return [{"return": "stale", "id": 999}, _ret(msg, "fresh")]

    srv = FakeQMP(handler)
    q = QMPClient(None, timeout=5, sock=srv.client_sock)
    assert q.execute("query-status") == "fresh"
    srv.close()


def test_qmp_errors_closed_timeout_and_bad_greeting():
    srv = FakeQMP(lambda msg: [_ret(msg, {})] if msg["execute"] == "qmp_capabilities" else [None])
    q = QMPClient(None, timeout=5, sock=srv.client_sock)
    with pytest.raises(QMPError, match="closed"):
        q.execute("query-status")
    srv.close()

    srv = FakeQMP(lambda msg: [_ret(msg, {})] if msg["execute"] == "qmp_capabilities" else [])
    q = QMPClient(None, timeout=0.3, sock=srv.client_sock)
    with pytest.raises(QMPError, match="no reply"):
        q.execute("query-status")
    srv.close()

    srv = FakeQMP(lambda msg: [], greeting={"hello": 1})
    with pytest.raises(QMPError, match="greeting"):
        QMPClient(None, timeout=2, sock=srv.client_sock)
    srv.close()


def test_qmp_over_a_real_unix_socket(tmp_path):
    path = str(tmp_path / "qmp.sock")
    lsock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    lsock.bind(path)
    lsock.listen(1)

    def serve():
        conn, _ = lsock.accept()
        f = conn.makefile("rb")
        conn.sendall(b'{"QMP": {"version": {}, "capabilities": []}}\r\n')
        for line in f:
            msg = json.loads(line)
            conn.sendall(
                (json.dumps({"return": {"cmd": msg["execute"]}, "id": msg["id"]}) + "\r\n").encode()
            )

    threading.Thread(target=serve, daemon=True).start()
    with QMPClient(path, timeout=5) as q:
        assert q.execute("query-status") == {"cmd": "query-status"}
    lsock.close()


def test_qmp_connect_failure_is_a_clear_error(tmp_path):
    with pytest.raises(QMPError, match="cannot connect"):
        QMPClient(str(tmp_path / "missing.sock"), timeout=0.2)


# ---------------------------------------------------------------------------- results -> Dataset
BOOT_LOG = (
    "[    0.000000] mem auto-init: stack:all(zero), heap alloc:on, heap free:off\n"
    "FPHINT-BOOT kernel=6.1.0-56-amd64\n"
    "FPHINT-FEATURES 0101000000000000000000000000010010000000100000000000000000000000\n"
    "FPHINT-FILL bytes=603168768 seconds=3.5\nFPHINT-READY mode=fill-free\n"
)
GOOD_DEST = (
    "FPHINT-HB 30 ok bad_words=0\nFPHINT-HB 31 ok bad_words=0\n"
    "/ # echo FPHINT-PONG-$((6*7))-abc\r\nFPHINT-PONG-42-abc\r\n"
    "FPHINT-TOUCH ok bytes=400000000 bad_words=0 seconds=3.1\nFPHINT-HB 32 ok bad_words=0\n"
)
CRASH_DEST = (
    "FPHINT-HB 30 ok bad_words=0\n"
    "[   41.2] list_del corruption. prev->next should be ffffea0004a80008, but was dead000000000100\n"
    "[   41.2] ------------[ cut here ]------------\n"
    "[   41.2] kernel BUG at lib/list_debug.c:59!\n"
    "[   41.2] invalid opcode: 0000 [#1] PREEMPT SMP NOPTI\n"
    "[   41.2] Workqueue: events_freezable report_free_page_func [virtio_balloon]\n"
)


def _result(final, trace, hint=True, dest=GOOD_DEST, probe=True):
    cfg = RunConfig(
        memory=1 << 30,
        mode="fill-free",
        fill=0.6,
        hint=hint,
        init_on_alloc=True,
        downtime_limit_ms=50,
        max_bandwidth=100 << 30,
        vcpus=1,
    )
    res = RunResult(
        config=cfg,
        status=final.get("status", "failed"),
        final=final,
        trace=trace,
        accelerator="tcg",
        qemu_version="7.2.22",
        guest={
            "kernel_version": "6.1.0-56-amd64",
            "kernel_package": "linux-image-6.1.0-56-amd64",
            "kernel_package_version": "6.1.192-2",
        },
        host={"cpu_model": "Test CPU", "cpu_count": 2, "memory_bytes": 24 << 30},
        source_log=BOOT_LOG,
        dest_log=dest,
        dest_status="running",
        fill_bytes=603168768,
        started="2026-01-01T00:00:00",
    )
    res.health = health.check_health(dest, probe_answered=probe)
    return res


def test_query_migrate_to_dataset_uses_the_simulator_vocabulary():
    trace = [(10.0 * i, r) for i, r in enumerate(MIGRATE_REPLIES)]
    ds = measurement.to_dataset(_result(MIGRATE_REPLIES[-1], trace), run=2, campaign="t")
    assert str(ds["status"].values) == "completed"
    assert float(ds["total-time"]) == 830 and float(ds["downtime"]) == 41
    assert int(ds["ram-transferred"]) == 123456789
    assert int(ds["ram-duplicate"]) == 200000 and int(ds["ram-normal"]) == 29000
    assert int(ds["ram-normal-bytes"]) == 29000 * 4096 and int(ds["dirty-sync-count"]) == 3
    assert ds["ram-duplicate"].attrs["units"] == "pages" and ds["total-time"].attrs["units"] == "ms"
    assert int(ds["qmp-total"]) == 1 << 30 and ds["qmp-skipped"].attrs["units"] == "pages"
    np.testing.assert_allclose(ds["time"].values, [0, 10, 20])
    np.testing.assert_allclose(ds["pending"].values, [np.nan, 8192, 0])
    assert list(ds["qmp-status"].values) == ["setup", "active", "completed"]
    a = ds.attrs
    assert a["scenario_memory"] == 1 << 30 and a["scenario_workload"] == "fill-free"
    assert json.loads(a["scenario_workload_options"]) == {"fill": 0.6}
    assert (a["scenario_hint"], a["scenario_init_on_alloc"]) == (1, 1)
    assert a["scenario_downtime_limit"] == 50 and a["scenario_max_bandwidth"] == 100 << 30
    assert a["guest_ok"] == 1 and a["guest_free_page_hint_negotiated"] == 1
    assert a["guest_init_on_alloc_reported"] == 1 and a["accelerator"] == "tcg"
    assert a["run"] == 2 and a["campaign"] == "t"
    assert measurement.config_from_attrs(a) == RunConfig(
        memory=1 << 30,
        mode="fill-free",
        fill=0.6,
        hint=True,
        init_on_alloc=True,
        downtime_limit_ms=50,
        max_bandwidth=100 << 30,
        vcpus=1,
    )


def test_failed_run_still_gives_a_dataset():
    res = _result({}, [], dest="", probe=False)
    res.status, res.failure = "failed", "source guest not ready"
    ds = measurement.to_dataset(res)
    assert str(ds["status"].values) == "failed" and int(ds["ram-normal"]) == -1
    assert np.isnan(float(ds["total-time"])) and ds.attrs["guest_ok"] == 0
    assert ds.sizes["time"] == 0


def test_netcdf_round_trip(tmp_path):
    trace = [(10.0 * i, r) for i, r in enumerate(MIGRATE_REPLIES)]
    ds = measurement.to_dataset(_result(MIGRATE_REPLIES[-1], trace, dest=CRASH_DEST))
    path = save_dataset(ds, tmp_path / "sub" / "run.nc")
    assert path.stat().st_size < 40_000  # netCDF-4: about 1 KiB of HDF5 metadata per variable
    assert path.read_bytes()[:4] == b"\x89HDF"
    back = load_dataset(path)
    for name in ("ram-transferred", "ram-duplicate", "ram-normal", "dirty-sync-count"):
        assert back[name].dtype == np.int64 and int(back[name]) == int(ds[name]), name
    assert float(back["total-time"]) == 830 and str(back["status"].values) == "completed"
    np.testing.assert_allclose(back["pending"].values, ds["pending"].values)
    assert list(back["qmp-status"].values) == ["setup", "active", "completed"]
    assert back.attrs["scenario_memory"] == 1 << 30 and back.attrs["guest_ok"] == 0
    assert "list_del corruption" in back.attrs["guest_console_excerpt"]
    assert json.loads(back.attrs["guest_trouble_counts"])["list-corruption"] == 1
    cfg = measurement.config_from_attrs(back.attrs)
    assert cfg.hint and cfg.init_on_alloc and cfg.memory == 1 << 30
    assert [d.attrs["path"] for d in measurement.load_all(tmp_path)] == [str(path)]
    with pytest.raises(FphintError):
        load_dataset(tmp_path / "nope.nc")


def test_netcdf3_measured_runs_still_load(tmp_path):
    """Measured runs written before the single writer: netCDF-3 (scipy), int64 stored as float64
    with ``fphint_dtype``; the reader must give the integers back."""
    trace = [(10.0 * i, r) for i, r in enumerate(MIGRATE_REPLIES)]
    ds = measurement.to_dataset(_result(MIGRATE_REPLIES[-1], trace))
    old = ds.copy()
    for name, v in old.data_vars.items():
        if v.dtype.kind == "i":
            old[name] = v.astype("f8")
            old[name].attrs["fphint_dtype"] = "int64"
    old["ram-normal"] = old["ram-normal"].where(False)  # a missing count: NaN on disk
    old.attrs = {  # netCDF-3 attributes are at most 32-bit integers
        k: float(v) if isinstance(v, int) and not -(2**31) <= v < 2**31 else v
        for k, v in old.attrs.items()
    }
    path = tmp_path / "old.nc"
    old.to_netcdf(path, engine="scipy", format="NETCDF3_64BIT")
    assert path.read_bytes()[:3] == b"CDF"
    back = load_dataset(path)
    assert back["ram-transferred"].dtype == np.int64 and int(back["ram-transferred"]) == 123456789
    assert int(back["ram-normal"]) == -1 and "fphint_dtype" not in back["ram-normal"].attrs
    assert back["ram-duplicate"].attrs["units"] == "pages"
    assert list(back["qmp-status"].values) == ["setup", "active", "completed"]
    assert back.attrs["scenario_memory"] == 1 << 30
    bad = tmp_path / "bad.nc"
    bad.write_text("not netCDF")
    with pytest.raises(FphintError, match="not a netCDF file"):
        load_dataset(bad)


@pytest.mark.slow  # long without the JIT: in the JIT pass only
def test_the_committed_campaign_loads():
    from fphint_kernels.config import data_dir

    root = data_dir() / "measurements"
    runs = measurement.load_all(root)
    assert len(runs) == len(list(root.rglob("*.nc"))) > 0
    for ds in runs:
        assert ds["ram-normal"].dtype == np.int64 and ds["dirty-sync-count"].dtype == np.int64
        assert str(ds["status"].values) in ("completed", "failed", "not-converged")
        assert ds.attrs["path"].endswith(f"{ds.attrs['config_key']}-r{ds.attrs['run']}.nc")
    done = measurement.load_all(root, completed=True)
    assert [ds.attrs["path"] for ds in done] == [
        ds.attrs["path"] for ds in runs if str(ds["status"].values) == "completed"
    ]


# ---------------------------------------------------------------------------- guest health
def test_health_of_a_good_destination():
    h = health.check_health(GOOD_DEST, probe_answered=True)
    assert h.ok and h.alive and h.trouble == [] and h.heartbeats_after == 3
    assert h.touch.startswith("ok")


def test_health_finds_list_del_corruption_and_bug():
    h = health.check_health(CRASH_DEST, probe_answered=False)
    assert not h.ok and not h.alive
    assert h.counts() == {"list-corruption": 1, "bug": 1}
    assert any("list_del corruption" in e for e in h.evidence)


def test_health_bad_heartbeat_or_touch_is_not_ok():
    h = health.check_health(
        "FPHINT-HB 1 BAD bad_words=12\nFPHINT-HB 2 ok bad_words=0\n", probe_answered=True
    )
    assert h.alive and not h.ok and h.bad_heartbeats == 1
    h = health.check_health(
        "FPHINT-TOUCH BAD bytes=4096 bad_words=3 seconds=1\n", probe_answered=True
    )
    assert not h.ok
    # the token printed by the probe counts as an answer even if the wait timed out
    h = health.check_health(
        "\x1b[6nFPHINT-PONG-42-zz\r\n", probe_answered=False, probe_token="FPHINT-PONG-42-zz"
    )
    assert h.alive and h.ok


def test_health_helpers():
    assert health.feature_bits(BOOT_LOG).startswith("0101")
    assert health.free_page_hint_negotiated(health.feature_bits(BOOT_LOG)) is True
    assert health.free_page_hint_negotiated("0100") is False
    assert health.free_page_hint_negotiated(None) is None
    assert health.init_on_alloc_reported(BOOT_LOG) is True
    assert (
        health.init_on_alloc_reported("mem auto-init: stack:off, heap alloc:off, heap free:off")
        is False
    )
    assert health.trouble_lines("Oops: 0000 [#1]\nall fine\n") == [("oops", "Oops: 0000 [#1]")]
    assert health.heartbeats("FPHINT-HB 7 ok bad_words=0") == [(7, True, 0)]


# ---------------------------------------------------------------------------- config, plans, cpio
def test_run_config_parsing_and_errors():
    c = RunConfig.from_strings(
        memory="2G",
        mode="dirty-loop",
        dirty_bytes="64M",
        dirty_interval="250ms",
        hint="off",
        init_on_alloc="on",
        downtime_limit="2s",
        max_bandwidth="1G",
        max_time="90s",
    )
    assert c.memory == 2 << 30 and c.dirty_bytes == 64 << 20 and c.dirty_interval_ms == 250
    assert not c.hint and c.init_on_alloc and c.downtime_limit_ms == 2000 and c.max_time_s == 90
    assert c.workload_options() == {"dirty_bytes": 64 << 20, "dirty_interval_ms": 250}
    assert c.key() == "2G-dirty-loop-d64M-250ms-nohint-ioa1-dl2000-smp1"
    assert RunConfig.from_strings(memory=512).memory == 512 << 20
    for bad in (
        {"mode": "busy"},
        {"hint": "maybe"},
        {"memory": "1K"},
        {"fill": "120%"},
        {"downtime_limit": "soon"},
        {"vcpus": 0},
        {"colour": "red"},
    ):
        with pytest.raises(FphintError):
            RunConfig.from_strings(**bad)


def test_campaign_plan_order_and_resume(tmp_path):
    plan = campaign.default_plan()
    runs = campaign.expand(plan)
    keys = {c.key() for _, c in runs}
    assert len(runs) == 3 * len(keys) >= 40
    mems = {c.memory for _, c in runs}
    assert min(mems) == 1 << 30 and max(mems) == 4 << 30
    assert {c.mode for _, c in runs} >= {"idle", "fill-free"}
    assert {c.hint for _, c in runs} == {True, False}
    assert {c.init_on_alloc for _, c in runs} == {True, False}
    assert len({c.downtime_limit_ms for _, c in runs}) == 2
    assert [r for r, _ in runs[: len(keys)]] == [0] * len(keys)  # repeat-major
    # resume: an existing file is not run again
    first = campaign.run_file(tmp_path, runs[0][1], 0)
    first.write_text("x")
    import io

    s = io.StringIO()
    campaign.run_campaign(plan, tmp_path, dry_run=True, stream=s)
    assert f"{len(runs) - 1} runs to do" in s.getvalue() and first.name not in s.getvalue()
    with pytest.raises(FphintError):
        campaign.load_plan(str(tmp_path / "missing.json"))
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    with pytest.raises(FphintError):
        campaign.load_plan(str(bad))


def test_cpio_newc_layout():
    blob = _cpio_newc([("bin", 0o040755, b""), ("init", 0o100755, b"#!/bin/sh\n")])
    assert blob.startswith(b"070701") and b"TRAILER!!!" in blob
    assert len(blob) % 4 == 0
    # the file's data follows its 110-byte header and name, padded to 4 bytes
    i = blob.index(b"init\0")
    data_at = i + 5 + (-(110 + 5) % 4)
    assert blob[data_at : data_at + 10] == b"#!/bin/sh\n"
    assert int(blob[i - 110 + 54 : i - 110 + 62], 16) == 10  # c_filesize
    assert gzip.decompress(gzip.compress(blob)) == blob


def test_cli_bad_input_is_one_line_exit_2(capsys):
    from fphint_kernels.cli import main

    assert main(["qemu", "migrate", "--mode", "busy"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "busy" in err[0]
    assert main(["qemu", "summary", "/nonexistent/dir"]) == 2


# ---------------------------------------------------------------------------- comparison
def test_scenario_for_uses_the_recorded_configuration():
    from fphint_kernels.qemu.compare import run_id, scenario_for

    trace = [(10.0 * i, r) for i, r in enumerate(MIGRATE_REPLIES)]
    ds = measurement.to_dataset(_result(MIGRATE_REPLIES[-1], trace), run=1)
    sc = scenario_for(ds, profile="prior", seed=3)
    assert sc.memory == 1 << 30 and sc.workload == "fill-free" and sc.hint and sc.init_on_alloc
    assert sc.downtime_limit == 50 and sc.max_bandwidth == 100 << 30 and sc.vcpus == 1
    assert sc.seed == 3 and sc.profile == "prior"
    opts = dict(sc.workload_options)
    # what the guest program reports it wrote wins over the nominal 60 %
    assert opts["fill"] == pytest.approx(603168768 / (1 << 30))
    assert sc.guest == "busybox-tcg" and dict(sc.guest_options) == {}  # the harness's guest
    assert run_id(ds) == "1G-fill-free-fill60-hint-ioa1-dl50-smp1-r1"


@pytest.mark.slow  # a real simulation: too slow with NUMBA_DISABLE_JIT
def test_compare_and_error_summary_on_a_small_run():
    pytest.importorskip("fphint_kernels.simulate")
    from fphint_kernels.qemu.compare import compare, error_summary

    final = {
        "status": "completed",
        "total-time": 400,
        "downtime": 20,
        "setup-time": 2,
        "ram": {"transferred": 60_000_000, "duplicate": 50_000, "normal": 14_000,
                "normal-bytes": 14_000 * 4096, "dirty-sync-count": 3},
    }  # fmt: skip
    res = _result(final, [(0.0, final)])
    res.config = RunConfig(memory=256 << 20, mode="idle", hint=False, downtime_limit_ms=300)
    ds = measurement.to_dataset(res)
    table = compare([ds], profile="prior")
    assert len(table) == 1 and bool(table["held_out"].iloc[0])
    row = table.iloc[0]
    assert row["m:ram-normal"] == 14_000 and row["s:ram-normal"] > 0
    assert row["err:ram-normal"] == pytest.approx((row["s:ram-normal"] - 14_000) / 14_000)
    # a legacy migration sends every page once at least: zero + normal >= guest pages
    assert row["s:ram-duplicate"] + row["s:ram-normal"] >= (256 << 20) // 4096
    summ = error_summary(table)
    assert summ.loc["ram-normal", "runs"] == 1
    assert summ.loc["total-time", "target"] == 0.30


def test_raw_result_round_trip(tmp_path):
    from fphint_kernels.qemu.result import dump_raw, load_raw

    trace = [(10.0 * i, r) for i, r in enumerate(MIGRATE_REPLIES)]
    res = _result(MIGRATE_REPLIES[-1], trace, dest=CRASH_DEST, probe=False)
    (tmp_path / "src-console.log").write_text(BOOT_LOG)
    (tmp_path / "dst-console.log").write_text(CRASH_DEST)
    dump_raw(res, tmp_path / "result.json")
    back = load_raw(tmp_path / "result.json")
    assert back.config == res.config and back.final == res.final and back.trace == res.trace
    assert back.health.counts() == res.health.counts() and not back.health.ok
    a, b = measurement.to_dataset(res), measurement.to_dataset(back)
    assert a.attrs["guest_trouble_counts"] == b.attrs["guest_trouble_counts"]
    assert int(a["ram-normal"]) == int(b["ram-normal"])


def test_campaign_pairs_alternate_their_order():
    plan = {
        "name": "p",
        "repeats": 3,
        "pairs": True,
        "runs": [
            {"memory": "1G", "hint": "on"},
            {"memory": "1G", "hint": "off"},
            {"memory": "2G", "hint": "on"},
            {"memory": "2G", "hint": "off"},
        ],
    }
    runs = campaign.expand(plan)
    keys = [(r, c.memory >> 30, c.hint) for r, c in runs]
    assert keys[:4] == [(0, 1, True), (0, 1, False), (0, 2, True), (0, 2, False)]
    assert keys[4:8] == [(1, 1, False), (1, 1, True), (1, 2, False), (1, 2, True)]
    assert [k[1:] for k in keys[8:]] == [k[1:] for k in keys[:4]]  # the third repeat: A B again
    assert [k[0] for k in keys[8:]] == [2, 2, 2, 2]
    with pytest.raises(FphintError, match="even number"):
        campaign.expand({**plan, "runs": plan["runs"][:3]})
