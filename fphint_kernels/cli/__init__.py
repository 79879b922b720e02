"""The ``fphint`` command.

Subcommands: ``simulate`` (one migration), ``reproduce`` (every published figure), ``calibrate``
(fit a host profile) and ``qemu`` (real QEMU migrations on this host), one module each in this
package.  Bad input gives a one-line message on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
import textwrap

from ..errors import FphintError
from . import calibrate, qemu, reproduce, simulate, sweep
from ._output import say
from .simulate import add_scenario_arguments, scenario_from_args

__all__ = [
    "COMMANDS", "HelpFormatter", "add_scenario_arguments", "build_parser", "main",
    "scenario_from_args", "say", "version_text",
]  # fmt: skip

#: The subcommands, in the order ``fphint --help`` lists them; each module has ``add_command``.
COMMANDS = (simulate, reproduce, calibrate, qemu, sweep)


DESCRIPTION = """\
fphint simulates QEMU/KVM pre-copy live migration of a virtual machine page by page, with and
without virtio-balloon free page hinting (VIRTIO_BALLOON_F_FREE_PAGE_HINT); it reproduces the
published figures of the patch series that introduced hinting (Wei Wang's v36/v37 cover letters,
2018) and compares itself with real QEMU migrations measured on this host."""

EPILOG = """\
examples:
  fphint simulate --memory 8G --max-bandwidth 10G --hint on    one migration, with hinting
  fphint reproduce                                              the published figures -> results/
  fphint COMMAND --help                                         a command's options and defaults

The first simulation of a process compiles the kernels (once, about 30 s; the command caches
them in ~/.cache/fphint/numba).  Bad input: a one-line message and exit code 2."""


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Help that shows every option's default (``on|off`` switches as on/off) unless its text
    already says it, and keeps the line breaks of descriptions and epilogs."""

    def __init__(self, prog, indent_increment=2, max_help_position=30, width=None):
        super().__init__(prog, indent_increment, max_help_position, width)

    def add_argument(self, action):
        super().add_argument(action)
        # argparse measures subcommand names without their extra indent: they would wrap
        subactions = getattr(action, "_get_subactions", lambda: [])()
        if subactions and action.help is not argparse.SUPPRESS:
            longest = max(len(self._format_action_invocation(a)) for a in subactions)
            need = longest + self._current_indent + 2 * self._indent_increment
            self._action_max_length = max(self._action_max_length, need)

    def _fill_text(self, text, width, indent):
        # paragraphs are filled; indented lines (examples) are kept as they are
        out = []
        for para in text.split("\n\n"):
            if para.startswith(" ") or "\n  " in para:
                out.append("\n".join(indent + line for line in para.splitlines()))
            else:
                out.append(textwrap.fill(" ".join(para.split()), width, initial_indent=indent,
                                         subsequent_indent=indent, break_on_hyphens=False))  # fmt: skip
        return "\n\n".join(out)

    def _split_lines(self, text, width):
        # option names such as --update-profiles are not broken at their hyphens
        return textwrap.wrap(" ".join(text.split()), width, break_on_hyphens=False)

    def _get_help_string(self, action):
        text = action.help or ""
        default = action.default
        if (
            "default" in text.lower()
            or default is argparse.SUPPRESS
            or default is None
            or default == []
            or action.nargs == 0  # flags (store_true, --help, --version)
            or not (action.option_strings or action.nargs == "?")
        ):
            return text
        if isinstance(default, bool):
            shown = "on" if default else "off"
        else:
            shown = str(default).replace("%", "%%")
        return f"{text} (default: {shown})"


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (no usage dump), exit code 2 and :class:`HelpFormatter`."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message):  # noqa: D401
        self.exit(2, f"{self.prog}: error: {message}\n")


def version_text() -> str:
    """``fphint --version``: the package's version, and those of Python and Numba."""
    import platform
    from importlib.metadata import PackageNotFoundError, version

    from .._version import __version__

    try:
        numba = version("numba")
    except PackageNotFoundError:  # pragma: no cover - numba is a dependency
        numba = "?"
    return f"fphint {__version__} (Python {platform.python_version()}, Numba {numba})"


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``fphint`` with every subcommand."""
    parser = _Parser(prog="fphint", description=DESCRIPTION, epilog=EPILOG)
    parser.add_argument("--version", action="version", version=version_text())
    sub = parser.add_subparsers(
        dest="command", metavar="COMMAND", parser_class=_Parser, title="commands"
    )
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


def _sigterm_as_interrupt():
    """SIGTERM stops a command the way Ctrl-C does (exit 130, nothing half-written); only in
    the main thread, where Python handles signals.  Returns the handler it replaced (None
    outside the main thread)."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return None

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    return signal.signal(signal.SIGTERM, interrupt)


def main(argv=None) -> int:
    """Run ``fphint`` with ``argv`` (default ``sys.argv[1:]``); returns the exit code.

    Exit codes: 0 done, 2 bad input (one line on stderr), 130 interrupted (SIGINT or SIGTERM:
    the run stops within about a second and no output file is left half-written).
    """
    args = None
    command = argv is None
    try:
        _enable_kernel_cache()
        parser = build_parser()
        argv = _glue_negative_values(list(sys.argv[1:] if argv is None else argv))
        args = parser.parse_args(argv)
        previous = _sigterm_as_interrupt()
        try:
            return int(args.func(args) or 0)
        finally:
            if previous is not None:  # main() called from Python: leave its handler as it was
                import signal

                signal.signal(signal.SIGTERM, previous)
    except FphintError as exc:
        name = f"fphint {args.command}" if args is not None else "fphint"
        line = (str(exc).splitlines() or [repr(exc)])[0]
        sys.stderr.write(f"{name}: error: {line}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write("fphint: interrupted\n")
        if command:
            # the command itself: leave now, without the interpreter's teardown (it takes
            # most of a second with Numba and xarray loaded); outputs are already whole or
            # absent and the worker threads stopped
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(130)
        return 130
