"""Sizes, bandwidths, durations and switches: parsed the way QEMU users write them, and
formatted for people.

Sizes use binary suffixes like QEMU's ``qemu_strtosz`` (``K``/``M``/``G``/``T``, optional ``B``
or ``iB``): ``8G`` is 8 GiB and ``migrate_set_speed 100G`` is 100 GiB/s.  A bare number is bytes,
except for guest memory where, as with ``qemu-system -m``, it means MiB.  Durations take ``us``,
``ms``, ``s`` or ``min``; a bare number is milliseconds, the unit of QMP's ``downtime-limit``.
Switches take ``on``/``off`` (also ``yes``/``no``, ``true``/``false``, ``1``/``0``).

The ``format_*`` functions (and :func:`size_unit`, :func:`time_unit`) are the text of every
figure, table and report of the package.
"""

from __future__ import annotations

import math
import numbers
import re

import numpy as np

from .errors import ScenarioError

#: the largest size any parameter may have (sizes beyond it are certainly typing errors)
MAX_BYTES = float(1 << 60)

_SIZE_RE = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([KMGTPE]?)(i?B)?\s*$", re.I)
_SIZE_SHIFT = {"": 0, "K": 10, "M": 20, "G": 30, "T": 40, "P": 50, "E": 60}
_TIME_RE = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*(us|ms|s|sec|min|m)?\s*$", re.I)
_TIME_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "sec": 1e3, "min": 60e3, "m": 60e3}


def parse_size(value, *, what: str = "size", default_unit: str = "") -> int:
    """Parse ``"8G"``, ``"512M"``, ``"4096"`` or a number into bytes.

    Parameters
    ----------
    value : str or int or float
        The size.  Numbers are taken in ``default_unit``.
    what : str
        Name used in the error message.
    default_unit : str
        Unit of a bare number: ``""`` (bytes), ``"M"`` (MiB, as ``-m``), ...

    Returns
    -------
    int
        Bytes.

    Examples
    --------
    >>> parse_size("8G")
    8589934592
    >>> parse_size(512, default_unit="M")
    536870912
    """
    if isinstance(value, (bool, np.bool_)):
        raise ScenarioError(f"{what}: expected a size such as 8G, got {value!r}")
    if isinstance(value, numbers.Real):  # int, float and numpy scalars
        number, unit = float(value), default_unit
    else:
        m = _SIZE_RE.match(str(value))
        if not m:
            raise ScenarioError(f"{what}: cannot parse {value!r} (expected e.g. 8G, 512M, 100G)")
        number = float(m.group(1))
        unit = m.group(2).upper() if m.group(2) else ("" if m.group(3) else default_unit)
    if not math.isfinite(number) or number < 0:
        raise ScenarioError(f"{what}: must be a finite non-negative size, got {value!r}")
    nbytes = number * (1 << _SIZE_SHIFT[unit.upper()])
    if not nbytes <= MAX_BYTES:
        raise ScenarioError(f"{what}: at most 1E (2**60 bytes), got {value!r}")
    return int(round(nbytes))


def parse_duration_ms(value, *, what: str = "duration") -> float:
    """Parse ``"400ms"``, ``"2s"``, ``"1min"`` or a number of milliseconds.

    Examples
    --------
    >>> parse_duration_ms("2s")
    2000.0
    >>> parse_duration_ms("400ms")
    400.0
    """
    if isinstance(value, (bool, np.bool_)):
        raise ScenarioError(f"{what}: expected a duration such as 400ms or 2s, got {value!r}")
    if isinstance(value, numbers.Real):  # int, float and numpy scalars
        number, unit = float(value), "ms"
    else:
        m = _TIME_RE.match(str(value))
        if not m:
            raise ScenarioError(f"{what}: cannot parse {value!r} (expected e.g. 400ms, 2s)")
        number, unit = float(m.group(1)), (m.group(2) or "ms").lower()
    if not math.isfinite(number) or number < 0:
        raise ScenarioError(f"{what}: must be a finite non-negative duration, got {value!r}")
    ms = number * _TIME_MS[unit]
    if not math.isfinite(ms):
        raise ScenarioError(f"{what}: must be a finite duration, got {value!r}")
    return ms


def parse_fraction(value, *, what: str = "fraction") -> float:
    """Parse ``"60%"``, ``"0.6"`` or ``0.6`` into a fraction in [0, 1]."""
    try:
        if isinstance(value, (bool, np.bool_)):
            raise TypeError
        if isinstance(value, str) and value.strip().endswith("%"):
            f = float(value.strip()[:-1]) / 100.0
        else:
            f = float(value)
    except (TypeError, ValueError, OverflowError):
        raise ScenarioError(f"{what}: cannot parse {value!r} (expected e.g. 60% or 0.6)") from None
    if not (0.0 <= f <= 1.0):
        raise ScenarioError(f"{what}: must be between 0 and 100%, got {value!r}")
    return f


def parse_on_off(value, *, what: str = "") -> bool:
    """Parse an ``on|off`` switch (``yes``/``no``, ``true``/``false``, ``1``/``0``, a bool).

    Parameters
    ----------
    value : str or bool
    what : str
        Name used in the error message (e.g. ``"--hint"``); none by default.

    Examples
    --------
    >>> parse_on_off("on"), parse_on_off("OFF"), parse_on_off(True)
    (True, False, True)
    """
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    s = str(value).strip().lower()
    if s in ("on", "yes", "true", "1"):
        return True
    if s in ("off", "no", "false", "0"):
        return False
    raise ScenarioError(f"{what + ': ' if what else ''}expected on or off, got {value!r}")


# --------------------------------------------------------------------------------------------
# Formatting
# --------------------------------------------------------------------------------------------


def size_unit(nbytes: float) -> tuple[float, str]:
    """A binary unit that suits ``nbytes``: (divisor, name).

    Examples
    --------
    >>> size_unit(8 << 30)
    (1073741824, 'GiB')
    >>> size_unit(300 << 20)
    (1048576, 'MiB')
    """
    for shift, name in ((40, "TiB"), (30, "GiB"), (20, "MiB"), (10, "KiB")):
        if nbytes >= 1 << shift:
            return 1 << shift, name
    return 1, "B"


def time_unit(t_ms: float) -> tuple[float, str]:
    """Milliseconds up to 10 s, seconds above: (divisor from ms, name).

    Examples
    --------
    >>> time_unit(350.0)
    (1.0, 'ms')
    >>> time_unit(12345.0)
    (1000.0, 's')
    """
    return (1000.0, "s") if t_ms > 10_000 else (1.0, "ms")


def format_bytes(nbytes: float) -> str:
    """``"1.50 GiB"``-style text.

    Examples
    --------
    >>> format_bytes(3 << 29)
    '1.50 GiB'
    """
    div, unit = size_unit(nbytes)
    return f"{nbytes / div:.2f} {unit}" if div > 1 else f"{nbytes:.0f} B"


def format_ms(t_ms: float) -> str:
    """``"350 ms"`` or ``"12.35 s"``.

    Examples
    --------
    >>> format_ms(350.2), format_ms(12345)
    ('350 ms', '12.35 s')
    """
    div, unit = time_unit(t_ms)
    return f"{t_ms:.0f} ms" if div == 1 else f"{t_ms / div:.2f} s"


def format_number(value, digits: int = 0, suffix: str = "") -> str:
    """A number with thousands separators and ``digits`` decimals, or ``n/a`` when missing.

    Examples
    --------
    >>> format_number(12345.678, 1, " ms"), format_number(None), format_number(float("nan"))
    ('12,345.7 ms', 'n/a', 'n/a')
    """
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    return f"{value:,.{digits}f}{suffix}"
