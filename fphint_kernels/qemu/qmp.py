"""A small QMP (QEMU Machine Protocol) client over a unix socket, stdlib only.

QMP sends one JSON object per line.  On connect the server sends a greeting
(``{"QMP": {...}}``); the client must send ``qmp_capabilities`` before any other command.
Replies are ``{"return": ...}`` or ``{"error": {"class": ..., "desc": ...}}``, optionally
carrying the ``id`` of the request; asynchronous ``{"event": ...}`` messages can arrive at
any time and are kept in :attr:`QMPClient.events`.
"""

from __future__ import annotations

import itertools
import json
import socket
import time


class QMPError(RuntimeError):
    """A QMP command failed, or the connection broke or timed out."""


class QMPClient:
    """Synchronous QMP client.

    Parameters
    ----------
    path : str or None
        Unix socket path of a ``-qmp unix:PATH,server=on,wait=off`` monitor.
    timeout : float
        Seconds to wait for the socket to appear and for each reply.
    sock : socket.socket, optional
        An already connected socket (used by the tests); ``path`` is then ignored.

    Examples
    --------
    >>> with QMPClient("/tmp/qmp.sock") as q:  # doctest: +SKIP
    ...     q.execute("query-status")
    {'status': 'running', 'singlestep': False, 'running': True}
    """

    def __init__(self, path: str | None, timeout: float = 10.0, sock: socket.socket | None = None):
        self.timeout = float(timeout)
        self.events: list[dict] = []
        self.greeting: dict | None = None
        self._ids = itertools.count(1)
        self._buf = b""
        if sock is None:
            sock = self._connect(path)
        self._sock = sock
        self._sock.settimeout(self.timeout)
        self.greeting = self._read_message()
        if "QMP" not in self.greeting:
            raise QMPError(f"not a QMP greeting: {self.greeting!r}")
        self.execute("qmp_capabilities")

    def _connect(self, path: str | None) -> socket.socket:
        if not path:
            raise QMPError("no QMP socket path given")
        deadline = time.monotonic() + self.timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                s.connect(path)
                return s
            except OSError as exc:  # not there yet, or refused while QEMU starts
                last = exc
                s.close()
                time.sleep(0.05)
        raise QMPError(f"cannot connect to QMP socket {path}: {last}")

    # -- low level ---------------------------------------------------------------------------
    def _read_message(self) -> dict:
        while b"\n" not in self._buf:
            try:
                chunk = self._sock.recv(65536)
            except TimeoutError:
                raise QMPError(f"QMP: no reply within {self.timeout:g} s") from None
            except OSError as exc:
                raise QMPError(f"QMP connection error: {exc}") from None
            if not chunk:
                raise QMPError("QMP connection closed by QEMU")
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        line = line.strip()
        if not line:
            return self._read_message()
        try:
            msg = json.loads(line)
        except json.JSONDecodeError as exc:
            raise QMPError(f"QMP: invalid JSON from server: {line[:200]!r} ({exc})") from None
        if not isinstance(msg, dict):
            raise QMPError(f"QMP: expected a JSON object, got {line[:200]!r}")
        return msg

    def _send(self, obj: dict) -> None:
        data = (json.dumps(obj) + "\n").encode()
        try:
            self._sock.sendall(data)
        except OSError as exc:
            raise QMPError(f"QMP connection error: {exc}") from None

    # -- API --------------------------------------------------------------------------------------
    def execute(self, command: str, **arguments):
        """Run one command and return its ``return`` value.

        Parameters
        ----------
        command : str
            QMP command name, e.g. ``"query-migrate"``.
        **arguments
            Command arguments; Python names with ``_`` are passed as given, so use
            ``execute("migrate-set-parameters", **{"downtime-limit": 300})`` for dashed names.

        Returns
        -------
        object
            The ``return`` member of the reply.

        Raises
        ------
        QMPError
            On an ``error`` reply, a timeout or a closed connection.
        """
        req_id = next(self._ids)
        msg: dict = {"execute": command, "id": req_id}
        if arguments:
            msg["arguments"] = arguments
        self._send(msg)
        while True:
            reply = self._read_message()
            if "event" in reply:
                self.events.append(reply)
                continue
            if reply.get("id") not in (req_id, None):
                continue  # a stale reply to an earlier request that timed out
            if "error" in reply:
                err = reply["error"]
                raise QMPError(f"{command}: {err.get('class', 'Error')}: {err.get('desc', err)}")
            if "return" in reply:
                return reply["return"]
            raise QMPError(f"{command}: unexpected reply {reply!r}")

    def close(self) -> None:
        """Close the connection (QEMU keeps running)."""
        try:
            self._sock.close()
        except OSError:
            pass

    def __enter__(self) -> QMPClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
