"""What the harness sees of QEMU and of the host while a migration runs.

Two probes, both read-only and cheap enough to leave on for every measured run:

* **QEMU trace events** (``-trace events=FILE`` with the ``log`` backend of Debian's QEMU and
  ``-msg timestamp=on``, so that every line carries the emitting thread id and a
  ``gettimeofday`` timestamp).  :func:`parse_trace` turns the source's log into the events that
  explain a migration's timing: the bitmap syncs (``migration_bitmap_sync_start/end``), the end
  of every ``ram_save_iterate`` slice (``ram_save_iterate_big_wait``: QEMU's 50 ms
  ``MAX_WAIT``), the pending size and threshold checked before each slice (``migrate_pending``),
  the bandwidth windows (``migrate_transferred``), the stop of the VM (``runstate_set`` to
  ``finish-migrate``) and the guest's free page hints as the device's iothread pops them from the
  free page virtqueue (``virtqueue_pop``: an element with an in-buffer is one hinted 4 MiB
  block; an element with only an out-buffer on that queue is a command id, START or STOP).
* **Per-thread CPU time** from ``/proc/PID/task/TID/schedstat`` (time on a CPU and time spent
  waiting for one, in ns) of both QEMUs, sampled every few tens of milliseconds, with the host's
  total CPU time from ``/proc/stat`` so that CPU used by anything else on the host is known.
  With ``-name NAME,debug-threads=on`` QEMU names its threads (``CPU 0/TCG``,
  ``live_migration``, ``IO io0``...), which :func:`thread_role` maps to roles.
  ``/proc/vmstat`` counters of transparent huge pages and compaction are read before and after.

The sources: QEMU's ``trace-events`` files (``migration/trace-events``,
``hw/virtio/trace-events``) and ``scripts/tracetool/backend/log.py`` (the line format); Linux
``Documentation/scheduler/sched-stats.rst`` (``/proc/PID/schedstat``).
"""

from __future__ import annotations

import os
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

#: Trace events the harness enables on the source QEMU.
TRACE_EVENTS = (
    "migrate_set_state",
    "savevm_state_setup",
    "migration_thread_setup_complete",
    "migrate_pending",
    "migrate_transferred",
    "migration_bitmap_sync_start",
    "migration_bitmap_sync_end",
    "ram_save_iterate_big_wait",
    "migration_thread_low_pending",
    "runstate_set",
    "savevm_state_complete_precopy",
    "virtqueue_pop",
    "virtio_balloon_get_config",
)

_LINE = re.compile(r"^(\d+)@(\d+\.\d+):(\w+) ?(.*)$")
_NUM = re.compile(r"(\w[\w-]*)[ :]+(-?\d+)")


def qemu_trace_args(events_file: str | os.PathLike, name: str) -> list[str]:
    """QEMU arguments that name its threads and log ``TRACE_EVENTS`` with thread ids and times.

    ``events_file`` must hold the event names, one per line (:func:`write_events_file`).
    """
    return [
        "-name",
        f"{name},debug-threads=on",
        "-msg",
        "timestamp=on",
        "-trace",
        f"events={events_file}",
    ]


def write_events_file(path: str | os.PathLike) -> Path:
    """Write :data:`TRACE_EVENTS` to ``path`` (the file ``-trace events=`` reads)."""
    p = Path(path)
    p.write_text("\n".join(TRACE_EVENTS) + "\n")
    return p


@dataclass
class TraceSummary:
    """The source's trace events of one migration; times in ms from the ``setup`` state.

    Attributes
    ----------
    t0 : float
        Host time (s since the epoch) of ``migrate_set_state new state setup``.
    setup_done_ms : float
        ``migration_thread_setup_complete`` (the first ``ram_save_iterate`` follows).
    stop_ms : float
        The VM stopped for the switchover (``runstate_set`` to ``finish-migrate``).
    completed_ms : float
        ``migrate_set_state new state completed`` (or failed/cancelled).
    hint_ms : ndarray
        When the iothread popped each hinted block from the free page virtqueue.
    command_ms : ndarray
        When it popped each command id (the guest's START, then its STOP) from that queue.
    config_read_ms : ndarray
        The guest reading the balloon's config (its answer to each new command id).
    slice_end_ms, slice_pages, slice_ms : ndarray
        Each ``ram_save_iterate`` slice that ended by ``MAX_WAIT``: its end, the pages it
        handled and its length.
    pending_ms, pending_pages, threshold_pages : ndarray
        Each ``migrate_pending`` check: pending RAM and the threshold (4 KiB pages).
    window_ms, window_bytes_per_ms : ndarray
        Each closed bandwidth window (``migrate_transferred``).
    sync_start_ms, sync_end_ms, sync_dirty_pages : ndarray
        Each bitmap sync and the dirty pages it found.
    """

    t0: float = float("nan")
    setup_done_ms: float = float("nan")
    stop_ms: float = float("nan")
    completed_ms: float = float("nan")
    hint_ms: np.ndarray = field(default_factory=lambda: np.zeros(0))
    command_ms: np.ndarray = field(default_factory=lambda: np.zeros(0))
    config_read_ms: np.ndarray = field(default_factory=lambda: np.zeros(0))
    slice_end_ms: np.ndarray = field(default_factory=lambda: np.zeros(0))
    slice_pages: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    slice_ms: np.ndarray = field(default_factory=lambda: np.zeros(0))
    pending_ms: np.ndarray = field(default_factory=lambda: np.zeros(0))
    pending_pages: np.ndarray = field(default_factory=lambda: np.zeros(0))
    threshold_pages: np.ndarray = field(default_factory=lambda: np.zeros(0))
    window_ms: np.ndarray = field(default_factory=lambda: np.zeros(0))
    window_bytes_per_ms: np.ndarray = field(default_factory=lambda: np.zeros(0))
    sync_start_ms: np.ndarray = field(default_factory=lambda: np.zeros(0))
    sync_end_ms: np.ndarray = field(default_factory=lambda: np.zeros(0))
    sync_dirty_pages: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    @property
    def found(self) -> bool:
        """Whether the log held a migration (a ``setup`` state change)."""
        return bool(np.isfinite(self.t0))

    def hints_before_first_slice(self) -> int:
        """Hinted blocks popped before the first ``ram_save_iterate`` slice began."""
        return int(np.sum(self.hint_ms < self.setup_done_ms))


def _fields(args: str) -> dict:
    return {k: int(v) for k, v in _NUM.findall(args)}


def parse_trace(text: str) -> TraceSummary:
    """Parse the source QEMU's trace log (the lines of the ``log`` backend).

    Lines that are not trace events (QEMU warnings, the timestamped messages of
    ``-msg timestamp=on``) are ignored.  Events before the first ``setup`` state change
    (boot) are dropped.
    """
    events = []
    for line in text.splitlines():
        m = _LINE.match(line.strip())
        if m:
            events.append((float(m.group(2)), m.group(3), m.group(4)))
    s = TraceSummary()
    t0 = next((t for t, n, a in events if n == "migrate_set_state" and a.endswith(" setup")), None)
    if t0 is None:
        return s
    s.t0 = t0
    lists: dict[str, list] = {k: [] for k in ("hint", "cmd", "cfg", "sl", "pend", "win", "sync")}
    sync_open = None
    hint_vq = None
    pops = []
    for t, name, args in events:
        if t < t0:
            continue
        ms = (t - t0) * 1000.0
        if name == "migrate_set_state":
            if args.endswith((" completed", " failed", " cancelled")) and np.isnan(s.completed_ms):
                s.completed_ms = ms
        elif name == "migration_thread_setup_complete":
            s.setup_done_ms = ms
        elif name == "runstate_set" and "finish-migrate" in args.split("new_state", 1)[-1]:
            if np.isnan(s.stop_ms):
                s.stop_ms = ms
        elif name == "virtqueue_pop":
            f = _fields(args.replace("in_num", "in").replace("out_num", "out"))
            vq = re.search(r"vq (0x[0-9a-f]+)", args)
            pops.append((ms, vq.group(1) if vq else "", f.get("in", 0), f.get("out", 0)))
            if f.get("in", 0) > 0 and hint_vq is None:
                hint_vq = pops[-1][1]
        elif name == "virtio_balloon_get_config":
            lists["cfg"].append(ms)
        elif name == "ram_save_iterate_big_wait":
            m = re.search(r"(\d+) milliseconds, (\d+) iterations", args)
            if m:
                lists["sl"].append((ms, int(m.group(2)), int(m.group(1))))
        elif name == "migrate_pending":
            f = _fields(args)
            lists["pend"].append((ms, f.get("size", 0) / 4096, f.get("max", 0) / 4096))
        elif name == "migrate_transferred":
            f = _fields(args)
            lists["win"].append((ms, f.get("bandwidth", 0)))
        elif name == "migration_bitmap_sync_start":
            sync_open = ms
        elif name == "migration_bitmap_sync_end":
            f = _fields(args)
            lists["sync"].append(
                (ms if sync_open is None else sync_open, ms, f.get("dirty_pages", 0))
            )
            sync_open = None
    for ms, vq, n_in, n_out in pops:
        if hint_vq is not None and vq != hint_vq:
            continue
        if n_in > 0:
            lists["hint"].append(ms)
        elif n_out > 0:
            lists["cmd"].append(ms)
    s.hint_ms = np.array(lists["hint"], dtype=float)
    s.command_ms = np.array(lists["cmd"], dtype=float)
    s.config_read_ms = np.array(lists["cfg"], dtype=float)
    sl = np.array(lists["sl"], dtype=float).reshape(-1, 3)
    s.slice_end_ms, s.slice_pages, s.slice_ms = sl[:, 0], sl[:, 1].astype(np.int64), sl[:, 2]
    pe = np.array(lists["pend"], dtype=float).reshape(-1, 3)
    s.pending_ms, s.pending_pages, s.threshold_pages = pe[:, 0], pe[:, 1], pe[:, 2]
    wi = np.array(lists["win"], dtype=float).reshape(-1, 2)
    s.window_ms, s.window_bytes_per_ms = wi[:, 0], wi[:, 1]
    sy = np.array(lists["sync"], dtype=float).reshape(-1, 3)
    s.sync_start_ms, s.sync_end_ms = sy[:, 0], sy[:, 1]
    s.sync_dirty_pages = sy[:, 2].astype(np.int64)
    return s


# ---------------------------------------------------------------------------------------------
# threads and host CPU

#: Thread roles, from the names QEMU gives its threads with ``debug-threads=on``.
ROLES = ("vcpu", "migration", "iothread", "main", "other")


def thread_role(comm: str) -> str:
    """The role of a QEMU thread from its name (``/proc/.../comm``, at most 15 characters)."""
    if comm.startswith("CPU ") and ("/TCG" in comm or "/KVM" in comm):
        return "vcpu"
    if comm.startswith("live_migration"):
        return "migration"
    if comm.startswith("IO "):
        return "iothread"
    if comm.startswith("qemu-system"):
        return "main"
    return "other"


def read_threads(pid: int) -> dict[int, tuple[str, int, int]]:
    """``{tid: (name, ns on a CPU, ns waiting for a CPU)}`` of every thread of ``pid``."""
    out = {}
    base = f"/proc/{pid}/task"
    try:
        tids = os.listdir(base)
    except OSError:
        return out
    for tid in tids:
        try:
            with open(f"{base}/{tid}/schedstat") as f:
                run, wait = f.read().split()[:2]
            with open(f"{base}/{tid}/comm") as f:
                comm = f.read().strip()
        except (OSError, ValueError):
            continue
        out[int(tid)] = (comm, int(run), int(wait))
    return out


def read_host_cpu() -> tuple[int, int]:
    """(total, idle) jiffies of all CPUs from the first line of ``/proc/stat``."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return sum(v), v[3] + (v[4] if len(v) > 4 else 0)


VMSTAT_KEYS = (
    "thp_fault_alloc",
    "thp_fault_fallback",
    "compact_stall",
    "pgfault",
)


def read_vmstat(keys=VMSTAT_KEYS) -> dict[str, int]:
    """Selected ``/proc/vmstat`` counters (missing ones are left out)."""
    out = {}
    try:
        with open("/proc/vmstat") as f:
            for line in f:
                k, _, v = line.partition(" ")
                if k in keys:
                    out[k] = int(v)
    except OSError:
        pass
    return out


class ThreadSampler:
    """Samples the threads of some processes and the host's CPU in a background thread.

    Parameters
    ----------
    pids : dict
        ``{side: pid}``, e.g. ``{"src": 123, "dst": 456}``.
    period_s : float
        Time between samples.

    Use as a context manager; :meth:`series` gives the cumulative CPU and wait time of each
    (side, role) at every sample.
    """

    def __init__(self, pids: dict[str, int], period_s: float = 0.02):
        self.pids = dict(pids)
        self.period_s = period_s
        self.samples: list[tuple[float, tuple[int, int], dict]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _take(self) -> None:
        t = time.time()
        host = read_host_cpu()
        self.samples.append((t, host, {k: read_threads(p) for k, p in self.pids.items()}))

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._take()
            self._stop.wait(self.period_s)

    def __enter__(self) -> ThreadSampler:
        self._take()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self._take()

    def series(self) -> dict:
        """Cumulative ns per (side, role), and the host's busy CPUs, at every sample.

        Returns
        -------
        dict
            ``time`` (s since the epoch), ``cpu`` and ``wait`` (``{(side, role): ndarray}``, ns
            since the first sample; a thread that exits keeps its last value), ``host_busy``
            (busy CPUs averaged over each interval, NaN for the first sample).
        """
        times = np.array([s[0] for s in self.samples])
        keys = [(side, role) for side in self.pids for role in ROLES]
        cpu = {k: np.zeros(len(times)) for k in keys}
        wait = {k: np.zeros(len(times)) for k in keys}
        last: dict[tuple[str, int], tuple[str, int, int]] = {}
        first: dict[tuple[str, int], tuple[int, int]] = {}
        for i, (_, _, by_side) in enumerate(self.samples):
            for side, threads in by_side.items():
                for tid, (comm, run, wt) in threads.items():
                    # a thread seen only from a later sample on was born during sampling
                    first.setdefault((side, tid), (run, wt) if i == 0 else (0, 0))
                    last[(side, tid)] = (comm, run, wt)
            for (side, tid), (comm, run, wt) in last.items():
                r0, w0 = first[(side, tid)]
                k = (side, thread_role(comm))
                cpu[k][i] += run - r0
                wait[k][i] += wt - w0
        host = np.array([s[1] for s in self.samples], dtype=float).reshape(-1, 2)
        busy = np.full(len(times), np.nan)
        if len(times) > 1:
            dt = np.diff(host[:, 0])
            di = np.diff(host[:, 1])
            ncpu = os.cpu_count() or 1
            with np.errstate(invalid="ignore", divide="ignore"):
                busy[1:] = np.where(dt > 0, (dt - di) / dt * ncpu, np.nan)
        return {"time": times, "cpu": cpu, "wait": wait, "host_busy": busy}


# ---------------------------------------------------------------------------------------------
# the state of the host's free memory

#: Counter of the host kernel's free page reporting, where it has one (a host that is itself a
#: VM giving free memory back to its hypervisor, as the machines this project was measured on).
REPORTED_KIB = "/sys/module/page_reporting/parameters/reported_kib"


def read_reported_kib() -> int | None:
    """KiB of free memory this host has reported to its hypervisor so far, or None."""
    try:
        with open(REPORTED_KIB) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def wait_for_settled_memory(quiet_s: float = 3.0, timeout_s: float = 45.0, poll_s: float = 0.5):
    """Wait until the host has stopped reporting free memory for ``quiet_s`` seconds.

    Memory a process frees is cheap to take again until the host reports it to its hypervisor;
    afterwards the first touch of each page costs a fault in the hypervisor too.  Waiting until
    reporting settles gives every run the same state of free memory, whatever ran before it.

    Returns
    -------
    float
        Seconds waited (0 on a host without free page reporting).
    """
    last = read_reported_kib()
    if last is None:
        return 0.0
    t0 = time.monotonic()
    still = time.monotonic()
    while time.monotonic() - t0 < timeout_s:
        time.sleep(poll_s)
        now = read_reported_kib()
        if now != last:
            last, still = now, time.monotonic()
        elif time.monotonic() - still >= quiet_s:
            break
    return time.monotonic() - t0


class FirstTouchProbe:
    """Time the first touch of fresh anonymous memory in transparent huge pages.

    QEMU asks for huge pages for guest RAM (``MADV_HUGEPAGE``), and the destination first
    writes each 2 MiB of it when a normal page lands there: that costs the host a huge page
    allocation and zeroing, and on a host that reported the memory to its own hypervisor a
    fault there too.  The probe maps ``mib`` MiB, touches one byte per 2 MiB and keeps the
    mapping until :meth:`release` (so that the destination does not get the pages it warmed).
    """

    REGION = 2 << 20

    def __init__(self, mib: int = 32):
        import mmap

        self.size = mib << 20
        self._map = mmap.mmap(-1, self.size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        if hasattr(mmap, "MADV_HUGEPAGE"):
            self._map.madvise(mmap.MADV_HUGEPAGE)
        t = time.perf_counter()
        for off in range(0, self.size, self.REGION):
            self._map[off] = 1
        self.ms_per_region = (time.perf_counter() - t) * 1000.0 / (self.size // self.REGION)

    def release(self) -> None:
        """Give the memory back."""
        if self._map is not None:
            self._map.close()
            self._map = None
