"""What one measured migration does: :class:`RunConfig`, parsed from the user's strings, and the
QEMU command line it gives (:func:`qemu_args`, the same machine on both sides).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import FphintError
from ..units import parse_duration_ms, parse_fraction, parse_on_off, parse_size

#: Guest modes of the harness's init script (the ``fphint.mode=`` kernel parameter).
GUEST_MODES = ("idle", "fill-free", "dirty-loop")


@dataclass(frozen=True)
class RunConfig:
    """What one measured migration does (the scenario vocabulary of the simulator).

    Attributes
    ----------
    memory : int
        Guest RAM in bytes.
    mode : str
        ``idle``, ``fill-free`` or ``dirty-loop``.
    fill : float
        fill-free: share of RAM written then freed.
    dirty_bytes : int
        dirty-loop: bytes rewritten (one word per page) every ``dirty_interval_ms``.
    dirty_interval_ms : float
    hint : bool
        ``free-page-hint=on`` on both virtio-balloon devices.
    init_on_alloc : bool
        Guest kernel command line ``init_on_alloc=1``.
    downtime_limit_ms : float
    max_bandwidth : int
        Bytes/s (``migrate-set-parameters max-bandwidth``).
    vcpus : int
    max_time_s : float
        Cancel the migration (status ``not-converged``) after this long.
    settle_s : float
        Idle time between the guest's READY and the migrate command.
    """

    memory: int = 1 << 30
    mode: str = "idle"
    fill: float = 0.6
    dirty_bytes: int = 128 << 20
    dirty_interval_ms: float = 100.0
    hint: bool = True
    init_on_alloc: bool = False
    downtime_limit_ms: float = 300.0
    max_bandwidth: int = 100 << 30
    vcpus: int = 1
    max_time_s: float = 300.0
    settle_s: float = 2.0

    def __post_init__(self):
        if self.mode not in GUEST_MODES:
            raise FphintError(
                f"--mode: expected one of {', '.join(GUEST_MODES)}, got {self.mode!r}"
            )
        if not (64 << 20) <= self.memory <= (64 << 30):
            raise FphintError(f"--memory: expected 64M..64G, got {self.memory} bytes")
        if self.vcpus < 1 or self.vcpus > 64:
            raise FphintError(f"--vcpus: expected 1..64, got {self.vcpus}")
        if self.max_bandwidth <= 0:
            raise FphintError("--max-bandwidth must be positive")
        if self.max_time_s <= 0:
            raise FphintError("--max-time must be positive")
        if self.dirty_interval_ms <= 0:
            raise FphintError("--dirty-interval must be positive")

    @classmethod
    def from_strings(cls, **kw) -> RunConfig:
        """Build from user strings (``memory="2G"``, ``fill="60%"``, ``downtime_limit="300ms"``...)."""
        out: dict = {}
        for k, v in kw.items():
            if v is None:
                continue
            if k == "memory":
                out[k] = parse_size(v, what="--memory", default_unit="M")
            elif k == "fill":
                out[k] = parse_fraction(v, what="--fill")
            elif k == "dirty_bytes":
                out[k] = parse_size(v, what="--dirty-bytes")
            elif k in ("dirty_interval", "dirty_interval_ms"):
                out["dirty_interval_ms"] = parse_duration_ms(v, what="--dirty-interval")
            elif k in ("downtime_limit", "downtime_limit_ms"):
                out["downtime_limit_ms"] = parse_duration_ms(v, what="--downtime-limit")
            elif k == "max_bandwidth":
                out[k] = parse_size(v, what="--max-bandwidth")
            elif k in ("max_time", "max_time_s"):
                out["max_time_s"] = parse_duration_ms(v, what="--max-time") / 1000.0
            elif k == "settle":
                out["settle_s"] = parse_duration_ms(v, what="--settle") / 1000.0
            elif k in ("hint", "init_on_alloc"):
                out[k] = parse_on_off(v, what=f"--{k.replace('_', '-')}")
            elif k == "vcpus":
                out[k] = int(v)
            elif k in ("mode", "settle_s"):
                out[k] = v
            else:
                raise FphintError(f"unknown run option {k!r}")
        return cls(**out)

    def workload_options(self) -> dict:
        """The simulator's ``workload_options`` for this mode."""
        if self.mode == "fill-free":
            return {"fill": self.fill}
        if self.mode == "dirty-loop":
            return {"dirty_bytes": self.dirty_bytes, "dirty_interval_ms": self.dirty_interval_ms}
        return {}

    def key(self) -> str:
        """A short file-name-safe identifier of the configuration."""
        mem = f"{self.memory >> 20}M" if self.memory % (1 << 30) else f"{self.memory >> 30}G"
        parts = [mem, self.mode]
        if self.mode == "fill-free":
            parts.append(f"fill{round(self.fill * 100)}")
        if self.mode == "dirty-loop":
            parts.append(f"d{self.dirty_bytes >> 20}M-{self.dirty_interval_ms:g}ms")
        parts += [
            "hint" if self.hint else "nohint",
            f"ioa{int(self.init_on_alloc)}",
            f"dl{self.downtime_limit_ms:g}",
            f"smp{self.vcpus}",
        ]
        return "-".join(parts)


def qemu_args(guest, cfg: RunConfig, accel: str, *, incoming: bool) -> list[str]:
    """Command-line arguments of one side (the same machine on both sides)."""
    append = [
        "console=ttyS0",
        f"init_on_alloc={int(cfg.init_on_alloc)}",
        "panic=0",
        f"fphint.mode={cfg.mode}",
        f"fphint.fill={cfg.fill:.4f}",
        f"fphint.dirty_bytes={cfg.dirty_bytes}",
        f"fphint.dirty_ms={int(round(cfg.dirty_interval_ms))}",
    ]
    accel_args = (
        ["-accel", "kvm", "-cpu", "host"]
        if accel == "kvm"
        else ["-accel", "tcg,thread=multi", "-cpu", "max"]
    )
    args = [
        "-nodefaults",
        "-no-user-config",
        "-display",
        "none",
        "-machine",
        "pc",
        *accel_args,
        "-smp",
        str(cfg.vcpus),
        "-m",
        f"{cfg.memory >> 20}M",
        "-kernel",
        str(guest.kernel),
        "-initrd",
        str(guest.initrd),
        "-append",
        " ".join(append),
        "-object",
        "iothread,id=io0",
        "-device",
        f"virtio-balloon-pci,id=balloon0,free-page-hint={'on' if cfg.hint else 'off'},iothread=io0",
        "-no-reboot",
    ]
    if incoming:
        args += ["-incoming", "defer"]
    return args
