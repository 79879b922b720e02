"""One real migration between two local QEMUs, and the checks around it.

:func:`migrate_once` boots the source guest, waits until its workload is set up
(``FPHINT-READY`` on the serial console), starts a destination with ``-incoming defer``,
migrates over ``tcp:127.0.0.1:PORT`` while polling ``query-migrate``, then checks the
destination guest (console probe, a memory allocation test, kernel log) and stops both QEMUs.
The result is a :class:`~fphint_kernels.qemu.result.RunResult`;
:mod:`fphint_kernels.qemu.measurement` turns it into a Dataset.

The run configuration is :mod:`fphint_kernels.qemu.runconfig`, the QEMU processes
:mod:`fphint_kernels.qemu.process`, the raw record :mod:`fphint_kernels.qemu.result`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path

from ..errors import FphintError
from . import health, probes
from .guest import Guest, cache_dir, load_guest
from .hostbench import host_info
from .process import QemuProcess, free_port, qemu_version
from .qmp import QMPError
from .result import RunResult, dump_raw
from .runconfig import RunConfig, qemu_args

#: Seconds between two ``query-migrate`` polls.
POLL_S = 0.05


def detect_accelerator(guest: Guest, *, timeout_s: float = 25.0, use_cache: bool = True) -> str:
    """``kvm`` if a stock guest really boots under KVM here within ``timeout_s``, else ``tcg``.

    The answer is cached in the cache directory (``accel.json``) per QEMU and kernel version.
    """
    cache = guest.cache_dir / "accel.json"
    key = f"{qemu_version()}|{guest.kernel_version}"
    if use_cache and cache.exists():
        try:
            raw = json.loads(cache.read_text())
            if raw.get("key") == key:
                return raw["accelerator"]
        except (ValueError, KeyError):
            pass
    accel = "tcg"
    reason = "no /dev/kvm"
    if os.path.exists("/dev/kvm") and os.access("/dev/kvm", os.R_OK | os.W_OK):
        work = Path(tempfile.mkdtemp(prefix="fphint-kvm-"))
        p = None
        try:
            cfg = RunConfig(memory=256 << 20, mode="idle", hint=True)
            p = QemuProcess("kvmtest", qemu_args(guest, cfg, "kvm", incoming=False), work)
            ok = p.console.wait_for(r"FPHINT-READY", timeout_s, alive=p.alive)
            if ok:
                accel, reason = "kvm", "stock guest booted under KVM"
            else:
                reason = f"stock guest did not boot under KVM within {timeout_s:g} s"
        except FphintError as exc:
            reason = f"KVM start failed: {exc}"
        finally:
            if p is not None:
                p.kill()
            shutil.rmtree(work, ignore_errors=True)
    sys.stderr.write(f"fphint qemu: accelerator {accel} ({reason})\n")
    cache.write_text(json.dumps({"key": key, "accelerator": accel, "reason": reason}) + "\n")
    return accel


def _migrate_status(s: str) -> str:
    return {"completed": "completed", "failed": "failed", "cancelled": "failed"}.get(s, s)


def migrate_once(
    cfg: RunConfig,
    *,
    guest: Guest | None = None,
    accel: str | None = None,
    keep_logs: str | os.PathLike | None = None,
    progress=None,
) -> RunResult:
    """Run one measured migration.

    Parameters
    ----------
    cfg : RunConfig
    guest : Guest, optional
        Default: the guest prepared in the cache directory.
    accel : {"kvm", "tcg"}, optional
        Default: :func:`detect_accelerator`.
    keep_logs : path-like, optional
        Directory where the console logs and QEMU messages of this run are kept
        (default: a new directory under ``<cache>/runs``).
    progress : callable, optional
        Called with short status strings.

    Returns
    -------
    RunResult
        Always returned, also when the migration failed (``status`` and ``failure`` say why).
    """
    guest = guest or load_guest()
    accel = accel or detect_accelerator(guest)
    res = RunResult(config=cfg, accelerator=accel, qemu_version=qemu_version())
    res.guest = guest.to_dict()
    res.host = host_info()
    res.started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    logs = Path(keep_logs) if keep_logs else cache_dir() / "runs"
    logs.mkdir(parents=True, exist_ok=True)
    run = _Migration(res, guest, progress or (lambda msg: None))
    source_ready = True
    try:
        source_ready = run.boot_source()
        if source_ready:
            run.migrate()
    except (QMPError, FphintError, OSError) as exc:
        run.res.status = "failed"
        run.res.failure = str(exc)
    finally:
        run.stop_and_keep_logs(logs)
    if not source_ready:
        return res  # a source that never got ready: no verdict on a destination, no result.json
    if res.health is None:
        res.health = health.Health(ok=False, alive=False, evidence=[res.failure or "no check"])
    dump_raw(res, Path(res.workdir) / "result.json")
    return res


class _Migration:
    """The steps of :func:`migrate_once`, sharing the run's two QEMUs and its record."""

    def __init__(self, res: RunResult, guest: Guest, say):
        self.res, self.cfg, self.guest, self.say = res, res.config, guest, say
        self.accel = res.accelerator
        self.sockdir = Path(tempfile.mkdtemp(prefix="fphint-"))  # short path for unix sockets
        self.src: QemuProcess | None = None
        self.dst: QemuProcess | None = None
        self.t_start = time.monotonic()

    def _start(self, name: str, incoming: bool) -> QemuProcess:
        args = qemu_args(self.guest, self.cfg, self.accel, incoming=incoming)
        events = None
        if not incoming:  # the source's trace events explain the migration's timing
            events = probes.write_events_file(self.sockdir / "trace-events")
        return QemuProcess(name, args, self.sockdir, trace_events=events)

    def boot_source(self) -> bool:
        """Boot the source guest and wait for its workload; False if it never got ready."""
        self.say("booting source")
        self.src = src = self._start("src", incoming=False)
        boot_timeout = 120 + self.cfg.memory / (64 << 20)
        ready = src.console.wait_for(r"FPHINT-READY", boot_timeout, alive=src.alive)
        self.res.timings["boot_s"] = time.monotonic() - self.t_start
        if not ready:
            self.res.failure = (
                f"source guest not ready after {boot_timeout:g} s; {src.stderr_tail()}"
            )
            return False
        m = re.search(r"FPHINT-FILL bytes=(\d+)", health.clean(src.console.text()))
        self.res.fill_bytes = int(m.group(1)) if m else -1
        return True

    def migrate(self) -> None:
        """Start the destination, migrate, record the outcome and check the destination."""
        self.say("source ready; waiting for the host's free memory to settle")
        self.res.timings["memory_settle_s"] = probes.wait_for_settled_memory()
        self.say("starting destination")
        self.dst = self._start("dst", incoming=True)
        time.sleep(self.cfg.settle_s)
        port = free_port()
        self.dst.qmp.execute("migrate-incoming", uri=f"tcp:127.0.0.1:{port}")
        self.src.qmp.execute(
            "migrate-set-parameters",
            **{
                "downtime-limit": int(round(self.cfg.downtime_limit_ms)),
                "max-bandwidth": int(self.cfg.max_bandwidth),
            },
        )
        self.res.timings["params"] = self.src.qmp.execute("query-migrate-parameters")
        self.say("migrating")
        touch = probes.FirstTouchProbe()  # the cost of new memory on this host right now
        vm0, rep0 = probes.read_vmstat(), probes.read_reported_kib()
        try:
            with probes.ThreadSampler({"src": self.src.proc.pid, "dst": self.dst.proc.pid}) as cpu:
                t0, t0_wall = time.monotonic(), time.time()
                self.src.qmp.execute("migrate", uri=f"tcp:127.0.0.1:{port}")
                info = self.poll(t0)
        finally:
            touch.release()
        self.res.probes = _probe_record(cpu.series(), t0_wall, vm0, probes.read_vmstat())
        self.res.probes["first_touch_ms_per_2m"] = round(touch.ms_per_region, 4)
        rep1 = probes.read_reported_kib()
        self.res.probes["reported_kib"] = None if rep0 is None else rep1 - rep0
        self.res.final = info
        self.res.timings["migrate_wall_s"] = time.monotonic() - t0
        self.judge(info, t0)
        if self.res.status == "completed":
            self.say("checking destination guest")
            self.res.dest_status, self.res.health = _check_destination(self.dst)
        else:
            self.res.health = health.Health(ok=False, alive=False, evidence=["not migrated"])

    def poll(self, t0: float) -> dict:
        """Poll ``query-migrate`` into the trace until the migration ends or runs out of time
        (then ``migrate_cancel``); the last reply."""
        src, limit_ms = self.src, self.cfg.max_time_s * 1000.0
        while True:
            info = src.qmp.execute("query-migrate")
            t = (time.monotonic() - t0) * 1000.0
            self.res.trace.append((t, info))
            if info.get("status", "") in ("completed", "failed", "cancelled"):
                return self._settled(info, t0)
            if t > limit_ms:
                src.qmp.execute("migrate_cancel")
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline:
                    info = src.qmp.execute("query-migrate")
                    if info.get("status") in ("cancelled", "failed", "completed"):
                        break
                    time.sleep(POLL_S)
                self.res.trace.append(((time.monotonic() - t0) * 1000.0, info))
                return info
            if not src.alive():
                raise FphintError("source QEMU died during migration")
            time.sleep(POLL_S)

    def _settled(self, info: dict, t0: float) -> dict:
        """The final reply once QEMU has filled in its times.

        QEMU sets the state to ``completed`` before ``migration_calculate_complete`` computes
        ``total-time`` and ``downtime`` (``migration_iteration_finish``), so a poll that lands
        in between reads 0 for both: ask again until they are set (at most 2 s).
        """
        deadline = time.monotonic() + 2.0
        while (
            info.get("status") == "completed"
            and not info.get("total-time")
            and time.monotonic() < deadline
        ):
            time.sleep(0.02)
            info = self.src.qmp.execute("query-migrate")
            self.res.trace.append(((time.monotonic() - t0) * 1000.0, info))
        return info

    def judge(self, info: dict, t0: float) -> None:
        """``status`` and ``failure`` of the run from the last ``query-migrate`` reply."""
        res, st = self.res, info.get("status", "")
        if st == "completed":
            res.status = "completed"
        elif st == "cancelled" and (time.monotonic() - t0) >= self.cfg.max_time_s:
            res.status = "not-converged"
            res.failure = f"still pending after {self.cfg.max_time_s:g} s: cancelled"
        else:
            res.status = _migrate_status(st)
            res.failure = info.get("error-desc", f"migration ended with status {st}")

    def stop_and_keep_logs(self, logs: Path) -> None:
        """Stop both QEMUs, keep their consoles, move the logs into a run directory."""
        res = self.res
        for p in (self.src, self.dst):
            if p is not None:
                p.kill()
        if self.src is not None:
            res.source_log = self.src.console.text()
            try:
                res.source_qemu_log = self.src.stderr_path.read_text(errors="replace")
            except OSError:
                pass
        if self.dst is not None:
            res.dest_log = self.dst.console.text()
        run_dir = logs / f"{time.strftime('%Y%m%d-%H%M%S')}-{self.cfg.key()}"
        run_dir.mkdir(parents=True, exist_ok=True)
        for f in self.sockdir.glob("*"):
            if f.suffix in (".log", ".err"):
                shutil.move(str(f), run_dir / f.name)
        shutil.rmtree(self.sockdir, ignore_errors=True)
        res.workdir = str(run_dir)
        res.timings["wall_s"] = time.monotonic() - self.t_start


def _probe_record(series: dict, t0_wall: float, vm0: dict, vm1: dict) -> dict:
    """The CPU samples of a run as JSON-ready lists, times in ms from the migrate command."""
    return {
        "time_ms": ((series["time"] - t0_wall) * 1000.0).round(3).tolist(),
        "cpu_ns": {f"{side}/{role}": v.tolist() for (side, role), v in series["cpu"].items()},
        "wait_ns": {f"{side}/{role}": v.tolist() for (side, role), v in series["wait"].items()},
        "host_busy": [None if v != v else round(float(v), 4) for v in series["host_busy"]],
        "migrate_wall_time": t0_wall,
        "vmstat": {k: vm1[k] - vm0[k] for k in vm1 if k in vm0},
    }


def _check_destination(dst: QemuProcess) -> tuple[str, health.Health]:
    """Probe the destination guest: shell answer, allocation test, second answer, kernel log."""
    status = _wait_until_loaded(dst)
    time.sleep(3.0)  # let the guest get DONE and return its hinted pages
    answered = _probe(dst)
    time.sleep(1.0)
    verdict = health.check_health(dst.console.text(), probe_answered=answered)
    if not dst.alive():
        verdict.ok = False
        verdict.evidence.append(f"destination QEMU exited: {dst.stderr_tail()}")
    elif status != "running":
        verdict.evidence.append(f"destination run state {status!r}")
        verdict.ok = False
    return status, verdict


def _wait_until_loaded(dst: QemuProcess) -> str:
    """The destination's run state once it has left ``inmigrate`` (or after 20 s)."""
    status = ""
    deadline = time.monotonic() + 20.0
    while time.monotonic() < deadline and dst.alive():  # the destination may still be loading
        try:
            status = dst.qmp.execute("query-status").get("status", "")
        except QMPError as exc:
            return f"unknown ({exc})"
        if status != "inmigrate":
            break
        time.sleep(0.2)
    return status


def _probe(dst: QemuProcess) -> bool:
    """Console probe, allocation test (``fphint-mem touch``), console probe: all answered?"""
    answered = True

    def dead() -> bool:
        # a panicked guest cannot answer: do not wait for the probes' timeouts
        return not dst.alive() or "Kernel panic" in dst.console.text()

    def alive() -> bool:
        return not dead()

    for step in ("probe1", "touch", "probe2"):
        if dead():
            return False
        start = dst.console.mark()
        if step == "touch":
            dst.console.send("/bin/fphint-mem touch 0.3")
            ok = dst.console.wait_for(r"FPHINT-TOUCH (ok|BAD)", 90, start=start, alive=alive)
            if not ok:
                answered = False
            continue
        tok = uuid.uuid4().hex[:8]
        # the shell must evaluate $((6*7)): an echo of the typed line by the tty does not match
        dst.console.send(f"echo FPHINT-PONG-$((6*7))-{tok}")
        ok = dst.console.wait_for(rf"FPHINT-PONG-42-{tok}", 30, start=start, alive=alive)
        if not ok:
            answered = False
            if health.trouble_lines(dst.console.text()):
                break  # crashed (Oops/BUG) and not answering: the other probes would time out
    return answered
