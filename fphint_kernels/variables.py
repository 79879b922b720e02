"""The registry of every variable a simulation Dataset may hold (sgkit ``variables.py`` style).

Scalar results use QEMU's ``query-migrate`` names so that simulated and measured runs compare
field by field (``total-time``, ``ram-transferred``...); model-only fields are marked so.
Traces share the dims ``round`` (the pre-copy rounds 1, 2, ..., each ended by a bitmap sync,
then, for a completed run, the stop-and-copy) and ``time`` (ms).
:func:`make_dataset` checks a Dataset against this registry and stamps units and descriptions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import xarray as xr

from .kernels.layout import PAGE_STATES as PAGE_STATES  # page-map states, re-exported


@dataclass(frozen=True)
class Spec:
    name: str
    dims: tuple
    kind: str  # numpy dtype kind(s) accepted: "i", "u", "f", "U", "b"
    units: str
    description: str
    qmp: bool = False  # also reported by QEMU's query-migrate


_SPECS = [
    # ---- scalars, query-migrate vocabulary ---------------------------------------------
    Spec("status", (), "UO", "", "completed, not-converged, failed or cancelled", True),
    Spec("total-time", (), "f", "ms", "from the migrate command to completion", True),
    Spec("downtime", (), "f", "ms", "VM stopped: final sync, remaining pages, device state", True),
    Spec("setup-time", (), "f", "ms", "bitmap allocation, dirty-log start, first sync", True),
    Spec("ram-transferred", (), "iu", "bytes", "RAM bytes put on the wire, headers included", True),
    Spec("ram-duplicate", (), "iu", "pages", "zero pages sent as 9-byte records", True),
    Spec("ram-normal", (), "iu", "pages", "pages sent in full (4104 bytes)", True),
    Spec("ram-normal-bytes", (), "iu", "bytes", "4096 x ram-normal", True),
    Spec("dirty-sync-count", (), "iu", "1", "bitmap syncs: setup, one per round, final", True),
    Spec("expected-downtime", (), "f", "ms", "remaining / bandwidth at switchover", True),
    Spec("mbps", (), "f", "Mbit/s", "bytes*8/(total-time - setup-time)/1000", True),
    Spec("cpu-throttle-percentage", (), "f", "%", "auto-converge throttle at completion", True),
    # ---- scalars, model only -------------------------------------------------------------
    Spec("hinted-pages", (), "iu", "pages", "pages in hint blocks the host accepted"),
    Spec("skipped-pages", (), "iu", "pages", "pending bits cleared by hints (pages not sent then)"),
    Spec(
        "lost-pages",
        (),
        "iu",
        "pages",
        "pages the guest may read whose destination copy is stale (must be 0; -1: run did not complete)",
    ),
    Spec(
        "stale-free-pages",
        (),
        "iu",
        "pages",
        "free or balloon-held pages whose destination copy is stale (harmless; -1: not completed)",
    ),
    Spec("rounds", (), "iu", "1", "pre-copy rounds (VM running), before the stop-and-copy"),
    Spec(
        "hint-cpu-time", (), "f", "ms", "guest vCPU time spent by the hint worker (incl. zeroing)"
    ),
    Spec(
        "zeroing-cpu-time",
        (),
        "f",
        "ms",
        "guest vCPU time spent zeroing allocations (init_on_alloc)",
    ),
    Spec("write-faults", (), "iu", "1", "write-protection faults taken by the guest while logging"),
    Spec(
        "guest-overhead-time",
        (),
        "f",
        "ms",
        "guest vCPU time lost to migration (faults, hint worker)",
    ),
    Spec("held-pages-max", (), "iu", "pages", "largest number of pages held by the balloon"),
    Spec(
        "hinting", (), "UO", "", "the hinting design: none, fph, report-in-place, reporting, oracle"
    ),
    Spec(
        "reported-pages",
        (),
        "iu",
        "pages",
        "pages free page reporting discarded on the host (they read back as zero pages)",
    ),
    Spec(
        "skipped-pages-redirtied",
        (),
        "iu",
        "pages",
        "pages skipped in a round that the next sync found dirty (sent again)",
    ),
    Spec("cancel-time", (), "f", "ms", "when the migration was cancelled (-1: it was not)"),
    Spec(
        "held-pages-at-cancel",
        (),
        "iu",
        "pages",
        "pages the balloon held when the migration was cancelled (-1: it was not)",
    ),
    Spec(
        "held-pages-at-end",
        (),
        "iu",
        "pages",
        "pages the balloon holds when the run ends (2 s after a cancel)",
    ),
    Spec(
        "zero-pages-at-start",
        (),
        "iu",
        "pages",
        "guest pages holding only zeros when migration starts",
    ),
    Spec("free-pages-at-start", (), "iu", "pages", "guest free pages when migration starts"),
    Spec("nr-pages", (), "iu", "pages", "guest RAM in 4 KiB pages"),
    Spec(
        "cpu-migration-thread",
        (),
        "f",
        "ms",
        "CPU time of the source's migration thread (scans, zero checks, copies, syncs)",
    ),
    Spec(
        "cpu-destination",
        (),
        "f",
        "ms",
        "CPU time of the destination receiving the stream (copies, new memory)",
    ),
    Spec(
        "cpu-vcpus",
        (),
        "f",
        "ms",
        "guest vCPU time on hinting, zeroing, new host memory and the dirty loop",
    ),
    Spec(
        "hints-before-first-slice",
        (),
        "iu",
        "blocks",
        "hinted blocks applied before the migration thread's first slice",
    ),
    Spec(
        "slice-end-drains",
        (),
        "iu",
        "1",
        "slice ends at which the iothread applied every queued hint (QEMU 6.1+ lock)",
    ),
    Spec("failure", (), "UO", "", "why a failed run failed, empty otherwise"),
    # ---- per round -------------------------------------------------------------------------
    Spec(
        "round-start",
        ("round",),
        "f",
        "ms",
        "time the round began (after the previous sync; stop-and-copy: the VM stops)",
    ),
    Spec(
        "round-end",
        ("round",),
        "f",
        "ms",
        "time of the sync that ended the round (stop-and-copy: completion)",
    ),
    Spec("round-duplicate", ("round",), "iu", "pages", "zero pages sent in the round"),
    Spec("round-normal", ("round",), "iu", "pages", "normal pages sent in the round"),
    Spec("round-bytes", ("round",), "iu", "bytes", "bytes sent in the round"),
    Spec("round-skipped", ("round",), "iu", "pages", "pending bits cleared by hints in the round"),
    Spec(
        "round-dirtied",
        ("round",),
        "iu",
        "pages",
        "pages the sync ending the round added to the bitmap (stop-and-copy: the final sync)",
    ),
    Spec(
        "round-pending-after-sync",
        ("round",),
        "iu",
        "pages",
        "pending pages right after that sync (stop-and-copy: after the final sync, all sent)",
    ),
    Spec(
        "round-threshold",
        ("round",),
        "f",
        "bytes",
        "threshold (bandwidth x downtime-limit) at that sync",
    ),
    Spec(
        "round-bandwidth",
        ("round",),
        "f",
        "bytes/s",
        "last window's bandwidth estimate at that sync",
    ),
    # ---- per time ----------------------------------------------------------------------------
    Spec("pending", ("time",), "f", "pages", "pages pending in the migration bitmap"),
    Spec("transferred", ("time",), "f", "bytes", "bytes sent so far"),
    Spec("sender-pfn", ("time",), "f", "pfn", "page the sender's scan has reached"),
    Spec(
        "hint-pfn", ("time",), "f", "pfn", "lowest pfn hinted so far in the current pass (-1: none)"
    ),
    Spec("free-pages", ("time",), "f", "pages", "guest free pages (buddy allocator)"),
    Spec("held-pages", ("time",), "f", "pages", "pages held by the balloon driver"),
    Spec("dirty-log-pages", ("time",), "f", "pages", "pages in the dirty log not yet synced"),
    Spec("round-index", ("time",), "f", "1", "round the sender is in"),
    Spec("zero-pages-sent", ("time",), "f", "pages", "zero pages sent so far"),
    Spec("normal-pages-sent", ("time",), "f", "pages", "normal pages sent so far"),
    # ---- page map (optional) ------------------------------------------------------------------
    Spec(
        "page-map",
        ("round", "pfn_bin", "page_state"),
        "iu",
        "pages",
        "page counts per address bin and state, taken at the end of each round",
    ),
    Spec(
        "page-map-end",
        ("pfn_bin", "page_state"),
        "iu",
        "pages",
        "page counts per address bin and state when a cancelled run ends (2 s after the cancel)",
    ),
]

SPECS = {s.name: s for s in _SPECS}


def make_dataset(
    data_vars: dict, coords: dict | None = None, attrs: dict | None = None
) -> xr.Dataset:
    """Build a Dataset, checking every variable against the registry.

    Raises
    ------
    KeyError
        A variable is not registered.
    ValueError
        Its dims or dtype kind do not match the registry.
    """
    out = {}
    for name, value in data_vars.items():
        spec = SPECS[name]
        arr = np.asarray(value)
        if arr.dtype.kind not in spec.kind:
            raise ValueError(f"{name}: dtype kind {arr.dtype.kind!r} not in {spec.kind!r}")
        if arr.ndim != len(spec.dims):
            raise ValueError(f"{name}: expected dims {spec.dims}, got shape {arr.shape}")
        a = {"units": spec.units, "description": spec.description}
        if spec.qmp:
            a["query_migrate"] = 1
        out[name] = xr.Variable(spec.dims, arr, attrs=a)
    return xr.Dataset(out, coords=coords, attrs=attrs or {})
