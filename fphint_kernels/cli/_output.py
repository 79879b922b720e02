"""What every ``fphint`` command prints besides its result: one-line messages on stderr."""

from __future__ import annotations

import sys


def say(message: str) -> None:
    """One line on stderr, ``fphint: <message>`` (e.g. before the kernels compile)."""
    sys.stderr.write(f"fphint: {message}\n")
    sys.stderr.flush()


def check_output_file(path: str, option: str = "--out") -> None:
    """Refuse, before any work, an output file that cannot be written: a folder, a folder
    that cannot be created, or one without write permission."""
    import os
    from pathlib import Path

    from ..errors import FphintError

    if not path or "\0" in path:
        raise FphintError(f"{option}: expected a file name, got {path!r}")
    p = Path(path)
    if p.is_dir():
        raise FphintError(f"{option}: {path} is a folder; give a file name")
    _check_creatable(p.parent, option)
    if p.exists() and not os.access(p, os.W_OK):
        raise FphintError(f"{option}: {path} is not writable")


def check_output_dir(path: str, option: str = "--out") -> None:
    """Refuse, before any work, an output folder that cannot be made or written."""
    from pathlib import Path

    from ..errors import FphintError

    if not path or "\0" in path:
        raise FphintError(f"{option}: expected a folder name, got {path!r}")
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise FphintError(f"{option}: {path} exists and is not a folder")
    _check_creatable(p, option)


def _check_creatable(folder, option: str) -> None:
    """``folder`` exists and is writable, or its nearest existing parent is."""
    import os

    from ..errors import FphintError

    probe = folder.resolve() if str(folder) else folder.cwd()
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise FphintError(f"{option}: {probe} is a file, not a folder")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise FphintError(f"{option}: cannot write in {probe} (permission denied)")
    import tempfile

    try:  # what os.access cannot tell: read-only mounts, /proc, full disks
        with tempfile.TemporaryFile(dir=probe, prefix=".fphint-probe-"):
            pass
    except OSError as exc:
        raise FphintError(f"{option}: cannot write in {probe} ({exc.strerror or exc})") from None
