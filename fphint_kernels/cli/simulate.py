"""``fphint simulate``: one migration, printed as ``query-migrate`` fields.

Also the scenario options every command that describes one scenario shares
(:func:`add_scenario_arguments`, :func:`scenario_from_args`).
"""

from __future__ import annotations

import argparse
import json
import sys

from ..errors import FphintError
from ..units import parse_on_off

#: Options whose value may look like a flag (``--memory -1G``): glued as ``--memory=-1G`` so
#: that the value reaches validation and gets a proper message.
VALUE_OPTIONS = (
    "--memory",
    "--downtime-limit",
    "--max-bandwidth",
    "--max-time",
    "--fill",
    "--dirty-bytes",
    "--dirty-interval",
    "--intensity",
    "--seed",
    "--vcpus",
)


def on_off(value: str) -> bool:
    """argparse type of the ``on|off`` options (:func:`fphint_kernels.units.parse_on_off`)."""
    try:
        return parse_on_off(value)
    except FphintError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def whole(value: str) -> int:
    """argparse type of the whole-number options, with a one-line message."""
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {value!r}") from None


def add_scenario_arguments(p: argparse.ArgumentParser) -> None:
    """The options that describe one scenario (shared by several subcommands)."""
    from ..config import FAULTS, HINT_RELEASE, PAGE_POISON, available_profiles, available_workloads

    g = p.add_argument_group("scenario")
    g.add_argument("--memory", default="8G", help="guest RAM, e.g. 8G, 512M (bare number: MiB)")
    g.add_argument(
        "--workload", default="idle", help=f"guest workload: {', '.join(available_workloads())}"
    )
    g.add_argument("--downtime-limit", default="300ms", help="QEMU downtime-limit, e.g. 400ms, 2s")
    g.add_argument(
        "--max-bandwidth",
        default="32M",
        help="QEMU max-bandwidth in bytes/s, e.g. 100G (= 100 GiB/s, as migrate_set_speed)",
    )
    g.add_argument(
        "--hint",
        type=on_off,
        default=False,
        metavar="on|off",
        help="free page hinting (off = legacy)",
    )
    g.add_argument(
        "--init-on-alloc",
        type=on_off,
        default=False,
        metavar="on|off",
        help="guest zeroes every allocation (init_on_alloc=1); default off as in 2018 kernels",
    )
    g.add_argument("--page-poison", choices=PAGE_POISON, default="off", help="guest page poisoning")
    g.add_argument(
        "--hint-release",
        choices=tuple(HINT_RELEASE),
        default="done",
        help="when the guest returns hinted blocks: done (Linux 4.20), shrinker (5.7+), "
        "after-pass (v36 patch)",
    )
    g.add_argument(
        "--auto-converge", type=on_off, default=False, metavar="on|off", help="QEMU auto-converge"
    )
    g.add_argument("--vcpus", type=whole, default=4, help="guest vCPUs")
    g.add_argument(
        "--profile", default="v36", help=f"host profile: {', '.join(available_profiles())}"
    )
    g.add_argument("--seed", type=whole, default=0, help="random seed (whole number >= 0)")
    g.add_argument(
        "--fault",
        action="append",
        default=[],
        choices=tuple(FAULTS),
        help="break the protocol on purpose (repeatable)",
    )
    g.add_argument(
        "--max-time",
        default="10min",
        help="simulated time after which the run is reported not-converged",
    )
    w = p.add_argument_group("workload options (override data/workloads/NAME.json)")
    w.add_argument("--fill", help="fill-free: share of RAM filled then freed, e.g. 60%%")
    w.add_argument("--dirty-bytes", help="dirty-loop: bytes rewritten per interval, e.g. 128M")
    w.add_argument("--dirty-interval", help="dirty-loop: interval, e.g. 100ms")
    w.add_argument("--intensity", help="multiplier of every workload rate (default 1)")
    w.add_argument(
        "--workload-param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any workload parameter (repeatable), e.g. jobs=8",
    )


def scenario_from_args(args):
    """The :class:`~fphint_kernels.Scenario` of parsed :func:`add_scenario_arguments` options."""
    from ..config import Scenario

    opts = {}
    for key, attr in (
        ("fill", "fill"),
        ("dirty_bytes", "dirty_bytes"),
        ("dirty_interval_ms", "dirty_interval"),
        ("intensity", "intensity"),
    ):
        v = getattr(args, attr, None)
        if v is not None:
            opts[key] = v
    for kv in args.workload_param:
        if "=" not in kv:
            raise FphintError(f"--workload-param: expected KEY=VALUE, got {kv!r}")
        k, v = kv.split("=", 1)
        opts[k.strip().replace("-", "_")] = v.strip()
    return Scenario(
        memory=args.memory,
        workload=args.workload,
        workload_options=opts,
        downtime_limit=args.downtime_limit,
        max_bandwidth=args.max_bandwidth,
        hint=args.hint,
        init_on_alloc=args.init_on_alloc,
        page_poison=args.page_poison,
        hint_release=args.hint_release,
        auto_converge=args.auto_converge,
        vcpus=args.vcpus,
        profile=args.profile,
        seed=args.seed,
        faults=frozenset(args.fault),
        max_time=args.max_time,
    )


def _cmd_simulate(args) -> int:
    from ..io import save_dataset
    from ..simulate import simulate, summary

    ds = simulate(scenario_from_args(args))
    if args.out:
        save_dataset(ds, args.out)
    s = summary(ds)
    if args.json:
        sys.stdout.write(json.dumps(s, indent=None if args.compact else 2) + "\n")
    else:
        for k, v in s.items():
            if isinstance(v, dict):
                for k2, v2 in v.items():
                    sys.stdout.write(f"{k}.{k2:<20} {v2}\n")
            else:
                sys.stdout.write(f"{k:<26} {v}\n")
    return 0


def add_command(subparsers) -> None:
    """Add ``fphint simulate``."""
    p = subparsers.add_parser(
        "simulate",
        help="simulate one migration",
        description="Simulate one pre-copy migration and print query-migrate fields.",
    )
    add_scenario_arguments(p)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--compact", action="store_true", help="with --json: on one line")
    p.add_argument("--out", help="also write the whole Dataset to this netCDF file")
    p.set_defaults(func=_cmd_simulate)
