"""Figures of simulated and measured migrations (every axis labelled, with units)."""

from __future__ import annotations

from pathlib import Path

STYLE = Path(__file__).with_name("fphint.mplstyle")


def use_style() -> None:
    """Use the package's matplotlib style (shipped inside the package, no network)."""
    import matplotlib.pyplot as plt

    plt.style.use(str(STYLE))
