"""Run the studies of ``fphint_kernels.studies`` with their default (full) grids, keep their
Datasets in results/studies/NAME.nc, write each study's main figure to docs/img/study_NAME.png
and print the numbers ``docs/studies.md`` quotes.

    python tools/study_figures.py                      # every study (reuses results/studies/)
    python tools/study_figures.py big_idle_guest       # one study
    python tools/study_figures.py --rerun hint_rate    # simulate again even if its .nc is there

The full grids take minutes (the 1 TiB guests of ``big_idle_guest`` most of them); run it with
``nice -n 19`` on a shared machine.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from _figure import save_figure

ROOT = Path(__file__).resolve().parents[1]
STUDIES = ("big_idle_guest", "hint_rate", "init_on_alloc", "designs", "non_convergence")


def numbers(name: str, ds) -> list[str]:
    """The few numbers of a study that docs/studies.md quotes."""
    from fphint_kernels.units import format_bytes, format_ms

    m = ds.mean("seed") if "seed" in ds.dims else ds
    out = []
    if name == "big_idle_guest":
        for mem in m["memory"].values:
            for use in m["in_use"].values:
                p = m.sel(memory=mem, in_use=use, downtime_limit=m["downtime_limit"].values[0])
                out.append(
                    f"{format_bytes(mem)} in_use={use:.0%}: none {format_ms(p['total-time'].sel(hinting='none'))}"
                    f" {format_bytes(p['ram-transferred'].sel(hinting='none'))}, fph "
                    f"{format_ms(p['total-time'].sel(hinting='fph'))} "
                    f"{format_bytes(p['ram-transferred'].sel(hinting='fph'))}; saving "
                    f"{float(p['total-time-saving'].sel(hinting='fph')):.0%} time, "
                    f"{float(p['ram-transferred-saving'].sel(hinting='fph')):.0%} bytes"
                )
        d = m["total-time"].sel(downtime_limit=m["downtime_limit"].values[-1]) - m[
            "total-time"
        ].sel(downtime_limit=m["downtime_limit"].values[0])
        out.append(f"largest |total(2 s) - total(300 ms)|: {float(abs(d).max()):.1f} ms")
        out.append(f"downtime max: {float(m['downtime'].max()):.1f} ms")
    elif name == "hint_rate":
        for bw in m["max_bandwidth"].values:
            s = m["total-time-saving"].sel(max_bandwidth=bw, hinting="fph")
            sb = float(m["sender-block-us"].sel(max_bandwidth=bw))
            out.append(
                f"bw {format_bytes(bw)}/s (sender {sb:.0f} us/block): saving "
                + ", ".join(
                    f"{b:g}us={float(v):.0%}"
                    for b, v in zip(s["hint_block_us"].values, s.values, strict=True)
                )
            )
    elif name == "init_on_alloc":
        for mem in m["memory"].values:
            for wl in m["workload"].values:
                p = m.sel(memory=mem, workload=wl)
                out.append(
                    f"{format_bytes(mem)} {wl}: "
                    + "; ".join(
                        f"ioa={int(i)} fph saves {float(p['total-time-saving'].sel(init_on_alloc=i, hinting='fph')):.0%}"
                        f" time {float(p['ram-transferred-saving'].sel(init_on_alloc=i, hinting='fph')):.0%} bytes,"
                        f" dup {float(p['ram-duplicate'].sel(init_on_alloc=i, hinting='fph')):.0f},"
                        f" guest cpu {float(p['guest-overhead-time'].sel(init_on_alloc=i, hinting='fph')):.1f} ms"
                        for i in p["init_on_alloc"].values
                    )
                )
    elif name == "designs":
        for wl in m["workload"].values:
            for h in m["hinting"].values:
                p = m.sel(workload=wl, hinting=h)
                out.append(
                    f"{wl} {h}: total {format_ms(p['total-time'])}, downtime "
                    f"{format_ms(p['downtime'])}, sent {format_bytes(p['ram-transferred'])}, held "
                    f"{format_bytes(p['held-bytes-max'])}, guest cpu "
                    f"{float(p['guest-overhead-time']):.1f} ms"
                )
    elif name == "non_convergence":
        for d in m["dirty_bytes"].values:
            for h in m["hinting"].values:
                for a in m["auto_converge"].values:
                    p = m.sel(dirty_bytes=d, hinting=h, auto_converge=a)
                    out.append(
                        f"dirty {format_bytes(d)}/{ds.attrs.get('dirty_interval', '100 ms')} {h} ac={int(a)}:"
                        f" converged {float(p['converged']):.0%}, total {format_ms(p['total-time'])},"
                        f" downtime {format_ms(p['downtime'])}, throttle "
                        f"{float(p['cpu-throttle-percentage']):.0f} %"
                    )
    out.append(f"{ds.attrs['points']} runs in {ds.attrs['wall_time_s']:.0f} s")
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("studies", nargs="*", help=f"any of {', '.join(STUDIES)} (default: all)")
    p.add_argument("--rerun", action="store_true", help="simulate even if the .nc exists")
    p.add_argument("--results", default=str(ROOT / "results" / "studies"))
    p.add_argument("--img", default=str(ROOT / "docs" / "img"))
    args = p.parse_args(argv)
    bad = [name for name in args.studies if name not in STUDIES]
    if bad:
        p.error(f"unknown study {bad[0]!r} (one of {', '.join(STUDIES)})")

    import matplotlib

    matplotlib.use("Agg")
    import fphint_kernels as fk
    import fphint_kernels.plot
    from fphint_kernels import studies
    from fphint_kernels.io import load_dataset, save_dataset

    fk.plot.use_style()
    status = 0
    for name in args.studies or STUDIES:
        nc = Path(args.results) / f"{name}.nc"
        if args.rerun or not nc.is_file():
            t0 = time.perf_counter()
            ds = getattr(studies, name)()
            save_dataset(ds, nc)
            sys.stderr.write(f"{name}: {time.perf_counter() - t0:.0f} s\n")
        else:
            ds = load_dataset(nc)
        fig = getattr(fk.plot, f"study_{name}")(ds)
        out = Path(args.img) / f"study_{name}.png"
        ok = save_figure(fig, out, "study_figures", label=f"== {name}: ")
        sys.stdout.write("".join(f"  {line}\n" for line in numbers(name, ds)))
        if not ok:
            status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
