"""One real migration between two local QEMUs, and the checks around it.

:func:`migrate_once` boots the source guest, waits until its workload is set up
(``FPHINT-READY`` on the serial console), starts a destination with ``-incoming defer``,
migrates over ``tcp:127.0.0.1:PORT`` while polling ``query-migrate``, then checks the
destination guest (console probe, a memory allocation test, kernel log) and stops both QEMUs.
The result is a :class:`RunResult`; :mod:`fphint_kernels.qemu.measurement` turns it into a
Dataset.
"""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..errors import FphintError
from ..units import parse_duration_ms, parse_fraction, parse_size
from . import health
from .guest import Guest, cache_dir, load_guest
from .qmp import QMPClient, QMPError

MODES = ("idle", "fill-free", "dirty-loop")
QEMU = "qemu-system-x86_64"
POLL_S = 0.05


@dataclass(frozen=True)
class RunConfig:
    """What one measured migration does (the scenario vocabulary of the simulator).

    Attributes
    ----------
    memory : int
        Guest RAM in bytes.
    mode : str
        ``idle``, ``fill-free`` or ``dirty-loop``.
    fill : float
        fill-free: share of RAM written then freed.
    dirty_bytes : int
        dirty-loop: bytes rewritten (one word per page) every ``dirty_interval_ms``.
    dirty_interval_ms : float
    hint : bool
        ``free-page-hint=on`` on both virtio-balloon devices.
    init_on_alloc : bool
        Guest kernel command line ``init_on_alloc=1``.
    downtime_limit_ms : float
    max_bandwidth : int
        Bytes/s (``migrate-set-parameters max-bandwidth``).
    vcpus : int
    max_time_s : float
        Cancel the migration (status ``not-converged``) after this long.
    settle_s : float
        Idle time between the guest's READY and the migrate command.
    """

    memory: int = 1 << 30
    mode: str = "idle"
    fill: float = 0.6
    dirty_bytes: int = 128 << 20
    dirty_interval_ms: float = 100.0
    hint: bool = True
    init_on_alloc: bool = False
    downtime_limit_ms: float = 300.0
    max_bandwidth: int = 100 << 30
    vcpus: int = 1
    max_time_s: float = 300.0
    settle_s: float = 2.0

    def __post_init__(self):
        if self.mode not in MODES:
            raise FphintError(f"--mode: expected one of {', '.join(MODES)}, got {self.mode!r}")
        if not (64 << 20) <= self.memory <= (64 << 30):
            raise FphintError(f"--memory: expected 64M..64G, got {self.memory} bytes")
        if self.vcpus < 1 or self.vcpus > 64:
            raise FphintError(f"--vcpus: expected 1..64, got {self.vcpus}")
        if self.max_bandwidth <= 0:
            raise FphintError("--max-bandwidth must be positive")
        if self.max_time_s <= 0:
            raise FphintError("--max-time must be positive")
        if self.dirty_interval_ms <= 0:
            raise FphintError("--dirty-interval must be positive")

    @classmethod
    def from_strings(cls, **kw) -> RunConfig:
        """Build from user strings (``memory="2G"``, ``fill="60%"``, ``downtime_limit="300ms"``...)."""
        out: dict = {}
        for k, v in kw.items():
            if v is None:
                continue
            if k == "memory":
                out[k] = parse_size(v, what="--memory", default_unit="M")
            elif k == "fill":
                out[k] = parse_fraction(v, what="--fill")
            elif k == "dirty_bytes":
                out[k] = parse_size(v, what="--dirty-bytes")
            elif k in ("dirty_interval", "dirty_interval_ms"):
                out["dirty_interval_ms"] = parse_duration_ms(v, what="--dirty-interval")
            elif k in ("downtime_limit", "downtime_limit_ms"):
                out["downtime_limit_ms"] = parse_duration_ms(v, what="--downtime-limit")
            elif k == "max_bandwidth":
                out[k] = parse_size(v, what="--max-bandwidth")
            elif k in ("max_time", "max_time_s"):
                out["max_time_s"] = parse_duration_ms(v, what="--max-time") / 1000.0
            elif k == "settle":
                out["settle_s"] = parse_duration_ms(v, what="--settle") / 1000.0
            elif k in ("hint", "init_on_alloc"):
                out[k] = _on_off(v, k)
            elif k == "vcpus":
                out[k] = int(v)
            elif k in ("mode", "settle_s"):
                out[k] = v
            else:
                raise FphintError(f"unknown run option {k!r}")
        return cls(**out)

    def workload_options(self) -> dict:
        """The simulator's ``workload_options`` for this mode."""
        if self.mode == "fill-free":
            return {"fill": self.fill}
        if self.mode == "dirty-loop":
            return {"dirty_bytes": self.dirty_bytes, "dirty_interval_ms": self.dirty_interval_ms}
        return {}

    def key(self) -> str:
        """A short file-name-safe identifier of the configuration."""
        mem = f"{self.memory >> 20}M" if self.memory % (1 << 30) else f"{self.memory >> 30}G"
        parts = [mem, self.mode]
        if self.mode == "fill-free":
            parts.append(f"fill{round(self.fill * 100)}")
        if self.mode == "dirty-loop":
            parts.append(f"d{self.dirty_bytes >> 20}M-{self.dirty_interval_ms:g}ms")
        parts += [
            "hint" if self.hint else "nohint",
            f"ioa{int(self.init_on_alloc)}",
            f"dl{self.downtime_limit_ms:g}",
            f"smp{self.vcpus}",
        ]
        return "-".join(parts)


def _on_off(v, what: str) -> bool:
    if isinstance(v, bool):
        return v
    s = str(v).strip().lower()
    if s in ("on", "yes", "true", "1"):
        return True
    if s in ("off", "no", "false", "0"):
        return False
    raise FphintError(f"--{what.replace('_', '-')}: expected on or off, got {v!r}")


@dataclass
class RunResult:
    """Everything recorded about one migration."""

    config: RunConfig
    status: str = "failed"
    failure: str = ""
    final: dict = field(default_factory=dict)  # last query-migrate reply
    trace: list = field(default_factory=list)  # (t_ms, query-migrate reply)
    accelerator: str = ""
    qemu_version: str = ""
    guest: dict = field(default_factory=dict)
    host: dict = field(default_factory=dict)
    source_log: str = ""
    dest_log: str = ""
    health: health.Health | None = None
    dest_status: str = ""
    fill_bytes: int = -1
    timings: dict = field(default_factory=dict)
    started: str = ""
    workdir: str = ""


# ---------------------------------------------------------------------------------------------
def host_info() -> dict:
    """CPU model, cores, RAM, kernel and load of this host."""
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = 0
    try:
        m = re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text())
        mem = int(m.group(1)) * 1024 if m else 0
    except OSError:
        pass
    try:
        load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        load = ""
    return {
        "cpu_model": model or platform.processor(),
        "cpu_count": os.cpu_count() or 0,
        "memory_bytes": mem,
        "kernel": platform.release(),
        "loadavg": load,
        "hostname_hash": uuid.uuid5(uuid.NAMESPACE_DNS, platform.node()).hex[:8],
    }


def qemu_version(binary: str = QEMU) -> str:
    """``QEMU emulator version ...`` first line, or raise if QEMU is missing."""
    if shutil.which(binary) is None:
        raise FphintError(f"{binary} not found: apt-get install qemu-system-x86")
    out = subprocess.run([binary, "--version"], capture_output=True, text=True).stdout
    m = re.search(r"version\s+(\S+(?:\s+\([^)]*\))?)", out)
    return m.group(1) if m else out.strip().splitlines()[0]


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Console:
    """The guest serial console over a unix socket: a reader thread keeps everything printed."""

    def __init__(self, path: str, logfile: Path, timeout: float = 10.0):
        self.path = path
        self.logfile = logfile
        self._buf: list[str] = []
        self._lock = threading.Lock()
        self._closed = False
        self._sock = self._connect(timeout)
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _connect(self, timeout: float) -> socket.socket:
        deadline = time.monotonic() + timeout
        while True:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                s.connect(self.path)
                return s
            except OSError as exc:
                s.close()
                if time.monotonic() > deadline:
                    raise FphintError(f"cannot connect to console {self.path}: {exc}") from None
                time.sleep(0.05)

    def _read(self) -> None:
        with open(self.logfile, "ab") as f:
            while not self._closed:
                try:
                    data = self._sock.recv(65536)
                except OSError:
                    break
                if not data:
                    break
                f.write(data)
                f.flush()
                with self._lock:
                    self._buf.append(data.decode("utf-8", "replace"))

    def text(self) -> str:
        """Everything received so far."""
        with self._lock:
            return "".join(self._buf)

    def mark(self) -> int:
        """Current length of the received text (to search only what comes later)."""
        return len(self.text())

    def wait_for(self, pattern: str, timeout: float, start: int = 0, alive=None):
        """Wait until ``pattern`` (regex) appears after offset ``start``; None on timeout."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = rx.search(health.clean(self.text()[start:]))
            if m:
                return m
            if alive is not None and not alive():
                return None
            time.sleep(0.1)
        return None

    def send(self, line: str) -> None:
        """Type one line on the console."""
        try:
            self._sock.sendall(line.encode() + b"\n")
        except OSError:
            pass

    def close(self) -> None:
        """Stop reading."""
        self._closed = True
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._sock.close()
        self._thread.join(timeout=2)


class QemuProcess:
    """One ``qemu-system-x86_64`` with a QMP socket and a console socket."""

    def __init__(self, name: str, args: list[str], workdir: Path):
        self.name = name
        self.workdir = workdir
        self.qmp_path = str(workdir / f"{name}-qmp.sock")
        self.con_path = str(workdir / f"{name}-con.sock")
        self.stderr_path = workdir / f"{name}-qemu.err"
        cmd = [
            QEMU,
            "-name",
            f"fphint-{name}",
            *args,
            "-chardev",
            f"socket,id=con0,path={self.con_path},server=on,wait=off",
            "-serial",
            "chardev:con0",
            "-qmp",
            f"unix:{self.qmp_path},server=on,wait=off",
        ]
        self.cmd = cmd
        with open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=err, stderr=subprocess.STDOUT
            )
        try:
            self.qmp = QMPClient(self.qmp_path, timeout=20.0)
            self.console = Console(self.con_path, workdir / f"{name}-console.log")
        except (QMPError, FphintError) as exc:
            self.kill()
            raise FphintError(f"{name} QEMU did not start: {exc}; {self.stderr_tail()}") from None

    def alive(self) -> bool:
        """Whether the QEMU process still runs."""
        return self.proc.poll() is None

    def stderr_tail(self) -> str:
        """Last lines QEMU printed."""
        try:
            lines = self.stderr_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return " | ".join(lines[-3:])

    def kill(self) -> None:
        """Stop QEMU: ``quit`` over QMP, then SIGTERM, then SIGKILL."""
        if self.alive() and getattr(self, "qmp", None) is not None:
            try:
                self.qmp.execute("quit")
            except QMPError:
                pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for attr in ("qmp", "console"):
            obj = getattr(self, attr, None)
            if obj is not None:
                obj.close()


def qemu_args(guest: Guest, cfg: RunConfig, accel: str, *, incoming: bool) -> list[str]:
    """Command-line arguments of one side (the same machine on both sides)."""
    append = [
        "console=ttyS0",
        f"init_on_alloc={int(cfg.init_on_alloc)}",
        "panic=0",
        f"fphint.mode={cfg.mode}",
        f"fphint.fill={cfg.fill:.4f}",
        f"fphint.dirty_bytes={cfg.dirty_bytes}",
        f"fphint.dirty_ms={int(round(cfg.dirty_interval_ms))}",
    ]
    accel_args = (
        ["-accel", "kvm", "-cpu", "host"]
        if accel == "kvm"
        else ["-accel", "tcg,thread=multi", "-cpu", "max"]
    )
    args = [
        "-nodefaults",
        "-no-user-config",
        "-display",
        "none",
        "-machine",
        "pc",
        *accel_args,
        "-smp",
        str(cfg.vcpus),
        "-m",
        f"{cfg.memory >> 20}M",
        "-kernel",
        str(guest.kernel),
        "-initrd",
        str(guest.initrd),
        "-append",
        " ".join(append),
        "-object",
        "iothread,id=io0",
        "-device",
        f"virtio-balloon-pci,id=balloon0,free-page-hint={'on' if cfg.hint else 'off'},iothread=io0",
        "-no-reboot",
    ]
    if incoming:
        args += ["-incoming", "defer"]
    return args


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
    say = progress or (lambda msg: None)
    guest = guest or load_guest()
    accel = accel or detect_accelerator(guest)
    res = RunResult(config=cfg, accelerator=accel, qemu_version=qemu_version())
    res.guest = guest.to_dict()
    res.host = host_info()
    res.started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    logs = Path(keep_logs) if keep_logs else cache_dir() / "runs"
    logs.mkdir(parents=True, exist_ok=True)
    sockdir = Path(tempfile.mkdtemp(prefix="fphint-"))  # short path for unix sockets
    src = dst = None
    t_start = time.monotonic()
    try:
        say("booting source")
        src = QemuProcess("src", qemu_args(guest, cfg, accel, incoming=False), sockdir)
        boot_timeout = 120 + cfg.memory / (64 << 20)
        ready = src.console.wait_for(r"FPHINT-READY", boot_timeout, alive=src.alive)
        res.timings["boot_s"] = time.monotonic() - t_start
        if not ready:
            res.failure = f"source guest not ready after {boot_timeout:g} s; {src.stderr_tail()}"
            return res
        stext = health.clean(src.console.text())
        m = re.search(r"FPHINT-FILL bytes=(\d+)", stext)
        res.fill_bytes = int(m.group(1)) if m else -1
        say("source ready; starting destination")
        dst = QemuProcess("dst", qemu_args(guest, cfg, accel, incoming=True), sockdir)
        time.sleep(cfg.settle_s)
        port = free_port()
        dst.qmp.execute("migrate-incoming", uri=f"tcp:127.0.0.1:{port}")
        src.qmp.execute(
            "migrate-set-parameters",
            **{
                "downtime-limit": int(round(cfg.downtime_limit_ms)),
                "max-bandwidth": int(cfg.max_bandwidth),
            },
        )
        res.timings["params"] = src.qmp.execute("query-migrate-parameters")
        say("migrating")
        t0 = time.monotonic()
        src.qmp.execute("migrate", uri=f"tcp:127.0.0.1:{port}")
        info: dict = {}
        while True:
            info = src.qmp.execute("query-migrate")
            t = (time.monotonic() - t0) * 1000.0
            res.trace.append((t, info))
            st = info.get("status", "")
            if st in ("completed", "failed", "cancelled"):
                break
            if t > cfg.max_time_s * 1000.0:
                src.qmp.execute("migrate_cancel")
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline:
                    info = src.qmp.execute("query-migrate")
                    if info.get("status") in ("cancelled", "failed", "completed"):
                        break
                    time.sleep(POLL_S)
                res.trace.append(((time.monotonic() - t0) * 1000.0, info))
                break
            if not src.alive():
                raise FphintError("source QEMU died during migration")
            time.sleep(POLL_S)
        res.final = info
        res.timings["migrate_wall_s"] = time.monotonic() - t0
        st = info.get("status", "")
        if st == "completed":
            res.status = "completed"
        elif st == "cancelled" and (time.monotonic() - t0) >= cfg.max_time_s:
            res.status = "not-converged"
            res.failure = f"still pending after {cfg.max_time_s:g} s: cancelled"
        else:
            res.status = _migrate_status(st)
            res.failure = info.get("error-desc", f"migration ended with status {st}")
        if res.status == "completed":
            say("checking destination guest")
            res.dest_status, res.health = _check_destination(dst)
        else:
            res.health = health.Health(ok=False, alive=False, evidence=["not migrated"])
    except (QMPError, FphintError, OSError) as exc:
        res.status = "failed"
        res.failure = str(exc)
    finally:
        for p in (src, dst):
            if p is not None:
                p.kill()
        if src is not None:
            res.source_log = src.console.text()
        if dst is not None:
            res.dest_log = dst.console.text()
        run_dir = logs / f"{time.strftime('%Y%m%d-%H%M%S')}-{cfg.key()}"
        run_dir.mkdir(parents=True, exist_ok=True)
        for f in sockdir.glob("*"):
            if f.suffix in (".log", ".err"):
                shutil.move(str(f), run_dir / f.name)
        shutil.rmtree(sockdir, ignore_errors=True)
        res.workdir = str(run_dir)
        res.timings["wall_s"] = time.monotonic() - t_start
    if res.health is None:
        res.health = health.Health(ok=False, alive=False, evidence=[res.failure or "no check"])
    _dump_raw(res, Path(res.workdir) / "result.json")
    return res


def _dump_raw(res: RunResult, path: Path) -> None:
    """Keep the raw result next to the console logs (to rebuild a Dataset later)."""
    raw = {
        "config": asdict(res.config),
        "status": res.status,
        "failure": res.failure,
        "final": res.final,
        "trace": res.trace,
        "accelerator": res.accelerator,
        "qemu_version": res.qemu_version,
        "guest": res.guest,
        "host": res.host,
        "dest_status": res.dest_status,
        "fill_bytes": res.fill_bytes,
        "timings": res.timings,
        "started": res.started,
        "health": asdict(res.health) if res.health else None,
    }
    try:
        path.write_text(json.dumps(raw, default=str) + "\n")
    except OSError:
        pass


def load_raw(path: str | os.PathLike) -> RunResult:
    """Rebuild a :class:`RunResult` from a ``result.json`` and the console logs beside it."""
    p = Path(path)
    raw = json.loads(p.read_text())
    res = RunResult(config=RunConfig(**raw["config"]))
    for k in (
        "status",
        "failure",
        "final",
        "accelerator",
        "qemu_version",
        "guest",
        "host",
        "dest_status",
        "fill_bytes",
        "timings",
        "started",
    ):
        setattr(res, k, raw[k])
    res.trace = [(t, i) for t, i in raw["trace"]]
    if raw.get("health"):
        res.health = health.Health(**raw["health"])
        res.health.trouble = [tuple(x) for x in res.health.trouble]
    for side, attr in (("src", "source_log"), ("dst", "dest_log")):
        f = p.parent / f"{side}-console.log"
        if f.exists():
            setattr(res, attr, f.read_text(errors="replace"))
    res.workdir = str(p.parent)
    return res


def _check_destination(dst: QemuProcess) -> tuple[str, health.Health]:
    """Probe the destination guest: shell answer, allocation test, second answer, kernel log."""
    status = ""
    deadline = time.monotonic() + 20.0
    while time.monotonic() < deadline and dst.alive():  # the destination may still be loading
        try:
            status = dst.qmp.execute("query-status").get("status", "")
        except QMPError as exc:
            status = f"unknown ({exc})"
            break
        if status != "inmigrate":
            break
        time.sleep(0.2)
    time.sleep(3.0)  # let the guest get DONE and return its hinted pages
    answered = True

    def dead() -> bool:
        # a panicked guest cannot answer: do not wait for the probes' timeouts
        return not dst.alive() or "Kernel panic" in dst.console.text()

    for step in ("probe1", "touch", "probe2"):
        if dead():
            answered = False
            break
        start = dst.console.mark()

        def alive() -> bool:
            return not dead()

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
    time.sleep(1.0)
    verdict = health.check_health(dst.console.text(), probe_answered=answered)
    if not dst.alive():
        verdict.ok = False
        verdict.evidence.append(f"destination QEMU exited: {dst.stderr_tail()}")
    elif status != "running":
        verdict.evidence.append(f"destination run state {status!r}")
        verdict.ok = False
    return status, verdict
