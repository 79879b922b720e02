"""QEMU processes and their sockets: a ``qemu-system-x86_64`` with a QMP monitor and a serial
console (:class:`QemuProcess`, :class:`Console`), a free TCP port, the QEMU version.

Everything here starts processes or talks to them; :mod:`fphint_kernels.qemu.runner` uses it to
run a migration.
"""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

from ..errors import FphintError
from . import health
from .qmp import QMPClient, QMPError

QEMU = "qemu-system-x86_64"


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

    def __init__(self, name: str, args: list[str], workdir: Path, trace_events: Path | None = None):
        self.name = name
        self.workdir = workdir
        self.qmp_path = str(workdir / f"{name}-qmp.sock")
        self.con_path = str(workdir / f"{name}-con.sock")
        self.stderr_path = workdir / f"{name}-qemu.err"
        # debug-threads=on names QEMU's threads (CPU 0/TCG, live_migration, IO io0...), which
        # the harness's CPU sampler reads; trace events go to the stderr log with thread ids
        trace = ["-msg", "timestamp=on", "-trace", f"events={trace_events}"] if trace_events else []
        cmd = [
            QEMU,
            "-name",
            f"fphint-{name},debug-threads=on",
            *trace,
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
