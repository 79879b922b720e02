"""What every ``fphint`` command prints besides its result: one-line messages on stderr."""

from __future__ import annotations

import sys


def say(message: str) -> None:
    """One line on stderr, ``fphint: <message>`` (e.g. before the kernels compile)."""
    sys.stderr.write(f"fphint: {message}\n")
    sys.stderr.flush()
