"""Reading a guest's serial console log: markers of the init script and kernel trouble.

The guest's ``/init`` (see :mod:`fphint_kernels.qemu.guest`) prints lines starting with
``FPHINT-``; a heartbeat process prints ``FPHINT-HB <seq> ok|BAD bad_words=N`` every second
after checking a buffer of known content.  The kernel prints Oops/BUG/WARNING reports and
``list_del corruption`` messages on the same console.  :func:`check_health` turns a
destination's log into a verdict with the evidence lines.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# kernel messages that mean the guest is damaged (or at least suspicious, for WARNING)
_TROUBLE = [
    (
        "oops",
        re.compile(r"\bOops\b|general protection fault|unable to handle (?:kernel )?page", re.I),
    ),
    ("bug", re.compile(r"\bBUG[: ]|kernel BUG at")),
    ("list-corruption", re.compile(r"list_(?:del|add) corruption|list_del corruption", re.I)),
    ("bad-page", re.compile(r"BUG: Bad page (?:state|map)|Bad page state", re.I)),
    ("panic", re.compile(r"Kernel panic")),
    ("warning", re.compile(r"WARNING: CPU: \d+ PID: \d+")),
    ("soft-lockup", re.compile(r"soft lockup|rcu_sched self-detected stall|rcu: INFO", re.I)),
    ("segfault", re.compile(r"segfault at|traps: .* general protection")),
]
_HB = re.compile(r"FPHINT-HB (\d+) (ok|BAD) bad_words=(\d+)")
_TOUCH = re.compile(r"FPHINT-TOUCH (ok|BAD) bytes=(\d+) bad_words=(\d+)")
_FEAT = re.compile(r"FPHINT-FEATURES ([01]+|none)")
_AUTOINIT = re.compile(r"mem auto-init: .*heap alloc:(on|off)")
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")

VIRTIO_BALLOON_F_FREE_PAGE_HINT = 3


def clean(text: str) -> str:
    """Strip ANSI escapes and carriage returns from console output."""
    return _ANSI.sub("", text).replace("\r", "")


def trouble_lines(text: str) -> list[tuple[str, str]]:
    """Every kernel trouble line in a console log, as ``(kind, line)``."""
    out = []
    for line in clean(text).splitlines():
        for kind, rx in _TROUBLE:
            if rx.search(line):
                out.append((kind, line.strip()))
                break
    return out


def feature_bits(text: str) -> str | None:
    """The virtio feature string the guest printed (``FPHINT-FEATURES``), or None."""
    m = _FEAT.search(clean(text))
    return m.group(1) if m else None


def free_page_hint_negotiated(features: str | None) -> bool | None:
    """Whether feature bit 3 (VIRTIO_BALLOON_F_FREE_PAGE_HINT) is set in a sysfs feature string.

    Examples
    --------
    >>> free_page_hint_negotiated("0101000000")
    True
    >>> free_page_hint_negotiated("0100000000")
    False
    """
    if not features or features == "none" or len(features) <= VIRTIO_BALLOON_F_FREE_PAGE_HINT:
        return None
    return features[VIRTIO_BALLOON_F_FREE_PAGE_HINT] == "1"


def init_on_alloc_reported(text: str) -> bool | None:
    """``heap alloc:on/off`` from the kernel's ``mem auto-init`` boot line."""
    m = _AUTOINIT.search(clean(text))
    return None if m is None else m.group(1) == "on"


def heartbeats(text: str) -> list[tuple[int, bool, int]]:
    """All heartbeats ``(seq, ok, bad_words)`` in order."""
    return [(int(a), b == "ok", int(c)) for a, b, c in _HB.findall(clean(text))]


@dataclass
class Health:
    """Verdict on a destination guest after migration.

    Attributes
    ----------
    ok : bool
        Alive (answered the console probe or kept its heartbeat going), no trouble line,
        no heartbeat or touch test reporting corrupted memory.
    alive : bool
        The guest showed life after the migration completed.
    trouble : list of (kind, line)
        Kernel trouble lines found in the destination's log.
    evidence : list of str
        Short human-readable facts that support the verdict.
    """

    ok: bool
    alive: bool
    trouble: list = field(default_factory=list)
    evidence: list = field(default_factory=list)
    heartbeats_after: int = 0
    bad_heartbeats: int = 0
    touch: str = ""

    def counts(self) -> dict:
        """Number of trouble lines per kind."""
        out: dict[str, int] = {}
        for kind, _ in self.trouble:
            out[kind] = out.get(kind, 0) + 1
        return out


def check_health(dest_log: str, *, probe_answered: bool, probe_token: str | None = None) -> Health:
    """Judge a destination guest from its console log (only output produced after migration).

    Parameters
    ----------
    dest_log : str
        What the destination's serial console printed (it starts empty: the destination
        guest only runs after the migration completed).
    probe_answered : bool
        Whether the console probe (a shell command whose output the harness waited for)
        was answered.
    probe_token : str, optional
        The token the probe should have printed; if given it is also looked for in the log.

    Returns
    -------
    Health
    """
    text = clean(dest_log)
    trouble = trouble_lines(text)
    hb = heartbeats(text)
    bad_hb = sum(1 for _, ok, _ in hb if not ok)
    touches = _TOUCH.findall(text)
    touch = ""
    if touches:
        status, nbytes, bad = touches[-1]
        touch = f"{status} bytes={nbytes} bad_words={bad}"
    answered = probe_answered or (probe_token is not None and probe_token in text)
    alive = answered or len(hb) >= 2
    evidence = [
        f"console probe {'answered' if answered else 'NOT answered'}",
        f"{len(hb)} heartbeats after migration ({bad_hb} reporting corrupted memory)",
    ]
    if touch:
        evidence.append(f"post-migration allocation test: {touch}")
    for kind, line in trouble[:8]:
        evidence.append(f"{kind}: {line[:200]}")
    if len(trouble) > 8:
        evidence.append(f"... {len(trouble) - 8} more trouble lines")
    touch_bad = bool(touches) and touches[-1][0] != "ok"
    ok = alive and not trouble and bad_hb == 0 and not touch_bad
    return Health(
        ok=ok,
        alive=alive,
        trouble=trouble,
        evidence=evidence,
        heartbeats_after=len(hb),
        bad_heartbeats=bad_hb,
        touch=touch,
    )
