"""Quantities derived from pairs of runs, shared by the report, the explorer and the comparisons."""

from __future__ import annotations

import math

__all__ = ["reduction"]


def reduction(*, legacy: float, hinted: float) -> float:
    """Relative saving of free page hinting: ``1 - hinted / legacy`` (a fraction, not a percent).

    The arguments are keyword-only so that the two runs cannot be swapped by mistake.

    Parameters
    ----------
    legacy : float
        The quantity (e.g. ``total-time``) of the run without hinting.
    hinted : float
        The same quantity of the run with hinting.

    Returns
    -------
    float
        ``1 - hinted / legacy``; NaN when it is undefined (a legacy value of 0, or a value that
        is not finite, e.g. a mean over runs that did not complete).

    Examples
    --------
    >>> reduction(legacy=200.0, hinted=50.0)
    0.75
    >>> reduction(legacy=0.0, hinted=5.0)
    nan
    """
    if not legacy or not math.isfinite(legacy) or not math.isfinite(hinted):
        return math.nan
    return 1.0 - hinted / legacy
