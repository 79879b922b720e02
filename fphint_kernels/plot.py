"""Figures of simulated and measured migrations (every axis labelled, with units).

Each function takes the :class:`xarray.Dataset` of one run (or a legacy and a hinting run) and
draws on a Matplotlib ``Axes`` it is given, or on a new figure.  Nothing here simulates: the
notebooks and :mod:`fphint_kernels.explorer` call :func:`fphint_kernels.simulate` and pass the
results in.  Functions that draw several panels take a ``fig`` instead of an ``ax`` so that the
explorer can render into a ``matplotlib.figure.Figure`` off the main thread (no pyplot state).

Pictures
--------
:func:`page_map`          guest memory per round as an image (address across, rounds down)
:func:`memory_picture`    one round's memory folded into a square, one pixel per address bin
:func:`page_map_rounds`   :func:`memory_picture` for several rounds side by side
:func:`phases`            one migration's setup, rounds and stop-and-copy on a time line
:func:`timeline`          pending pages and bytes sent over time, legacy and hinting together
:func:`race`              the hint worker and the sender as two cursors over the address space
:func:`rounds`            per round: bytes sent, bytes pending after its sync, the threshold
:func:`explorer_figure`   the four panels the explorer shows

Results
-------
:func:`compare`                  a few scalar results of named runs, as bars
:func:`table`                    the same as a table
:func:`published_vs_simulated`   the reproduction: published and simulated total-time
:func:`reproduction_reductions`  the reproduction: reduction by hinting, three ways
:func:`reproduction_errors`      the reproduction: error of every row, fitted vs predicted
:func:`measured_vs_simulated`    real QEMU migrations against the simulator, field by field

Studies
-------
The Datasets of :mod:`fphint_kernels.studies`:

:func:`study_big_idle_guest`     total time and bytes against guest RAM and RAM in use
:func:`study_hint_rate`          time saved against the hint worker's time per block
:func:`study_init_on_alloc`      init_on_alloc 0 and 1, without and with hinting
:func:`study_designs`            hinting designs side by side, as bars
:func:`study_non_convergence`    a fast-dirtying guest: hinting and auto-converge

Sizes and times on axes and in labels come from :mod:`fphint_kernels.units`
(``format_bytes``, ``format_ms``, ``size_unit``, ``time_unit``, also reachable from here).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.ticker import MaxNLocator

from .kernels.layout import NORMAL_RECORD, PAGE_SIZE
from .units import format_bytes, format_ms, size_unit, time_unit

__all__ = [
    "cancellation", "compare", "explorer_figure", "format_bytes", "format_ms", "measured_vs_simulated",
    "memory_picture", "page_map", "page_map_rgb", "page_map_rounds", "phases",
    "published_vs_simulated", "stop_and_copy", "study_big_idle_guest", "study_designs",
    "study_hint_rate", "study_init_on_alloc", "study_non_convergence",
    "race", "reproduction_errors", "reproduction_reductions", "rounds", "size_unit", "table",
    "time_unit", "timeline", "use_style",
]  # fmt: skip

STYLE = Path(__file__).with_name("fphint.mplstyle")

#: colour of each ``page-map`` state (Okabe-Ito palette, readable by colour-blind viewers)
STATE_COLORS = {
    "used": "#8c8c8c",  # in use by the guest, not (yet) sent this round
    "free": "#f2f2f2",  # free in the buddy allocator, not sent
    "held": "#CC79A7",  # in a free block the balloon driver holds (hinted)
    "sent": "#0072B2",  # sent in this round
    "skipped": "#009E73",  # its pending bit was cleared by a hint: not sent
    "dirty": "#D55E00",  # written since the last sync: pending for the next round
}
#: what each state means, for legends and lessons
STATE_LABELS = {
    "used": "used",
    "free": "free",
    "held": "held by balloon",
    "sent": "sent in this round",
    "skipped": "skipped (hinted)",
    "dirty": "dirty: written since the last sync",
}
LEGACY_COLOR = "#D55E00"
HINT_COLOR = "#0072B2"


def use_style() -> None:
    """Use the package's matplotlib style (shipped inside the package, no network)."""
    import matplotlib.pyplot as plt

    plt.style.use(str(STYLE))


# ---- helpers ------------------------------------------------------------------------------


def _axes(ax=None, **subplot_kw):
    """The given Axes, or one on a new pyplot figure."""
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    _, ax = plt.subplots(**subplot_kw)
    return ax


def _figure(fig=None, **fig_kw):
    """The given Figure, or a new pyplot figure."""
    if fig is not None:
        return fig
    import matplotlib.pyplot as plt

    return plt.figure(**fig_kw)


def _memory_bytes(ds) -> float:
    if "nr-pages" in ds:
        return float(ds["nr-pages"]) * PAGE_SIZE
    return float(ds.attrs["scenario_memory"])


def _label(ds, default: str) -> str:
    hint = ds.attrs.get("scenario_hint")
    if hint is None:
        return default
    return "hinting" if int(hint) else "legacy"


def _check(ds, *names):
    missing = [n for n in names if n not in ds]
    if missing:
        raise KeyError(
            f"the Dataset lacks {', '.join(missing)}"
            + (" (simulate with page_map_bins > 0)" if "page-map" in missing else "")
        )


#: most samples of a trace drawn (longer traces are thinned by taking every k-th sample)
MAX_TRACE_POINTS = 4000


def _thin(n: int, max_points: int = MAX_TRACE_POINTS) -> np.ndarray:
    """Indices of at most about ``max_points`` evenly spaced samples of ``n``, last included.

    A run that does not converge traces up to its max-time (10 min at 1 ms is 600 000 samples),
    far more than a figure can show and slow to draw.

    Examples
    --------
    >>> _thin(5, 10).tolist()
    [0, 1, 2, 3, 4]
    >>> _thin(10, 4).tolist()
    [0, 3, 6, 9]
    """
    if n <= max_points:
        return np.arange(n)
    step = -(-n // max_points)
    idx = np.arange(0, n, step)
    return idx if idx[-1] == n - 1 else np.r_[idx, n - 1]


def _rgb(name: str) -> np.ndarray:
    from matplotlib.colors import to_rgb

    return np.array(to_rgb(STATE_COLORS[name]))


def page_map_rgb(ds) -> tuple[np.ndarray, np.ndarray]:
    """Colours of the page map: one RGB pixel per (round, address bin).

    The ``page-map`` counts are two layers.  Where a page lives (``used``, ``free``, ``held``:
    exclusive, they add up to the pages of the bin) gives the background colour; what the
    round did to it (``sent`` or ``skipped``) paints over that share of the bin; pages
    ``dirty`` at the end of the round (written since the last sync) are blended in red with a
    square-root weight, so that a few dirty pages in a bin stay visible.  Rounds without a map
    (the stop-and-copy, or rounds past the engine's map cap) are dropped.

    Parameters
    ----------
    ds : xarray.Dataset
        One run simulated with ``page_map_bins > 0``.

    Returns
    -------
    rgb : numpy.ndarray
        Shape (rounds, bins, 3), floats in [0, 1].
    rounds : numpy.ndarray
        Round numbers of the rows.
    """
    _check(ds, "page-map")
    pm = ds["page-map"].transpose("round", "pfn_bin", "page_state")
    states = _states(ds)
    c = {s: pm.values[..., i].astype(float) for i, s in enumerate(states)}
    pages = c["used"] + c["free"] + c["held"]
    keep = pages.sum(axis=1) > 0
    rounds_ = ds["round"].values[keep] if "round" in ds.coords else np.flatnonzero(keep) + 1
    pages = pages[keep]
    c = {s: v[keep] for s, v in c.items()}
    denom = np.where(pages > 0, pages, 1.0)[..., None]
    base = (
        c["used"][..., None] * _rgb("used")
        + c["free"][..., None] * _rgb("free")
        + c["held"][..., None] * _rgb("held")
    ) / denom
    sent = np.clip(c["sent"] / denom[..., 0], 0, 1)
    skipped = np.clip(c["skipped"] / denom[..., 0], 0, 1 - sent)
    rest = 1.0 - sent - skipped
    rgb = (
        sent[..., None] * _rgb("sent")
        + skipped[..., None] * _rgb("skipped")
        + rest[..., None] * base
    )
    dirty = np.sqrt(np.clip(c["dirty"] / denom[..., 0], 0, 1))[..., None]
    rgb = (1 - dirty) * rgb + dirty * _rgb("dirty")
    rgb[pages == 0] = 1.0
    return np.clip(rgb, 0.0, 1.0), rounds_


def _state_legend(ax, states, **kw):
    from matplotlib.patches import Patch

    handles = [
        Patch(facecolor=STATE_COLORS[str(s)], edgecolor="0.5", label=STATE_LABELS[str(s)])
        for s in states
    ]
    return ax.legend(handles=handles, **kw)


def _states(ds):
    if "page_state" in ds.coords:
        return [str(s) for s in ds["page_state"].values]
    from .variables import PAGE_STATES

    return list(PAGE_STATES)


# ---- pictures of memory -------------------------------------------------------------------


def page_map(ds, ax=None, legend: bool = True):
    """Guest memory at the end of each round: address across, rounds down.

    Each pixel is one address bin of the ``page-map`` variable; its colour mixes the colours of
    the page states (:data:`STATE_COLORS`) in proportion to the pages of the bin in each state,
    so a bin half sent and half skipped comes out half blue, half green.

    Parameters
    ----------
    ds : xarray.Dataset
        One run simulated with ``page_map_bins > 0``.
    ax : matplotlib.axes.Axes, optional
        Where to draw; a new figure when omitted.
    legend : bool
        Add a legend of the states below the image.

    Returns
    -------
    matplotlib.axes.Axes
    """
    ax = _axes(ax)
    rgb, rounds_ = page_map_rgb(ds)
    mem = _memory_bytes(ds)
    div, unit = size_unit(mem)
    r0, r1 = (int(rounds_[0]), int(rounds_[-1])) if len(rounds_) else (1, 1)
    ax.imshow(
        rgb,
        aspect="auto",
        interpolation="nearest",
        extent=(0, mem / div, r1 + 0.5, r0 - 0.5),
    )
    ax.set_xlabel(f"guest physical address ({unit})")
    ax.set_ylabel("round (state at its end)")
    ax.set_yticks(np.arange(r0, r1 + 1, max(1, (r1 - r0 + 1) // 8)))
    ax.grid(False)
    ax.set_title(f"guest memory per round, {_label(ds, 'run')}")
    if legend:
        _state_legend(
            ax, _states(ds), loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small"
        )
    return ax


def memory_picture(ds, round: int = 1, ax=None, columns: int | None = None, legend: bool = False):
    """One round's guest memory folded into a near-square picture.

    Address bins are laid out row by row like the lines of a page of text: the first row holds
    the lowest addresses.  Colours as in :func:`page_map`.

    Parameters
    ----------
    ds : xarray.Dataset
        One run simulated with ``page_map_bins > 0``.
    round : int
        Round number (the ``round`` coordinate, starting at 1).
    ax : matplotlib.axes.Axes, optional
    columns : int, optional
        Bins per row (default: about the square root of the number of bins).
    legend : bool
        Add a legend of the states.

    Returns
    -------
    matplotlib.axes.Axes
    """
    ax = _axes(ax)
    all_rgb, rounds_ = page_map_rgb(ds)
    if round not in rounds_:
        raise KeyError(f"no page map for round {round} (mapped rounds: {list(rounds_)})")
    row = all_rgb[list(rounds_).index(round)]
    nbins = row.shape[0]
    cols = int(columns or max(1, int(np.ceil(np.sqrt(nbins)))))
    rows = -(-nbins // cols)
    rgb = np.ones((rows * cols, 3))
    rgb[:nbins] = row
    rgb = rgb.reshape(rows, cols, 3)
    mem = _memory_bytes(ds)
    bin_bytes = mem / nbins
    row_bytes = bin_bytes * cols
    ydiv, yunit = size_unit(mem)
    xdiv, xunit = size_unit(row_bytes)
    ax.imshow(
        rgb,
        aspect="auto",
        interpolation="nearest",
        extent=(0, row_bytes / xdiv, rows * row_bytes / ydiv, 0),
    )
    ax.set_xlabel(f"offset in row ({xunit})")
    ax.set_ylabel(f"row start address ({yunit})")
    ax.grid(False)
    ax.set_title(f"round {round}, {_label(ds, 'run')}")
    if legend:
        _state_legend(ax, _states(ds), loc="upper left", bbox_to_anchor=(1.02, 1.0))
    return ax


def page_map_rounds(ds, rounds=None, fig=None, max_rounds: int = 4):
    """:func:`memory_picture` of several rounds side by side, with one legend.

    Parameters
    ----------
    ds : xarray.Dataset
        One run simulated with ``page_map_bins > 0``.
    rounds : sequence of int, optional
        Round numbers; default the first ``max_rounds - 1`` and the last.
    fig : matplotlib.figure.Figure, optional
    max_rounds : int
        Most pictures drawn when ``rounds`` is omitted.

    Returns
    -------
    matplotlib.figure.Figure
    """
    all_rounds = [int(r) for r in page_map_rgb(ds)[1]]
    if rounds is None:
        rounds = all_rounds
        if len(rounds) > max_rounds:
            rounds = rounds[: max_rounds - 1] + rounds[-1:]
    rounds = list(rounds)
    if not rounds:
        raise ValueError("the run has no rounds to draw")
    fig = _figure(fig, figsize=(2.6 * len(rounds) + 1.8, 3.2), layout="constrained")
    axes = fig.subplots(1, len(rounds), squeeze=False)[0]
    for ax, r in zip(axes, rounds, strict=True):
        memory_picture(ds, r, ax=ax)
        if ax is not axes[0]:
            ax.set_ylabel("")
    _state_legend(axes[-1], _states(ds), loc="upper left", bbox_to_anchor=(1.02, 1.0))
    return fig


# ---- time lines ---------------------------------------------------------------------------


#: colours of further runs given by name (after legacy and hinting)
EXTRA_COLORS = ("#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000")


def _runs(legacy, hinted, runs=None):
    out = []
    if legacy is not None:
        out.append(("legacy", legacy, LEGACY_COLOR))
    if hinted is not None:
        out.append(("hinting", hinted, HINT_COLOR))
    for i, (name, ds) in enumerate((runs or {}).items()):
        out.append((str(name), ds, EXTRA_COLORS[i % len(EXTRA_COLORS)]))
    if not out:
        raise ValueError("give at least one run")
    return out


def stop_and_copy(ds) -> dict | None:
    """Where the stop-and-copy of a completed run starts and ends, for drawing.

    Returns
    -------
    dict or None
        ``start`` and ``end`` (ms: the VM stops, the migration completes), ``pending`` (pages
        the stop-and-copy sends) and ``sent_before`` (bytes sent before the VM stopped); None
        when the run did not complete.
    """
    if "downtime" not in ds or "total-time" not in ds:
        return None
    total, down = float(ds["total-time"]), float(ds["downtime"])
    if not (np.isfinite(total) and np.isfinite(down)):
        return None
    start = total - down
    sent = float(ds["ram-transferred"])
    if "round-bytes" in ds and ds.sizes.get("round", 0):
        during = float(ds["round-bytes"].values[-1])
        pending = float(ds["round-pending-after-sync"].values[-1])
    else:  # a run without per-round records: the trace's last sample before the stop
        before = ds["time"].values < start
        during = sent - (float(ds["transferred"].values[before][-1]) if before.any() else 0.0)
        pending = float(ds["pending"].values[before][-1]) if before.any() else 0.0
    return {"start": start, "end": total, "pending": pending, "sent_before": sent - during}


def timeline(legacy=None, hinted=None, fig=None, axes=None, runs=None):
    """Pending pages (top) and bytes sent (bottom) over time, both modes on one figure.

    Dotted vertical lines mark each run's bitmap syncs (``round-end``: a pre-copy round ends).
    The shaded span of a run is its downtime: the VM is stopped and the stop-and-copy sends
    what is still pending, drawn as a straight line from the moment the VM stops to the
    completion (a dot, at ``total-time``).

    Parameters
    ----------
    legacy, hinted : xarray.Dataset, optional
        The run without and with free page hinting.
    fig : matplotlib.figure.Figure, optional
        Draw on two new axes of this figure.
    axes : pair of matplotlib.axes.Axes, optional
        Draw on these instead.
    runs : dict of str to xarray.Dataset, optional
        Further runs, labelled by their keys (at least one run in all).

    Returns
    -------
    tuple of matplotlib.axes.Axes
        (pending axes, transferred axes)
    """
    runs = _runs(legacy, hinted, runs)
    for _, ds, _c in runs:
        _check(ds, "pending", "transferred")
    if axes is None:
        fig = _figure(fig, figsize=(8, 5), layout="constrained")
        axes = fig.subplots(2, 1, sharex=True)
    ax_p, ax_b = axes
    t_end = max(float(np.nan_to_num(ds["total-time"].values)) for _, ds, _c in runs)
    tdiv, tunit = time_unit(t_end)
    bmax = max(float(ds["ram-transferred"]) for _, ds, _c in runs)
    bdiv, bunit = size_unit(bmax)
    pmax = max(float(np.nanmax(ds["pending"].values, initial=0)) for _, ds, _c in runs)
    pdiv, punit = (
        (1e6, "million pages")
        if pmax >= 2e6
        else ((1e3, "thousand pages") if pmax >= 2e4 else (1.0, "pages"))
    )
    for name, ds, color in runs:
        t_ms = ds["time"].values
        pend = ds["pending"].values
        sent = ds["transferred"].values
        total = float(ds["total-time"])
        sc = stop_and_copy(ds)
        if sc is not None:
            # the trace after the VM stopped holds the end state: draw the stop-and-copy as
            # what it is, the sending of the pending pages while the VM is stopped
            # (a sample taken in the engine step in which the VM stopped may already hold the
            # end state: such samples have more bytes sent than there were at the stop)
            keep = (t_ms < sc["start"]) & (sent <= sc["sent_before"])
            t_ms = np.r_[t_ms[keep], sc["start"], sc["end"]]
            pend = np.r_[pend[keep], sc["pending"], 0.0]
            sent = np.r_[sent[keep], sc["sent_before"], float(ds["ram-transferred"])]
        k = _thin(len(t_ms))
        if sc is not None:  # thinning keeps the last sample; keep the stop too
            k = np.union1d(k, [len(t_ms) - 2])
        t = t_ms[k] / tdiv
        label = f"{name}: {format_ms(total)}"
        ax_p.plot(t, pend[k] / pdiv, color=color, label=label, lw=1.5)
        ax_b.plot(t, sent[k] / bdiv, color=color, label=label, lw=1.5)
        if sc is not None:
            down = f"{name}: VM stopped {format_ms(sc['end'] - sc['start'])}"
            for ax in (ax_p, ax_b):
                ax.axvspan(sc["start"] / tdiv, sc["end"] / tdiv, color=color, alpha=0.18, lw=0,
                           label=down if ax is ax_p else None)  # fmt: skip
            ax_b.plot([sc["end"] / tdiv], [float(ds["ram-transferred"]) / bdiv], "o",
                      color=color, ms=5)  # fmt: skip
        if "round-end" in ds:
            ends = ds["round-end"].values
            if sc is not None and len(ends):
                ends = ends[:-1]  # the stop-and-copy ends with the completion, not with a sync
            for ax in (ax_p, ax_b):
                ax.vlines(ends / tdiv, 0, 1, transform=ax.get_xaxis_transform(), colors=color,
                          lw=0.6, linestyles=":", alpha=0.6)  # fmt: skip
    ax_p.set_ylabel(f"pending ({punit})")
    ax_p.set_ylim(bottom=0)
    ax_p.legend(loc="upper right", fontsize="small")
    ax_p.set_title("pages still to send and bytes sent (dotted: bitmap syncs, a round ends; "
                   "shaded: VM stopped, the stop-and-copy)", fontsize="medium")  # fmt: skip
    ax_b.set_ylabel(f"sent ({bunit})")
    ax_b.set_xlabel(f"time since migrate ({tunit})")
    ax_b.set_ylim(bottom=0)
    ax_b.set_xlim(left=0)
    return ax_p, ax_b


def phases(ds, fig=None):
    """The phases of one migration on a time line: setup, the pre-copy rounds, the stop-and-copy.

    Top: pages still to send over time, with each round shaded and numbered (the rounds of
    ``round-start`` and ``round-end``; the last one of a completed run is the stop-and-copy).
    Bottom: what the guest does meanwhile: it runs during setup and the pre-copy rounds, and is
    stopped during the stop-and-copy (the downtime).

    Parameters
    ----------
    ds : xarray.Dataset
        One run (a completed one shows the stop-and-copy).
    fig : matplotlib.figure.Figure, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    from matplotlib.patches import Patch

    _check(ds, "pending", "round-start", "round-end")
    fig = _figure(fig, figsize=(9, 4.2), layout="constrained")
    ax, ax_vm = fig.subplots(2, 1, sharex=True, height_ratios=(4, 1))
    sc = stop_and_copy(ds)
    end = sc["end"] if sc is not None else float(ds["time"].values[-1])
    tdiv, tunit = time_unit(end)
    starts, ends = ds["round-start"].values, ds["round-end"].values
    pmax = float(np.nanmax(ds["pending"].values, initial=1))
    pdiv, punit = (1e3, "thousand pages") if pmax >= 2e4 else (1.0, "pages")
    shades = ("#dbe9f6", "#eef4fb")
    for i, (a, b) in enumerate(zip(starts, ends, strict=True)):
        last = sc is not None and i == len(starts) - 1
        ax.axvspan(a / tdiv, b / tdiv, color="#f6d5c4" if last else shades[i % 2], lw=0)
        if b - a >= 0.04 * end:  # numbered where the number fits
            text = "stop-and-\ncopy" if last else f"round\n{i + 1}" if i == 0 else f"{i + 1}"
            ax.text((a + b) / 2 / tdiv, 0.97, text, transform=ax.get_xaxis_transform(),
                    ha="center", va="top", fontsize="small")  # fmt: skip
    setup = float(ds["setup-time"]) if "setup-time" in ds else float(starts[0])
    ax.axvspan(0, setup / tdiv, color="0.9", lw=0)
    t, pend = ds["time"].values, ds["pending"].values
    if sc is not None:  # as in timeline(): the stop-and-copy sends what is pending
        keep = (t < sc["start"]) & (ds["transferred"].values <= sc["sent_before"])
        t = np.r_[t[keep], sc["start"], sc["end"]]
        pend = np.r_[pend[keep], sc["pending"], 0.0]
    k = _thin(len(t))
    ax.plot(t[k] / tdiv, pend[k] / pdiv, color="k", lw=1.5, label="pages still to send")
    ax.set_ylim(0, pmax / pdiv * 1.3)
    ax.set_ylabel(f"pending ({punit})")
    ax.legend(
        handles=[
            *ax.get_legend_handles_labels()[0],
            Patch(color="0.9", label="setup"),
            Patch(color=shades[0], label="pre-copy rounds (VM runs)"),
            Patch(color="#f6d5c4", label="stop-and-copy (VM stopped)"),
        ],
        loc="center right",
        fontsize="small",
        framealpha=1.0,
    )
    hint = ds.attrs.get("scenario_hint")
    how = "" if hint is None else " with free page hinting" if int(hint) else " without hinting"
    ax.set_title(f"one migration{how}: {format_ms(end)}"
                 + (f", downtime {format_ms(sc['end'] - sc['start'])}" if sc else ""))  # fmt: skip
    stop = sc["start"] if sc is not None else end
    ax_vm.broken_barh([(0, stop / tdiv)], (0, 1), color="#009E73")
    ax_vm.text(stop / 2 / tdiv, 0.5, "guest running (its pages keep changing)", ha="center",
               va="center", color="white", fontsize="small")  # fmt: skip
    if sc is not None:
        ax_vm.broken_barh([(sc["start"] / tdiv, (sc["end"] - sc["start"]) / tdiv)], (0, 1),
                          color="#D55E00")  # fmt: skip
        ax_vm.text(sc["end"] / tdiv, 1.15, "guest stopped: downtime", ha="right", va="bottom",
                   fontsize="small", color="#D55E00")  # fmt: skip
    ax_vm.set_yticks([])
    ax_vm.set_ylim(0, 1.8)
    ax_vm.set_ylabel("guest", rotation=0, ha="right", va="center")
    ax_vm.set_xlabel(f"time since the migrate command ({tunit})")
    ax_vm.set_xlim(0, end / tdiv * 1.01)
    ax_vm.grid(False)
    return fig


def _before_last_change(values: np.ndarray, group: np.ndarray) -> np.ndarray:
    """True for samples taken before the last change of ``values`` within their ``group``.

    Used to tell a hint cursor that is still moving (the worker is hinting) from one that has
    stopped (its pass is over).

    Examples
    --------
    >>> _before_last_change(np.array([5.0, 4, 4, 3, 3, 3]), np.zeros(6)).tolist()
    [True, True, True, True, False, False]
    """
    v = np.nan_to_num(np.asarray(values, dtype=float), nan=-1.0)
    g = np.asarray(group)
    out = np.zeros(len(v), dtype=bool)
    changed = np.r_[False, (v[1:] != v[:-1]) & (g[1:] == g[:-1])]
    for grp in np.unique(g):
        idx = np.flatnonzero(g == grp)
        hits = idx[changed[idx]]
        if hits.size:
            out[idx[idx <= hits[-1]]] = True
    return out


def race(ds, ax=None, legend: bool = True):
    """The hint worker and the sender as two cursors over the guest's address space.

    The sender walks the bitmap upwards once per round (``sender-pfn``); the guest's hint worker
    reports free 4 MiB blocks (``hint-pfn``: lowest pfn hinted so far in the pass).  Where the
    hint cursor is above the sender (shaded green) the hinted blocks are still ahead of the scan
    and their pages are skipped; below it (shaded red) the sender has already sent them and the
    hint saves nothing.  Dotted lines mark the bitmap syncs that end the rounds; the grey span
    at the end is the stop-and-copy (VM stopped).

    Parameters
    ----------
    ds : xarray.Dataset
        One run (with hinting for a race; a legacy run shows the sender alone).
    ax : matplotlib.axes.Axes, optional
    legend : bool

    Returns
    -------
    matplotlib.axes.Axes
    """
    _check(ds, "sender-pfn", "hint-pfn")
    ax = _axes(ax)
    mem = _memory_bytes(ds)
    div, unit = size_unit(mem)
    t_end = float(ds["total-time"]) if "total-time" in ds else float(ds["time"].max())
    tdiv, tunit = time_unit(t_end)
    k = _thin(ds.sizes["time"])
    t = ds["time"].values[k] / tdiv
    per = PAGE_SIZE / div
    sender = ds["sender-pfn"].values[k].astype(float) * per
    hint = ds["hint-pfn"].values[k].astype(float)
    hint = np.where(hint < 0, np.nan, hint * per)
    sc = stop_and_copy(ds)
    if "round-end" in ds:
        ends = ds["round-end"].values
        if sc is not None and len(ends):
            ends = ends[:-1]  # the stop-and-copy ends with the completion, not with a sync
        ax.vlines(ends / tdiv, 0, 1, transform=ax.get_xaxis_transform(), colors="0.45", lw=0.8,
                  linestyles=":", label="bitmap sync (a round ends)")  # fmt: skip
    if sc is not None:
        ax.axvspan(sc["start"] / tdiv, sc["end"] / tdiv, color="0.85", lw=0,
                   label="VM stopped: stop-and-copy")  # fmt: skip
    ax.plot(t, sender, color=LEGACY_COLOR, lw=1.5, label="sender (migration thread)")
    if np.isfinite(hint).any():
        ax.plot(t, hint, color=HINT_COLOR, lw=1.5, label="hint worker (guest)")
        # a block hinted while the worker runs is saved only if the sender has not passed it
        # yet; once the pass is over (the cursor stops moving) nothing more is hinted
        valid = np.isfinite(hint)
        moving = valid & _before_last_change(
            hint, ds["round-index"].values[k] if "round-index" in ds else np.zeros(len(hint))
        )
        ahead = valid & (hint > sender)
        behind = moving & (hint <= sender)
        lo = np.fmin(sender, np.nan_to_num(hint, nan=0.0))
        hi = np.fmax(sender, np.nan_to_num(hint, nan=0.0))
        ax.fill_between(
            t,
            lo,
            hi,
            where=ahead,
            color="#009E73",
            alpha=0.25,
            lw=0,
            label="hint ahead: pages skipped",
        )
        ax.fill_between(
            t,
            lo,
            hi,
            where=behind,
            color="#D55E00",
            alpha=0.15,
            lw=0,
            label="hint behind: already sent",
        )
    ax.set_ylim(0, mem / div)
    ax.set_xlim(left=0)
    ax.set_xlabel(f"time since migrate ({tunit})")
    ax.set_ylabel(f"guest physical address ({unit})")
    ax.set_title(f"the race, {_label(ds, 'run')}")
    if legend:
        ax.legend(loc="best", fontsize="small")
    return ax


def rounds(ds, ax=None, legend: bool = True):
    """Per round: bytes sent in it and bytes still pending after its sync, against the threshold.

    Pre-copy goes round again while what is pending after a sync exceeds the threshold
    (bandwidth estimate x ``downtime-limit``); the first round whose pending bar is below the
    threshold mark is followed by the stop-and-copy (the last bar of a completed run, labelled
    so), which sends that rest with the VM stopped.

    Parameters
    ----------
    ds : xarray.Dataset
        One run.
    ax : matplotlib.axes.Axes, optional
    legend : bool

    Returns
    -------
    matplotlib.axes.Axes
    """
    _check(ds, "round-bytes", "round-pending-after-sync", "round-threshold")
    ax = _axes(ax)
    r = ds["round"].values
    sent = ds["round-bytes"].values.astype(float)
    pend = ds["round-pending-after-sync"].values.astype(float) * NORMAL_RECORD
    thr = ds["round-threshold"].values.astype(float)
    completed = str(ds["status"].values) == "completed" and len(r) > 0
    if completed:  # the stop-and-copy: what it sends is the pending bar of the round before
        pend[-1] = np.nan
        thr[-1] = np.nan
    positive = np.concatenate([v[np.isfinite(v) & (v > 0)] for v in (sent, pend, thr)])
    w = 0.38
    # zero-height bars have no place on a log axis: they are left out
    ax.bar(
        r - w / 2, np.where(sent > 0, sent, np.nan), w, color="#0072B2", label="sent in the round"
    )
    ax.bar(
        r + w / 2,
        np.where(pend > 0, pend, np.nan),
        w,
        color="#D55E00",
        label="pending after the round's sync (4104 bytes per page)",
    )
    ax.plot(
        r,
        np.where(thr > 0, thr, np.nan),
        "k_",
        ms=18,
        mew=2,
        label="threshold = bandwidth x downtime-limit (pending below it: the VM stops)",
    )
    ax.set_yscale("log")
    if positive.size:
        ax.set_ylim(positive.min() / 3, positive.max() * 30)
    if len(r) <= 16:
        labels = [str(int(x)) for x in r]
        if completed:
            labels[-1] = "stop-and-\ncopy"
        ax.set_xticks(r, labels)
    else:
        ax.xaxis.set_major_locator(MaxNLocator(10, integer=True))
        if completed:
            ax.annotate("stop-and-copy", (r[-1] - w / 2, sent[-1]), xytext=(0, 8),
                        textcoords="offset points", ha="right", fontsize="small")  # fmt: skip
    ax.set_xlabel("pre-copy round" + (" (the last bar: the stop-and-copy)" if completed else ""))
    ax.set_ylabel("bytes (log scale)")
    ax.set_title(f"rounds and threshold, {_label(ds, 'run')}")
    if legend:
        ax.legend(loc="upper right", fontsize="small")
    return ax


# ---- the reproduction and the QEMU comparison ------------------------------------------------

_MODE_COLOURS = {"hint": "tab:blue", "legacy": "tab:orange"}


def published_vs_simulated(res, ax=None):
    """Grouped bars: published and simulated total-time of every configuration and mode.

    Parameters
    ----------
    res : xarray.Dataset
        Output of :func:`fphint_kernels.experiments.reproduce`.
    ax : matplotlib.axes.Axes, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    ax = _axes(ax, figsize=(10, 4.8))
    fig = ax.figure
    labels = [str(c) for c in res["config"].values]
    x = np.arange(len(labels))
    width = 0.2
    sim = res["total-time"]
    for k, mode in enumerate(res["mode"].values):
        pub = res["published-total-time"].sel(mode=mode).values
        mean = sim.sel(mode=mode).mean("seed").values
        lo = np.maximum(mean - sim.sel(mode=mode).min("seed").values, 0.0)
        hi = np.maximum(sim.sel(mode=mode).max("seed").values - mean, 0.0)
        off = (k - 1) * 2 * width
        colour = _MODE_COLOURS.get(str(mode), None)
        ax.bar(
            x + off,
            pub,
            width,
            color=colour,
            alpha=0.45,
            edgecolor=colour,
            label=f"{mode}: published",
        )
        ax.bar(x + off + width, mean, width, color=colour, yerr=[lo, hi], capsize=3,
               label=f"{mode}: simulated (mean, min-max)")  # fmt: skip
    ax.set_yscale("log")
    ax.set_xticks(x - width / 2, labels, rotation=15, ha="right")
    ax.set_ylabel("live migration time, total-time (ms)")
    ax.set_xlabel("configuration (patch version, guest RAM, downtime limit, workload)")
    ax.set_title("Published vs simulated migration time")
    ax.legend(fontsize="small", ncol=2)
    fig.tight_layout()
    return fig


def reproduction_reductions(res, ax=None):
    """Bars: reduction of total-time by hinting, published vs simulated vs analytic.

    Parameters
    ----------
    res : xarray.Dataset
        Output of :func:`fphint_kernels.experiments.reproduce`.
    ax : matplotlib.axes.Axes, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    from .experiments import table as reproduction_table

    ax = _axes(ax, figsize=(10, 4.2))
    fig = ax.figure
    rows = [r for r in reproduction_table(res) if r["hint"]]
    labels = [r["config"] for r in rows]
    x = np.arange(len(labels))
    width = 0.27
    for k, (key, name) in enumerate((
        ("published-reduction-pct", "published"),
        ("simulated-reduction-pct", "simulated"),
        ("analytic-reduction-pct", "analytic (geometric model)"),
    )):  # fmt: skip
        vals = [np.nan if r[key] is None else r[key] for r in rows]
        ax.bar(x + (k - 1) * width, vals, width, label=name)
    ax.set_xticks(x, labels, rotation=15, ha="right")
    ax.set_ylabel("reduction of total-time by hinting (%)")
    ax.set_xlabel("configuration (patch version, guest RAM, downtime limit, workload)")
    ax.set_ylim(0, 100)
    ax.set_title("Reduction hint vs legacy: 1 - total-time(hint) / total-time(legacy)")
    ax.legend(fontsize="small")
    fig.tight_layout()
    return fig


def reproduction_errors(res, ax=None):
    """Error of every simulated row against the published one, fitted vs predicted.

    Parameters
    ----------
    res : xarray.Dataset
        Output of :func:`fphint_kernels.experiments.reproduce`.
    ax : matplotlib.axes.Axes, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    from .experiments import table as reproduction_table

    ax = _axes(ax, figsize=(10, 4.2))
    fig = ax.figure
    rows = reproduction_table(res)
    y = np.arange(len(rows))
    err = [np.nan if r["error-pct"] is None else r["error-pct"] for r in rows]
    ana = [np.nan if r["analytic-error-pct"] is None else r["analytic-error-pct"] for r in rows]
    colours = ["tab:green" if r["fitted"] else "tab:purple" for r in rows]
    ax.barh(y, err, color=colours, height=0.6)
    ax.plot(ana, y, "kx", label="analytic (geometric model)")
    for tol, style in ((10, ":"), (15, "--")):
        ax.axvline(tol, color="grey", ls=style, lw=0.8)
        ax.axvline(-tol, color="grey", ls=style, lw=0.8)
    ax.set_yticks(y, [f"{r['config']} {'hint' if r['hint'] else 'legacy'}" for r in rows],
                  fontsize="small")  # fmt: skip
    ax.set_xlabel("error of total-time vs published (%)  [green: fitted, purple: predicted]")
    ax.set_ylabel("published row")
    lim = np.nanmax(np.abs(np.concatenate([err, ana, [20.0]])))
    ax.set_xlim(-min(lim * 1.1, 100), min(lim * 1.1, 300))
    ax.invert_yaxis()
    ax.legend(fontsize="small")
    ax.set_title("Errors (dotted: 10 %, dashed: 15 %)")
    fig.tight_layout()
    return fig


#: units of the ``query-migrate`` fields the QEMU comparison draws
FIELD_UNITS = {
    "ram-duplicate": "pages", "ram-normal": "pages", "ram-transferred": "bytes",
    "ram-normal-bytes": "bytes", "dirty-sync-count": "syncs", "total-time": "ms",
    "downtime": "ms", "setup-time": "ms",
}  # fmt: skip


def _field_scale(field: str, values) -> tuple[float, str]:
    """(divisor, unit) to draw ``values`` of ``field`` with readable numbers."""
    unit = FIELD_UNITS.get(field, "")
    top = float(np.nanmax(values)) if len(values) and np.isfinite(values).any() else 1.0
    if unit == "bytes":
        return size_unit(top)
    if unit == "ms":
        return time_unit(top)
    if unit == "pages" and top >= 2e4:
        return 1e3, "thousand pages"
    return 1.0, unit


def _plain_log_ticks(axis, lo: float, hi: float) -> None:
    """Major ticks of a log axis as plain numbers (1, 10, 100...; also 2 and 5 times those
    over less than two decades), minor ticks unlabelled, so that labels never collide."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    subs = (1.0, 2.0, 5.0) if np.log10(hi / lo) <= 2 else (1.0,)
    axis.set_major_locator(LogLocator(base=10, subs=subs, numticks=8))
    axis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
    axis.set_minor_formatter(NullFormatter())


def measured_vs_simulated(table, fields=("ram-duplicate", "ram-normal", "ram-transferred",
                                         "dirty-sync-count", "total-time", "downtime")):  # fmt: skip
    """Measured (x) against simulated (y), one panel per field, one legend for all.

    Each run is a mark: blue for hinting, orange for legacy; a dot when the run was held out
    of the fit of the host profile, a cross when the fit used it.  On the black diagonal the
    simulator is exact; the grey band is the target of
    :data:`fphint_kernels.qemu.compare.TARGETS` for that field (within ±15 % or ±30 %), where
    there is one.  Axes are in the field's unit, on log scales when the values span more than
    a factor of 20.

    Parameters
    ----------
    table : pandas.DataFrame
        Output of :func:`fphint_kernels.qemu.compare.compare`.
    fields : sequence of str
        ``query-migrate`` fields, one panel each.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt
    import pandas as pd
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    from .qemu.compare import TARGETS

    n = len(fields)
    cols = 3
    nrows = (n + cols - 1) // cols
    fig, axes = plt.subplots(
        nrows, cols, figsize=(4.2 * cols, 3.7 * nrows + 0.9), layout="constrained", squeeze=False
    )
    axes = axes.ravel()
    marks = {True: "o", False: "x"}  # held out, used by the fit
    colours = {True: HINT_COLOR, False: LEGACY_COLOR}
    for ax, f in zip(axes, fields, strict=False):
        v = pd.concat([table[f"m:{f}"], table[f"s:{f}"]]).replace([np.inf, -np.inf], np.nan)
        v = v.dropna().to_numpy(dtype=float)
        div, unit = _field_scale(f, v)
        for hint in (True, False):
            for held in (True, False):
                t = table[(table["hint"] == hint) & (table["held_out"] == held)]
                if len(t):
                    ax.scatter(t[f"m:{f}"] / div, t[f"s:{f}"] / div, c=colours[hint],
                               marker=marks[held], s=22, lw=1.2)  # fmt: skip
        tgt = TARGETS.get(f)
        if len(v):
            pos = v[v > 0]
            lo = max(float(pos.min()) / div if len(pos) else 1.0, 1e-3)
            hi = float(v.max()) / div
            log = hi / lo > 20
            pad = (hi / lo) ** 0.05 if log else 0.0
            lo, hi = (lo / pad, hi * pad) if log else (lo - 0.05 * (hi - lo), hi + 0.05 * (hi - lo))
            xs = np.geomspace(lo, hi, 50) if log else np.linspace(lo, hi, 50)
            ax.plot(xs, xs, "k-", lw=0.8)
            if tgt:
                ax.fill_between(xs, xs * (1 - tgt), xs * (1 + tgt), color="0.85", zorder=0, lw=0)
            if log:
                ax.set_xscale("log")
                ax.set_yscale("log")
                _plain_log_ticks(ax.xaxis, lo, hi)
                _plain_log_ticks(ax.yaxis, lo, hi)
            else:
                ax.xaxis.set_major_locator(MaxNLocator(5, integer=unit == "syncs"))
                ax.yaxis.set_major_locator(MaxNLocator(5, integer=unit == "syncs"))
            ax.set_xlim(lo, hi)
            ax.set_ylim(lo, hi)
        ax.set_title(f"{f}" + (f" (target ±{tgt:.0%})" if tgt else " (no target)"))
        ax.set_xlabel(f"measured ({unit})" if unit else "measured")
        ax.set_ylabel(f"simulated ({unit})" if unit else "simulated")
    for ax in axes[n:]:
        ax.set_visible(False)
    handles = [
        Line2D([], [], ls="", marker="o", color=HINT_COLOR, label="hinting, held out"),
        Line2D([], [], ls="", marker="x", mew=1.2, color=HINT_COLOR,
               label="hinting, used by the fit"),
        Line2D([], [], ls="", marker="o", color=LEGACY_COLOR, label="legacy, held out"),
        Line2D([], [], ls="", marker="x", mew=1.2, color=LEGACY_COLOR,
               label="legacy, used by the fit"),
        Line2D([], [], color="k", lw=0.8, label="simulated = measured"),
        Patch(color="0.85", label="target band of the field (title)"),
    ]  # fmt: skip
    fig.legend(handles=handles, loc="outside lower center", ncol=3, fontsize="small")
    fig.suptitle("Real QEMU migrations (x) against their simulation (y), one mark per run")
    return fig


def compare(runs, keys=("total-time", "downtime", "ram-transferred"), fig=None):
    """Bar charts of a few scalar results for named runs, one panel per result.

    Parameters
    ----------
    runs : dict of str to xarray.Dataset
        Runs by label, drawn in this order.
    keys : sequence of str
        Scalar variables (their ``units`` attribute picks the axis unit: ms or bytes).
    fig : matplotlib.figure.Figure, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    if not runs:
        raise ValueError("give at least one run")
    names = list(runs)
    fig = _figure(
        fig, figsize=(3.2 * len(keys) + 0.6, 0.45 * len(names) + 1.6), layout="constrained"
    )
    axes = fig.subplots(1, len(keys), squeeze=False, sharey=True)[0]
    colors = [
        LEGACY_COLOR if "legacy" in n else HINT_COLOR if "hint" in n else EXTRA_COLORS[i % 5]
        for i, n in enumerate(names)
    ]
    y = np.arange(len(names))
    for ax, key in zip(axes, keys, strict=True):
        vals = np.array([float(runs[n][key]) for n in names])
        units = runs[names[0]][key].attrs.get("units", "")
        if units == "bytes":
            div, unit = size_unit(np.nanmax(vals) if np.isfinite(vals).any() else 1)
        elif units == "ms":
            div, unit = time_unit(np.nanmax(vals) if np.isfinite(vals).any() else 1)
        elif units == "pages" and np.nanmax(np.r_[vals, 0]) >= 2e4:
            div, unit = 1e3, "thousand pages"
        else:
            div, unit = 1.0, units
        ax.barh(y, vals / div, color=colors)
        for yi, v in zip(y, vals, strict=True):
            x = v / div
            ax.text(
                x if np.isfinite(x) else 0,
                yi,
                f" {x:,.0f}" if abs(x) >= 100 else f" {x:.3g}",
                va="center",
                fontsize="small",
            )
        ax.xaxis.set_major_locator(MaxNLocator(4, steps=[1, 2, 2.5, 5, 10]))
        ax.set_xlabel(f"{key} ({unit})")
        ax.set_xlim(0, (np.nanmax(vals) / div if np.isfinite(vals).any() else 1) * 1.25)
        ax.grid(axis="y", visible=False)
    axes[0].set_yticks(y, names)
    axes[0].invert_yaxis()
    return fig


#: The trajectories a measured run and its simulation share: simulated name -> (measured
#: column, unit, title).  The measured columns are the harness's ``query-migrate`` polls.
TRAJECTORY_PANELS = {
    "transferred": ("transferred", "bytes", "bytes transferred"),
    "pending": ("pending", "bytes", "bytes still to send (pending)"),
    "zero-pages-sent": ("qmp-duplicate", "pages", "zero pages sent"),
    "normal-pages-sent": ("qmp-normal", "pages", "normal pages sent"),
}


def trajectories(measured, simulated, fig=None, title: str | None = None):
    """A measured migration's ``query-migrate`` trajectories with the simulated ones on top.

    Parameters
    ----------
    measured : xarray.Dataset
        A run measured by the harness (polls every 50 ms on the ``time`` dim, ms from the
        ``migrate`` command).
    simulated : xarray.Dataset or sequence of xarray.Dataset
        :func:`fphint_kernels.simulate` of the same configuration; several (seeds) are drawn
        as thin lines.
    fig : matplotlib.figure.Figure, optional
    title : str, optional
        Figure title (default: the run's ``config_key``).

    Returns
    -------
    matplotlib.figure.Figure
    """
    sims = [simulated] if hasattr(simulated, "data_vars") else list(simulated)
    fig = _figure(fig, figsize=(10, 5.6), layout="constrained")
    axes = fig.subplots(2, 2, sharex=True).ravel()
    tm = np.asarray(measured["time"].values, dtype=float)
    end = max([tm[-1] if len(tm) else 1.0] + [float(x["time"].values[-1]) for x in sims])
    div_t, unit_t = time_unit(end)
    for ax, (name, (col, kind, what)) in zip(axes, TRAJECTORY_PANELS.items(), strict=True):
        m = np.asarray(measured[col].values, dtype=float) if col in measured else np.full(0, 0.0)
        peak = max([np.nanmax(m) if m.size and np.isfinite(m).any() else 1.0]
                   + [float(np.nanmax(x[name].values)) for x in sims if name in x])  # fmt: skip
        if kind == "bytes":
            div, unit = size_unit(max(peak, 1.0))
        else:
            div, unit = (1e3, "thousand pages") if peak >= 2e4 else (1.0, "pages")
        if m.size:
            ax.plot(tm / div_t, m / div, "o", ms=3, color="black", label="measured (50 ms polls)")
        for i, x in enumerate(sims):
            if name in x:
                ax.plot(
                    np.asarray(x["time"].values, dtype=float) / div_t,
                    np.asarray(x[name].values, dtype=float) / div,
                    color=HINT_COLOR,
                    lw=1.6 if i == 0 else 0.7,
                    alpha=1.0 if i == 0 else 0.5,
                    label="simulated" if i == 0 else ("other seeds" if i == 1 else None),
                )
        ax.set_title(what)
        ax.set_ylabel(f"{what.split(' (')[0]} ({unit})")
        ax.set_ylim(bottom=0)
    for ax in axes[2:]:
        ax.set_xlabel(f"time since the migrate command ({unit_t})")
    axes[0].legend(loc="lower right", fontsize="small")
    fig.suptitle(title or str(measured.attrs.get("config_key", "")))
    return fig


def pair_ratios(ratios, ax=None, tol: float = 0.30):
    """Ratio hint / legacy of the total time, measured against simulated, one mark per pair.

    Parameters
    ----------
    ratios : pandas.DataFrame
        :func:`fphint_kernels.qemu.compare.pair_ratios`.
    ax : matplotlib.axes.Axes, optional
    tol : float
        Half-width of the grey band (the target: simulated within 30 % of measured).

    Returns
    -------
    matplotlib.axes.Axes
    """
    ax = _axes(ax)
    if ratios.empty:
        raise ValueError("no configuration pair with both hinting and legacy runs")
    m = ratios["measured_ratio"].to_numpy(float)
    s = ratios["simulated_ratio"].to_numpy(float)
    hi = max(1.5, float(np.nanmax(np.r_[m, s])) * 1.15)
    lo = min(0.05, float(np.nanmin(np.r_[m, s])) * 0.8)
    x = np.geomspace(lo, hi, 50)
    ax.fill_between(x, x * (1 - tol), x * (1 + tol), color="0.85",
                    label=f"target: simulated within {tol:.0%}")  # fmt: skip
    ax.plot(x, x, color="black", lw=0.8, label="simulated = measured")
    ax.axhline(1.0, color="0.6", lw=0.6, ls=":")
    ax.axvline(1.0, color="0.6", lw=0.6, ls=":")
    ok = ratios["within"].to_numpy(bool)
    ax.plot(m[ok], s[ok], "o", color=HINT_COLOR, label="pair within target")
    ax.plot(m[~ok], s[~ok], "X", color=LEGACY_COLOR, ms=8, label="pair outside target")
    for _, r in ratios[~ratios["within"]].iterrows():
        ax.annotate(r["pair"], (r["measured_ratio"], r["simulated_ratio"]), fontsize="x-small",
                    xytext=(4, -10), textcoords="offset points")  # fmt: skip
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_xlabel("measured total time, hinting / legacy (ratio)")
    ax.set_ylabel("simulated total time, hinting / legacy (ratio)")
    ax.set_title("what hinting does to the migration time (below 1: faster)")
    ax.legend(loc="upper left", fontsize="small")
    return ax


def race_spread(samples, ax=None):
    """Zero pages of hinted runs, measured repeats against simulated seeds, per configuration.

    Parameters
    ----------
    samples : pandas.DataFrame
        :func:`fphint_kernels.qemu.compare.race_samples`.
    ax : matplotlib.axes.Axes, optional

    Returns
    -------
    matplotlib.axes.Axes
    """
    ax = _axes(ax)
    if samples.empty:
        raise ValueError("no hinted run with init_on_alloc=0 to show")
    configs = list(dict.fromkeys(samples["config"]))
    for i, cfg in enumerate(configs):
        g = samples[samples["config"] == cfg]
        for source, dx, mark, color in (("measured", -0.12, "o", "black"),
                                        ("simulated", 0.12, "x", HINT_COLOR)):  # fmt: skip
            v = g.loc[g["source"] == source, "ram-duplicate"].to_numpy(float)
            label = None if i else {"measured": "measured repeats",
                                    "simulated": "simulated seeds"}[source]  # fmt: skip
            ax.plot(np.full(v.size, i + dx), v, mark, color=color, ms=6, alpha=0.8, label=label)
    ax.set_yscale("log")
    ax.set_xticks(range(len(configs)))
    ax.set_xticklabels([c.replace("-hint-ioa0", "") for c in configs], rotation=30, ha="right",
                       fontsize="x-small")  # fmt: skip
    ax.set_xlabel("configuration (hinting on, init_on_alloc=0)")
    ax.set_ylabel("zero pages sent (pages)")
    ax.set_title("the hint race: the zero pages a lost race costs, run by run")
    ax.legend(loc="upper left", fontsize="small")
    return ax


def build_footprint(build, check=None, fig=None):
    """A real kernel build's memory: fresh pages against all pages taken, and the distinct
    pages of a window against the model's first-pass dirty sets.

    Parameters
    ----------
    build : xarray.Dataset
        :func:`fphint_kernels.build_footprint.load_host_build`.
    check : xarray.Dataset, optional
        :func:`fphint_kernels.build_footprint.first_pass_dirty_set`, drawn on the right panel.
    fig : matplotlib.figure.Figure, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    fig = _figure(fig, figsize=(11, 4.2))
    left, right = fig.subplots(1, 2)
    gib = 1024.0
    left.plot(
        build["t"],
        build["taken"] / gib,
        color="0.5",
        label="taken from the allocator (repeats counted)",
    )
    left.plot(
        build["t"],
        build["fresh"] / gib,
        color=HINT_COLOR,
        label="fresh: distinct pages free before the build",
    )
    left.plot(build["t"], (build["cached"] - float(build["cached"][0])) / gib, ":", color="black",
              label="page cache growth (/proc/meminfo)")  # fmt: skip
    left.set_yscale("log")
    left.set_xlabel("time since the build started (s)")
    left.set_ylabel("memory (GiB)")
    left.set_title(f"make bzImage: {int(build.attrs.get('objects', 0))} objects")
    left.legend(loc="lower right", fontsize="x-small")
    x = build["window_objects"].values
    right.fill_between(x, build["window_distinct_min"], build["window_distinct_max"], color="0.85",
                       label="measured: min-max of windows")  # fmt: skip
    right.plot(x, build["window_distinct_median"], "o-", color="black", ms=4,
               label="measured: median (taken from the allocator)")  # fmt: skip
    if check is not None:
        for mem in check["memory"].values:
            c = check.sel(memory=mem)
            right.plot(c["compile_units"], c["simulated"], "x", ms=8, mew=2,
                       label=f"model: first pass of a {mem} legacy migration")  # fmt: skip
    right.set_xscale("log")
    right.set_yscale("log")
    right.set_xlabel("window (compile units: objects built)")
    right.set_ylabel("distinct pages written (MiB)")
    right.set_title("distinct pages of a window")
    right.legend(loc="upper left", fontsize="x-small")
    return fig


def table(runs, keys=("total-time", "downtime", "ram-transferred", "ram-duplicate", "ram-normal")):
    """Scalar results of named runs as a table, one row per run, units in the column names.

    Parameters
    ----------
    runs : dict of str to xarray.Dataset
        Runs by label.
    keys : sequence of str
        Scalar variables to show.

    Returns
    -------
    pandas.DataFrame
    """
    import pandas as pd

    first = next(iter(runs.values()))
    cols = {}
    for key in keys:
        units = first[key].attrs.get("units", "")
        name = f"{key} ({units})" if units and units != "1" else key
        vals = [runs[n][key].values.item() for n in runs]
        if all(isinstance(v, float) for v in vals):
            vals = [round(v, 1) for v in vals]
        cols[name] = vals
    return pd.DataFrame(cols, index=pd.Index(list(runs), name="run"))


def _reset_axes(ax) -> None:
    """Remove the data of an Axes (lines, shades, images, legend) but keep the Axes itself."""
    for artist in [*ax.lines, *ax.collections, *ax.patches, *ax.texts, *ax.images]:
        artist.remove()
    if ax.get_legend() is not None:
        ax.get_legend().remove()
    ax.set_axis_on()
    ax.relim()
    ax.set_autoscale_on(True)


def explorer_figure(
    legacy, hinted, shown=None, fig=None, with_page_map: bool = True, annotate: bool = True
):
    """The explorer's picture: timeline of both modes, the race and the page map of one run.

    Parameters
    ----------
    legacy, hinted : xarray.Dataset
        The two runs of one scenario.
    shown : xarray.Dataset, optional
        The run whose race and page map are drawn (default ``hinted``).
    fig : matplotlib.figure.Figure, optional
        Drawn on (cleared first); a new pyplot figure when omitted.
    with_page_map : bool
        Add :func:`page_map` of ``shown`` as a bottom row (the explorer draws it as a separate
        image instead, which is faster).
    annotate : bool
        Titles and legends in the figure.  Without them (the explorer shows them as HTML beside
        the image: text is most of the drawing time) the axes take the whole width; the
        legend entries stay readable from ``ax.get_legend_handles_labels()``.

    Returns
    -------
    matplotlib.figure.Figure

    Notes
    -----
    Drawing again on a figure this function drew keeps its axes and replaces their data, which
    is much faster than building the figure anew.
    """
    rows = 3 if with_page_map else 2
    fig = _figure(fig, figsize=(11, 2.5 * rows))
    shown = hinted if shown is None else shown
    layout = (rows, bool(annotate))
    axes = getattr(fig, "_fphint_explorer_axes", None)
    if (
        axes is not None
        and getattr(fig, "_fphint_explorer_layout", None) == layout
        and all(ax.figure is fig for ax in axes)
    ):
        # drawn before: keep the axes (their spines, ticks and labels) and replace the data;
        # building the axes is a third of the drawing time the explorer pays per update
        for ax in axes:
            _reset_axes(ax)
    else:
        fig.clear()
        # fixed margins for the fixed figure size (a layout engine would double the drawing
        # time): the timeline on the left (pending over sent, one time axis), the race on the
        # right, the page map below; the race's legend to the right of its axes
        fig.set_layout_engine("none")
        gs = fig.add_gridspec(
            rows,
            2,
            left=0.07,
            right=0.83 if annotate else 0.99,
            bottom=0.2 / rows,
            top=1 - (0.12 if annotate else 0.04) / rows,
            hspace=0.12 if not with_page_map else 0.5,
            wspace=0.25 if annotate else 0.16,
            width_ratios=(3, 2),
            height_ratios=(1, 1, 1.2)[:rows],
        )
        ax_p = fig.add_subplot(gs[0, 0])
        ax_b = fig.add_subplot(gs[1, 0], sharex=ax_p)
        ax_p.tick_params(labelbottom=False)
        axes = [ax_p, ax_b, fig.add_subplot(gs[0:2, 1])]
        if with_page_map:
            axes.append(fig.add_subplot(gs[2, :]))
        fig._fphint_explorer_axes = axes
        fig._fphint_explorer_layout = layout
    ax_p, ax_b, ax_r = axes[:3]
    timeline(legacy, hinted, axes=(ax_p, ax_b))
    race(shown, ax=ax_r, legend=False)
    if annotate:
        ax_p.set_title("over time (dotted: bitmap syncs; shaded: VM stopped, stop-and-copy)")
        ax_r.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="x-small")
        ax_r.set_title(f"the race, {_label(shown, 'run')}")
    else:
        ax_p.get_legend().remove()
        ax_p.set_title("")
        ax_r.set_title("")
    # fewer ticks: tick labels are most of the drawing time, which the explorer pays per update
    for ax in (ax_p, ax_b, ax_r):
        ax.xaxis.set_major_locator(MaxNLocator(6, steps=[1, 2, 2.5, 5, 10]))
        ax.yaxis.set_major_locator(MaxNLocator(4, steps=[1, 2, 2.5, 5, 10]))
    if with_page_map:
        ax_m = axes[3]
        if "page-map" in shown:
            page_map(shown, ax=ax_m)
        else:
            ax_m.set_axis_off()
    return fig


def cancellation(runs, fig=None):
    """What a cancelled (or failed) migration leaves the guest with.

    Top: the guest's free pages (solid) and the pages its balloon driver holds (dashed) over
    time, each run in its own colour, the cancel marked by a dotted line.  Below, one memory
    picture per run: its memory (used, free, held by the balloon) when the migration was
    cancelled (upper row) and when the run ends, 2 s later (lower row).  With QEMU 4.0's
    cleanup the hinted blocks stay held; with 5.1's (DONE) they are free again.

    Parameters
    ----------
    runs : dict of str to xarray.Dataset
        Cancelled runs (``cancel_at``), simulated with ``page_map_bins > 0``, by label.
    fig : matplotlib.figure.Figure, optional
        Draw on new axes of this figure.

    Returns
    -------
    list of matplotlib.axes.Axes
        The time axes, then one picture axes per run.
    """
    import xarray as xr

    if not runs:
        raise ValueError("cancellation() needs at least one run")
    for ds in runs.values():
        _check(ds, "page-map", "page-map-end", "held-pages", "free-pages")
    fig = _figure(fig, figsize=(8, 3 + 1.1 * len(runs)))
    grid = fig.add_gridspec(1 + len(runs), 1, height_ratios=[3] + [1] * len(runs))
    ax = fig.add_subplot(grid[0])
    axes = [ax]
    mem = max(_memory_bytes(ds) for ds in runs.values())
    div, unit = size_unit(mem)
    for i, (label, ds) in enumerate(runs.items()):
        color = f"C{i}"
        t = ds["time"].values / 1000.0
        lw = 1.0 + 1.5 * (len(runs) - 1 - i)  # the first widest: equal curves stay visible
        free = ds["free-pages"].values * PAGE_SIZE / div
        ax.plot(t, free, color=color, linewidth=lw, label=f"{label}: free")
        held = ds["held-pages"].values * PAGE_SIZE / div
        ax.plot(t, held, color=color, linewidth=lw, linestyle="--", label=f"{label}: held")
        ct = float(ds["cancel-time"])
        if ct >= 0:
            ax.axvline(ct / 1000.0, color=color, linestyle=":", linewidth=1)
    ax.set_xlabel("time (s)")
    ax.set_ylabel(f"guest memory ({unit})")
    ax.set_ylim(bottom=0)
    ax.legend(fontsize="small", ncols=2)
    ax.set_title("guest memory after a cancelled migration (dotted: the cancel)")
    for i, (label, ds) in enumerate(runs.items()):
        pm = ds["page-map"].transpose("round", "pfn_bin", "page_state").values
        rows = np.stack([pm[-1], ds["page-map-end"].values])
        two = xr.Dataset(
            {"page-map": (("round", "pfn_bin", "page_state"), rows)},
            coords={"round": [1, 2], "page_state": ds["page_state"].values},
        )
        rgb, _ = page_map_rgb(two)
        a = fig.add_subplot(grid[1 + i])
        a.imshow(rgb, aspect="auto", interpolation="nearest", extent=(0, mem / div, 2, 0))
        a.set_yticks([0.5, 1.5], ["at cancel", "2 s later"])
        a.set_title(label, fontsize="small", loc="left")
        axes.append(a)
    axes[-1].set_xlabel(f"guest physical address ({unit})")
    _state_legend(axes[-1], ("used", "free", "held", "sent", "skipped"), loc="upper center",
                  bbox_to_anchor=(0.5, -0.6), ncols=5, fontsize="small")  # fmt: skip
    fig.subplots_adjust(hspace=0.6)
    return axes


# ---- studies (fphint_kernels.studies) -------------------------------------------------------

#: colour and line of each hinting design in the studies' figures
DESIGN_STYLE = {
    "none": {"color": LEGACY_COLOR, "ls": "--", "label": "none (legacy pre-copy)"},
    "fph": {"color": HINT_COLOR, "ls": "-", "label": "fph (free page hinting, 4.20)"},
    "report-in-place": {
        "color": "#009E73",
        "ls": "-.",
        "label": "report-in-place (series up to v34)",
    },
    "reporting": {"color": "#CC79A7", "ls": ":", "label": "reporting (free page reporting, 5.7)"},
    "oracle": {"color": "#000000", "ls": (0, (1, 1)), "label": "oracle (upper bound)"},
}


#: axis labels of study results
STUDY_LABELS = {
    "total-time": "total time",
    "ram-transferred": "bytes sent",
    "downtime": "downtime",
    "held-bytes-max": "guest memory held by the balloon, most",
    "guest-overhead-time": "guest vCPU time lost to migration",
}


def _design_style(name: str, i: int = 0) -> dict:
    return dict(
        DESIGN_STYLE.get(name, {"color": EXTRA_COLORS[i % 5], "ls": "-", "label": str(name)})
    )


def _seed_mean(ds):
    return ds.mean("seed") if "seed" in ds.dims else ds


def study_big_idle_guest(ds, fig=None, downtime_limit=None):
    """:func:`fphint_kernels.studies.big_idle_guest`: total time and bytes sent against guest
    RAM, one colour per share of RAM in use, dashed without hinting, solid with it.

    ``downtime_limit`` (ms) picks the limit drawn (default: the smallest in ``ds``).
    """
    m = _seed_mean(ds)
    dl = float(m["downtime_limit"].min()) if downtime_limit is None else float(downtime_limit)
    m = m.sel(downtime_limit=dl)
    unfinished = (ds["status"] != "completed").sel(downtime_limit=dl)
    if "seed" in unfinished.dims:
        unfinished = unfinished.any("seed")
    fig = _figure(fig, figsize=(10, 4.2), layout="constrained")
    ax_t, ax_b = fig.subplots(1, 2)
    mem = m["memory"].values.astype(float)
    gib = mem / (1 << 30)
    colors = ("#56B4E9", "#0072B2", "#E69F00", "#D55E00", "#000000", "#009E73")
    for i, use in enumerate(m["in_use"].values):
        for h in m["hinting"].values:
            st = _design_style(str(h))
            p = m.sel(in_use=use, hinting=h)
            kw = {"color": colors[i % len(colors)], "ls": st["ls"], "marker": "o", "ms": 3}
            ax_t.plot(gib, p["total-time"].values / 1000, **kw)
            ax_b.plot(gib, p["ram-transferred"].values / (1 << 30), **kw)
            bad = unfinished.sel(in_use=use, hinting=h).values
            if bad.any():
                ax_t.plot(gib[bad], p["total-time"].values[bad] / 1000, "x", color="k", ms=8)
    for ax in (ax_t, ax_b):
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("guest RAM (GiB)")
    ax_t.set_ylabel("total time (s)")
    ax_b.set_ylabel("bytes sent (GiB)")
    ax_t.set_title(f"migration time, downtime limit {format_ms(dl)}")
    ax_b.set_title("bytes on the wire")
    from matplotlib.lines import Line2D

    handles = [
        Line2D([], [], color=colors[i % len(colors)], marker="o", ms=3, label=f"{u:.0%} in use")
        for i, u in enumerate(m["in_use"].values)
    ]
    handles += [
        Line2D([], [], color="0.3", ls=_design_style(str(h))["ls"],
               label=_design_style(str(h))["label"])
        for h in m["hinting"].values
    ]  # fmt: skip
    if unfinished.any():
        handles.append(Line2D([], [], color="k", marker="x", ls="none", ms=8,
                              label="not finished within max-time"))  # fmt: skip
    ax_b.legend(handles=handles, loc="upper left", fontsize="small")
    old = ds.attrs.get("old_data")
    if old is not None:
        fig.suptitle(
            f"A mostly idle guest; {float(old):.0%} of its free memory holds old data "
            "(the rest was never written)",
            fontsize="medium",
        )
    return fig


def study_hint_rate(ds, ax=None):
    """:func:`fphint_kernels.studies.hint_rate`: share of the total time hinting saves against
    the hint worker's time per 4 MiB block, one line per bandwidth; the dotted vertical line of
    each colour is the sender's wire time for one 4 MiB block of old data at that bandwidth, the
    dashed grey one its time for a 4 MiB block of never-written memory (zero pages)."""
    m = _seed_mean(ds)
    ax = _axes(ax, figsize=(8, 4.5))
    x = m["hint_block_us"].values
    for i, bw in enumerate(m["max_bandwidth"].values):
        c = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00")[i % 5]
        s = m["total-time-saving"].sel(max_bandwidth=bw, hinting="fph").values * 100
        div, unit = size_unit(float(bw))
        ax.plot(x, s, marker="o", ms=4, color=c, label=f"max-bandwidth {bw / div:g} {unit}/s")
        ax.axvline(float(m["sender-block-us"].sel(max_bandwidth=bw)), color=c, ls=":", lw=1)
    if "sender-zero-block-us" in m:
        ax.axvline(float(m["sender-zero-block-us"]), color="0.4", ls="--", lw=1)
        ax.plot([], [], color="0.4", ls="--", lw=1,
                label="sender's time per 4 MiB block of zero pages")  # fmt: skip
    ax.axhline(0, color="0.3", lw=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("hint worker's vCPU time per 4 MiB block (µs)")
    ax.set_ylabel("total time saved by hinting (%)")
    mem = ds.attrs.get("memory")
    fill = ds.attrs.get("fill")
    what = f"{format_bytes(mem)} guest, {float(fill):.0%} of RAM old data" if mem else ""
    ax.set_title(f"Where hinting stops paying off ({what})" if what else "hint rate")
    ax.plot([], [], color="0.3", ls=":", lw=1, label="sender's time per 4 MiB block of old data")
    ax.legend(fontsize="small")
    return ax.figure


def study_init_on_alloc(ds, fig=None, workload=None):
    """:func:`fphint_kernels.studies.init_on_alloc`: total time, bytes sent and guest CPU
    against guest RAM for ``init_on_alloc`` 0 (2018) and 1 (today), without and with hinting.
    ``workload`` picks the workload drawn (default: the last in ``ds``)."""
    m = _seed_mean(ds)
    wl = str(m["workload"].values[-1]) if workload is None else workload
    m = m.sel(workload=wl)
    fig = _figure(fig, figsize=(12, 4), layout="constrained")
    axes = fig.subplots(1, 3)
    gib = m["memory"].values / (1 << 30)
    marks = {False: "o", True: "s"}
    for ioa in m["init_on_alloc"].values:
        for h in m["hinting"].values:
            st = _design_style(str(h))
            p = m.sel(init_on_alloc=ioa, hinting=h)
            kw = {"color": st["color"], "ls": st["ls"] if not ioa else "-", "marker": marks[bool(ioa)],
                  "mfc": "none" if ioa else st["color"], "alpha": 1.0 if not ioa else 0.7,
                  "label": f"{h}, init_on_alloc={int(ioa)}"}  # fmt: skip
            axes[0].plot(gib, p["total-time"].values / 1000, **kw)
            axes[1].plot(gib, p["ram-transferred"].values / (1 << 30), **kw)
            axes[2].plot(gib, p["guest-overhead-time"].values, **kw)
    for ax in axes:
        ax.set_xscale("log", base=2)
        ax.set_xlabel("guest RAM (GiB)")
    axes[0].set_ylabel("total time (s)")
    axes[1].set_ylabel("bytes sent (GiB)")
    axes[2].set_ylabel("guest vCPU time lost to migration (ms)")
    axes[0].set_yscale("log")
    axes[1].set_yscale("log")
    axes[0].legend(fontsize="small")
    fig.suptitle(
        f"{wl} guest; filled marks: init_on_alloc=0 (2018), hollow marks: init_on_alloc=1 "
        "(today: the guest zeroes the blocks it hints)",
        fontsize="medium",
    )
    return fig


def study_designs(ds, fig=None, keys=None):
    """:func:`fphint_kernels.studies.designs`: one panel per result, one group of bars per
    workload, one bar per design (mean over seeds; the whisker spans the seeds)."""
    keys = keys or ("total-time", "ram-transferred", "downtime", "held-bytes-max",
                    "guest-overhead-time")  # fmt: skip
    keys = [k for k in keys if k in ds]
    fig = _figure(fig, figsize=(3.0 * len(keys) + 0.5, 3.8), layout="constrained")
    axes = fig.subplots(1, len(keys), squeeze=False)[0]
    designs = [str(h) for h in ds["hinting"].values]
    wls = [str(w) for w in ds["workload"].values]
    width = 0.8 / len(designs)
    x = np.arange(len(wls))
    for ax, key in zip(axes, keys, strict=True):
        da = ds[key]
        units = da.attrs.get("units", "")
        top = float(da.max()) if np.isfinite(float(da.max())) else 1.0
        if units == "bytes":
            div, unit = size_unit(max(top, 1.0))
        elif units == "ms":
            div, unit = time_unit(top)
        else:
            div, unit = 1.0, units
        for i, h in enumerate(designs):
            st = _design_style(h, i)
            v = da.sel(hinting=h)
            mean = (v.mean("seed") if "seed" in v.dims else v).values / div
            lo = (v.min("seed") if "seed" in v.dims else v).values / div
            hi = (v.max("seed") if "seed" in v.dims else v).values / div
            ax.bar(x + (i - (len(designs) - 1) / 2) * width, mean, width, color=st["color"],
                   label=st["label"], yerr=np.clip([mean - lo, hi - mean], 0, None),
                   capsize=2)  # fmt: skip
        ax.set_xticks(x, wls, rotation=20)
        ax.set_xlabel("workload")
        ax.set_ylabel(f"{STUDY_LABELS.get(key, key)} ({unit})")
        ax.grid(axis="x", visible=False)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=min(len(designs), 5),
               fontsize="small")  # fmt: skip
    mem = ds.attrs.get("memory")
    if mem:
        fig.suptitle(f"Designs side by side, {format_bytes(mem)} guest", fontsize="medium")
    return fig


def study_non_convergence(ds, fig=None):
    """:func:`fphint_kernels.studies.non_convergence`: total time (left; an ``x`` marks runs
    that did not converge before ``max_time``), downtime and the auto-converge throttle (right)
    against the size of the buffer the guest rewrites in a loop, one line per hinting design and
    auto-converge setting; the dotted line is bandwidth x downtime limit, the most that may be
    left for the stop-and-copy."""
    m = _seed_mean(ds)
    fig = _figure(fig, figsize=(12, 4), layout="constrained")
    axes = fig.subplots(1, 3)
    size = m["dirty_bytes"].values / (1 << 20)
    for h in m["hinting"].values:
        st = _design_style(str(h))
        for ac in m["auto_converge"].values:
            p = m.sel(hinting=h, auto_converge=ac)
            kw = {"color": st["color"], "ls": st["ls"], "marker": "s" if ac else "o", "ms": 4,
                  "mfc": "none" if ac else st["color"],
                  "label": f"{h}, auto-converge {'on' if ac else 'off'}"}  # fmt: skip
            axes[0].plot(size, p["total-time"].values / 1000, **kw)
            bad = p["converged"].values < 1
            axes[0].plot(size[bad], p["total-time"].values[bad] / 1000, "x", color="k", ms=8)
            axes[1].plot(size, p["downtime"].values, **kw)
            axes[2].plot(size, p["cpu-throttle-percentage"].values, **kw)
    threshold = ds.attrs.get("threshold_bytes")
    for ax in axes:
        ax.set_xscale("log", base=2)
        ax.set_xlabel("buffer rewritten in a loop (MiB)")
        if threshold:
            ax.axvline(float(threshold) / (1 << 20), color="0.4", ls=":", lw=1)
    axes[0].set_ylabel("total time (s)")
    axes[1].set_ylabel("downtime (ms)")
    axes[2].set_ylabel("vCPU throttle at the end (%)")
    axes[0].plot([], [], "x", color="k", label="not converged (stopped at max-time)")
    if threshold:
        axes[0].plot([], [], color="0.4", ls=":", lw=1, label="bandwidth x downtime limit")
    axes[0].legend(fontsize="small")
    mt = ds.attrs.get("max_time_ms")
    mem = ds.attrs.get("memory")
    period = ds.attrs.get("dirty_interval_ms")
    if mt and mem and period:
        fig.suptitle(
            f"A {format_bytes(mem)} guest rewriting a buffer every {format_ms(period)} "
            f"(runs stop at {format_ms(mt)})",
            fontsize="medium",
        )
    return fig
