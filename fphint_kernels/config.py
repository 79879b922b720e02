"""Validated, frozen scenario dataclasses: host profiles, guests, workloads.

A :class:`Scenario` is everything one simulated migration depends on.  It is immutable and
hashable; two equal scenarios give identical :func:`fphint_kernels.simulate` results.
Three kinds of data file describe what a scenario runs on, each with its provenance:

* a host profile (``data/profiles/*.json``): the machine and its QEMU, what the migration
  thread and the destination cost, how many CPUs everyone shares;
* a guest (``data/guests/*.json``): what its memory holds when migration starts and how fast its
  vCPUs do the work migration asks of them (hinting, zeroing, taking write faults);
* a workload (``data/workloads/*.json``): what the guest runs, and the memory that adds.

Nothing in this module holds a published result.
"""

from __future__ import annotations

import json
import math
import numbers
import operator
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from types import MappingProxyType

import numpy as np

from .errors import ScenarioError
from .kernels.layout import MAX_ORDER, PAGE_SIZE
from .units import parse_duration_ms, parse_fraction, parse_size

#: Protocol-breaking switches, used to show that the nothing-lost check is not vacuous.
FAULTS = {
    "hint-outside-start": "the host applies hints whatever its status (QEMU checks S_START)",
    "stale-hint-after-sync": "hints still in flight at a bitmap sync are applied after it",
    "late-dirty-log": "dirty logging starts after hinting (QEMU starts it before the first sync)",
    "sync-no-rearm": "a sync clears dirty bits without re-arming write tracking (QEMU TCG bug "
    "fixed in 9.0)",
}
HINT_RELEASE = {
    "done": "Linux 4.20 without DEFLATE_ON_OOM: hinted blocks are held until the host says DONE",
    "shrinker": "Linux 5.7+: the shrinker gives hinted blocks back under memory pressure",
    "after-pass": "v36 patch: blocks are freed as soon as a reporting pass ends",
}
PAGE_POISON = ("off", "zero", "pattern")
#: Hinting designs (``Scenario.hinting``).
HINTING = {
    "none": "no hinting: every page is sent (legacy)",
    "fph": "free page hinting as merged (Linux 4.20, QEMU 4.0): the guest allocates free blocks, "
    "holds them and reports them; the host skips them",
    "report-in-place": "the series up to v34: the guest walks its free lists and reports free "
    "blocks without taking them; they stay usable and dirty logging catches later writes",
    "reporting": "free page reporting (Linux 5.7, QEMU 5.1): order-9 blocks reported in batches "
    "every 2 s and discarded by the host; not migration-aware, nothing is skipped",
    "oracle": "every page free at the moment it would be sent is skipped, at no cost: the upper "
    "bound of what hinting can buy",
}
#: Block order of each design when ``hint_order`` is not given.
DEFAULT_BLOCK_ORDER = {"fph": MAX_ORDER, "report-in-place": MAX_ORDER, "reporting": 9}
#: What the device says when a migration is cancelled or fails (``Scenario.cancel_cleanup``).
CANCEL_CLEANUP = {
    "qemu-4.0": "CLEANUP stops the hint pass: the guest keeps its hinted blocks until the next "
    "command (QEMU 4.0 to 5.0)",
    "qemu-5.1": "CLEANUP signals DONE: the guest gives its blocks back (QEMU 5.1, commit "
    "dd8eeb9671fc)",
}


def data_dir() -> Path:
    """Folder holding ``profiles/``, ``workloads/``, ``published/`` (``FPHINT_DATA`` overrides)."""
    env = os.environ.get("FPHINT_DATA")
    if env:
        return Path(env)
    here = Path(__file__).resolve().parent
    for cand in (here.parent / "data", here / "data"):
        if (cand / "profiles").is_dir():
            return cand
    return here.parent / "data"


def _names(sub: str) -> list[str]:
    d = data_dir() / sub
    return sorted(p.stem for p in d.glob("*.json")) if d.is_dir() else []


def available_profiles() -> list[str]:
    """Names of the host profiles in ``data/profiles/``."""
    return _names("profiles")


def available_workloads() -> list[str]:
    """Names of the workloads in ``data/workloads/``."""
    return _names("workloads")


def available_guests() -> list[str]:
    """Names of the guests in ``data/guests/``."""
    return _names("guests")


#: names of data files: letters, digits, ``.``, ``_`` and ``-``, at most 64 characters
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def _load_json(sub: str, name: str, kind: str) -> dict:
    """The JSON object of ``data/<sub>/<name>.json`` (or of a file ``name`` ending in .json)."""
    if not isinstance(name, str):
        raise ScenarioError(f"{kind}: expected a name, got {name!r}")
    if name.endswith(".json") and ("/" in name or os.sep in name):
        path = Path(name)  # a file of one's own
        if not path.is_file():
            raise ScenarioError(f"{kind}: no such file {_short(name)}")
    else:
        if not _NAME_RE.fullmatch(name):
            raise ScenarioError(
                f"{kind}: {_short(name)} is not a name (letters, digits, '.', '_', '-'; at most "
                "64 characters) nor a path to a .json file"
            )
        path = data_dir() / sub / f"{name}.json"
        if not path.is_file():
            known = ", ".join(_names(sub)) or "none"
            raise ScenarioError(f"unknown {kind} {name!r} (known: {known})")
    try:
        with open(path, encoding="utf-8") as fh:
            raw = json.load(fh, parse_constant=_no_constant)
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        why = exc.strerror if isinstance(exc, OSError) else str(exc).splitlines()[0][:80]
        raise ScenarioError(f"{kind} {_short(name)}: cannot read {path.name}: {why}") from None
    if not isinstance(raw, dict):
        raise ScenarioError(
            f"{kind} {_short(name)}: {path.name} must hold a JSON object, not a "
            f"{type(raw).__name__}"
        )
    params = raw.get("params", {})
    if not isinstance(params, dict):
        raise ScenarioError(f"{kind} {_short(name)}: 'params' must be a JSON object")
    return raw


def _no_constant(token):
    raise ValueError(f"{token} is not a number JSON allows")


def _short(value, limit: int = 40) -> str:
    """``repr`` of a value, cut to ``limit`` characters (one-line messages)."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _names_text(names) -> str:
    return ", ".join(_short(n, 30) for n in sorted(names, key=str))


def _options(value, what: str) -> dict:
    """A dict of overrides (``workload_options``, ``guest_options``): str keys."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ScenarioError(f"{what}: expected a dict of name: value, got {_short(value)}")
    out = {}
    for k, v in value.items():
        if not isinstance(k, str):
            raise ScenarioError(f"{what}: parameter names are strings, got {_short(k)}")
        out[k] = v
    return out


# --------------------------------------------------------------------------------------------
# Host profile
# --------------------------------------------------------------------------------------------

#: Host-profile parameters: name -> (unit, description).  Costs are times on the profile's host.
PROFILE_PARAMS = {
    "zero_page_ns": (
        "ns",
        "migration-thread CPU time to test one zero page and send its 9-byte record",
    ),
    "normal_page_ns": (
        "ns",
        "migration-thread CPU time to read and queue one normal page (4104 bytes)",
    ),
    "link_bytes_per_s": ("B/s", "wire rate of the migration stream"),
    "scan_word_ns": ("ns", "find_next_bit cost per 64-bit bitmap word"),
    "sync_ns_per_page": ("ns", "bitmap sync (KVM_GET_DIRTY_LOG + merge) per guest page"),
    "setup_fixed_ms": ("ms", "fixed part of setup-time"),
    "setup_ns_per_page": ("ns", "setup cost per guest page (bitmap allocation, dirty-log start)"),
    "switchover_fixed_ms": ("ms", "fixed part of the downtime (device state, return path)"),
    "hint_host_latency_ms": ("ms", "delay before the host iothread sees a queued element"),
    "cpu_speed": (
        "1",
        "relative speed of the testbed: CPU costs are divided by it, guest rates multiplied by it",
    ),
}

#: Host-profile parameters that may be left out: name -> (unit, default, description).
#: Their defaults are a host with CPUs to spare and a destination that costs nothing, running
#: QEMU 4.0's migration thread: what the 2018 testbed of the thread is taken to be.
PROFILE_OPTIONAL = {
    "host_cpus": ("CPUs", 0.0, "CPUs both QEMUs and the guest share (0: more than they use)"),
    "background_threads": ("threads", 0.0, "busy threads of other work on the host"),
    "dst_zero_page_ns": ("ns", 0.0, "destination CPU time per zero page received"),
    "dst_normal_page_ns": ("ns", 0.0, "destination CPU time per normal page (copy into RAM)"),
    "first_touch_us": (
        "us",
        0.0,
        "host time to allocate and zero one region of guest RAM written for the first time",
    ),
    "host_page_kib": ("KiB", 2048.0, "size of that region (2048: transparent huge pages)"),
    "stream_buffer_bytes": (
        "bytes",
        0.0,
        "bytes in flight between the QEMUs before the sender blocks (0: no limit)",
    ),
    "bitmap_lock": (
        "1",
        0.0,
        "how the migration thread holds the dirty bitmap's lock: 0 around each page (QEMU "
        "4.0-6.0), 1 across each ram_save_iterate slice (QEMU 6.1+)",
    ),
    "bitmap_lock_ns": ("ns", 0.0, "cost of the per-page lock for every page sent (lock 0)"),
    "hint_apply_us": ("us", 0.0, "iothread time to apply one hinted block"),
    "boundary_hints": (
        "blocks",
        0.0,
        "mean hinted blocks applied at a slice end where the sender does not block (lock 1)",
    ),
    "boundary_drain_p": (
        "1",
        0.0,
        "chance that the iothread drains its queue at such a slice end anyway (lock 1)",
    ),
    "flush_wait_p": (
        "1",
        1.0,
        "chance that the iothread gets the lock at a slice end with hints queued and drains "
        "its queue, while the sender's flush into a full stream waits for room (lock 1)",
    ),
    "flush_wait_p_after": (
        "1",
        1.0,
        "the same chance at the slice end that follows one where the queue was not drained "
        "(lock 1)",
    ),
    "setup_jitter_ms": ("ms", 0.0, "mean of the random (exponential) extra setup time"),
}


@dataclass(frozen=True)
class HostProfile:
    """Per-page and fixed costs of one host; see ``PROFILE_PARAMS`` for the fields."""

    name: str
    params: MappingProxyType
    provenance: MappingProxyType = field(default_factory=lambda: MappingProxyType({}))

    @classmethod
    def load(cls, name: str) -> HostProfile:
        raw = _load_json("profiles", name, "profile")
        return cls.from_dict(raw, name=name)

    @classmethod
    def from_dict(cls, raw: dict, name: str | None = None) -> HostProfile:
        if not isinstance(raw, Mapping):
            raise ScenarioError(f"profile: expected a JSON object, got {_short(raw)}")
        label = name or raw.get("name")
        params = raw.get("params", raw)
        if not isinstance(params, Mapping):
            raise ScenarioError(f"profile {label!r}: 'params' must be a JSON object")
        params = {k: v for k, v in params.items() if k not in ("name", "provenance")}
        missing = [k for k in PROFILE_PARAMS if k not in params]
        if missing:
            raise ScenarioError(f"profile {label!r} lacks {', '.join(missing)}")
        unknown = sorted(set(params) - set(PROFILE_PARAMS) - set(PROFILE_OPTIONAL))
        if unknown:
            raise ScenarioError(
                f"profile {label!r}: unknown parameter(s) {_names_text(unknown)} "
                f"(known: see PROFILE_PARAMS)"
            )
        out = {}
        for k in (*PROFILE_PARAMS, *PROFILE_OPTIONAL):
            raw_v = params.get(k, PROFILE_OPTIONAL[k][1] if k in PROFILE_OPTIONAL else None)
            v = _number(raw_v, f"profile parameter {k}")
            if not 0 <= v <= MAX_PARAM:
                raise ScenarioError(
                    f"profile parameter {k}: a number from 0 to {MAX_PARAM:g}, got {_short(raw_v)}"
                )
            out[k] = v
        if not 1e-3 <= out["cpu_speed"] <= 1e3:
            raise ScenarioError(
                f"profile parameter cpu_speed: from 0.001 to 1000, got {out['cpu_speed']:g}"
            )
        if not out["link_bytes_per_s"] >= 1e3:
            raise ScenarioError("profile parameter link_bytes_per_s: at least 1000 bytes/s")
        if out["bitmap_lock"] not in (0.0, 1.0):
            raise ScenarioError("profile parameter bitmap_lock: 0 (per page) or 1 (per slice)")
        if out["host_page_kib"] not in (4.0, 2048.0):
            raise ScenarioError("profile parameter host_page_kib: 4 or 2048")
        for k in ("boundary_drain_p", "flush_wait_p", "flush_wait_p_after"):
            if out[k] > 1:
                raise ScenarioError(f"profile parameter {k}: a probability, at most 1")
        return cls(
            name=name or raw.get("name", "custom"),
            params=MappingProxyType(out),
            provenance=MappingProxyType(_mapping(raw.get("provenance", {}))),
        )

    def with_params(self, **kw) -> HostProfile:
        """A copy with some parameters replaced (used by calibration)."""
        p = dict(self.params)
        for k, v in kw.items():
            if k not in PROFILE_PARAMS and k not in PROFILE_OPTIONAL:
                raise ScenarioError(f"unknown profile parameter {k!r}")
            p[k] = float(v)
        return HostProfile.from_dict({"params": p}, name=self.name)


# --------------------------------------------------------------------------------------------
# Guests
# --------------------------------------------------------------------------------------------

#: Guest parameters: name -> (kind, default, description).  kind: size|float|ms
GUEST_PARAMS = {
    "reserved_low": ("size", "16M", "memory below the buddy allocator (kernel image, firmware)"),
    "low_span": (
        "size",
        "0",
        "memory above reserved_low kept by the boot (early allocations), not in the allocator",
    ),
    "low_used": ("size", "0", "how much of low_span holds data (1 MiB runs at random places)"),
    "kaslr_image": (
        "size",
        "0",
        "a kernel image the boot places at a random 2 MiB-aligned address (physical KASLR), "
        "drawn from the seed",
    ),
    "kaslr_bss": (
        "size",
        "0",
        "memory right after the kernel image that the boot keeps and leaves zero (bss, brk): "
        "not in the allocator, so never hinted",
    ),
    "swiotlb": (
        "size",
        "0",
        "the bounce buffer the boot reserves at the top of memory below 4 GiB when RAM extends "
        "above 4 GiB (swiotlb_init, memblock_alloc_low; x86 turns it on when max_pfn > "
        "MAX_DMA32_PFN): zero, not in the allocator, so never hinted",
    ),
    "memmap_bytes_per_page": (
        "float",
        64.0,
        "kernel data per page of RAM (struct page, 64 bytes), kept at the top of RAM",
    ),
    "base_used": ("size", "128M", "memory in use by the kernel and its programs after boot"),
    "pagecache_initial": ("size", "0", "page cache after boot"),
    "touched_free": ("size", "0", "free memory that still holds old data after boot"),
    "boot_free_at": (
        "size",
        "0",
        "RAM offset where the guest's touched_free lies: data the boot wrote and freed at a "
        "place of its own in every boot (physical KASLR keeps the kernel image off it); 0: "
        "the allocator hands it out like other memory",
    ),
    "boot_free_span": (
        "size",
        "0",
        "the boot's freed data (boot_free_at) lies in 1 MiB runs spread evenly over this much "
        "memory from boot_free_at (0: one contiguous range)",
    ),
    "alloc_low_first": (
        "float",
        0.0,
        "1: the page allocator hands out the lowest free blocks first (Linux 5.10+, boot memory "
        "freed to the tail of the free lists); 0: the highest first (older kernels)",
    ),
    "normal_zone_first": (
        "float",
        0.0,
        "1: a guest whose RAM QEMU's pc machine splits (3.5 GiB and more: 3 GiB below 4 GiB, the "
        "rest above) has a Normal zone from RAM offset 3 GiB: its allocator takes memory there "
        "first (the boot's early allocations, low_span, lie at its start), then below",
    ),
    "freed_pcp_p": (
        "float",
        0.0,
        "chance that the freeing CPU's per-cpu list is left full (pcp->high pages, the zone's "
        "low watermark per CPU) after the workload freed its touched memory: those last freed "
        "pages stay out of the allocator, holding their data, and are never hinted; drawn "
        "from the seed",
    ),
    "thp": (
        "float",
        0.0,
        "1: transparent huge pages are on in the guest, so khugepaged raises min_free_kbytes to "
        "11 pageblocks per zone (mm/khugepaged.c) and the hint worker leaves that much free",
    ),
    "hint_block_us": ("float", 30.0, "vCPU time (us) to allocate and report one 4 MiB block"),
    "hint_start_ms": ("ms", 1.0, "least latency from a new command id to the guest's START"),
    "hint_start_jitter_ms": (
        "float",
        0.0,
        "mean (ms) of the random (exponential) extra START latency",
    ),
    "zero_fill_ns_per_page": ("float", 400.0, "vCPU time (ns) to zero one page (init_on_alloc)"),
    "write_fault_ns": (
        "float",
        2000.0,
        "vCPU time (ns) of a write to a page write-protected for dirty logging",
    ),
    "store_ns_per_page": (
        "float",
        400.0,
        "vCPU time (ns) of the dirty loop's write to a page that needs no fault",
    ),
}


def _documented_params(table: dict, kind: str, label: str, given: dict, overrides: dict) -> dict:
    """The parameters of a guest or workload: ``table``'s defaults, then the file's
    (``given``), then ``overrides``; every name known, every value parsed by its kind."""
    params = {k: v[1] for k, v in table.items()}
    params.update(given)
    params.update(overrides)
    unknown = sorted(set(params) - set(table))
    if unknown:
        raise ScenarioError(
            f"{kind} {_short(label)}: unknown parameter(s) {_names_text(unknown)} "
            f"(known: {', '.join(table)})"
        )
    return {k: _parse_param(table, kind, k, v) for k, v in params.items()}


@dataclass(frozen=True)
class Guest:
    """A guest: documented parameters from ``data/guests/NAME.json`` (see ``GUEST_PARAMS``)."""

    name: str
    params: MappingProxyType
    sources: MappingProxyType = field(default_factory=lambda: MappingProxyType({}))
    description: str = ""

    @classmethod
    def load(cls, name: str, overrides: dict | None = None) -> Guest:
        raw = _load_json("guests", name, "guest")
        return cls.from_dict(raw, name=name, overrides=overrides)

    @classmethod
    def from_dict(cls, raw: dict, name: str | None = None, overrides: dict | None = None):
        if not isinstance(raw, Mapping):
            raise ScenarioError(f"guest: expected a JSON object, got {_short(raw)}")
        label = name or raw.get("name", "custom")
        params = _documented_params(
            GUEST_PARAMS, "guest", label,
            _options(raw.get("params", {}), f"guest {label!r} params"),
            _options(overrides, "guest_options"),
        )  # fmt: skip
        return cls(
            name=label,
            params=MappingProxyType(params),
            sources=MappingProxyType(_mapping(raw.get("sources", {}))),
            description=str(raw.get("description", "")),
        )

    def with_params(self, **kw) -> Guest:
        """A copy with some parameters replaced (used by calibration)."""
        return Guest.from_dict({"params": dict(self.params)}, name=self.name, overrides=kw)


# --------------------------------------------------------------------------------------------
# Workloads
# --------------------------------------------------------------------------------------------

#: Workload parameters: name -> (kind, default, description).  kind: size|rate|count|ms|frac|float
#: ``base_used``, ``pagecache_initial`` and ``touched_free`` are added to the guest's own.
WORKLOAD_PARAMS = {
    "base_used": ("size", "0", "memory the workload's programs use at migration start"),
    "touched_free": ("size", "0", "free memory the workload left old data in"),
    "fill": (
        "frac",
        0.0,
        "fraction of RAM filled with data and freed before migration (fill-free)",
    ),
    "pagecache_initial": ("size", "0", "page cache the workload has read or written"),
    "pagecache_rate": ("size", "0", "new page cache written per second (bytes/s)"),
    "pagecache_order": ("count", 4, "buddy order of one page-cache allocation"),
    "background_dirty_pages_per_s": ("float", 100.0, "pages/s written by kernel and daemons"),
    "background_hot": ("size", "8M", "the region of base memory those writes land in"),
    "jobs": ("count", 0, "concurrent short-lived processes (make -jN compiler jobs)"),
    "proc_rss_mean": ("size", "64M", "mean peak anonymous memory of one process (lognormal)"),
    "proc_rss_sigma": ("float", 0.6, "sigma of log(process RSS)"),
    "proc_lifetime_ms": ("ms", 1000.0, "mean process lifetime (exponential)"),
    "proc_alloc_frac": ("frac", 0.3, "share of its life over which a process faults its memory in"),
    "proc_rewrite_per_s": ("float", 1.0, "share of its RSS a process rewrites per second"),
    "anon_order": ("count", 0, "buddy order of one anonymous allocation"),
    "dirty_bytes": ("size", "0", "dirty-loop: buffer rewritten every dirty_interval"),
    "dirty_interval_ms": ("ms", 100.0, "dirty-loop: period of one full rewrite"),
    "intensity": (
        "float",
        1.0,
        "multiplies every rate of the workload (jobs, dirtying, page cache)",
    ),
}


@dataclass(frozen=True)
class Workload:
    """A guest workload: documented parameters from ``data/workloads/NAME.json``."""

    name: str
    params: MappingProxyType
    sources: MappingProxyType = field(default_factory=lambda: MappingProxyType({}))
    description: str = ""

    @classmethod
    def load(cls, name: str, overrides: dict | None = None) -> Workload:
        raw = _load_json("workloads", name, "workload")
        overrides = _options(overrides, "workload_options")
        parsed = _documented_params(
            WORKLOAD_PARAMS, "workload", name, raw.get("params", {}), overrides
        )
        _check_applies(name, overrides, parsed)
        return cls(
            name=name,
            params=MappingProxyType(parsed),
            sources=MappingProxyType(_mapping(raw.get("sources", {}))),
            description=str(raw.get("description", "")),
        )

    def min_memory(self, guest: Guest) -> int:
        """Bytes this workload needs in ``guest`` (validation: the guest must be larger)."""
        p, g = self.params, guest.params
        procs = p["jobs"] * p["proc_rss_mean"] * 2.0
        # page cache is reclaimable and touched memory is free: neither is needed
        used = g["reserved_low"] + g["low_span"] + g["kaslr_image"] + g["kaslr_bss"]
        used += g["base_used"]
        used += p["base_used"]
        return int(used + procs + p["dirty_bytes"] + (16 << 20))


#: the largest value of any numeric parameter of a profile, guest or workload
MAX_PARAM = 1e12
#: tighter bounds of some parameters: name -> (low, high)
PARAM_BOUNDS = {
    "intensity": (0.0, 100.0),
    "proc_rss_sigma": (0.0, 3.0),
    "jobs": (0.0, 256.0),
    "background_dirty_pages_per_s": (0.0, 1e7),
    "proc_rewrite_per_s": (0.0, 1e4),
    "memmap_bytes_per_page": (0.0, 4096.0),
    "alloc_low_first": (0.0, 1.0),
    "thp": (0.0, 1.0),
    "normal_zone_first": (0.0, 1.0),
    "freed_pcp_p": (0.0, 1.0),
}
#: workload parameters that do nothing unless another one is set: name -> (that one, why)
APPLIES_WITH = {
    **{
        k: ("jobs", "the workload runs no processes (jobs=0)")
        for k in (
            "proc_rss_mean",
            "proc_rss_sigma",
            "proc_lifetime_ms",
            "proc_alloc_frac",
            "proc_rewrite_per_s",
            "anon_order",
        )
    },  # fmt: skip
    "dirty_interval_ms": ("dirty_bytes", "the workload has no dirty loop (dirty_bytes=0)"),
    "background_hot": (
        "background_dirty_pages_per_s",
        "the workload has no background writes (background_dirty_pages_per_s=0)",
    ),
}


def _check_applies(name: str, overrides: dict, params: dict) -> None:
    """Refuse overrides that cannot change the run of workload ``name``."""
    for key in overrides:
        if key in APPLIES_WITH:
            need, why = APPLIES_WITH[key]
            if params[need] == 0:
                raise ScenarioError(
                    f"workload option {key} does not apply to the {name} workload: {why}; "
                    f"set {need} too"
                )


def _mapping(value) -> dict:
    return dict(value) if isinstance(value, Mapping) else {}


def _number(value, what: str) -> float:
    """A finite float from a number or a numeric string (numpy scalars too; not bools)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (numbers.Real, str)):
        raise ScenarioError(f"{what}: expected a number, got {_short(value)}")
    try:
        v = float(value)
    except (TypeError, ValueError, OverflowError):
        raise ScenarioError(f"{what}: expected a number, got {_short(value)}") from None
    if not math.isfinite(v):
        raise ScenarioError(f"{what}: must be a finite number, got {_short(value)}")
    return v


def _parse_param(table: dict, what_kind: str, key: str, value):
    kind = table[key][0]
    what = f"{what_kind} parameter {key}"
    lo, hi = PARAM_BOUNDS.get(key, (0.0, MAX_PARAM))
    if kind == "size":
        v = float(parse_size(value, what=what))
        if v > 1 << 50:
            raise ScenarioError(f"{what}: at most 1P, got {_short(value)}")
        return v
    if kind == "ms":
        v = float(parse_duration_ms(value, what=what))
        if v <= 0 or v > 86_400_000:
            raise ScenarioError(f"{what}: must be > 0 and at most 1 day, got {_short(value)}")
        return v
    if kind == "frac":
        return parse_fraction(value, what=what)
    v = _number(value, what)
    if not lo <= v <= hi:
        raise ScenarioError(f"{what}: a number from {lo:g} to {hi:g}, got {_short(value)}")
    if kind == "count":
        if v != int(v):
            raise ScenarioError(f"{what}: must be a whole number, got {_short(value)}")
        if key.endswith("order") and v > MAX_ORDER:
            raise ScenarioError(f"{what}: a buddy order is at most {MAX_ORDER}")
    return v


# --------------------------------------------------------------------------------------------
# Scenario
# --------------------------------------------------------------------------------------------

#: the longest simulated time (and downtime limit) a scenario may ask for: one day
MAX_TIME_MS = 86_400_000.0


def _whole(value, what: str, lo: int, hi: int) -> int:
    """A whole number in [lo, hi] (Python or numpy integers; not bools, not floats)."""
    if isinstance(value, (bool, np.bool_)):
        raise ScenarioError(f"{what}: a whole number from {lo} to {hi}, got {value!r}")
    try:
        v = operator.index(value)
    except TypeError:
        raise ScenarioError(
            f"{what}: a whole number from {lo} to {hi}, got {_short(value)}"
        ) from None
    if not lo <= v <= hi:
        raise ScenarioError(f"{what}: a whole number from {lo} to {hi}, got {v}")
    return int(v)


#: Scenario fields that Datasets written before they existed lack.
OPTIONAL_ATTRS = (
    "hinting",
    "hint_order",
    "init_on_free",
    "poison_val",
    "cancel_at",
    "cancel_cleanup",
)


@dataclass(frozen=True)
class Scenario:
    """One migration to simulate.

    Sizes, bandwidths and durations may be given as strings (``"8G"``, ``"100G"``, ``"400ms"``)
    and are normalised on construction: ``memory`` in bytes, ``max_bandwidth`` in bytes/s,
    ``downtime_limit`` and ``max_time`` in milliseconds.

    Parameters
    ----------
    memory : int or str
        Guest RAM: a number of bytes, or a string such as ``"8G"`` (a string holding a bare
        number means MiB, like ``qemu-system -m``).
    workload : str
        Name of a workload in ``data/workloads/`` (``idle``, ``kernel-build``, ``fill-free``,
        ``dirty-loop``).
    workload_options : dict
        Overrides of workload parameters (e.g. ``{"fill": 0.6}``), see ``WORKLOAD_PARAMS``.
    downtime_limit : float or str
        QEMU ``downtime-limit`` (default 300 ms, QEMU's default).
    max_bandwidth : float or str
        QEMU ``max-bandwidth`` in bytes/s (``migrate_set_speed``); ``100G`` is 100 GiB/s.
    hint : bool
        Shorthand for ``hinting``: True is ``"fph"``, False ``"none"`` (when ``hinting`` is not
        given).  Normalised to ``hinting == "fph"``.
    init_on_alloc : bool
        Guest kernel zeroes every allocation (``init_on_alloc=1``).
    page_poison : {"off", "zero", "pattern"}
        Guest page poisoning: freed pages are filled with zeros or with 0xaa.
    hint_release : {"done", "shrinker", "after-pass"}
        When the guest gives hinted blocks back, see ``HINT_RELEASE``.
    auto_converge : bool
        QEMU auto-converge (throttle 20 % then +10 % steps).
    vcpus : int
        Guest vCPUs (the hint worker runs on one of them).
    profile : str
        Host profile name in ``data/profiles/``.
    guest : str
        Guest name in ``data/guests/`` (``testbed-2018``: the guest of the thread's testbed;
        ``busybox-tcg``: the real-QEMU harness's guest under TCG).
    guest_options : dict
        Overrides of guest parameters, see ``GUEST_PARAMS``.
    seed : int
        Seed of every random draw of the run.
    faults : frozenset of str
        Protocol-breaking switches from ``FAULTS``.
    max_time : float or str
        Simulated time after which a migration that has not converged is reported
        ``not-converged``.
    hinting : {"none", "fph", "report-in-place", "reporting", "oracle"}, optional
        The hinting design, see ``HINTING`` (default: from ``hint``).
    hint_order : int, optional
        Buddy order of the blocks hinted or reported (default: 10, i.e. 4 MiB, for ``fph`` and
        ``report-in-place``; 9, pageblock_order, for ``reporting``).
    init_on_free : bool
        Guest kernel zeroes every page it frees (``init_on_free=1``); it then relies on free
        pages being zero (allocations are not zeroed again).
    poison_val : bool
        The device offers ``VIRTIO_BALLOON_F_PAGE_POISON`` and so knows the guest's poison value
        (QEMU 5.1+ ``page-poison=on``).  Only free page reporting looks at it: QEMU does not
        discard when the value is not zero, and Linux (5.9+) turns reporting off when the guest
        poisons or zeroes freed pages and the device does not know the value.
    cancel_at : float or str, optional
        Cancel the migration (or let it fail) at this time (ms, or ``"5s"``); the guest is
        followed for 2 s more.
    cancel_cleanup : {"qemu-5.1", "qemu-4.0"}
        What the balloon device does then, see ``CANCEL_CLEANUP``.
    """

    memory: int = "8G"
    workload: str = "idle"
    workload_options: MappingProxyType = field(default_factory=dict)
    downtime_limit: float = "300ms"
    max_bandwidth: float = "32M"
    hint: bool = False
    init_on_alloc: bool = False
    page_poison: str = "off"
    hint_release: str = "done"
    auto_converge: bool = False
    vcpus: int = 4
    profile: str = "v36"
    guest: str = "testbed-2018"
    guest_options: MappingProxyType = field(default_factory=dict)
    seed: int = 0
    faults: frozenset = frozenset()
    max_time: float = "10min"
    hinting: str | None = None
    hint_order: int | None = None
    init_on_free: bool = False
    poison_val: bool = True
    cancel_at: float | None = None
    cancel_cleanup: str = "qemu-5.1"

    def __post_init__(self):
        s = object.__setattr__
        if isinstance(self.memory, str):
            # a bare number on the command line means MiB, as with ``qemu-system -m``
            s(self, "memory", parse_size(self.memory, what="memory", default_unit="M"))
        else:  # numbers in the Python API are bytes, so that replace() round-trips
            s(self, "memory", parse_size(self.memory, what="memory"))
        if self.memory < (16 << 20):
            raise ScenarioError(f"memory: must be at least 16M, got {self.memory} bytes")
        if self.memory % (2 << 20):
            raise ScenarioError("memory: must be a multiple of 2 MiB")
        if self.memory > (4 << 40):
            raise ScenarioError("memory: at most 4 TiB")
        dl = parse_duration_ms(self.downtime_limit, what="downtime-limit")
        if not 0 < dl <= MAX_TIME_MS:
            raise ScenarioError("downtime-limit: must be > 0 and at most 1 day")
        s(self, "downtime_limit", dl)
        bw = float(parse_size(self.max_bandwidth, what="max-bandwidth"))
        if not 1024 <= bw <= (1 << 50):
            raise ScenarioError(
                "max-bandwidth: from 1K to 1P bytes per second (e.g. 32M, 1G, 100G)"
            )
        s(self, "max_bandwidth", bw)
        mt = parse_duration_ms(self.max_time, what="max-time")
        if not 1.0 <= mt <= MAX_TIME_MS:
            raise ScenarioError(
                f"max-time: from 1ms to 1 day (1440min), got {_short(self.max_time)}"
            )
        s(self, "max_time", mt)
        for name in ("hint", "init_on_alloc", "auto_converge", "init_on_free", "poison_val"):
            v = getattr(self, name)
            if not isinstance(v, (bool, np.bool_)):
                raise ScenarioError(f"{name}: expected True or False, got {_short(v)}")
            s(self, name, bool(v))
        if self.hinting is None:
            s(self, "hinting", "fph" if self.hint else "none")
        elif not isinstance(self.hinting, str) or self.hinting not in HINTING:
            raise ScenarioError(f"hinting: one of {', '.join(HINTING)}, got {_short(self.hinting)}")
        elif self.hint and self.hinting != "fph":
            raise ScenarioError(f"hint=on (fph) conflicts with hinting={self.hinting}")
        s(self, "hint", self.hinting == "fph")
        if self.hint_order is not None:
            s(self, "hint_order", _whole(self.hint_order, "hint-order", 0, MAX_ORDER))
        if self.cancel_at is not None:
            ca = parse_duration_ms(self.cancel_at, what="cancel-at")
            if not 0 < ca <= MAX_TIME_MS:
                raise ScenarioError("cancel-at: must be > 0 and at most 1 day")
            s(self, "cancel_at", ca)
        if not isinstance(self.cancel_cleanup, str) or self.cancel_cleanup not in CANCEL_CLEANUP:
            raise ScenarioError(
                f"cancel-cleanup: one of {', '.join(CANCEL_CLEANUP)}, "
                f"got {_short(self.cancel_cleanup)}"
            )
        if not isinstance(self.page_poison, str) or self.page_poison not in PAGE_POISON:
            raise ScenarioError(
                f"page-poison: one of {', '.join(PAGE_POISON)}, got {_short(self.page_poison)}"
            )
        if not isinstance(self.hint_release, str) or self.hint_release not in HINT_RELEASE:
            raise ScenarioError(
                f"hint-release: one of {', '.join(HINT_RELEASE)}, got {_short(self.hint_release)}"
            )
        s(self, "vcpus", _whole(self.vcpus, "vcpus", 1, 1024))
        s(self, "seed", _whole(self.seed, "seed", 0, 2**63 - 1))
        faults = self.faults
        if isinstance(faults, str):  # one fault by name, not its letters
            faults = [faults] if faults else []
        if faults is None:
            faults = []
        try:
            faults = frozenset(faults)
        except TypeError:
            raise ScenarioError(
                f"faults: a set of fault names ({', '.join(FAULTS)}), got {_short(self.faults)}"
            ) from None
        bad = sorted(faults - set(FAULTS), key=str)
        if bad:
            raise ScenarioError(f"unknown fault(s) {_names_text(bad)} (known: {', '.join(FAULTS)})")
        s(self, "faults", faults)
        for name in ("workload", "guest", "profile"):
            if not isinstance(getattr(self, name), str):
                raise ScenarioError(f"{name}: expected a name, got {_short(getattr(self, name))}")
        opts = _options(self.workload_options, "workload_options")
        s(self, "workload_options", MappingProxyType(opts))
        wl = Workload.load(self.workload, opts)  # validates name and options
        gopts = _options(self.guest_options, "guest_options")
        s(self, "guest_options", MappingProxyType(gopts))
        guest = Guest.load(self.guest, gopts)  # validates name and options
        need = wl.min_memory(guest)
        if need > self.memory:
            raise ScenarioError(
                f"memory: the {self.workload} workload needs at least "
                f"{need / (1 << 20):.0f} MiB, the guest has {self.memory >> 20} MiB"
            )
        HostProfile.load(self.profile)  # validates name and file

    def __hash__(self):
        return hash(self.key())

    def __eq__(self, other):
        return isinstance(other, Scenario) and self.key() == other.key()

    def key(self) -> tuple:
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["workload_options"] = tuple(sorted(d["workload_options"].items()))
        d["guest_options"] = tuple(sorted(d["guest_options"].items()))
        d["faults"] = tuple(sorted(d["faults"]))
        return tuple(d.items())

    def replace(self, **changes) -> Scenario:
        """A copy with some fields changed (validated again).  Changing one of ``hint`` and
        ``hinting`` alone sets the other from it."""
        if "hint" in changes and "hinting" not in changes:
            changes["hinting"] = None
        elif "hinting" in changes and "hint" not in changes:
            changes["hint"] = False
        return replace(self, **changes)

    @property
    def block_order(self) -> int:
        """Buddy order of the hinted or reported blocks (``hint_order`` or the design's)."""
        if self.hint_order is not None:
            return self.hint_order
        return DEFAULT_BLOCK_ORDER.get(self.hinting, MAX_ORDER)

    @property
    def nr_pages(self) -> int:
        return self.memory // PAGE_SIZE

    def load_workload(self) -> Workload:
        return Workload.load(self.workload, dict(self.workload_options))

    def load_profile(self) -> HostProfile:
        return HostProfile.load(self.profile)

    def load_guest(self) -> Guest:
        return Guest.load(self.guest, dict(self.guest_options))

    def memory_layout(self, guest: Guest | None = None) -> dict:
        """Bytes of each part of the guest's memory at migration start: the guest's own plus
        what the workload adds (``reserved_low``, ``low_span``, ``low_used``, ``kaslr_image``,
        ``kaslr_bss``, ``swiotlb``, ``memmap_bytes_per_page``, ``base_used``, ``pagecache_initial``,
        ``touched_free``; ``boot_free_at`` and ``boot_free``: where the guest's own
        ``touched_free`` lies when the boot put it at a fixed place, and how much of
        ``touched_free`` that is; ``boot_free_span``: over how much memory it is spread)."""
        g = (guest or self.load_guest()).params
        w = self.load_workload().params
        return {
            "boot_free_at": g["boot_free_at"],
            "boot_free": g["touched_free"] if g["boot_free_at"] > 0 else 0,
            "boot_free_span": g["boot_free_span"] if g["boot_free_at"] > 0 else 0,
            "reserved_low": g["reserved_low"],
            "low_span": g["low_span"],
            "low_used": g["low_used"],
            "kaslr_image": g["kaslr_image"],
            "kaslr_bss": g["kaslr_bss"],
            "swiotlb": g["swiotlb"],
            "memmap_bytes_per_page": g["memmap_bytes_per_page"],
            "base_used": g["base_used"] + w["base_used"],
            "pagecache_initial": g["pagecache_initial"] + w["pagecache_initial"],
            "touched_free": g["touched_free"] + w["touched_free"],
        }

    def to_attrs(self) -> dict:
        """Flat, netCDF-safe description of the scenario (for ``Dataset.attrs``)."""
        out = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if f.name in ("workload_options", "guest_options"):
                v = json.dumps(dict(v), sort_keys=True)
            elif f.name == "faults":
                v = ",".join(sorted(v))
            elif isinstance(v, bool):
                v = int(v)
            elif v is None:  # hint_order, cancel_at not given
                v = -1
            out[f"scenario_{f.name}"] = v
        return out

    @classmethod
    def from_attrs(cls, attrs: dict) -> Scenario:
        """Inverse of :meth:`to_attrs`."""
        kw = {}
        for f in fields(cls):
            key = f"scenario_{f.name}"
            if key not in attrs and f.name in ("guest", "guest_options", *OPTIONAL_ATTRS):
                continue  # written before these fields existed: their defaults
            v = attrs[key]
            if f.name in ("hint_order", "cancel_at") and float(v) < 0:
                continue  # not given
            if f.name in ("workload_options", "guest_options"):
                v = json.loads(v)
            elif f.name == "faults":
                v = frozenset(x for x in str(v).split(",") if x)
            elif f.name in ("hint", "init_on_alloc", "auto_converge", "init_on_free", "poison_val"):
                v = bool(int(v))
            elif f.name in ("vcpus", "seed", "memory", "hint_order"):
                v = int(v)
            kw[f.name] = v
        return cls(**kw)
