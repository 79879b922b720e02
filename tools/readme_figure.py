"""Write the README's picture, docs/img/reductions.png: the reduction of migration time by free
page hinting, published vs simulated vs the geometric model (``plot.reproduction_reductions``).

    python tools/readme_figure.py                 # from results/reproduction.nc if it is there
    python tools/readme_figure.py --rerun         # run the reproduction first (about a minute)

The picture is the reproduction's own ``reductions.png`` (``fphint reproduce`` writes the same
figure into results/); kept under 200 KB.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from _figure import save_figure

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "img" / "reductions.png"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--results", default=str(ROOT / "results"), help="output of fphint reproduce")
    p.add_argument("--rerun", action="store_true", help="run the reproduction (5 seeds) first")
    p.add_argument("--out", default=str(OUT), help="the PNG to write")
    args = p.parse_args(argv)

    import matplotlib

    matplotlib.use("Agg")
    import fphint_kernels as fk
    import fphint_kernels.plot
    from fphint_kernels.experiments import reproduce
    from fphint_kernels.io import load_dataset

    nc = Path(args.results) / "reproduction.nc"
    if args.rerun or not nc.is_file():
        sys.stderr.write(f"readme_figure: running the reproduction (no {nc})\n")
        res = reproduce(5)
    else:
        res = load_dataset(nc)
    fk.plot.use_style()
    fig = fk.plot.reproduction_reductions(res)
    return 0 if save_figure(fig, args.out, "readme_figure") else 1


if __name__ == "__main__":
    sys.exit(main())
