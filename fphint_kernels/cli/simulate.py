"""``fphint simulate``: one migration, printed as ``query-migrate`` fields.

Also the scenario options every command that describes one scenario shares
(:func:`add_scenario_arguments`, :func:`scenario_from_args`).
"""

from __future__ import annotations

import argparse
import json
import re
import sys

from ..errors import FphintError
from ..units import parse_on_off, size_unit
from ._output import check_output_file, say

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


def size_text(nbytes: float) -> str:
    """Bytes in the binary unit that suits them, up to 4 significant digits.

    Examples
    --------
    >>> size_text(128 << 20), size_text(1_320_702_976), size_text(1000)
    ('128 MiB', '1.23 GiB', '1000 bytes')
    """
    div, unit = size_unit(nbytes)
    if div == 1:
        return f"{nbytes:.0f} bytes"
    x = nbytes / div
    return f"{x:.3g} {unit}" if x < 10 else f"{x:.4g} {unit}"


def _workload_defaults() -> tuple[str, str, str]:
    """The defaults of --fill, --dirty-bytes and --dirty-interval, from data/workloads/."""
    from ..config import Workload

    try:
        fill = Workload.load("fill-free").params["fill"]
        loop = Workload.load("dirty-loop").params
        return (
            f"{100 * fill:g}%%",
            size_text(loop["dirty_bytes"]),
            f"{loop['dirty_interval_ms']:g} ms",
        )
    except (FphintError, KeyError, OSError):  # pragma: no cover - edited or missing data files
        return ("see data/workloads/fill-free.json",) + ("see data/workloads/dirty-loop.json",) * 2


def add_scenario_arguments(p: argparse.ArgumentParser) -> None:
    """The options that describe one scenario (shared by several subcommands)."""
    from ..config import (
        CANCEL_CLEANUP,
        FAULTS,
        HINT_RELEASE,
        HINTING,
        PAGE_POISON,
        available_guests,
        available_profiles,
        available_workloads,
    )

    g = p.add_argument_group("scenario")
    g.add_argument(
        "--memory",
        default="8G",
        help="guest RAM, e.g. 8G, 512M; a bare number is MiB (default: 8G = 8 GiB)",
    )
    g.add_argument(
        "--workload", default="idle", help=f"guest workload: {', '.join(available_workloads())}"
    )
    g.add_argument(
        "--downtime-limit",
        default="300ms",
        help="QEMU downtime-limit: the longest pause allowed at the end, e.g. 400ms, 2s; a bare "
        "number is ms (default: 300ms, QEMU's default)",
    )
    g.add_argument(
        "--max-bandwidth",
        default="32M",
        help="QEMU max-bandwidth in bytes per second, e.g. 1G = 1 GiB/s, 100G = no limit in "
        "practice (default: 32M = 32 MiB/s, QEMU's default, slow for a guest of several GiB)",
    )
    g.add_argument(
        "--hinting",
        choices=tuple(HINTING),
        default=None,
        help="hinting design: none (legacy), fph (free page hinting as merged), report-in-place "
        "(the series up to v34), reporting (free page reporting, Linux 5.7), oracle (every "
        "free page skipped: the upper bound) (default: none)",
    )
    g.add_argument(
        "--hint",
        type=on_off,
        default=None,
        metavar="on|off",
        help="shorthand: on = --hinting fph, off = --hinting none",
    )
    g.add_argument(
        "--hint-order",
        type=whole,
        default=None,
        help="buddy order of the hinted or reported blocks (default: 10 = 4 MiB; reporting 9)",
    )
    g.add_argument(
        "--init-on-alloc",
        type=on_off,
        default=False,
        metavar="on|off",
        help="guest zeroes every allocation (init_on_alloc=1) (default: off, as in 2018 kernels)",
    )
    g.add_argument(
        "--init-on-free",
        type=on_off,
        default=False,
        metavar="on|off",
        help="guest zeroes every page it frees (init_on_free=1) (default: off)",
    )
    g.add_argument("--page-poison", choices=PAGE_POISON, default="off", help="guest page poisoning")
    g.add_argument(
        "--poison-val",
        type=on_off,
        default=True,
        metavar="on|off",
        help="the device knows the guest's poison value (VIRTIO_BALLOON_F_PAGE_POISON, QEMU 5.1+); "
        "only free page reporting uses it (default: on)",
    )
    g.add_argument(
        "--cancel-at",
        default=None,
        help="cancel the migration at this time, e.g. 3s; the guest is followed 2 s more",
    )
    g.add_argument(
        "--cancel-cleanup",
        choices=tuple(CANCEL_CLEANUP),
        default="qemu-5.1",
        help="after a cancel: qemu-4.0 (the guest keeps its hinted blocks), qemu-5.1 (DONE: it "
        "gives them back) (default: qemu-5.1)",
    )
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
    g.add_argument(
        "--guest",
        default="testbed-2018",
        help=f"guest description (data/guests/NAME.json): {', '.join(available_guests())} "
        "(default: testbed-2018, the thread's guest)",
    )
    g.add_argument(
        "--guest-param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any guest parameter (repeatable), e.g. hint_block_us=300",
    )
    g.add_argument("--seed", type=whole, default=0, help="random seed, a whole number >= 0")
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
        help="simulated time after which the run stops and is reported not-converged, e.g. "
        "90s, 10min (default: 10min)",
    )
    w = p.add_argument_group("workload options (override data/workloads/NAME.json)")
    fill, dirty_bytes, dirty_interval = _workload_defaults()
    w.add_argument(
        "--fill", help=f"fill-free: share of RAM filled then freed, e.g. 30%% (default: {fill})"
    )
    w.add_argument(
        "--dirty-bytes",
        help=f"dirty-loop: bytes rewritten per interval, e.g. 512M (default: {dirty_bytes})",
    )
    w.add_argument(
        "--dirty-interval",
        help=f"dirty-loop: one rewrite every interval, e.g. 50ms (default: {dirty_interval})",
    )
    w.add_argument("--intensity", help="multiplier of every workload rate (default: 1)")
    w.add_argument(
        "--workload-param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any workload parameter (repeatable), e.g. jobs=8",
    )


def _key_values(option: str, items: list[str]) -> dict:
    """``KEY=VALUE`` strings of a repeatable option, as a dict (keys with ``_``)."""
    out = {}
    for kv in items:
        k, eq, v = kv.partition("=")
        if not eq or not k.strip():
            raise FphintError(f"{option}: expected KEY=VALUE, got {kv[:40]!r}")
        out[k.strip().replace("-", "_")] = v.strip()
    return out


def scenario_from_args(args):
    """The :class:`~fphint_kernels.Scenario` of parsed :func:`add_scenario_arguments` options."""
    from ..config import Scenario

    opts = {}
    for key, attr, only in (
        ("fill", "fill", "fill-free"),
        ("dirty_bytes", "dirty_bytes", "dirty-loop"),
        ("dirty_interval_ms", "dirty_interval", "dirty-loop"),
        ("intensity", "intensity", None),
    ):
        v = getattr(args, attr, None)
        if v is not None:
            if only and args.workload != only:
                option = "--" + attr.replace("_", "-")
                raise FphintError(
                    f"{option}: applies to --workload {only} only, not {args.workload} "
                    f"(--workload-param {key}=... adds it to any workload)"
                )
            opts[key] = v
    opts.update(_key_values("--workload-param", args.workload_param))
    gopts = _key_values("--guest-param", getattr(args, "guest_param", []))
    hinting = args.hinting
    if args.hint is not None:
        short = "fph" if args.hint else "none"
        if hinting is not None and hinting != short:
            raise FphintError(
                f"--hint {'on' if args.hint else 'off'} conflicts with --hinting {hinting}"
            )
        hinting = short
    return Scenario(
        memory=args.memory,
        workload=args.workload,
        workload_options=opts,
        downtime_limit=args.downtime_limit,
        max_bandwidth=args.max_bandwidth,
        hinting=hinting or "none",
        hint_order=args.hint_order,
        init_on_alloc=args.init_on_alloc,
        init_on_free=args.init_on_free,
        page_poison=args.page_poison,
        poison_val=args.poison_val,
        hint_release=args.hint_release,
        cancel_at=args.cancel_at,
        cancel_cleanup=args.cancel_cleanup,
        auto_converge=args.auto_converge,
        vcpus=args.vcpus,
        profile=args.profile,
        guest=getattr(args, "guest", "testbed-2018"),
        guest_options=gopts,
        seed=args.seed,
        faults=frozenset(args.fault),
        max_time=args.max_time,
    )


NOT_CHECKED = "not checked (the migration did not complete)"
_NUMBER = re.compile(r"^-?[\d,.]+$|^-$")


def _ms(v) -> tuple[str, str]:
    return (f"{v:,.1f}", "ms") if v is not None else ("-", "")


def _count(v, unit: str) -> tuple[str, str]:
    return (f"{v:,}", unit) if v is not None else ("-", "")


def _bytes(v) -> tuple[str, str, str]:
    if v is None:
        return ("-", "", "")
    number, _, unit = size_text(v).partition(" ")
    return (number, unit, f"({v:,} bytes)" if unit != "bytes" else "")


def summary_rows(s: dict) -> list[tuple[str, str, str, str]]:
    """The rows of the plain-text result: (field, number, unit, note)."""
    done = s["status"] == "completed"
    sc = s["scenario"]
    ram = s["ram"]
    rows = [("status", s["status"], "", "")]
    if s.get("failure"):
        rows.append(("failure", s["failure"], "", ""))
    rows += [
        ("total-time", *_ms(s["total-time"]), ""),
        ("downtime", *_ms(s["downtime"]), "" if done else "(the VM was never stopped)"),
        ("setup-time", *_ms(s["setup-time"]), ""),
        ("expected-downtime", *_ms(s["expected-downtime"]), ""),
        ("mbps", *((f"{s['mbps']:,.0f}", "Mbit/s") if s["mbps"] is not None else ("-", "")), ""),
        ("ram.transferred", *_bytes(ram["transferred"])),
        ("ram.duplicate", *_count(ram["duplicate"], "pages"), "(zero pages, 9 bytes each)"),
        ("ram.normal", *_count(ram["normal"], "pages"), "(4 KiB of data each)"),
        ("ram.normal-bytes", *_bytes(ram["normal-bytes"])),
        ("dirty-sync-count", *_count(s["dirty-sync-count"], ""), ""),
        ("rounds", *_count(s["rounds"], ""), "(pre-copy rounds before the stop-and-copy)"),
        ("cpu-throttle-percentage", f"{s['cpu-throttle-percentage']:g}", "%",
         "(auto-converge)" if sc.get("auto-converge") else "(auto-converge off)"),
        ("hinted-pages", *_count(s["hinted-pages"], "pages"), ""),
        ("skipped-pages", *_count(s["skipped-pages"], "pages"), "(not sent thanks to hints)"),
    ]  # fmt: skip
    for key, what in (("lost-pages", "must be 0"), ("stale-free-pages", "harmless")):
        if s[key] is None:
            rows.append((key, "-", "", NOT_CHECKED))
        else:
            rows.append((key, *_count(s[key], "pages"), f"({what})"))
    rows.append(("guest-overhead-time", *_ms(s["guest-overhead-time"]), ""))
    rows += [
        ("scenario.memory", *_bytes(sc["memory"])[:2], ""),
        ("scenario.workload", sc["workload"], "", ""),
        ("scenario.downtime-limit", *_ms(sc["downtime-limit"]), ""),
        ("scenario.max-bandwidth", *_bytes(sc["max-bandwidth"])[:2], ""),
        ("scenario.hint", "on" if sc["hint"] else "off", "", ""),
        *([("scenario.hinting", sc["hinting"], "", "")] if "hinting" in sc else []),
        ("scenario.init-on-alloc", "on" if sc["init-on-alloc"] else "off", "", ""),
        ("scenario.profile", sc["profile"], "", ""),
        ("scenario.guest", sc.get("guest", "testbed-2018"), "", ""),
        ("scenario.seed", str(sc["seed"]), "", ""),
    ]
    if "auto-converge" in sc:
        rows.insert(-3, ("scenario.auto-converge", "on" if sc["auto-converge"] else "off", "", ""))
    return [
        (k, n, u + "/s" if k == "scenario.max-bandwidth" else u, note) for k, n, u, note in rows
    ]


def summary_text(s: dict) -> str:
    """The plain-text result of ``fphint simulate``: one field per line, numbers right-aligned
    with their units.

    Examples
    --------
    >>> print(summary_text({"status": "completed", "total-time": 1234.5, "downtime": 20.0,
    ...     "setup-time": 6.6, "expected-downtime": 19.0, "mbps": 9000.0, "ram": {"transferred":
    ...     3 << 29, "duplicate": 10, "normal": 20, "normal-bytes": 81920}, "dirty-sync-count": 3,
    ...     "rounds": 1, "cpu-throttle-percentage": 0.0, "hinted-pages": 0, "skipped-pages": 0,
    ...     "lost-pages": 0, "stale-free-pages": 0, "guest-overhead-time": 1.0, "failure": "",
    ...     "scenario": {"memory": 8 << 30, "workload": "idle", "downtime-limit": 300.0,
    ...     "max-bandwidth": 32 << 20, "hint": False, "init-on-alloc": False, "profile": "v36",
    ...     "seed": 0}}).splitlines()[1])
    total-time                 1,234.5 ms
    """
    rows = summary_rows(s)
    wk = max(len(r[0]) for r in rows)
    numeric = [r[1] for r in rows if _NUMBER.match(r[1])]
    wn = max([len(n) for n in numeric] + [8])
    wu = max(len(r[2]) for r in rows)
    lines = []
    for key, number, unit, note in rows:
        if _NUMBER.match(number):  # right-aligned, then its unit
            value = f"{number:>{wn}} {unit:<{wu}}"
        else:  # words: left-aligned where the numbers start
            value = f"{number:<{wn + wu + 1}}"
        lines.append(f"{key:<{wk}}   {value}  {note}".rstrip())
    return "\n".join(lines) + "\n"


def not_completed_line(s: dict, ds) -> str | None:
    """One line for stderr when the migration did not complete, None when it did."""
    if s["status"] == "completed":
        return None
    if s["status"] == "failed":
        return (
            f"the migration failed ({s['failure'] or 'see failure'}); "
            "lost-pages and stale-free-pages not checked"
        )
    pending = float(ds["pending"].values[-1]) if ds.sizes.get("time") else float("nan")
    left = f"{pending:,.0f} pages still pending" if pending == pending else "pages still pending"
    return (
        f"not converged: {left} when the simulated time reached --max-time "
        f"({s['total-time'] / 1000:g} s); lost-pages not checked; try a higher --max-bandwidth "
        "or --downtime-limit, or --auto-converge on"
    )


def _cmd_simulate(args) -> int:
    from ..feedback import announce_compile
    from ..io import save_dataset
    from ..simulate import simulate, summary

    if args.compact and not args.json:
        raise FphintError("--compact: only with --json (it prints the JSON object on one line)")
    if args.out is not None:
        check_output_file(args.out)
    scenario = scenario_from_args(args)
    announce_compile(write=say)
    ds = simulate(scenario)
    if args.out is not None:
        save_dataset(ds, args.out)
    s = summary(ds)
    if args.json:
        sys.stdout.write(json.dumps(s, indent=None if args.compact else 2) + "\n")
    else:
        sys.stdout.write(summary_text(s))
    line = not_completed_line(s, ds)
    if line:
        say(line)
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
