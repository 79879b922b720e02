"""Write docs/img/cancellation.png: what a cancelled migration leaves the guest with, QEMU 4.0's
cleanup (the guest keeps its hinted blocks) against 5.1's (DONE: it gets them back)
(``plot.cancellation``).

    python tools/cancellation_figure.py           # about 10 s after the kernels are compiled
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from _figure import save_figure

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "img" / "cancellation.png"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=str(OUT), help="the PNG to write")
    args = p.parse_args(argv)

    import matplotlib

    matplotlib.use("Agg")
    import fphint_kernels as fk
    import fphint_kernels.plot

    base = fk.Scenario(
        memory="2G", workload="idle", max_bandwidth="64M", hinting="fph", cancel_at="3s", seed=1
    )
    runs = {
        f"QEMU {c[5:]}": fk.simulate(base.replace(cancel_cleanup=c), page_map_bins=256)
        for c in ("qemu-4.0", "qemu-5.1")
    }
    fk.plot.use_style()
    axes = fk.plot.cancellation(runs)
    ok = save_figure(axes[0].figure, args.out, "cancellation_figure", bbox_inches="tight")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
