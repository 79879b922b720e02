"""The explorer's rendering: the numbers as HTML, the figure and the page map as PNG images, and
the output widgets that show them.

Figures are drawn on a private ``matplotlib.figure.Figure`` kept between updates (no pyplot
state, so drawing can run in the worker thread) and sent to the browser as PNG.  Titles and
legends are HTML beside the image rather than text in it: text is most of Matplotlib's drawing
time, and the legend entries are read from the plotted artists themselves, so they always match
what is drawn.
"""

from __future__ import annotations

import html
import io
import math
import threading

import ipywidgets as w
import numpy as np

from .. import plot
from ..config import PAGE_SIZE
from ._shared import fmt, format_bytes, reduction

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
#: marks of :func:`fphint_kernels.plot.timeline` and :func:`fphint_kernels.plot.race` that carry
#: no label: (CSS of the swatch, what it means)
TIMELINE_MARKS = (
    ("border-top:2px dotted #777", "bitmap sync (a round ends)"),
    ("border-radius:50%;background:#777;width:0.6em;height:0.6em", "migration complete"),
)
#: the race labels all its marks (bitmap syncs, the stop-and-copy) itself
RACE_MARKS = ()


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


def result_of(legacy, hinted, shown: str) -> dict:
    """The numbers of one update (see :attr:`fphint_kernels.explorer.Explorer.result`)."""
    s_l, s_h = scalars(legacy), scalars(hinted)
    both_completed = s_l.get("status") == s_h.get("status") == "completed"
    out = {
        "legacy": s_l,
        "hinting": s_h,
        "shown": shown,
        "reduction": (
            reduction(legacy=float(s_l["total-time"]), hinted=float(s_h["total-time"]))
            if both_completed
            else None
        ),
    }
    row = s_h if shown == "hinting" else s_l
    for key in ("total-time", "downtime", "ram-transferred", "rounds", "status"):
        out[key] = row[key]
    return out


def numbers_html(result: dict) -> str:
    """The headline and the table of numbers, legacy and hinting side by side."""
    s_l, s_h = result["legacy"], result["hinting"]
    head = ['<tr><th style="text-align:left"></th>']
    for mode in ("legacy", "hinting"):
        name = f"<u>{mode}</u>" if result["shown"] == mode else mode
        head.append(f'<th style="text-align:right">{name}</th>')
    head.append('<th style="text-align:right">saved</th></tr>')
    rows = ["".join(head)]
    for key, label, kind, with_saving in NUMBER_ROWS:
        if key not in s_l and key not in s_h:
            continue
        a, b = s_l.get(key), s_h.get(key)
        saved = ""
        if with_saving and a is not None and b is not None:
            r = reduction(legacy=float(a), hinted=float(b))
            saved = f"{100 * r:.0f} %" if math.isfinite(r) else ""
        rows.append(
            f'<tr class="fphint-row-{key}"><td>{label}</td>'
            f'<td style="text-align:right">{fmt(a, kind)}</td>'
            f'<td style="text-align:right">{fmt(b, kind)}</td>'
            f'<td style="text-align:right">{saved}</td></tr>'
        )
    red = result["reduction"]
    if s_l.get("status") == s_h.get("status") == "completed":
        headline = (
            "hinting saves "
            + (f"<b>{100 * red:.0f} %</b>" if red is not None else "-")
            + f" of the total time ({fmt(s_h['total-time'], 'ms')} vs "
            f"{fmt(s_l['total-time'], 'ms')})"
        )
    else:
        headline = (
            f'<span style="color:#b00">legacy {fmt(s_l.get("status"), "text")}, hinting '
            f"{fmt(s_h.get('status'), 'text')}</span>: a run that does not converge stops "
            "at the scenario's max-time"
        )
    return (
        f'<div class="fphint-headline">{headline}</div>'
        '<table style="border-collapse:collapse;font-size:90%;width:100%">'
        + "".join(rows)
        + "</table>"
    )


def _swatch(css: str) -> str:
    return (
        '<span style="display:inline-block;width:1.6em;height:0;vertical-align:middle;'
        f'margin:0 0.35em 0 1em;{css}"></span>'
    )


def _artist_css(artist) -> str | None:
    """CSS of a legend swatch that looks like ``artist`` (a line or a filled area)."""
    from matplotlib.collections import LineCollection
    from matplotlib.colors import to_hex, to_rgba
    from matplotlib.lines import Line2D

    if isinstance(artist, Line2D):
        style = {"--": "dashed", ":": "dotted", "-.": "dashed"}.get(artist.get_linestyle(), "solid")
        width = max(2, round(artist.get_linewidth()))
        return f"border-top:{width}px {style} {to_hex(artist.get_color())}"
    if isinstance(artist, LineCollection):  # vlines: dashed or dotted, one colour
        offset, dashes = (artist.get_linestyle() or [(0, None)])[0]
        style = "dotted" if dashes and max(dashes) <= 2 * artist.get_linewidth()[0] else "dashed"
        colors = artist.get_color()
        color = to_hex(colors[0] if len(colors) else "#777")
        return f"border-top:2px {style if dashes else 'solid'} {color}"
    colors = getattr(artist, "get_facecolor", lambda: None)()
    if colors is None or not len(colors):
        return None
    r, g, b, a = to_rgba(np.asarray(colors)[0] if np.ndim(colors) > 1 else colors)
    return (
        f"height:0.8em;background:rgba({round(255 * r)},{round(255 * g)},{round(255 * b)},"
        f"{max(a, 0.3):.2f})"
    )


def legend_html(ax, marks=()) -> str:
    """Legend entries of the labelled artists of ``ax`` (and of ``marks``: (CSS, text)) as
    HTML swatches."""
    items = []
    for artist, label in zip(*ax.get_legend_handles_labels(), strict=True):
        css = _artist_css(artist)
        if css is not None:
            items.append(_swatch(css) + html.escape(label))
    items += [_swatch(css) + html.escape(text) for css, text in marks]
    return "".join(f'<span style="white-space:nowrap">{i}</span> ' for i in items)


def state_legend_html() -> str:
    """The colours of the page map, as HTML."""
    items = "".join(
        f'<span style="display:inline-block;width:0.9em;height:0.9em;background:{color};'
        f'border:1px solid #888;margin:0 0.3em 0 0.9em;vertical-align:middle"></span>'
        f"{html.escape(plot.STATE_LABELS[name])}"
        for name, color in plot.STATE_COLORS.items()
    )
    return f'<div style="font-size:85%">{items}</div>'


def page_map_png(ds, width: int = 792, height: int = 120) -> bytes:
    """The page map of one run (:func:`fphint_kernels.plot.page_map_rgb`) as PNG bytes.

    One band of pixels per round (round 1 on top), the guest's address space from left (0) to
    right; drawn with Pillow alone, which is much faster than a Matplotlib figure.
    """
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


def page_map_title(ds) -> str:
    """What the page map image shows, as HTML."""
    _, rounds_ = plot.page_map_rgb(ds)
    mem = float(ds["nr-pages"]) * PAGE_SIZE
    nbins = ds.sizes.get("pfn_bin", 1)
    which = "hinting" if int(ds.attrs.get("scenario_hint", 0)) else "legacy"
    span = f"rounds {rounds_[0]} to {rounds_[-1]}" if len(rounds_) > 1 else "round 1"
    return (
        f"<b>guest memory at the end of each round, {which}</b>: guest physical address from "
        f"0 (left) to {format_bytes(mem)} (right), {format_bytes(mem / nbins)} per "
        f"pixel column; one band per round, {span} from top to bottom"
    )


def png_bytes(canvas) -> bytes:
    """PNG of what a Matplotlib Agg canvas drew, fast settings: alpha dropped, zlib level 1."""
    from PIL import Image

    size = canvas.get_width_height()
    img = Image.frombuffer("RGBA", size, canvas.buffer_rgba(), "raw", "RGBA", 0, 1)
    buf = io.BytesIO()
    img.convert("RGB").save(buf, format="png", compress_level=1)
    return buf.getvalue()


class FigureRenderer:
    """Draws :func:`fphint_kernels.plot.explorer_figure` (without its page-map row, titles and
    legends) as PNG, on one figure kept between calls so that only the data are replaced.

    Parameters
    ----------
    dpi : int
        Pixels per inch of the image (the figure is 11 x 4.6 inches).
    """

    def __init__(self, dpi: int = 72, figsize=(11.0, 4.6)):
        self.dpi = int(dpi)
        self.figsize = figsize
        self._figure = None
        self._style = None
        self._lock = threading.Lock()

    def render(self, legacy, hinted, shown) -> tuple[bytes, str]:
        """(PNG of the figure, HTML caption with the titles and legends of its panels)."""
        import matplotlib as mpl
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        if self._style is None:  # read once (parsing the file costs a millisecond a redraw)
            self._style = mpl.rc_params_from_file(str(plot.STYLE), use_default_template=False)
        with self._lock, mpl.rc_context(rc=self._style):
            if self._figure is None:
                self._figure = Figure(figsize=self.figsize, dpi=self.dpi)
                FigureCanvasAgg(self._figure)
            fig = self._figure
            plot.explorer_figure(
                legacy, hinted, shown=shown, fig=fig, with_page_map=False, annotate=False
            )
            ax_p, _ax_b, ax_r = fig.axes[:3]
            fig.canvas.draw()
            png = png_bytes(fig.canvas)
            which = "hinting" if int(shown.attrs.get("scenario_hint", 0)) else "legacy"
            caption = (
                '<div style="font-size:85%;line-height:1.6">'
                "<b>over time</b>: pages still to send (top) and bytes sent (bottom left) "
                f"{legend_html(ax_p, TIMELINE_MARKS)}<br>"
                f"<b>the race, {which}</b> (bottom right): where the migration thread's sender "
                "and the guest's hint worker are in the address space "
                f"{legend_html(ax_r, RACE_MARKS)}</div>"
            )
        return png, caption


class View:
    """The explorer's output widgets.

    Attributes
    ----------
    status : ipywidgets.HTML
        One line: what the panel is doing, how long the last update took, or an error (red).
    progress : ipywidgets.FloatProgress
        Shown while an update takes longer than half a second.
    numbers : ipywidgets.HTML
        :func:`numbers_html`.
    caption, image : ipywidgets.HTML, ipywidgets.Image
        Titles and legends of the figure, and the figure.
    page_map_title, page_map_image, page_map_legend : ipywidgets.HTML, Image, HTML
        The page map of the shown run.
    side, main : ipywidgets.VBox
        The status, progress and numbers (under the controls); the pictures.
    """

    def __init__(self):
        wide = w.Layout(width="100%")
        self.status = w.HTML(value="", layout=wide)
        self.status.add_class("fphint-status")
        self.progress = w.FloatProgress(
            value=0.0,
            min=0.0,
            max=1.0,
            bar_style="info",
            layout=w.Layout(width="100%", visibility="hidden"),
        )
        self.progress.add_class("fphint-progress")
        self.numbers = w.HTML(value="")
        self.numbers.add_class("fphint-numbers")
        self.caption = w.HTML(value="")
        self.caption.add_class("fphint-caption")
        image_layout = {"width": "100%", "max_width": "1100px"}
        self.image = w.Image(format="png", layout=w.Layout(**image_layout))
        self.image.add_class("fphint-figure")
        self.page_map_title = w.HTML("")
        self.page_map_image = w.Image(format="png", layout=w.Layout(**image_layout))
        self.page_map_image.add_class("fphint-page-map")
        self.page_map_legend = w.HTML(state_legend_html())
        self.side = w.VBox([self.status, self.progress, self.numbers])
        self.main = w.VBox(
            [
                self.caption,
                self.image,
                self.page_map_title,
                self.page_map_image,
                self.page_map_legend,
            ],
            layout=w.Layout(width="100%"),
        )

    def show_status(self, text: str, error: bool = False) -> None:
        """``text`` is HTML-escaped; an error is shown in red."""
        text = html.escape(text)
        self.status.value = f'<span style="color:#b00">{text}</span>' if error else text

    def show_progress(self, fraction: float | None) -> None:
        """Show the bar at ``fraction`` (0 to 1), or hide it (None)."""
        if fraction is None:
            self.progress.layout.visibility = "hidden"
            return
        self.progress.value = float(fraction)
        self.progress.layout.visibility = "visible"

    def show_numbers(self, result: dict) -> None:
        self.numbers.value = numbers_html(result)

    def show_figure(self, png: bytes, caption: str) -> None:
        self.caption.value = caption
        self.image.value = png

    def show_page_map(self, ds) -> None:
        """The page map of ``ds`` (a run simulated with ``page_map_bins > 0``)."""
        self.page_map_image.value = page_map_png(ds)
        self.page_map_title.value = page_map_title(ds)
