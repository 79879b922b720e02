"""Writing a figure the docs keep (``docs/img/``): one helper for the tools that draw them."""

from __future__ import annotations

import sys
from pathlib import Path

#: the largest PNG the repository keeps
MAX_BYTES = 200 * 1024


def save_figure(fig, out, tool: str, label: str = "", **savefig_kw) -> bool:
    """Save ``fig`` as ``out`` (folders made), say where and how big on stdout; False (and a
    line on stderr naming ``tool``) when it is over :data:`MAX_BYTES`."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90, **savefig_kw)
    size = out.stat().st_size
    sys.stdout.write(f"{label}wrote {out} ({size / 1024:.0f} KB)\n")
    if size > MAX_BYTES:
        sys.stderr.write(f"{tool}: {out} is over {MAX_BYTES // 1024} KB\n")
        return False
    return True
