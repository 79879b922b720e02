"""The explorer: an ipywidgets panel over a whole migration scenario.

>>> panel = Explorer(memory="1G", auto_update=False)     # doctest: +SKIP
>>> panel.memory.value = 2 << 30                          # doctest: +SKIP
>>> panel.update()["total-time"]                          # doctest: +SKIP

Every control is an attribute of :class:`Explorer` (``panel.memory``, ``panel.hint``...), and
:meth:`Explorer.update` runs the scenario synchronously and returns :attr:`Explorer.result`, so
tests drive the panel from Python exactly as a user drives it from the browser.  The panel always
simulates both modes (legacy and hinting) of the chosen scenario; the *hinting* control chooses
which run the numbers in :attr:`Explorer.result`, the race and the page map describe, and the
reduction is always hinting against legacy.

Responsiveness: results are cached per scenario (toggling a control back costs only a redraw);
figures are drawn on a private ``matplotlib.figure.Figure`` and sent as one PNG to an
``ipywidgets.Image`` (no pyplot state, so drawing can run off the main thread); a control
change runs the scenario in a worker thread (the kernel stays free; a run that takes long, a
large guest or one that does not converge, shows a progress bar and the elapsed time), and
changes made meanwhile are coalesced into one more run.
"""

from __future__ import annotations

import html
import io
import math
import threading
import time
from collections import OrderedDict

import ipywidgets as w

from . import plot
from .config import HINT_RELEASE, PAGE_POISON, Scenario, available_profiles, available_workloads
from .errors import FphintError
from .simulate import simulate
from .units import parse_duration_ms, parse_size

GIB = 1 << 30
#: guest sizes offered, 1 GiB to 1 TiB in powers of two (a log-scale slider)
MEMORY_OPTIONS = tuple(
    (f"{g} GiB" if g < 1024 else "1 TiB", g * GIB) for g in (1 << k for k in range(11))
)
#: QEMU downtime-limit values offered (ms); 300 ms is QEMU's default
DOWNTIME_OPTIONS = (30, 50, 100, 200, 300, 400, 500, 1000, 2000, 5000)
#: QEMU max-bandwidth values offered (bytes/s); 32 MiB/s is QEMU's default
BANDWIDTH_OPTIONS = (
    ("32 MiB/s", 32 << 20),
    ("128 MiB/s", 128 << 20),
    ("512 MiB/s", 512 << 20),
    ("1 GiB/s", 1 << 30),
    ("4 GiB/s", 4 << 30),
    ("10 GiB/s", 10 << 30),
    ("100 GiB/s", 100 << 30),
)
_RELEASE_LABELS = {
    "done": "Linux 4.20: held until DONE",
    "shrinker": "Linux 5.7+: shrinker may take back",
    "after-pass": "v36 patch: freed after each pass",
}
#: rows of the numbers table: (variable, label, kind, show the saving)
NUMBER_ROWS = (
    ("total-time", "total time", "ms", True),
    ("downtime", "downtime", "ms", True),
    ("setup-time", "setup time", "ms", False),
    ("ram-transferred", "bytes sent", "bytes", True),
    ("ram-normal", "normal pages", "pages", False),
    ("ram-duplicate", "zero pages", "pages", False),
    ("skipped-pages", "pages skipped by hints", "pages", False),
    ("rounds", "rounds", "count", False),
    ("dirty-sync-count", "bitmap syncs", "count", False),
    ("guest-overhead-time", "guest time lost", "ms", False),
    ("lost-pages", "lost pages (must be 0)", "pages", False),
    ("status", "status", "text", False),
)


def _closest(options, value):
    """The option value nearest to ``value`` (options: values or (label, value) pairs)."""
    vals = [o[1] if isinstance(o, tuple) else o for o in options]
    return min(vals, key=lambda v: abs(v - value))


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


def _fmt(value, kind: str) -> str:
    if kind == "text":
        return html.escape(str(value))
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    if kind == "ms":
        return plot.format_ms(float(value))
    if kind == "bytes":
        return plot.format_bytes(float(value))
    if value < 0:  # the engine's "undefined" (e.g. lost pages of a run that did not complete)
        return "-"
    return f"{int(value):,}"


def scalars(ds) -> dict:
    """Every scalar (0-d) variable of a run as a plain Python value (str, int or float).

    Examples
    --------
    >>> import xarray as xr
    >>> scalars(xr.Dataset({"total-time": 350.0, "status": "completed"}))
    {'total-time': 350.0, 'status': 'completed'}
    """
    out = {}
    for name, var in ds.data_vars.items():
        if var.ndim == 0:
            v = var.values.item()
            out[name] = v.decode() if isinstance(v, bytes) else v
    return out


def page_map_png(ds, width: int = 792, height: int = 120) -> bytes:
    """The page map of one run (:func:`fphint_kernels.plot.page_map_rgb`) as PNG bytes.

    One band of pixels per round (round 1 on top), the guest's address space from left (0) to
    right; drawn with Pillow alone, which is much faster than a Matplotlib figure.
    """
    import numpy as np
    from PIL import Image

    rgb, rounds_ = plot.page_map_rgb(ds)
    if not len(rounds_):
        rgb = np.ones((1, 1, 3))
    band = max(4, height // max(1, len(rounds_)))
    img = Image.fromarray((rgb * 255).round().astype(np.uint8), mode="RGB")
    img = img.resize((width, band * rgb.shape[0]), Image.Resampling.NEAREST)
    buf = io.BytesIO()
    img.save(buf, format="png", compress_level=1)
    return buf.getvalue()


def _page_map_title(ds) -> str:
    _, rounds_ = plot.page_map_rgb(ds)
    mem = plot._memory_bytes(ds)
    nbins = ds.sizes.get("pfn_bin", 1)
    which = "hinting" if int(ds.attrs.get("scenario_hint", 0)) else "legacy"
    span = f"rounds {rounds_[0]} to {rounds_[-1]}" if len(rounds_) > 1 else "round 1"
    return (
        f"<b>guest memory at the end of each round, {which}</b>: guest physical address from "
        f"0 (left) to {plot.format_bytes(mem)} (right), {plot.format_bytes(mem / nbins)} per "
        f"pixel column; one band per round, {span} from top to bottom"
    )


def _legend_html() -> str:
    items = "".join(
        f'<span style="display:inline-block;width:0.9em;height:0.9em;background:{color};'
        f'border:1px solid #888;margin:0 0.3em 0 0.9em;vertical-align:middle"></span>'
        f"{html.escape(plot.STATE_LABELS[name])}"
        for name, color in plot.STATE_COLORS.items()
    )
    return f'<div style="font-size:85%">{items}</div>'


def _reduction(legacy: float, hinted: float) -> float | None:
    """Relative saving of hinting, ``1 - hinted / legacy`` (None when undefined: a legacy value
    of 0, or a run that did not complete and has no total time)."""
    if not legacy or not math.isfinite(legacy) or not math.isfinite(hinted):
        return None
    return 1.0 - hinted / legacy


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
        Initial QEMU downtime-limit (snapped to :data:`DOWNTIME_OPTIONS`).
    max_bandwidth : float or str
        Initial QEMU max-bandwidth in bytes/s (snapped to :data:`BANDWIDTH_OPTIONS`).
    hint : bool
        Which run the numbers, race and page map show (both are always simulated).
    init_on_alloc, page_poison, hint_release, auto_converge, profile, seed
        Initial values of the other :class:`fphint_kernels.Scenario` fields.
    page_map_bins : int
        Address bins of the page map.
    background_from : int
        Guests of at least this many bytes are simulated in a worker thread when a control
        changes (default 0: all); smaller ones run in the callback itself, which makes the
        controls synchronous (used by tests).  :meth:`update` is always synchronous.
    auto_update : bool
        Run the initial scenario now and re-run on every control change.
    dpi : int
        Resolution of the figure image.
    cache_size : int
        Most scenarios whose results are kept.

    Attributes
    ----------
    controls : dict
        Scenario field name -> widget.
    result : dict or None
        Numbers of the last update: ``legacy`` and ``hinting`` (:func:`scalars` of each
        run), ``reduction`` (relative saving of total-time), ``shown`` (``"hinting"`` or
        ``"legacy"``) and, for the shown run, ``total-time``, ``downtime``,
        ``ram-transferred``, ``rounds``, ``status``.
    legacy, hinted : xarray.Dataset or None
        The two runs of the last update.
    error : str or None
        Message of the last failed update (an invalid scenario, e.g. a workload larger than the
        guest); the previous results stay on display.
    timings : dict
        Seconds spent by the last update: ``simulate`` (both runs, or the cache), ``numbers``
        (until the numbers were on display), ``render`` (figures), ``total``.
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
        seed=0,
        page_map_bins=256,
        background_from=0,
        auto_update=True,
        dpi=72,
        cache_size=16,
    ):
        self.page_map_bins = int(page_map_bins)
        self.background_from = int(background_from)
        self.dpi = int(dpi)
        self.cache_size = int(cache_size)
        self.result = None
        self.legacy = None
        self.hinted = None
        self.error = None
        self.timings = {}
        self.png = b""
        self.updates = 0
        self._cache = OrderedDict()
        self._lock = threading.Lock()
        self._worker = None
        self._ticker = None
        self._running = False
        self._again = False
        self._auto = False
        self._progress_text = ""
        self._progress_t0 = time.perf_counter()
        self._step = (0, self._progress_t0, None)
        self._speed = {}
        self._figure = None
        self._render_lock = threading.Lock()
        self._simulated = 0

        style = {"description_width": "9em"}
        wide = w.Layout(width="100%")
        self.memory = w.SelectionSlider(
            options=MEMORY_OPTIONS,
            value=_closest(MEMORY_OPTIONS, parse_size(memory, what="memory", default_unit="M")),
            description="guest RAM",
            continuous_update=False,
            style=style,
            layout=wide,
        )
        self.workload = w.Dropdown(
            options=available_workloads(),
            value=workload,
            description="workload",
            style=style,
            layout=wide,
        )
        self.intensity = w.FloatLogSlider(
            value=float(intensity),
            base=2,
            min=-2,
            max=2,
            step=0.25,
            description="intensity",
            continuous_update=False,
            style=style,
            layout=wide,
            readout_format=".2f",
        )
        dl_ms = parse_duration_ms(downtime_limit, what="downtime-limit")
        self.downtime_limit = w.SelectionSlider(
            options=[(plot.format_ms(v), float(v)) for v in DOWNTIME_OPTIONS],
            value=float(_closest(DOWNTIME_OPTIONS, dl_ms)),
            description="downtime limit",
            continuous_update=False,
            style=style,
            layout=wide,
        )
        bw = parse_size(max_bandwidth, what="max-bandwidth")
        self.max_bandwidth = w.SelectionSlider(
            options=BANDWIDTH_OPTIONS,
            value=_closest(BANDWIDTH_OPTIONS, bw),
            description="max bandwidth",
            continuous_update=False,
            style=style,
            layout=wide,
        )
        self.hint = w.ToggleButtons(
            options=[("hinting", True), ("legacy", False)],
            value=bool(hint),
            description="show run",
            style={"description_width": "9em", "button_width": "7em"},
            tooltips=["free page hinting on", "no hinting (legacy pre-copy)"],
        )
        self.init_on_alloc = w.Checkbox(
            value=bool(init_on_alloc),
            description="init_on_alloc=1 (zero every allocation)",
            indent=False,
            layout=wide,
        )
        self.page_poison = w.Dropdown(
            options=list(PAGE_POISON),
            value=page_poison,
            description="page poison",
            style=style,
            layout=wide,
        )
        self.hint_release = w.Dropdown(
            options=[(_RELEASE_LABELS.get(k, k), k) for k in HINT_RELEASE],
            value=hint_release,
            description="hint release",
            style=style,
            layout=wide,
        )
        self.auto_converge = w.Checkbox(
            value=bool(auto_converge),
            description="auto-converge",
            indent=False,
            layout=wide,
        )
        self.profile = w.Dropdown(
            options=available_profiles(),
            value=profile,
            description="host profile",
            style=style,
            layout=wide,
        )
        self.seed = w.BoundedIntText(
            value=int(seed),
            min=0,
            max=2**31 - 1,
            description="seed",
            style=style,
            layout=wide,
        )
        self.controls = {
            "memory": self.memory,
            "workload": self.workload,
            "intensity": self.intensity,
            "downtime_limit": self.downtime_limit,
            "max_bandwidth": self.max_bandwidth,
            "hint": self.hint,
            "init_on_alloc": self.init_on_alloc,
            "page_poison": self.page_poison,
            "hint_release": self.hint_release,
            "auto_converge": self.auto_converge,
            "profile": self.profile,
            "seed": self.seed,
        }
        for name, widget in self.controls.items():
            widget.add_class(f"fphint-{name.replace('_', '-')}")
            widget.observe(self._on_change, names="value")

        self.status = w.HTML(value="", layout=wide)
        self.status.add_class("fphint-status")
        self.progress = w.FloatProgress(
            value=0.0,
            min=0.0,
            max=1.0,
            description="",
            bar_style="info",
            layout=w.Layout(width="100%", visibility="hidden"),
        )
        self.progress.add_class("fphint-progress")
        self.numbers = w.HTML(value="")
        self.numbers.add_class("fphint-numbers")
        self.image = w.Image(format="png", layout=w.Layout(width="100%", max_width="1100px"))
        self.image.add_class("fphint-figure")
        self.page_map_title = w.HTML("")
        self.page_map_image = w.Image(
            format="png", layout=w.Layout(width="100%", max_width="1100px")
        )
        self.page_map_image.add_class("fphint-page-map")
        self.page_map_legend = w.HTML(_legend_html())

        guest = w.VBox(
            [
                w.HTML("<b>guest</b>"),
                self.memory,
                self.workload,
                self.intensity,
                self.init_on_alloc,
                self.page_poison,
                self.hint_release,
            ]
        )
        host = w.VBox(
            [
                w.HTML("<b>host and QEMU</b>"),
                self.profile,
                self.downtime_limit,
                self.max_bandwidth,
                self.auto_converge,
                self.seed,
            ]
        )
        left = w.VBox(
            [
                guest,
                host,
                w.HTML("<b>display</b>"),
                self.hint,
                self.status,
                self.progress,
                self.numbers,
            ],
            layout=w.Layout(width="380px", min_width="340px"),
        )
        right = w.VBox(
            [self.image, self.page_map_title, self.page_map_image, self.page_map_legend],
            layout=w.Layout(width="100%"),
        )
        self.panel = w.HBox([left, right], layout=w.Layout(width="100%"))
        self.panel.add_class("fphint-explorer")
        if auto_update:
            self.update()
            self._auto = True

    # ---- scenario ------------------------------------------------------------------------

    def scenario_kwargs(self) -> dict:
        """The :class:`fphint_kernels.Scenario` arguments the controls describe (hint as shown)."""
        return {
            "memory": f"{int(self.memory.value) >> 20}M",
            "workload": self.workload.value,
            "workload_options": {"intensity": float(self.intensity.value)},
            "downtime_limit": float(self.downtime_limit.value),
            "max_bandwidth": float(self.max_bandwidth.value),
            "hint": bool(self.hint.value),
            "init_on_alloc": bool(self.init_on_alloc.value),
            "page_poison": self.page_poison.value,
            "hint_release": self.hint_release.value,
            "auto_converge": bool(self.auto_converge.value),
            "profile": self.profile.value,
            "seed": int(self.seed.value),
        }

    def scenarios(self) -> tuple[Scenario, Scenario]:
        """The (legacy, hinting) pair of scenarios; raises ``ScenarioError`` if invalid."""
        kw = self.scenario_kwargs()
        kw.pop("hint")
        return Scenario(**kw, hint=False), Scenario(**kw, hint=True)

    # ---- running ---------------------------------------------------------------------------

    def _run(self, sc: Scenario, step: int):
        interval = trace_interval_for(sc.memory)
        key = (sc, interval, self.page_map_bins)
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        speed = self._speed.get(sc.hint)
        self._set_progress(
            step,
            f"simulating {'hinting' if sc.hint else 'legacy'} ({step + 1}/2)",
            None if speed is None else speed * sc.nr_pages,
        )
        t0 = time.perf_counter()
        ds = simulate(sc, trace_interval_ms=interval, page_map_bins=self.page_map_bins)
        dt = time.perf_counter() - t0
        if self._simulated:  # the first run of a process includes the Numba compilation
            old = self._speed.get(sc.hint)
            new = dt / sc.nr_pages
            self._speed[sc.hint] = new if old is None else 0.5 * (old + new)
        self._simulated += 1
        with self._lock:
            self._cache[key] = ds
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return ds

    def _set_progress(self, step: int, text: str, estimate: float | None = None):
        """Enter step ``step`` of 3 (legacy, hinting, drawing), expected to take ``estimate`` s."""
        self.progress.value = step / 3
        self._progress_text = text
        self._step = (step, time.perf_counter(), estimate)

    def update(self) -> dict | None:
        """Simulate both modes of the scenario the controls describe and redraw.

        Synchronous.  Returns :attr:`result` (None when the scenario is invalid: then
        :attr:`error` holds the message and the status line shows it).
        """
        t0 = time.perf_counter()
        self._progress_t0 = t0
        try:
            sc_legacy, sc_hint = self.scenarios()
            legacy = self._run(sc_legacy, 0)
            hinted = self._run(sc_hint, 1)
        except FphintError as exc:
            self.error = str(exc)
            self.status.value = f'<span style="color:#b00">{html.escape(self.error)}</span>'
            self.progress.layout.visibility = "hidden"
            return None
        t1 = time.perf_counter()
        # the numbers go out first (the browser shows them while the figure is drawn)
        self.legacy, self.hinted = legacy, hinted
        self.error = None
        self.result = self._result(legacy, hinted, bool(self.hint.value))
        self.numbers.value = self._numbers_html(self.result)
        t_numbers = time.perf_counter()
        self._set_progress(2, "drawing")
        shown = hinted if self.hint.value else legacy
        png = self.render(legacy, hinted, shown)
        map_png = page_map_png(shown) if "page-map" in shown else b""
        t2 = time.perf_counter()
        self.png = png
        self.image.value = png
        self.page_map_image.value = map_png
        self.page_map_title.value = _page_map_title(shown)
        self.updates += 1
        self.timings = {
            "simulate": t1 - t0,
            "numbers": t_numbers - t0,
            "render": t2 - t1,
            "total": time.perf_counter() - t0,
        }
        self.progress.value = 1.0
        self.progress.layout.visibility = "hidden"
        self.status.value = (
            f"{html.escape(sc_hint.workload)}, {plot.format_bytes(sc_hint.memory)}: "
            f"updated in {self.timings['total']:.2f} s"
        )
        return self.result

    def request_update(self):
        """Run :meth:`update` in a worker thread (in the callback itself for guests smaller than
        ``background_from``).

        Changes made while an update runs are coalesced: the worker runs once more with the
        latest values when it finishes.
        """
        inline = int(self.memory.value) < self.background_from
        with self._lock:
            if self._running:
                self._again = True
                return
            self._running = True
            self._again = False
            if not inline:
                self._worker = threading.Thread(
                    target=self._work, name="fphint-explorer", daemon=True
                )
                self._worker.start()
                self._ticker = threading.Thread(
                    target=self._tick, args=(self._worker,), daemon=True
                )
                self._ticker.start()
                return
        self._work()

    def _work(self):
        """Update until no change is pending (the flag is cleared under the lock, so a change
        that arrives at any moment is either seen here or starts a new run)."""
        while True:
            try:
                self.update()
            except Exception as exc:  # keep the panel alive; show what went wrong
                self.error = f"{type(exc).__name__}: {exc}"
                self.status.value = f'<span style="color:#b00">{html.escape(self.error)}</span>'
                self.progress.layout.visibility = "hidden"
            with self._lock:
                if not self._again:
                    self._running = False
                    return
                self._again = False

    def _tick(self, worker: threading.Thread, period: float = 0.5):
        """Keep a progress bar and the status line moving while ``worker`` runs (the kernels
        release the GIL); quick updates finish before the first tick and show neither."""
        while worker.is_alive():
            worker.join(period)
            if worker.is_alive():
                now = time.perf_counter()
                step, since, estimate = self._step
                left = ""
                frac = 0.0
                if estimate:
                    frac = min(0.95, (now - since) / estimate)
                    left = f", about {max(0.0, estimate - (now - since)):.0f} s left in this step"
                self.progress.value = (step + frac) / 3
                self.progress.layout.visibility = "visible"
                self.status.value = (
                    f"{html.escape(self._progress_text)}: {now - self._progress_t0:.1f} s{left}"
                )
        self.progress.layout.visibility = "hidden"

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for background updates to finish; True when none is running any more."""
        deadline = None if timeout is None else time.perf_counter() + timeout
        while self.busy:
            worker = self._worker
            left = None if deadline is None else deadline - time.perf_counter()
            if left is not None and left <= 0:
                return False
            if worker is not None and worker.is_alive():
                worker.join(0.05 if left is None else min(0.05, left))
            else:
                time.sleep(0.01)
        ticker = self._ticker
        if ticker is not None:
            ticker.join(None if deadline is None else max(0.0, deadline - time.perf_counter()))
        return True

    @property
    def busy(self) -> bool:
        """An update started by a control change is running."""
        return self._running

    def _on_change(self, change):
        if self._auto:
            self.request_update()

    # ---- output ----------------------------------------------------------------------------

    def render(self, legacy, hinted, shown) -> bytes:
        """The explorer figure as PNG bytes (drawn once, off pyplot, on a figure kept between
        updates so that only the data are replaced)."""
        import matplotlib as mpl
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from PIL import Image

        with self._render_lock, mpl.rc_context(fname=str(plot.STYLE)):
            if self._figure is None:
                self._figure = Figure(figsize=(11, 5), dpi=self.dpi)
                FigureCanvasAgg(self._figure)
            fig = self._figure
            plot.explorer_figure(legacy, hinted, shown=shown, fig=fig, with_page_map=False)
            canvas = fig.canvas
            canvas.draw()
            img = Image.frombuffer("RGBA", canvas.get_width_height(), canvas.buffer_rgba())
        buf = io.BytesIO()
        img.convert("RGB").save(buf, format="png", compress_level=1)
        return buf.getvalue()

    @staticmethod
    def _result(legacy, hinted, show_hint: bool) -> dict:
        s_l, s_h = scalars(legacy), scalars(hinted)
        shown = s_h if show_hint else s_l
        out = {
            "legacy": s_l,
            "hinting": s_h,
            "shown": "hinting" if show_hint else "legacy",
            "reduction": (
                _reduction(float(s_l["total-time"]), float(s_h["total-time"]))
                if s_l.get("status") == s_h.get("status") == "completed"
                else None
            ),
        }
        for key in ("total-time", "downtime", "ram-transferred", "rounds", "status"):
            out[key] = shown[key]
        return out

    @staticmethod
    def _numbers_html(result: dict) -> str:
        s_l, s_h = result["legacy"], result["hinting"]
        bold = {"legacy": (1, 0), "hinting": (0, 1)}[result["shown"]]
        head = (
            '<tr><th style="text-align:left"></th>'
            f'<th style="text-align:right">{"<u>legacy</u>" if bold[0] else "legacy"}</th>'
            f'<th style="text-align:right">{"<u>hinting</u>" if bold[1] else "hinting"}</th>'
            '<th style="text-align:right">saved</th></tr>'
        )
        rows = [head]
        for key, label, kind, with_saving in NUMBER_ROWS:
            if key not in s_l and key not in s_h:
                continue
            a, b = s_l.get(key), s_h.get(key)
            saved = ""
            if with_saving and a is not None and b is not None:
                r = _reduction(float(a), float(b))
                saved = "" if r is None else f"{100 * r:.0f} %"
            rows.append(
                f'<tr class="fphint-row-{key}"><td>{label}</td>'
                f'<td style="text-align:right">{_fmt(a, kind)}</td>'
                f'<td style="text-align:right">{_fmt(b, kind)}</td>'
                f'<td style="text-align:right">{saved}</td></tr>'
            )
        red = result["reduction"]
        if s_l.get("status") == s_h.get("status") == "completed":
            headline = (
                "hinting saves "
                + (f"<b>{100 * red:.0f} %</b>" if red is not None else "-")
                + f" of the total time ({_fmt(s_h['total-time'], 'ms')} vs "
                f"{_fmt(s_l['total-time'], 'ms')})"
            )
        else:
            headline = (
                f'<span style="color:#b00">legacy {_fmt(s_l.get("status"), "text")}, hinting '
                f"{_fmt(s_h.get('status'), 'text')}</span>: a run that does not converge stops "
                "at the scenario's max-time"
            )
        return (
            f'<div class="fphint-headline">{headline}</div>'
            '<table style="border-collapse:collapse;font-size:90%;width:100%">'
            + "".join(rows)
            + "</table>"
        )

    def _repr_mimebundle_(self, **kwargs):
        return self.panel._repr_mimebundle_(**kwargs)


def explore(**kwargs) -> Explorer:
    """Build an :class:`Explorer` (same arguments) and return it; a notebook cell that ends
    with this call displays the panel."""
    return Explorer(**kwargs)
