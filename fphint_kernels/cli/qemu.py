"""``fphint qemu ...``: prepare the guest, measure migrations, run campaigns, summarise.

Subcommands
-----------
prepare    download the Debian guest kernel, build the initramfs (cache directory)
check      show QEMU version, prepared guest and accelerator
migrate    one configuration, repeated; netCDF files written to --out
campaign   a whole measurement plan (resumable)
summary    a table of measured runs
bench      microbenchmarks of this host
fit        fit this host's profile (this-host-tcg) on a few measured runs
compare    measured runs next to the simulator's prediction (needs the engine)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ..errors import FphintError


def _add_run_options(p) -> None:
    g = p.add_argument_group("configuration")
    g.add_argument("--memory", default="1G", help="guest RAM, e.g. 1G, 512M (bare number: MiB)")
    g.add_argument("--mode", default="idle", help="guest mode: idle, fill-free, dirty-loop")
    g.add_argument("--fill", default="60%", help="fill-free: share of RAM written then freed")
    g.add_argument("--dirty-bytes", default="128M", help="dirty-loop: bytes rewritten per interval")
    g.add_argument("--dirty-interval", default="100ms", help="dirty-loop: interval")
    g.add_argument("--hint", default="on", metavar="on|off", help="virtio-balloon free-page-hint")
    g.add_argument(
        "--init-on-alloc",
        default="off",
        metavar="on|off",
        help="guest kernel command line init_on_alloc=1/0",
    )
    g.add_argument(
        "--downtime-limit", default="300ms", help="migrate-set-parameters downtime-limit"
    )
    g.add_argument(
        "--max-bandwidth", default="100G", help="max-bandwidth in bytes/s (100G = no limit)"
    )
    g.add_argument("--vcpus", default=1, type=int, help="guest vCPUs (-smp)")
    g.add_argument(
        "--max-time", default="300s", help="cancel and report not-converged after this long"
    )
    g.add_argument("--settle", default="2s", help="wait between guest READY and migrate")


def _config(args):
    from ..qemu.runconfig import RunConfig

    return RunConfig.from_strings(
        memory=args.memory,
        mode=args.mode,
        fill=args.fill,
        dirty_bytes=args.dirty_bytes,
        dirty_interval=args.dirty_interval,
        hint=args.hint,
        init_on_alloc=args.init_on_alloc,
        downtime_limit=args.downtime_limit,
        max_bandwidth=args.max_bandwidth,
        vcpus=args.vcpus,
        max_time=args.max_time,
        settle=args.settle,
    )


def _cmd_prepare(args) -> int:
    from ..qemu.prepare import prepare

    g = prepare(
        args.cache, kernel_package=args.kernel_package, kernel_deb=args.kernel_deb, force=args.force
    )
    sys.stdout.write(json.dumps(g.to_dict(), indent=2) + "\n")
    return 0


def _cmd_check(args) -> int:
    from ..qemu.guest import load_guest
    from ..qemu.hostbench import host_info
    from ..qemu.process import qemu_version
    from ..qemu.runner import detect_accelerator

    g = load_guest(args.cache)
    info = {
        "qemu": qemu_version(),
        "guest": g.to_dict(),
        "accelerator": detect_accelerator(g, use_cache=not args.redetect),
        "host": host_info(),
    }
    sys.stdout.write(json.dumps(info, indent=2) + "\n")
    return 0


def _cmd_migrate(args) -> int:
    from ..io import save_dataset
    from ..qemu.guest import load_guest
    from ..qemu.measurement import to_dataset
    from ..qemu.runner import detect_accelerator, migrate_once

    cfg = _config(args)
    if args.repeat < 1:
        raise FphintError("--repeat must be at least 1")
    guest = load_guest(args.cache)
    accel = args.accel or detect_accelerator(guest)
    if accel not in ("tcg", "kvm"):
        raise FphintError(f"--accel: expected tcg or kvm, got {accel!r}")
    out = Path(args.out) if args.out else None
    rc = 0
    for rep in range(args.repeat):

        def say(msg, rep=rep):
            sys.stderr.write(f"fphint qemu migrate [{rep + 1}/{args.repeat}]: {msg}\n")

        res = migrate_once(cfg, guest=guest, accel=accel, progress=say)
        ds = to_dataset(res, run=rep, campaign=args.campaign)
        if out is not None:
            path = out / f"{cfg.key()}-r{rep}.nc" if out.suffix != ".nc" else out
            if out.suffix == ".nc" and args.repeat > 1:
                path = out.with_name(f"{out.stem}-r{rep}.nc")
            save_dataset(ds, path)
            say(f"wrote {path}")
        row = _row(ds)
        if args.json:
            sys.stdout.write(json.dumps(row) + "\n")
        else:
            sys.stdout.write(_format_row(row) + "\n")
        if row["status"] != "completed" or not row["guest_ok"]:
            rc = 1
    return rc


def _row(ds) -> dict:
    def num(name):
        v = ds[name].values.item() if name in ds else None
        return None if v is None else (float(v) if isinstance(v, float) else int(v))

    return {
        "config": ds.attrs.get("config_key", ""),
        "run": int(ds.attrs.get("run", 0)),
        "status": str(ds["status"].values),
        "total-time": num("total-time"),
        "downtime": num("downtime"),
        "setup-time": num("setup-time"),
        "ram-duplicate": num("ram-duplicate"),
        "ram-normal": num("ram-normal"),
        "ram-transferred": num("ram-transferred"),
        "dirty-sync-count": num("dirty-sync-count"),
        "guest_ok": bool(int(ds.attrs.get("guest_ok", 0))),
        "guest_trouble": json.loads(ds.attrs.get("guest_trouble_counts", "{}")),
        "failure": str(ds["failure"].values) if "failure" in ds else "",
    }


def _format_row(r: dict) -> str:
    trouble = ",".join(f"{k}={v}" for k, v in r["guest_trouble"].items()) or "-"
    return (
        f"{r['config']:<46} r{r['run']} {r['status']:<13} total={r['total-time']}ms "
        f"down={r['downtime']}ms zero={r['ram-duplicate']} normal={r['ram-normal']} "
        f"bytes={r['ram-transferred']} syncs={r['dirty-sync-count']} "
        f"guest_ok={int(r['guest_ok'])} trouble={trouble}"
        + (f" failure={r['failure']}" if r["failure"] else "")
    )


def _cmd_campaign(args) -> int:
    from ..qemu.campaign import load_plan, run_campaign

    plan = load_plan(args.plan)
    out = args.out or f"data/measurements/{plan.get('name', 'campaign')}"
    run_campaign(
        plan, out, repeats=args.repeat, only=args.only, max_runs=args.max_runs, dry_run=args.dry_run
    )
    return 0


def _cmd_summary(args) -> int:
    from ..qemu.measurement import load_all

    rows = [_row(ds) for ds in load_all(args.dir)]
    if not rows:
        raise FphintError(f"no measured runs (*.nc) under {args.dir}")
    for r in rows:
        sys.stdout.write((json.dumps(r) if args.json else _format_row(r)) + "\n")
    if not args.json:
        bad = sum(1 for r in rows if not r["guest_ok"])
        done = sum(1 for r in rows if r["status"] == "completed")
        sys.stdout.write(f"{len(rows)} runs, {done} completed, {bad} with guest_ok=0\n")
    return 0


def _cmd_compare(args) -> int:
    from ..qemu.compare import compare_dir, format_table

    table = compare_dir(args.dir, profile=args.profile, held_out_only=args.held_out)
    if args.json:
        sys.stdout.write(table.to_json(orient="records") + "\n")
    else:
        sys.stdout.write(format_table(table) + "\n")
    return 0


def _cmd_bench(args) -> int:
    from ..qemu.hostbench import run_all

    sys.stdout.write(json.dumps(run_all(quick=args.quick), indent=2) + "\n")
    return 0


def _cmd_fit(args) -> int:
    from ..qemu.compare import DEFAULT_FIT_RUNS, fit_host_profile, quick_fit
    from ..qemu.measurement import load_all

    if args.quick:
        for flag, given in (
            ("--fit-run", args.fit_run),
            ("--trace-dir", args.trace_dir),
            ("--bench-from", args.bench_from),
        ):
            if given:
                raise FphintError(f"{flag}: not with --quick (it measures its own runs)")
        runs_dir = Path(args.dir) if args.dir else Path("results") / "qemu-fit"
        doc = quick_fit(runs_dir, name=args.name, out_dir=args.out_dir)
        sys.stdout.write(json.dumps(doc["params"], indent=2) + "\n")
        return 0
    args.dir = args.dir or "data/measurements"
    args.name = args.name or "this-host-tcg"

    runs = load_all(args.dir, completed=True)
    fit_runs = tuple(args.fit_run) if args.fit_run else DEFAULT_FIT_RUNS
    trace = []
    for d in args.trace_dir or ():
        trace += load_all(d, completed=True)
    bench = None
    if args.bench_from:  # the microbenchmarks a profile recorded when it was fitted
        from ..config import HostProfile

        bench = HostProfile.load(args.bench_from).provenance.get("host")
        if not isinstance(bench, dict) or not bench:
            raise FphintError(f"--bench-from: profile {args.bench_from} records no host")
    doc = fit_host_profile(
        runs,
        fit_runs=fit_runs,
        name=args.name,
        out_dir=args.out_dir,
        trace_runs=trace,
        bench=bench,
    )
    sys.stdout.write(json.dumps(doc["params"], indent=2) + "\n")
    return 0


def add_command(subparsers) -> None:
    """Add ``fphint qemu ...``."""
    q = subparsers.add_parser(
        "qemu",
        help="measure real QEMU migrations on this host",
        description="Real QEMU migrations on this host: prepare the guest, measure migrations, "
        "run campaigns, summarise them, fit this host's profile, compare with the simulator.",
    )
    sub = q.add_subparsers(dest="qemu_command", metavar="SUBCOMMAND")
    sub.required = True

    def cache_opt(p):
        p.add_argument(
            "--cache",
            help="guest cache directory (default $FPHINT_QEMU_CACHE or ~/.cache/fphint/qemu)",
        )

    p = sub.add_parser("prepare", help="build the guest kernel + initramfs into the cache")
    cache_opt(p)
    p.add_argument(
        "--kernel-package", help="Debian package (default: newest linux-image-6.1.0-N-amd64)"
    )
    p.add_argument("--kernel-deb", help="use this .deb instead of downloading")
    p.add_argument("--force", action="store_true", help="rebuild even if prepared")
    p.set_defaults(func=_cmd_prepare)

    p = sub.add_parser("check", help="QEMU version, prepared guest, accelerator")
    cache_opt(p)
    p.add_argument("--redetect", action="store_true", help="test KVM again")
    p.set_defaults(func=_cmd_check)

    p = sub.add_parser("migrate", help="measure one configuration (repeated)")
    cache_opt(p)
    _add_run_options(p)
    p.add_argument("--repeat", type=int, default=1, help="number of migrations")
    p.add_argument("--accel", help="tcg or kvm (default: detected)")
    p.add_argument("--out", help="directory (or .nc file) for the netCDF results")
    p.add_argument("--campaign", default="", help="campaign name stored in the files")
    p.add_argument("--json", action="store_true", help="one JSON line per run")
    p.set_defaults(func=_cmd_migrate)

    p = sub.add_parser("campaign", help="run a measurement plan (resumable)")
    p.add_argument("--plan", default="default", help="'default' or a JSON plan file")
    p.add_argument("--out", help="directory (default data/measurements/<plan name>)")
    p.add_argument("--repeat", type=int, help="override the plan's repeats")
    p.add_argument("--only", help="only configurations whose key contains this")
    p.add_argument("--max-runs", type=int, help="stop after this many runs")
    p.add_argument("--dry-run", action="store_true", help="list the runs only")
    p.set_defaults(func=_cmd_campaign)

    p = sub.add_parser("summary", help="table of measured runs")
    p.add_argument("dir", nargs="?", default="data/measurements")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_summary)

    p = sub.add_parser("bench", help="microbenchmarks of this host (profile starting point)")
    p.add_argument("--quick", action="store_true")
    p.set_defaults(func=_cmd_bench)

    p = sub.add_parser(
        "fit",
        help="fit this host's profile on a few measured runs",
        description="Fit a host profile on at most five measured runs (the others are held "
        "out). With --quick: measure this machine first (microbenchmarks and five short "
        "migrations, within 5 minutes), then fit, and write a profile named for the machine.",
    )
    p.add_argument(
        "dir",
        nargs="?",
        help="measured runs (default: data/measurements; with --quick, where the new runs go: "
        "results/qemu-fit)",
    )
    p.add_argument("--quick", action="store_true", help="measure this machine, then fit")
    p.add_argument("--fit-run", action="append", help="run id <config>-r<k> (repeatable)")
    p.add_argument(
        "--trace-dir",
        action="append",
        help="runs whose trace events are used, and nothing else of them (repeatable)",
    )
    p.add_argument(
        "--name",
        help="profile name (default: this-host-tcg; with --quick host-<hostname>-<accel>)",
    )
    p.add_argument("--out-dir", help="directory (default data/profiles)")
    p.add_argument(
        "--bench-from",
        metavar="PROFILE",
        help="take the host's microbenchmarks from what PROFILE recorded when it was fitted "
        "instead of measuring them again (a refit on the same runs, on a busy machine)",
    )
    p.set_defaults(func=_cmd_fit)

    p = sub.add_parser("compare", help="measured vs simulated, field by field")
    p.add_argument("dir", nargs="?", default="data/measurements")
    p.add_argument("--profile", default="this-host-tcg", help="host profile for the simulator")
    p.add_argument("--held-out", action="store_true", help="only runs not used for fitting")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_compare)
