"""The explorer's worker: simulations of both modes, cached, off the kernel's thread.

:class:`Request`
    What one update needs: the legacy and the hinting scenario, which run is shown, and how to
    record them (trace interval, page-map bins).
:class:`RunCache`
    The most recent runs, so that going back to a setting costs no simulation.
:class:`Runner`
    Simulates the modes a request lacks, both at once on two threads when the machine has two
    cores and the memory for two guests (the kernels release the GIL), and estimates how long
    that will take from the runs it has seen.
:class:`Worker`
    Runs a job for the latest request in a background thread: a request that arrives while a
    job runs replaces any other waiting one (only the latest is run), and the running job learns
    that it is stale at its next :meth:`Worker.check` and stops there.  A ticker thread reports
    the elapsed time while a job runs, for the progress bar.
:class:`Progress`
    The stage a job is in, its expected duration, and the text and fraction to show.

Nothing here draws or knows about widgets; everything can be driven synchronously.
"""

from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

from .. import feedback
from ..config import Scenario
from ._shared import kernels_cold

GIB = 1 << 30
MODES = ("legacy", "hinting")
#: bytes of engine state per guest page one run may hold (state arrays, recorders; measured
#: about 10.5, see the ``state_bytes_per_page`` attribute of a run), to decide whether two runs
#: fit in memory at once
RUN_BYTES_PER_PAGE = 12
#: what the status line says before the one-off compilation of the kernels
COMPILING = feedback.COMPILING


def trace_interval_for(memory: int) -> float:
    """Trace sampling interval (ms) that keeps a few hundred samples per run.

    Migration time grows about linearly with guest size, so the interval does too: 0.25 ms per
    GiB, at least 1 ms (the engine's step): 2 ms for 8 GiB, 256 ms for 1 TiB.

    Examples
    --------
    >>> trace_interval_for(8 << 30), trace_interval_for(1 << 40)
    (2.0, 256.0)
    """
    return max(1.0, 0.25 * memory / GIB)


@dataclass(frozen=True)
class Request:
    """One update of the explorer: both modes of a scenario, and which one is shown.

    The shown run is simulated with a page map (``page_map_bins`` address bins); the other
    one without, since only the shown run's map is drawn.
    """

    legacy: Scenario
    hinting: Scenario
    shown: str = "hinting"
    page_map_bins: int = 256

    @property
    def trace_interval_ms(self) -> float:
        return trace_interval_for(self.legacy.memory)

    @property
    def nr_pages(self) -> int:
        return self.legacy.nr_pages

    def scenario(self, mode: str) -> Scenario:
        return {"legacy": self.legacy, "hinting": self.hinting}[mode]

    def bins(self, mode: str) -> int:
        """Page-map bins the run of ``mode`` is simulated with (0: no page map)."""
        return self.page_map_bins if mode == self.shown else 0


class Superseded(Exception):
    """A newer request arrived: the job of the current one stops."""


class RunCache:
    """The ``size`` most recently used runs, one per (scenario, trace interval).

    A run with a page map replaces the same run without one, and answers requests for both.
    """

    def __init__(self, size: int = 16):
        self.size = int(size)
        self._runs = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._runs)

    def clear(self) -> None:
        with self._lock:
            self._runs.clear()

    def get(self, scenario: Scenario, interval: float, bins: int):
        """The cached run (with a page map of ``bins`` bins if ``bins``), or None."""
        key = (scenario, interval)
        with self._lock:
            if key not in self._runs:
                return None
            have, ds = self._runs[key]
            if bins and have != bins:
                return None
            self._runs.move_to_end(key)
            return ds

    def put(self, scenario: Scenario, interval: float, bins: int, ds) -> None:
        key = (scenario, interval)
        with self._lock:
            if bins or key not in self._runs or not self._runs[key][0]:
                self._runs[key] = (bins, ds)
            self._runs.move_to_end(key)
            while len(self._runs) > self.size:
                self._runs.popitem(last=False)


def _available_memory() -> int | None:
    """Bytes of memory available to new allocations (``MemAvailable``), None if unknown."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):  # pragma: no cover - not on Linux
        pass
    return None  # pragma: no cover - not on Linux


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        return os.cpu_count() or 1


class Runner:
    """Simulates the runs of a request that are not cached yet.

    Parameters
    ----------
    simulate : callable, optional
        ``simulate(scenario, trace_interval_ms=..., page_map_bins=...)``; default
        :func:`fphint_kernels.simulate`.
    cache_size : int
        Runs kept (:class:`RunCache`).
    parallel : bool, optional
        Simulate two runs at once on two threads.  Default: when the process may use two cores
        and the free memory holds both guests' state.

    Attributes
    ----------
    cache : RunCache
    speed : dict
        Seconds of wall time per guest page of a warm run, by (mode, with page map): a running
        mean of the runs seen, used by :meth:`estimate`.
    """

    def __init__(self, simulate=None, cache_size: int = 16, parallel: bool | None = None):
        if simulate is None:
            from ..simulate import simulate
        self.simulate = simulate
        self.cache = RunCache(cache_size)
        self.parallel = parallel
        self.speed = {}

    def cached(self, request: Request, mode: str, with_map: bool | None = None):
        """The cached run of ``mode`` (with its page map if ``with_map``, default: as the
        request asks for that mode), or None."""
        bins = request.bins(mode) if with_map is None else (request.page_map_bins * with_map)
        return self.cache.get(request.scenario(mode), request.trace_interval_ms, bins)

    def in_parallel(self, request: Request, runs: int = 2) -> bool:
        if runs < 2:
            return False
        if self.parallel is not None:
            return bool(self.parallel)
        free = _available_memory()
        need = runs * RUN_BYTES_PER_PAGE * request.nr_pages
        return _cores() >= 2 and (free is None or free > need)

    def estimate(self, request: Request, modes) -> float | None:
        """Expected seconds to simulate ``modes`` of the request (None before any run)."""
        per = []
        for mode in modes:
            speed = self.speed.get((mode, request.bins(mode) > 0))
            if speed is None:
                return None
            per.append(speed * request.nr_pages)
        if not per:
            return 0.0
        return max(per) if self.in_parallel(request, len(per)) else sum(per)

    def run(self, request: Request, modes) -> dict:
        """Simulate ``modes`` of the request (in parallel when :meth:`in_parallel`), cache and
        return the runs by mode."""
        modes = list(modes)
        out = {}
        if self.in_parallel(request, len(modes)):
            errors = {}

            def one(mode):
                try:
                    out[mode] = self._simulate(request, mode)
                except BaseException as exc:  # re-raised in the calling thread
                    errors[mode] = exc

            helper = threading.Thread(target=one, args=(modes[0],), name="fphint-explorer-run")
            helper.start()
            one(modes[1])
            helper.join()
            for mode in modes:
                if mode in errors:
                    raise errors[mode]
        else:
            for mode in modes:
                out[mode] = self._simulate(request, mode)
        return out

    def _simulate(self, request: Request, mode: str):
        sc = request.scenario(mode)
        interval, bins = request.trace_interval_ms, request.bins(mode)
        t0 = time.perf_counter()
        ds = self.simulate(sc, trace_interval_ms=interval, page_map_bins=bins)
        per_page = (time.perf_counter() - t0) / sc.nr_pages
        key = (mode, bins > 0)
        old = self.speed.get(key)
        self.speed[key] = per_page if old is None else 0.5 * (old + per_page)
        self.cache.put(sc, interval, bins, ds)
        return ds

    def warm_up(self) -> bool:
        """Compile the kernels with a small run if no kernel is compiled yet (the first
        simulation of a process otherwise pays the compilation, and two runs started at once
        would both wait for it).  Returns True if it compiled."""
        if not kernels_cold():
            return False
        feedback.mark_announced()  # the status line says it, not the notebook's stderr
        sc = Scenario(memory="256M", workload="idle", max_bandwidth="100G", hint=True)
        self.simulate(sc, trace_interval_ms=10.0, page_map_bins=4)
        return True


class Progress:
    """The stage of the running job, for the status line and the progress bar.

    A job goes through ``stages`` in order; each may announce how long it should take, which
    moves the bar within the stage and gives the time left.
    """

    def __init__(self, stages: int = 3):
        self.stages = stages
        self.start()
        self.running = False

    def start(self) -> None:
        """A job begins."""
        now = time.perf_counter()
        self.t0 = now
        self.running = True
        self.index, self.text, self.since, self.estimate = 0, "", now, None

    def finish(self) -> None:
        """The job is over (its own status is on display: :meth:`report` gives None)."""
        self.running = False

    def stage(self, index: int, text: str, estimate: float | None = None) -> None:
        self.index, self.text = index, text
        self.since, self.estimate = time.perf_counter(), estimate

    def report(self, now: float | None = None) -> tuple[float, str] | None:
        """(fraction of the job done, status text with the elapsed and the remaining time), or
        None when no job runs."""
        if not self.running:
            return None
        now = time.perf_counter() if now is None else now
        frac, left = 0.0, ""
        if self.estimate:
            done = now - self.since
            frac = min(0.95, done / self.estimate)
            left = f", about {max(0.0, self.estimate - done):.0f} s left"
        return (self.index + frac) / self.stages, f"{self.text}: {now - self.t0:.1f} s{left}"


class Worker:
    """Runs ``job(request)`` for the latest request, in a background thread or inline.

    Parameters
    ----------
    job : callable
        Called with a request; may call :meth:`check` between its steps to stop early when a
        newer request is waiting (:class:`Superseded`).
    background : bool
        :meth:`submit` hands requests to a worker thread (else runs them in the caller).
    on_error : callable, optional
        ``on_error(exception)`` for an exception a background job raised (the thread keeps
        serving); without it, the exception is re-raised and ends the thread.
    on_tick : callable, optional
        ``on_tick(running)`` every ``tick`` seconds while a background job runs longer than
        that (``running`` True), and once with False when the worker goes idle after ticking.
    tick : float
        Seconds between ticks.
    """

    def __init__(self, job, *, background=True, on_error=None, on_tick=None, tick=0.5):
        self.job = job
        self.background = bool(background)
        self.on_error = on_error
        self.on_tick = on_tick
        self.tick = float(tick)
        self.superseded = 0
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._pending = None
        self._thread = None
        self._ticker = None

    @property
    def busy(self) -> bool:
        """A background job is running or waiting."""
        with self._lock:
            return self._thread is not None

    def submit(self, request) -> None:
        """Run ``job(request)`` in the worker thread once the running job (if any) returns or
        stops at its next :meth:`check`; a request still waiting is replaced."""
        if not self.background:
            self.run(request)
            return
        with self._lock:
            self._pending = request
            if self._thread is not None:
                return
            self._thread = threading.Thread(target=self._loop, name="fphint-explorer", daemon=True)
            thread = self._thread
            thread.start()
            if self.on_tick is not None:
                self._ticker = threading.Thread(
                    target=self._tick, args=(thread,), name="fphint-explorer-tick", daemon=True
                )
                self._ticker.start()

    def run(self, request):
        """Run ``job(request)`` now, in the calling thread; its value, or None when it stopped
        because a newer request is waiting."""
        try:
            return self.job(request)
        except Superseded:
            self.superseded += 1
            return None

    def check(self) -> None:
        """Raise :class:`Superseded` if a newer request is waiting (called by the job)."""
        with self._lock:
            if self._pending is not None:
                raise Superseded

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until no background job runs or waits; True when idle."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._idle:
            while self._thread is not None:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._idle.wait(left)
            ticker = self._ticker
        if ticker is not None:
            ticker.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        return True

    def _loop(self):
        try:
            while True:
                with self._idle:
                    request, self._pending = self._pending, None
                    if request is None:  # idle: the next submit starts a new thread
                        self._thread = None
                        self._idle.notify_all()
                        return
                try:
                    self.run(request)
                except Exception as exc:
                    if self.on_error is None:
                        raise
                    self.on_error(exc)
        except BaseException:
            with self._idle:
                self._thread = None
                self._idle.notify_all()
            raise

    def _tick(self, thread: threading.Thread):
        ticked = False
        while thread.is_alive():
            thread.join(self.tick)
            if thread.is_alive():
                ticked = True
                self.on_tick(True)
        if ticked:
            self.on_tick(False)
