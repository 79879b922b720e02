"""This host: its facts (:func:`host_info`, recorded with every measured run) and
microbenchmarks, the starting point of its profile (``this-host-tcg``).

Each microbenchmark times, in this Python process, an operation the QEMU migration thread does per page:

* ``zero_page_ns``: OR-reduce 4 KiB of zeros (what ``buffer_is_zero`` does for a zero page),
  numpy over a large zero buffer viewed as pages of 512 words;
* ``normal_page_ns``: copy 4 KiB into a buffer (reading the page into the QEMUFile buffer),
  plus sending it over loopback TCP (next item), per page;
* ``link_bytes_per_s``: loopback TCP throughput (127.0.0.1, one sender and one receiver thread,
  1 MiB writes), the wire of the local migration.

They are best-case numbers on an idle core; during a real migration under TCG the two emulated
guests, the migration thread and other users share the cores, which the fit of ``cpu_speed``
absorbs.
"""

from __future__ import annotations

import os
import platform
import re
import socket
import threading
import time
import uuid
from pathlib import Path

import numpy as np

from ..kernels.layout import NORMAL_RECORD, PAGE_SIZE


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


def _best(fn, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def zero_check_ns(mib: int = 64, repeat: int = 5) -> float:
    """ns to decide that one 4 KiB page of zeros is zero."""
    buf = np.zeros((mib << 20) // 8, dtype=np.uint64).reshape(-1, PAGE_SIZE // 8)
    t = _best(lambda: np.bitwise_or.reduce(buf, axis=1).any(), repeat)
    return t / buf.shape[0] * 1e9


def page_copy_ns(mib: int = 64, repeat: int = 5) -> float:
    """ns to copy one non-zero 4 KiB page."""
    src = np.random.default_rng(0).integers(1, 2**63, (mib << 20) // 8, dtype=np.uint64)
    dst = np.empty_like(src)
    t = _best(lambda: np.copyto(dst, src), repeat)
    return t / ((mib << 20) / PAGE_SIZE) * 1e9


def loopback_bytes_per_s(mib: int = 256, chunk: int = 1 << 20) -> float:
    """Throughput of one TCP stream over 127.0.0.1 (bytes/s)."""
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    total = mib << 20
    got = [0]

    def receive():
        conn, _ = srv.accept()
        with conn:
            while True:
                d = conn.recv(1 << 20)
                if not d:
                    break
                got[0] += len(d)

    th = threading.Thread(target=receive, daemon=True)
    th.start()
    data = b"\x5a" * chunk
    cli = socket.create_connection(srv.getsockname())
    t = time.perf_counter()
    sent = 0
    while sent < total:
        cli.sendall(data)
        sent += chunk
    cli.shutdown(socket.SHUT_WR)
    th.join()
    dt = time.perf_counter() - t
    cli.close()
    srv.close()
    return got[0] / dt


def stream_buffer_bytes(chunk: int = 65536) -> int:
    """Bytes a loopback TCP stream takes before its writer blocks when nobody reads (the send
    and receive buffers together: what the migration stream holds in flight)."""
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    cli = socket.create_connection(srv.getsockname())
    conn, _ = srv.accept()
    cli.setblocking(False)
    data = b"\x5a" * chunk
    total = 0
    try:
        while True:
            try:
                total += cli.send(data)
            except BlockingIOError:
                break
    finally:
        for s in (cli, conn, srv):
            s.close()
    return total


def transparent_huge_pages() -> bool:
    """Whether QEMU's guest RAM gets transparent huge pages (``madvise`` or ``always``)."""
    try:
        with open("/sys/kernel/mm/transparent_hugepage/enabled") as f:
            return "[never]" not in f.read()
    except OSError:
        return False


def first_touch_ms_per_2m(mib: int = 64) -> float:
    """ms to allocate and zero one 2 MiB huge page of fresh anonymous memory (the cost the
    destination pays for each region of guest RAM it writes first), after waiting for the
    host's free memory to settle (:func:`~fphint_kernels.qemu.probes.wait_for_settled_memory`)."""
    from .probes import FirstTouchProbe, wait_for_settled_memory

    wait_for_settled_memory()
    probe = FirstTouchProbe(mib)
    probe.release()
    return probe.ms_per_region


def run_all(quick: bool = False) -> dict:
    """All measurements of the host, with its load average at the time.

    Returns
    -------
    dict
        ``zero_page_ns``, ``page_copy_ns``, ``link_bytes_per_s``, ``normal_page_ns``
        (copy + the wire time of 4104 bytes), ``host_cpus``, ``host_page_kib`` (2048 with
        transparent huge pages, else 4), ``stream_buffer_bytes``, ``first_touch_ms_per_2m``,
        ``cpu_model``, ``loadavg``.
    """
    size = 16 if quick else 64
    z = zero_check_ns(size)
    c = page_copy_ns(size)
    link = loopback_bytes_per_s(64 if quick else 256)
    try:
        with open("/proc/loadavg") as f:
            load = " ".join(f.read().split()[:3])
    except OSError:
        load = ""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    return {
        "zero_page_ns": z,
        "page_copy_ns": c,
        "link_bytes_per_s": link,
        "normal_page_ns": c + NORMAL_RECORD / link * 1e9,
        "host_cpus": cpus,
        "host_page_kib": 2048 if transparent_huge_pages() else 4,
        "stream_buffer_bytes": stream_buffer_bytes(),
        "first_touch_ms_per_2m": first_touch_ms_per_2m(32 if quick else 64),
        "cpu_model": host_info().get("cpu_model", ""),
        "loadavg": load,
    }
