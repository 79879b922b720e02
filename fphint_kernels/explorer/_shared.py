"""The explorer's view of the package's shared helpers: the table's number format (built on
:mod:`fphint_kernels.units`), the saving of hinting (:func:`fphint_kernels.metrics.reduction`)
and whether the kernels are compiled yet."""

from __future__ import annotations

import html
import math

from ..feedback import kernels_cold
from ..metrics import reduction
from ..units import format_bytes, format_ms

__all__ = ["fmt", "format_bytes", "format_ms", "kernels_cold", "reduction"]


def fmt(value, kind: str) -> str:
    """A value of the numbers table as text: ``kind`` is ``ms``, ``bytes``, ``text`` or a count.

    Undefined values (None, NaN, and the engine's -1 for counts that do not apply) are ``-``.

    Examples
    --------
    >>> fmt(350.2, "ms"), fmt(3 << 29, "bytes"), fmt(12345, "pages"), fmt(-1, "pages")
    ('350 ms', '1.50 GiB', '12,345', '-')
    >>> fmt(float("nan"), "ms"), fmt("<b>", "text")
    ('-', '&lt;b&gt;')
    """
    if kind == "text":
        return html.escape(str(value))
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    if kind == "ms":
        return format_ms(float(value))
    if kind == "bytes":
        return format_bytes(float(value))
    if value < 0:
        return "-"
    return f"{int(value):,}"
