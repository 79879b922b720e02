"""The explorer: an ipywidgets panel over a whole migration scenario.

>>> panel = Explorer(memory="1G", auto_update=False)     # doctest: +SKIP
>>> panel.memory.value = 2 << 30                          # doctest: +SKIP
>>> panel.update()["total-time"]                          # doctest: +SKIP

The panel always simulates both modes (legacy and hinting) of the chosen scenario; the *show
run* control chooses which run the numbers in :attr:`Explorer.result`, the race and the page map
describe, and the reduction is always hinting against legacy.  It is made of three parts:

:mod:`~fphint_kernels.explorer.controls`
    the widgets of the scenario's fields;
:mod:`~fphint_kernels.explorer.worker`
    the runs of both modes (cached, both at once on two cores) and the background thread that
    keeps the kernel free, runs only the latest request and reports progress;
:mod:`~fphint_kernels.explorer.render`
    the numbers (HTML), the figure and the page map (PNG) and the widgets that show them.

Every control is an attribute of :class:`Explorer` (``panel.memory``, ``panel.hint``...) and
:meth:`Explorer.update` runs an update synchronously and returns :attr:`Explorer.result`, so
tests drive the panel from Python exactly as a user drives it from the browser.

An update goes: simulate what the cache lacks (the shown run with its page map, the other one
without), show the numbers, draw the figure, then the page map (simulating the shown run again
with its map if only a run without one was cached, e.g. after switching *show run*).  Each step
first checks whether a newer request is waiting; if so the update stops there and the newer one
starts (a simulation that has begun runs to its end and is cached).
"""

from __future__ import annotations

import time

from ..errors import FphintError
from ._shared import format_bytes, kernels_cold
from .controls import MEMORY_OPTIONS, Controls
from .render import FigureRenderer, View, result_of
from .worker import COMPILING, MODES, Progress, Request, Runner, Worker, trace_interval_for

__all__ = ["MEMORY_OPTIONS", "Explorer", "trace_interval_for"]


class Explorer:
    """An explorer panel over one migration scenario, run with and without hinting.

    Parameters
    ----------
    memory : int or str
        Initial guest size (snapped to a power of two from 1 GiB to 1 TiB).
    workload : str
        Initial workload (``fk.available_workloads()``).
    intensity : float
        Initial ``workload_options["intensity"]`` (0.25 to 4).
    downtime_limit : float or str
        Initial QEMU downtime-limit (snapped to the values offered, 30 ms to 5 s).
    max_bandwidth : float or str
        Initial QEMU max-bandwidth in bytes/s (snapped to the values offered).
    hint : bool
        Which run the numbers, race and page map show (both are always simulated).
    hinting : str
        The design of the hinting run (``fph``, ``report-in-place``, ``reporting``,
        ``oracle``); the legacy run has none.
    init_on_alloc, page_poison, hint_release, auto_converge, profile, guest, seed
        Initial values of the other :class:`fphint_kernels.Scenario` fields.
    page_map_bins : int
        Address bins of the page map.
    background : bool
        Run updates started by a control change (and the first one) in a worker thread, so
        that the kernel stays free; else in the callback itself, which makes the controls
        synchronous (used by tests).  :meth:`update` is always synchronous.
    auto_update : bool
        Run the initial scenario now and re-run on every control change.
    dpi : int
        Resolution of the figure image.
    cache_size : int
        Most runs kept.
    parallel : bool, optional
        Simulate both modes at once on two threads (default: when two cores and the memory for
        both guests are available).
    simulate : callable, optional
        The simulation function (default :func:`fphint_kernels.simulate`).

    Attributes
    ----------
    controls : Controls
        The widgets (``controls.widgets``: field name -> widget); each is also an attribute
        of the Explorer.
    result : dict or None
        Numbers of the last update: ``legacy`` and ``hinting`` (every scalar of each run),
        ``reduction`` (relative saving of total-time, None unless both completed), ``shown``
        (``"hinting"`` or ``"legacy"``) and, for the shown run, ``total-time``, ``downtime``,
        ``ram-transferred``, ``rounds``, ``status``.
    legacy, hinted : xarray.Dataset or None
        The two runs of the last update.
    error : str or None
        Message of the last failed update (an invalid scenario, e.g. a workload larger than the
        guest); the previous results stay on display.
    timings : dict
        Seconds spent by the last update: ``simulate`` (what the cache lacked), ``numbers``
        (until the numbers were on display), ``figure`` (drawing it), ``page_map`` (its image,
        and the run it needed if any), ``total``.
    updates : int
        Updates completed.
    png : bytes
        The last figure image.
    runner : worker.Runner
        Simulations and their cache (``runner.cache``).
    worker : worker.Worker
        The background thread's scheduler.
    view : render.View
        The output widgets (``status``, ``progress``, ``numbers``, ``image``, ...; also
        attributes of the Explorer).
    panel : ipywidgets.Widget
        The whole panel (displaying the Explorer displays it).
    """

    def __init__(
        self,
        memory="8G",
        workload="idle",
        intensity=1.0,
        downtime_limit="2s",
        max_bandwidth="100G",
        hint=True,
        init_on_alloc=False,
        page_poison="off",
        hint_release="done",
        auto_converge=False,
        profile="v36",
        guest="testbed-2018",
        seed=0,
        page_map_bins=256,
        background=True,
        auto_update=True,
        dpi=72,
        cache_size=16,
        parallel=None,
        simulate=None,
        hinting="fph",
    ):
        import ipywidgets as w

        self.page_map_bins = int(page_map_bins)
        self.result = None
        self.legacy = None
        self.hinted = None
        self.error = None
        self.timings = {}
        self.png = b""
        self.updates = 0
        self._auto = False

        self.controls = Controls(
            memory=memory,
            workload=workload,
            intensity=intensity,
            downtime_limit=downtime_limit,
            max_bandwidth=max_bandwidth,
            hint=hint,
            init_on_alloc=init_on_alloc,
            page_poison=page_poison,
            hint_release=hint_release,
            auto_converge=auto_converge,
            profile=profile,
            guest=guest,
            seed=seed,
            hinting=hinting,
        )
        for name, widget in self.controls.widgets.items():
            setattr(self, name, widget)
        self.view = View()
        for name in ("status", "progress", "numbers", "image", "page_map_image"):
            setattr(self, name, getattr(self.view, name))
        self.renderer = FigureRenderer(dpi=dpi)
        self.runner = Runner(simulate=simulate, cache_size=cache_size, parallel=parallel)
        self.progress_state = Progress(stages=3)
        self.worker = Worker(
            self._update, background=background, on_error=self._failed, on_tick=self._tick
        )

        left = w.VBox(
            [self.controls.box, self.view.side], layout=w.Layout(width="380px", min_width="340px")
        )
        self.panel = w.HBox([left, self.view.main], layout=w.Layout(width="100%"))
        self.panel.add_class("fphint-explorer")
        self.controls.observe(self._on_change)
        if auto_update:
            self._auto = True
            if background:
                # the panel is on screen before the first run (and the compilation) starts
                self.view.show_status(COMPILING + "..." if kernels_cold() else "simulating...")
            self.request_update()

    # ---- requests ------------------------------------------------------------------------

    def scenario_kwargs(self) -> dict:
        """The :class:`fphint_kernels.Scenario` arguments the controls describe (hint as shown)."""
        return self.controls.scenario_kwargs()

    def scenarios(self):
        """The (legacy, hinting) pair of scenarios; raises ``ScenarioError`` if invalid."""
        return self.controls.scenarios()

    def request(self) -> Request | None:
        """The request the controls describe; None (and the error on display) if invalid."""
        try:
            legacy, hinting = self.scenarios()
        except FphintError as exc:
            self._show_error(str(exc))
            return None
        return Request(legacy, hinting, shown=self.controls.shown, page_map_bins=self.page_map_bins)

    def update(self) -> dict | None:
        """Simulate both modes of the scenario the controls describe and redraw.

        Synchronous.  Returns :attr:`result` (None when the scenario is invalid: then
        :attr:`error` holds the message and the status line shows it).
        """
        req = self.request()
        return None if req is None else self.worker.run(req)

    def request_update(self) -> None:
        """Update in the worker thread (in the caller when ``background`` is off); a change made
        while an update runs makes that update stop at its next step and a new one start."""
        req = self.request()
        if req is not None:
            self.worker.submit(req)

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for background updates to finish; True when none is running any more."""
        return self.worker.wait(timeout)

    @property
    def busy(self) -> bool:
        """An update started in the background is running or waiting."""
        return self.worker.busy

    def _on_change(self, change):
        if self._auto:
            self.request_update()

    # ---- the update --------------------------------------------------------------------

    def _update(self, req: Request) -> dict | None:
        """One update (the worker's job): see the module's description."""
        prog = self.progress_state
        prog.start()
        t0 = time.perf_counter()
        try:
            if kernels_cold():
                prog.stage(0, COMPILING)
                self.view.show_status(COMPILING + "...")
                self.runner.warm_up()
            # both runs, any version: the shown one may lack its page map (added below)
            runs = {m: self.runner.cached(req, m, with_map=False) for m in MODES}
            missing = [m for m in MODES if runs[m] is None]
            if missing:
                self.worker.check()
                est = self.runner.estimate(req, missing)
                prog.stage(0, f"simulating {' and '.join(missing)}", est)
                runs.update(self.runner.run(req, missing))
            t_sim = time.perf_counter()
            self.worker.check()
            legacy, hinted = runs["legacy"], runs["hinting"]
            self.legacy, self.hinted, self.error = legacy, hinted, None
            self.result = result_of(legacy, hinted, req.shown)
            self.view.show_numbers(self.result)
            t_numbers = time.perf_counter()
            prog.stage(1, "drawing")
            shown = runs[req.shown]
            png, caption = self.renderer.render(legacy, hinted, shown)
            self.png = png
            self.view.show_figure(png, caption)
            t_figure = time.perf_counter()
            if "page-map" not in shown:
                self.worker.check()
                est = self.runner.estimate(req, [req.shown])
                prog.stage(2, f"simulating {req.shown} again for its page map", est)
                shown = self.runner.run(req, [req.shown])[req.shown]
                if req.shown == "legacy":
                    self.legacy = shown
                else:
                    self.hinted = shown
            self.view.show_page_map(shown)
        except FphintError as exc:  # a scenario the engine refuses
            self._show_error(str(exc))
            return None
        finally:
            prog.finish()
        t_end = time.perf_counter()
        self.updates += 1
        self.timings = {
            "simulate": t_sim - t0,
            "numbers": t_numbers - t0,
            "figure": t_figure - t_numbers,
            "page_map": t_end - t_figure,
            "total": t_end - t0,
        }
        sc = req.hinting
        self.view.show_status(
            f"{sc.workload}, {format_bytes(sc.memory)}: updated in {self.timings['total']:.2f} s"
        )
        self.view.show_progress(None)
        return self.result

    def _show_error(self, message: str) -> None:
        self.error = message
        self.view.show_status(message, error=True)
        self.view.show_progress(None)

    def _failed(self, exc: Exception) -> None:
        """A background update raised: keep the panel alive and say what went wrong."""
        self._show_error(f"{type(exc).__name__}: {exc}")

    def _tick(self, running: bool) -> None:
        """Every half second of a long update: progress bar and status line."""
        report = self.progress_state.report() if running else None
        if report is None:
            self.view.show_progress(None)
            return
        fraction, text = report
        self.view.show_progress(fraction)
        self.view.show_status(text)

    def _repr_mimebundle_(self, **kwargs):
        return self.panel._repr_mimebundle_(**kwargs)
