"""The ``fphint`` command.

Subcommands: ``simulate`` (one migration), ``reproduce`` (every published figure), ``calibrate``
(fit a host profile) and ``qemu`` (real QEMU migrations on this host), one module each in this
package.  Bad input gives a one-line message on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys

from ..errors import FphintError
from . import calibrate, qemu, reproduce, simulate, sweep
from .simulate import add_scenario_arguments, scenario_from_args

__all__ = ["COMMANDS", "add_scenario_arguments", "build_parser", "main", "scenario_from_args"]

#: The subcommands, in the order ``fphint --help`` lists them; each module has ``add_command``.
COMMANDS = (simulate, reproduce, calibrate, qemu, sweep)


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (no usage dump) and exit code 2."""

    def error(self, message):  # noqa: D401
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``fphint`` with every subcommand."""
    parser = _Parser(prog="fphint", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for command in COMMANDS:
        command.add_command(sub)
    return parser


def _glue_negative_values(argv: list[str]) -> list[str]:
    """``--memory -1G`` becomes ``--memory=-1G`` for the options of
    :data:`simulate.VALUE_OPTIONS`, so that the value reaches validation and gets a proper
    message instead of argparse's "expected one argument".

    Examples
    --------
    >>> _glue_negative_values(["simulate", "--memory", "-1G", "--hint", "on"])
    ['simulate', '--memory=-1G', '--hint', 'on']
    """
    out = []
    i = 0
    while i < len(argv):
        a = argv[i]
        if (
            a in simulate.VALUE_OPTIONS
            and i + 1 < len(argv)
            and argv[i + 1].startswith("-")
            and not argv[i + 1].startswith("--")
        ):
            out.append(f"{a}={argv[i + 1]}")
            i += 2
            continue
        out.append(a)
        i += 1
    return out


def _enable_kernel_cache() -> None:
    """The command caches compiled kernels (a cold compile takes tens of seconds); the Python
    API leaves that to ``FPHINT_NUMBA_CACHE``.  ``FPHINT_NUMBA_CACHE=0`` turns it off here too."""
    if os.environ.get("FPHINT_NUMBA_CACHE", "1") == "1":
        from .._numba import enable_cache

        enable_cache()


def main(argv=None) -> int:
    """Run ``fphint`` with ``argv`` (default ``sys.argv[1:]``); returns the exit code."""
    _enable_kernel_cache()
    parser = build_parser()
    argv = _glue_negative_values(list(sys.argv[1:] if argv is None else argv))
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except FphintError as exc:
        sys.stderr.write(f"fphint {args.command}: error: {exc}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write("fphint: interrupted\n")
        return 130
