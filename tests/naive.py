"""Slow, readable reference implementations of the kernels (stumpy's ``tests/naive.py``).

Nothing here uses Numba or bit tricks: bitmaps are Python lists of bools, the buddy allocator
keeps one Python ``set`` of free blocks per order, the hint virtqueue is a ``deque``.  The tests
compare the kernels of :mod:`fphint_kernels.kernels` with these on random and edge-case inputs,
each step of :class:`NaiveMigration` (``workload_step``, ``guest_hint_step``, ``host_hint_step``,
``send_pages``, ``sync_point``, ``sender_run``, ``migration_completion``) with the kernel of the
same name from the same mid-run state (``NaiveMigration.run(until)`` gets there), and
:func:`naive_simulate` with :func:`fphint_kernels.simulate` on small scenarios.

Only configuration parsing (``Scenario``, ``HostProfile``, the guest description,
``simulate.build_params``, ``simulate.watermarks``, ``simulate.hint_floor``, and
``simulate.boot_layout``: where the boot put the kernel image, drawn from the seed, and what it
gave the allocator) and the seeding of the random streams (``kernels.rng.seed_streams``) are
taken from the package: everything that moves pages is written
again here, from docs/model.md and the kernels' docstrings.

Where the model fixes a detail the documentation leaves open, the naive version does the same,
and says so: the destination's progress is looked up at 64 KiB checkpoints of the stream (a
batch waits for the first checkpoint at or after the bytes it needs); the source's RAM counts as
held by the host where the guest's memory was non-zero when migration started or a hinted block
was zeroed since (later writes by the workload are not tracked); the demand of the destination
in a step is the part of the step before its clock; the kernel image's 2 MiB slot is drawn
among ``(memmap - image - low memory) // 2 MiB`` slots from the first 2 MiB boundary above the
boot's low memory.
"""

from __future__ import annotations

import math
from collections import deque

# ============================================================================================
# Bitmaps (kernels/bitmap.py): a bitmap is a list of bools, one per bit
# ============================================================================================


def word_to_bits(word: int) -> list[bool]:
    """The 64 bits of an unsigned word, lowest first."""
    word = int(word)
    bits = []
    for _ in range(64):
        bits.append(word % 2 == 1)
        word //= 2
    return bits


def bits_to_word(bits: list[bool]) -> int:
    return sum(2**i for i, b in enumerate(bits) if b)


def words_to_bits(words) -> list[bool]:
    """A bitmap of uint64 words (bit ``i`` in word ``i // 64``) as one list of bools."""
    out = []
    for w in words:
        out.extend(word_to_bits(w))
    return out


def bits_to_words(bits: list[bool]) -> list[int]:
    return [bits_to_word(bits[i : i + 64]) for i in range(0, len(bits), 64)]


def popcount64(word: int) -> int:
    return sum(word_to_bits(word))


def clz_index64(word: int) -> int:
    """Index of the highest set bit (word != 0)."""
    bits = word_to_bits(word)
    return max(i for i in range(64) if bits[i])


def test_bit(bits: list[bool], i: int) -> int:
    return 1 if bits[i] else 0


def set_bit(bits: list[bool], i: int) -> int:
    """Set bit i; 1 if it was clear."""
    was = bits[i]
    bits[i] = True
    return 0 if was else 1


def clear_bit(bits: list[bool], i: int) -> int:
    """Clear bit i; 1 if it was set."""
    was = bits[i]
    bits[i] = False
    return 1 if was else 0


def set_range(bits: list[bool], start: int, n: int) -> int:
    newly = 0
    for i in range(start, start + n):
        newly += set_bit(bits, i)
    return newly


def clear_range(bits: list[bool], start: int, n: int) -> int:
    was = 0
    for i in range(start, start + n):
        was += clear_bit(bits, i)
    return was


def popcount(bits: list[bool]) -> int:
    return sum(1 for b in bits if b)


def or_merge(dst: list[bool], src: list[bool]) -> int:
    """dst |= src; the number of bits newly set in dst."""
    newly = 0
    for i, b in enumerate(src):
        if b and not dst[i]:
            dst[i] = True
            newly += 1
    return newly


# ============================================================================================
# Buddy allocator (kernels/buddy.py): one set of free block pfns per order
# ============================================================================================

MAX_ORDER = 10
BLOCK = 2**MAX_ORDER


class NaiveBuddy:
    """A textbook binary buddy allocator over pages [0, n).

    Policy (as the kernel documents): take the highest-address block (the lowest with
    ``low_first``, a Linux 5.10+ guest) of the smallest order that is large enough, split it
    keeping the lower half (each upper half goes back on its order's free set), and on free merge
    with the buddy while the buddy is a free block of the same order.
    """

    def __init__(self, n: int, low_first: bool = False, zone_start: int = 0):
        self.n = n
        self.low_first = low_first
        self.zone_start = zone_start  # a preferred zone from here up (0: one zone)
        self.free = [set() for _ in range(MAX_ORDER + 1)]
        self.nr_free_pages = 0

    def _add(self, pfn, k):
        self.free[k].add(pfn)
        self.nr_free_pages += 2**k

    def _remove(self, pfn, k):
        self.free[k].remove(pfn)
        self.nr_free_pages -= 2**k

    def alloc(self, k: int) -> int:
        """pfn of a new order-k block, or -1 (from the preferred zone first, if any)."""
        if self.zone_start and self.low_first:
            for j in range(k, MAX_ORDER + 1):
                in_zone = [pfn for pfn in self.free[j] if pfn >= self.zone_start]
                if in_zone:
                    pfn = min(in_zone)
                    self._remove(pfn, j)
                    while j > k:
                        j -= 1
                        self._add(pfn + 2**j, j)
                    return pfn
        for j in range(k, MAX_ORDER + 1):
            if self.free[j]:
                break
        else:
            return -1
        pfn = min(self.free[j]) if self.low_first else max(self.free[j])
        self._remove(pfn, j)
        while j > k:
            j -= 1
            self._add(pfn + 2**j, j)  # the upper half goes back, the lower half is split on
        return pfn

    def buddy_of(self, pfn: int, k: int) -> int:
        size = 2**k
        if (pfn // size) % 2 == 0:
            return pfn + size
        return pfn - size

    def free_block(self, pfn: int, k: int) -> None:
        while k < MAX_ORDER:
            buddy = self.buddy_of(pfn, k)
            if buddy + 2**k > self.n or buddy not in self.free[k]:
                break
            self._remove(buddy, k)
            pfn = min(pfn, buddy)
            k += 1
        self._add(pfn, k)

    def add_range(self, lo: int, hi: int) -> None:
        """Give [lo, hi) to the allocator as the largest aligned blocks, in address order."""
        pfn = lo
        while pfn < hi:
            k = MAX_ORDER
            while k > 0 and (pfn % 2**k != 0 or pfn + 2**k > hi):
                k -= 1
            self.free_block(pfn, k)
            pfn += 2**k

    def nr_free(self) -> list[int]:
        return [len(s) for s in self.free]

    def free_order(self) -> list[int]:
        """Order of the free block headed at each pfn, -1 elsewhere."""
        out = [-1] * self.n
        for k, blocks in enumerate(self.free):
            for pfn in blocks:
                out[pfn] = k
        return out

    def free_pages(self) -> list[bool]:
        out = [False] * self.n
        for k, blocks in enumerate(self.free):
            for pfn in blocks:
                for p in range(pfn, pfn + 2**k):
                    out[p] = True
        return out


# ============================================================================================
# MRG32k3a (kernels/rng.py), from the recurrence of L'Ecuyer (1999), Table II
# ============================================================================================

M1 = 2**32 - 209
M2 = 2**32 - 22853
A12, A13 = 1403580, -810728
A21, A23 = 527612, -1370589
NORM = 1.0 / (M1 + 1.0)


class NaiveMRG:
    """x1[n] = (1403580 x1[n-2] - 810728 x1[n-3]) mod m1,
    x2[n] = (527612 x2[n-1] - 1370589 x2[n-3]) mod m2,
    u[n] = ((x1[n] - x2[n]) mod m1) / (m1 + 1), with m1 in place of 0.

    ``state`` is (x1[n-3], x1[n-2], x1[n-1], x2[n-3], x2[n-2], x2[n-1])."""

    def __init__(self, state):
        self.x1 = [int(v) for v in state[:3]]
        self.x2 = [int(v) for v in state[3:]]

    def state(self) -> list[int]:
        return self.x1 + self.x2

    def uniform(self) -> float:
        new1 = (A12 * self.x1[1] + A13 * self.x1[0]) % M1
        new2 = (A21 * self.x2[2] + A23 * self.x2[0]) % M2
        self.x1 = [self.x1[1], self.x1[2], new1]
        self.x2 = [self.x2[1], self.x2[2], new2]
        z = (new1 - new2) % M1
        if z == 0:
            z = M1
        return z * NORM

    def below(self, n: int) -> int:
        """Uniform integer in [0, n)."""
        return min(int(self.uniform() * n), n - 1)

    def normal(self) -> float:
        """Box-Muller, first of the pair."""
        u1 = self.uniform()
        u2 = self.uniform()
        return math.sqrt(-2.0 * math.log(u1)) * math.cos(2.0 * math.pi * u2)

    def exponential(self, mean: float) -> float:
        return -math.log(self.uniform()) * mean

    def poisson(self, lam: float) -> int:
        """Knuth: count uniforms until their product drops to exp(-lam); a rounded normal for
        lam >= 30."""
        if lam <= 0.0:
            return 0
        if lam < 30.0:
            limit = math.exp(-lam)
            k = 0
            p = self.uniform()
            while p > limit:
                k += 1
                p *= self.uniform()
            return k
        x = lam + math.sqrt(lam) * self.normal() + 0.5
        return int(x) if x > 0.0 else 0


# ============================================================================================
# The whole migration (kernels/workload.py, balloon.py, precopy.py, engine.py), written plainly
# ============================================================================================

PAGE_SIZE = 4096
ZERO_RECORD = 9
NORMAL_RECORD = 4104
SLICE_OVERHEAD = 18
BUFFER_DELAY = 100.0
MAX_WAIT = 50.0
QUEUE_SIZE = 1024
LATE_LOG_MS = 200.0
ROUND_CAP = 20000
CMD_ID_MIN = 0x80000000
BATCH = 64  # pages the sender queues before it writes them into the stream (MAX_IOV_SIZE)
CHECKPOINT_BYTES = 65536  # the destination's progress is noted every this many bytes sent
LOW_RUN = 256  # the boot's early allocations come in runs of 1 MiB
# host status of the free page hint device
S_STOP, S_REQUESTED, S_START, S_DONE = "stop", "requested", "start", "done"


class NaiveMigration:
    """One migration, as :func:`fphint_kernels.simulate` runs it, with plain Python state.

    Time advances in steps of ``step_ms``; in each step: dirty logging starts if due, the guest
    workload runs, the hint worker runs, the host's iothread handles due virtqueue elements,
    setup's first sync happens if due, then the migration thread runs to the step's end; last,
    each busy thread's share of the host's CPUs for the next step is set from what they did.

    The host (docs/model.md "The destination and the stream", "The race on QEMU 6.1+",
    "Host contention"): the destination processes every page the sender writes, in order, on a
    clock of its own; at most ``stream_bytes`` may be in flight, and the sender writes its
    pages in batches of 64 that wait for room; with QEMU 6.1's lock the iothread applies hints
    only at slice ends; when the busy threads want more CPUs than the host has, each gets an
    equal share and takes that much longer.  Its random draws (setup, START, the lock's
    hand-offs at slice ends) come from a stream of their own.
    """

    def __init__(self, scenario, profile=None, step_ms=1.0, guest=None):
        from fphint_kernels.kernels.rng import seed_streams
        from fphint_kernels.simulate import (
            DMA_PAGES,
            boot_layout,
            build_params,
            hint_floor,
            watermarks,
        )

        profile = profile or scenario.load_profile()
        guest = guest or scenario.load_guest()
        record, lay = build_params(scenario, profile, guest, 10.0, float(step_ms))
        self.p = {name: record[0][name].item() for name in record.dtype.names}
        p = self.p
        # a result only (the guest's cost of a write fault)
        self.write_fault_ns = p["write_fault_ms"] * 1e6
        n = scenario.nr_pages
        self.n = n
        self.faults = set(scenario.faults)
        self.hint = bool(scenario.hint)
        self.release = scenario.hint_release
        self.poison = scenario.page_poison
        self.init_on_alloc = bool(scenario.init_on_alloc)
        self.lock_per_slice = p["bitmap_lock"] == 1  # QEMU 6.1+; else 4.0-6.0's per-page lock
        # run status
        self.status = "running"
        self.failure = ""
        self.now = 0.0
        self.end_time = 0.0
        self.vm_running = False
        self.logging = False
        self.log_start_at = 0.0
        self.setup_done = False
        self.setup_end = 0.0
        self.setup_time = 0.0
        self.downtime_start = 0.0
        self.expected_downtime = 0.0
        # per-page state
        self.bmap = [True] * n  # migration bitmap: every page pending at setup
        self.dlog = [False] * n  # KVM dirty log
        self.armed = [True] * n  # write-protected: the next write faults and is logged
        self.nonzero = [False] * n
        self.held = [False] * n  # held by the balloon driver
        self.ver_src = [0] * n  # versions of each page in the guest...
        self.ver_dst = [0] * n  # ...and on the destination
        # migration thread
        self.pending = n
        self.sender_time = 0.0
        self.cursor = 0
        self.in_slice = False
        self.slices = 0
        self.slice_start = 0.0
        self.slice_pages = 0
        self.window_start = 0.0
        self.window_bytes = 0
        self.bandwidth = 0.0
        self.threshold = 0.0
        self.sync_count = 0
        self.round_start = 0.0
        self.r = {"dup": 0, "normal": 0, "bytes": 0, "skipped": 0}
        self.dup = 0
        self.normal = 0
        self.bytes = 0
        self.hinted = 0
        self.skipped = 0
        self.rounds = []
        self.throttle = 0.0
        self.ac_cnt = 0
        self.period_start = 0.0
        self.period_dirty = 0
        self.period_bytes = 0
        # the host: the destination and the stream between the two QEMUs
        self.region_shift = p["region_shift"]  # a host region of guest RAM: 2**shift pages
        self.dst_clock = 0.0  # the destination has processed everything sent so far by then
        self.dst_touched = set()  # regions of the destination's RAM written so far
        self.src_touched = set()  # regions of the source's RAM the guest has written
        self.checkpoints = deque()  # (bytes sent, when the destination had processed them)
        self.ck_next = CHECKPOINT_BYTES
        self.ck_most = 0  # the most checkpoints kept at once (a statistic)
        # ... its CPUs: the share each busy thread gets, and what they did in this step (ms)
        self.share = 1.0
        self.busy = {"migration": 0.0, "vcpus": 0.0, "iothread": 0.0}
        self.cpu_mig = 0.0  # CPU time over the run (ms): the migration thread ...
        self.cpu_dst = 0.0  # ... the destination
        self.cpu_vcpu = 0.0  # ... the vCPUs (hinting, zeroing, the dirty loop)
        # ... hints and the bitmap's lock
        self.hints_early = 0  # applied before the first slice
        self.hints_boundary = 0  # applied at slice ends
        self.boundary_drains = 0  # slice ends at which the iothread emptied its queue
        self.drain_missed = False  # the last slice end with a queue left it
        self.contended_steps = 0  # steps in which the threads shared the CPUs (a statistic)
        self.start_delays = []  # from each new command id to the guest's START (a statistic)
        # guest memory
        self.reserved_low = lay["reserved_low"]
        self.low_span = lay["low_span"]
        self.low_used = lay["low_used"]
        self.memmap_start = n - lay["memmap"]
        self.buddy = NaiveBuddy(
            n, low_first=guest.params["alloc_low_first"] > 0, zone_start=lay["zone_start"]
        )
        # the kernel image: physical KASLR puts it in a random 2 MiB slot between the boot's
        # low memory and the memmap (the draw comes from the seed, on a stream of its own)
        self.low_start = lay["low_start"]  # the early allocations (low_span) start here
        self.img_pages = lay["kaslr_image"]
        self.img_start, ranges = boot_layout(n, lay, self.memmap_start, scenario.seed)
        self.bf_start, self.bf_pages = lay["boot_free_start"], lay["boot_free"]
        self.bf_span = lay["boot_free_span"]
        for lo, hi in ranges:
            self.buddy.add_range(lo, hi)
        self.wmark_min, self.wmark_low, self.wmark_high = watermarks(self.buddy.nr_free_pages)
        dma_free = sum(max(0, min(hi, DMA_PAGES) - lo) for lo, hi in ranges)
        self.hint_floor = hint_floor(  # the hint worker allocates without reclaim
            n, self.buddy.nr_free_pages, dma_free, thp=guest.params["thp"] > 0
        )
        self.write_faults = 0
        self.zero_cpu_ns = 0.0
        self.held_blocks = []  # a stack: the driver gives back its latest block first
        self.held_pages = 0
        self.held_max = 0
        self.pagecache = deque()  # oldest first
        self.pc_cap = max(1, n // 2 ** p["pc_order"])
        self.pc_acc = 0.0
        self.base_pool = []
        self.dl_pool = []
        self.dl_cursor = 0
        self.dl_acc = 0.0
        self.dl_dropped = 0  # writes the dirty loop had no vCPU time for (a statistic)
        self.jobs = [
            {"age": 0.0, "life": 0.0, "target": 0, "blocks": [], "acc": 0.0}
            for _ in range(p["jobs"])
        ]
        self.rss_cap = lay["rss_cap"] if p["jobs"] else 1
        streams = seed_streams(scenario.seed, 3)
        self.rng = NaiveMRG(streams[0])  # the workload
        init_rng = NaiveMRG(streams[1])  # the memory at migration start
        self.host_rng = NaiveMRG(streams[2])  # the host's timing
        # balloon device and driver
        self.host_status = S_STOP
        self.host_cmd = CMD_ID_MIN - 1
        self.guest_start_at = -1.0
        self.guest_start_cmd = 0
        self.guest_cmd_active = 0
        self.guest_reporting = False
        self.hint_budget = 0.0
        self.releasing = False  # after-pass with poisoning: the worker is freeing its blocks
        self.dl_used = 0.0
        self.hint_cpu_ns = 0.0
        self.queue = deque()  # (kind, pfn, cmd id, time the iothread may pop it)
        self.stale = []
        self.workload_init(
            init_rng, lay["touched"], lay["pagecache"], lay["base"], lay["dirty_loop"]
        )
        # the host holds the source's guest RAM the guest has written (not the zero pages)
        for page in range(n):
            if self.nonzero[page]:
                self.src_touched.add(page >> self.region_shift)
        self.zero_at_start = n - sum(1 for b in self.nonzero if b)
        self.free_at_start = self.buddy.nr_free_pages
        if self.status == "running":
            self.migrate()

    def migrate(self):
        """The ``migrate`` command: setup takes ``setup_ms`` and a random extra, then the first
        sync; dirty logging starts when setup's own work is done."""
        p = self.p
        setup = p["setup_ms"]
        if p["setup_jitter_ms"] > 0.0:
            setup += self.host_rng.exponential(p["setup_jitter_ms"])
        self.setup_end = setup + p["t_sync"]
        self.vm_running = True
        self.log_start_at = setup
        if "late-dirty-log" in self.faults:
            self.log_start_at = self.setup_end + LATE_LOG_MS
        self.sender_time = self.setup_end

    # ---- guest memory ----------------------------------------------------------------------

    def page_write(self, page, zero=False):
        self.ver_src[page] += 1
        self.nonzero[page] = not zero
        if self.logging and self.armed[page]:
            self.armed[page] = False
            self.write_faults += 1
            self.dlog[page] = True

    def block_write(self, pfn, k, zero=False):
        for page in range(pfn, pfn + 2**k):
            self.page_write(page, zero)

    def fail_oom(self):
        self.status = "failed"
        self.failure = "guest out of memory"

    def guest_free(self, pfn, k):
        if self.poison != "off":
            self.block_write(pfn, k, zero=self.poison == "zero")
        self.buddy.free_block(pfn, k)

    def release_held_block(self):
        pfn = self.held_blocks.pop()
        for page in range(pfn, pfn + BLOCK):
            self.held[page] = False
        self.held_pages -= BLOCK
        self.guest_free(pfn, MAX_ORDER)

    def reclaim(self, target):
        if self.release == "shrinker":
            while self.buddy.nr_free_pages < target and self.held_blocks:
                self.release_held_block()
        while self.buddy.nr_free_pages < target and self.pagecache:
            self.guest_free(self.pagecache.popleft(), self.p["pc_order"])

    def guest_alloc(self, k):
        need = 2**k
        if self.buddy.nr_free_pages - need < self.wmark_low:
            self.reclaim(self.wmark_high + need)
        pfn = -1
        if self.buddy.nr_free_pages - need >= self.wmark_min:
            pfn = self.buddy.alloc(k)
        if pfn < 0:
            self.fail_oom()
            return -1
        if self.init_on_alloc:
            self.block_write(pfn, k, zero=True)
            self.zero_cpu_ns += need * self.p["zero_fill_ns"]
        return pfn

    def pagecache_add(self):
        k = self.p["pc_order"]
        if len(self.pagecache) >= self.pc_cap:
            self.reclaim(self.buddy.nr_free_pages + 2**k)
        pfn = self.guest_alloc(k)
        if pfn < 0:
            return
        self.block_write(pfn, k)
        self.pagecache.append(pfn)

    def proc_spawn(self, job, rng):
        p = self.p
        rss = math.exp(p["rss_mu"] + p["rss_sigma"] * rng.normal())
        blocks = int(rss) // 2 ** p["anon_order"]
        job["target"] = min(max(blocks, 1), self.rss_cap)
        job["life"] = max(20.0, rng.exponential(p["life_ms"]))
        job["age"] = 0.0
        job["blocks"] = []
        job["acc"] = 0.0

    def proc_grow(self, job, nblocks):
        k = self.p["anon_order"]
        for _ in range(nblocks):
            if len(job["blocks"]) >= job["target"]:
                return
            pfn = self.guest_alloc(k)
            if pfn < 0:
                return
            self.block_write(pfn, k)
            job["blocks"].append(pfn)

    def proc_exit(self, job):
        for pfn in job["blocks"]:
            self.guest_free(pfn, self.p["anon_order"])
        job["blocks"] = []

    def workload_init(self, rng, touched, pagecache, base, dirty_loop):
        """Memory as it is when the migration starts: reserved memory, the kernel image, the
        boot's early allocations (``low_used`` pages of ``low_span``, in 1 MiB runs at random
        places), the memmap and the boot's freed data at its fixed place, base memory, page cache, the running jobs, the dirty-loop
        buffer, then touched memory (written and freed again, allocated down to the high
        watermark; its last ``pcp_keep`` pages stay allocated, on a per-cpu list)."""
        p = self.p
        for page in range(self.reserved_low):
            self.page_write(page)
        for page in range(self.img_start, self.img_start + self.img_pages):
            self.page_write(page)
        runs = self.low_span // LOW_RUN
        left = min(self.low_used, runs * LOW_RUN) // LOW_RUN
        while left > 0:
            first = self.low_start + rng.below(runs) * LOW_RUN
            if not self.nonzero[first]:  # a run not written yet
                for page in range(first, first + LOW_RUN):
                    self.page_write(page)
                left -= 1
        for page in range(self.memmap_start, self.n):
            self.page_write(page)
        # the boot's freed data at its fixed place: free, holding what freeing left in it
        runs = -(-self.bf_pages // LOW_RUN)  # in 1 MiB runs spread evenly over its span
        slots = max(runs, self.bf_span // LOW_RUN)
        for i in range(runs):
            first = self.bf_start + (i * slots // runs) * LOW_RUN
            last = min(first + LOW_RUN, first + self.bf_pages - i * LOW_RUN)
            for page in range(first, last):
                self.page_write(page, self.poison == "zero")
        for _ in range(base):
            pfn = self.buddy.alloc(0)
            if pfn < 0:
                self.fail_oom()
                return
            self.page_write(pfn)
            self.base_pool.append(pfn)
        for _ in range(pagecache // 2 ** p["pc_order"]):
            self.pagecache_add()
        for job in self.jobs:
            self.proc_spawn(job, rng)
            age = rng.uniform() * job["life"]
            share = min(1.0, age / max(1.0, job["life"] * p["alloc_frac"]))
            job["age"] = age
            self.proc_grow(job, int(share * job["target"]))
        for _ in range(dirty_loop):
            pfn = self.guest_alloc(0)
            if pfn < 0:
                return
            self.page_write(pfn)
            self.dl_pool.append(pfn)
        touched_blocks = []
        left = touched
        order = MAX_ORDER
        while left > 0 and order >= 0:
            if 2**order > left or self.buddy.nr_free_pages - 2**order < self.wmark_high:
                order -= 1
                continue
            pfn = self.buddy.alloc(order)
            if pfn < 0:
                order -= 1
                continue
            self.block_write(pfn, order)
            touched_blocks.append((pfn, order))
            left -= 2**order
        # freed like any other memory: with page poisoning the pages are overwritten
        # (free_pages_prepare -> kernel_poison_pages)
        # the last frees stay on the freeing CPU's per-cpu list (pcp_keep pages, whole blocks
        # from the last one): allocated, holding their data
        kept = 0
        while touched_blocks and kept + 2 ** touched_blocks[-1][1] <= p["pcp_keep"]:
            kept += 2 ** touched_blocks.pop()[1]
        for pfn, order in touched_blocks:
            self.guest_free(pfn, order)

    def workload_step(self, dt):
        """The guest's activity over ``dt`` ms of its own (throttled, scaled) time."""
        self.dl_used = 0.0  # vCPU time (ms) the dirty loop takes in this step
        if dt <= 0.0:
            return
        p = self.p
        rng = self.rng
        if self.base_pool:
            hot = min(p["bg_hot"], len(self.base_pool))
            for _ in range(rng.poisson(p["bg_rate"] * dt)):
                self.page_write(self.base_pool[rng.below(hot)])
        k = p["anon_order"]
        for job in self.jobs:
            if job["target"] == 0:
                self.proc_spawn(job, rng)
            rate = job["target"] / max(1.0, job["life"] * p["alloc_frac"])
            job["acc"] += rate * dt
            grow = int(job["acc"])
            job["acc"] -= grow
            self.proc_grow(job, grow)
            if self.status != "running":
                return
            nblk = len(job["blocks"])
            if nblk > 0:
                writes = rng.poisson((nblk * 2**k) * p["rewrite_per_ms"] * dt)
                for _ in range(writes):
                    pfn = job["blocks"][rng.below(nblk)]
                    self.page_write(pfn + rng.below(2**k))
            job["age"] += dt
            if job["age"] >= job["life"]:
                self.proc_exit(job)
                job["target"] = 0
        if p["pc_rate"] > 0.0:
            self.pc_acc += p["pc_rate"] * dt
            while self.pc_acc >= 1.0 and self.status == "running":
                self.pc_acc -= 1.0
                self.pagecache_add()
        if self.dl_pool:
            self.dl_acc += len(self.dl_pool) / p["dl_interval"] * dt
            writes = int(self.dl_acc)
            self.dl_acc -= writes
            # one process on one vCPU: each write costs a store, or a write fault when dirty
            # logging has write-protected the page; the vCPU has the step's host time (``dt``
            # is guest time: it includes cpu_speed and intensity) and skips what does not fit
            # (at least one write goes through)
            vcpu_ms = dt / (p["cpu_speed"] * max(p["intensity"], 1e-9))
            used = 0.0
            for i in range(writes):
                page = self.dl_pool[self.dl_cursor]
                cost = p["store_ms"]
                if self.logging and self.armed[page]:
                    cost = p["write_fault_ms"]
                if i > 0 and used + cost > vcpu_ms:
                    self.dl_acc = 0.0  # the loop falls behind
                    self.dl_dropped += writes - i
                    break
                used += cost
                self.page_write(page)
                self.dl_cursor = (self.dl_cursor + 1) % len(self.dl_pool)
            self.cpu_vcpu += used
            self.busy["vcpus"] += used / self.share
            self.dl_used = used

    # ---- free page hinting -----------------------------------------------------------------

    def q_push(self, kind, pfn, cmd, ready):
        if len(self.queue) < QUEUE_SIZE:
            self.queue.append((kind, pfn, cmd, ready))

    def apply_hint(self, pfn):
        """``qemu_guest_free_page_hint``: the block's pending pages will not be sent."""
        if self.status != "running" or not self.vm_running:
            return
        cleared = 0
        for page in range(pfn, pfn + BLOCK):
            if self.bmap[page]:
                self.bmap[page] = False
                cleared += 1
        self.pending -= cleared
        self.skipped += cleared
        self.r["skipped"] += cleared
        self.hinted += BLOCK

    def host_free_page_start(self, t):
        if not self.vm_running:
            return
        self.host_cmd += 1
        self.host_status = S_REQUESTED
        # the guest's START comes hint_start_ms later, plus a random latency of its own
        delay = self.p["hint_start_ms"]
        if self.p["hint_start_jitter_ms"] > 0.0:
            delay += self.host_rng.exponential(self.p["hint_start_jitter_ms"])
        self.guest_start_at = t + delay
        self.start_delays.append(delay)
        self.guest_start_cmd = self.host_cmd

    def guest_end_pass(self, now):
        if not self.guest_reporting:
            return
        self.guest_reporting = False
        self.q_push("stop", -1, 0, now + self.p["hint_latency_ms"])
        if self.release == "after-pass":
            if self.poison == "off":
                while self.held_blocks:
                    self.release_held_block()
            else:
                # freeing poisons the pages: the worker does it over its next steps, as its
                # vCPU time allows (guest_hint_step)
                self.releasing = True

    def host_free_page_stop(self):
        self.host_status = S_STOP
        self.guest_start_at = -1.0
        if self.vm_running:
            # the guest sees STOP and ends its pass; a stopped guest (stop-and-copy) does
            # nothing until it runs again, on the destination
            self.guest_end_pass(self.now)
        if "stale-hint-after-sync" in self.faults:
            while self.queue:
                kind, pfn, _cmd, _ready = self.queue.popleft()
                if kind == "block" and len(self.stale) < QUEUE_SIZE:
                    self.stale.append(pfn)

    def guest_hint_step(self, now, dt):
        """The hint worker over ``dt`` ms: one vCPU (slowed by auto-converge and by its share
        of a host CPU) takes free 4 MiB blocks and queues them; with ``init_on_alloc`` it zeroes
        each block, and the host first allocates the block's regions of the source's RAM that
        were never written (``first_touch``)."""
        p = self.p
        if self.guest_start_at >= 0.0 and now >= self.guest_start_at:
            self.guest_start_at = -1.0
            if self.host_status == S_REQUESTED and self.host_cmd == self.guest_start_cmd:
                self.guest_cmd_active = self.host_cmd
                self.q_push("start", -1, self.host_cmd, now + p["hint_latency_ms"])
                self.guest_reporting = True
                self.hint_budget = min(0.0, self.hint_budget)  # what it still owes
        releasing = self.releasing
        if not self.guest_reporting and not releasing and self.hint_budget >= 0.0:
            return
        # one vCPU; with a single vCPU, what the dirty loop left of it
        avail = dt
        if p["vcpus"] <= 1:
            avail = max(0.0, dt - self.dl_used / (1.0 - self.throttle) / self.share)
        self.hint_budget += avail * 1e6 * (1.0 - self.throttle) * self.share
        while releasing and self.hint_budget >= 0.0:
            if not self.held_blocks:
                releasing = False
                break
            faults = self.write_faults
            self.release_held_block()  # poisons the block's pages
            cost = BLOCK * p["zero_fill_ns"] + (self.write_faults - faults) * self.write_fault_ns
            self.hint_budget -= cost
            self.zero_cpu_ns += BLOCK * p["zero_fill_ns"]
            self.cpu_vcpu += cost / 1e6
            self.busy["vcpus"] += cost / 1e6 / self.share
        if releasing and not self.held_blocks:
            releasing = False
        self.releasing = releasing
        if releasing:
            return
        if not self.guest_reporting:
            self.hint_budget = min(0.0, self.hint_budget)
            return
        least = p["hint_block_ns"]  # a block costs at least this much vCPU time (ns)
        if self.init_on_alloc:
            least += BLOCK * p["zero_fill_ns"]
        while self.hint_budget >= least:
            if len(self.queue) >= QUEUE_SIZE - 1:
                self.hint_budget = 0.0
                return
            if not self.buddy.free[MAX_ORDER] or (
                self.buddy.nr_free_pages - BLOCK < self.hint_floor
            ):
                self.guest_end_pass(now)
                return
            pfn = self.buddy.alloc(MAX_ORDER)
            cost = least
            fault_ns = 0.0
            if self.init_on_alloc:
                faults = self.write_faults
                self.block_write(pfn, MAX_ORDER, zero=True)
                # the zeroing's write faults are the worker's vCPU time too
                fault_ns = (self.write_faults - faults) * self.write_fault_ns
                self.zero_cpu_ns += BLOCK * p["zero_fill_ns"]
                if p["t_first_touch"] > 0.0:
                    new = 0
                    for page in range(pfn, pfn + BLOCK):
                        region = page >> self.region_shift
                        if region not in self.src_touched:
                            self.src_touched.add(region)
                            new += 1
                    cost += new * p["t_first_touch"] * 1e6
            for page in range(pfn, pfn + BLOCK):
                self.held[page] = True
            self.held_blocks.append(pfn)
            self.held_pages += BLOCK
            self.held_max = max(self.held_max, self.held_pages)
            self.q_push("block", pfn, self.guest_cmd_active, now + p["hint_latency_ms"])
            self.hint_budget -= cost + fault_ns
            self.hint_cpu_ns += cost
            self.cpu_vcpu += (cost + fault_ns) / 1e6
            self.busy["vcpus"] += (cost + fault_ns) / 1e6 / self.share

    def iothread_pop(self):
        """The iothread handles the head of the virtqueue; True if it applied a hinted block
        (which takes it ``t_hint_apply``)."""
        kind, pfn, cmd, _ready = self.queue.popleft()
        if kind == "start":
            if cmd == self.host_cmd:
                self.host_status = S_START
        elif kind == "stop":
            if self.host_status == S_START:
                self.host_status = S_STOP
        elif self.host_status == S_START or "hint-outside-start" in self.faults:
            self.apply_hint(pfn)
            self.busy["iothread"] += self.p["t_hint_apply"]
            if self.slices == 0:
                self.hints_early += 1
            return True
        return False

    def host_hint_step(self, now):
        """The iothread handles the elements due by ``now``, in order; with QEMU 6.1's lock a
        block (and what queued behind it) waits while the sender is inside a slice."""
        while self.queue:
            kind, _pfn, _cmd, ready = self.queue[0]
            if ready > now:
                return
            if kind == "block" and self.lock_per_slice and self.in_slice:
                return
            self.iothread_pop()

    def slice_end_hints(self, t, gap):
        """QEMU 6.1+: the sender released the lock at ``t`` and its last batch waits ``gap`` ms
        for room in the stream.  While hints are queued, the iothread gets the lock with chance
        ``flush_wait_p`` (``flush_wait_p_after`` after a slice end that left its queue), the
        stream full or not; if not, ``gap`` is 0.  If it gets it (or, with chance
        ``boundary_drain_p``, anyway), it applies every due block it has queued; otherwise a
        Poisson number (mean ``boundary_hints``) get through.  The sender goes on when both are
        done."""
        p = self.p
        drain = gap > 0.0
        if self.queue:
            p_wait = p["flush_wait_p_after"] if self.drain_missed else p["flush_wait_p"]
            drain = p_wait >= 1.0 or self.host_rng.uniform() < p_wait
            if not drain:
                gap = 0.0  # the footer went into room the destination had just made
        if not drain and p["boundary_drain_p"] > 0.0:
            drain = self.host_rng.uniform() < p["boundary_drain_p"]
        if drain:
            limit = QUEUE_SIZE
        elif p["boundary_hints"] > 0.0:
            limit = self.host_rng.poisson(p["boundary_hints"])
        else:
            limit = 0
        clock = t
        applied = 0
        while self.queue and applied < limit and self.queue[0][3] <= clock:
            if self.iothread_pop():
                applied += 1
                clock += p["t_hint_apply"]
        self.hints_boundary += applied
        if drain and applied > 0:
            self.boundary_drains += 1
        self.drain_missed = bool(self.queue) and not drain
        return max(t + gap, clock)

    # ---- migration thread ------------------------------------------------------------------

    def bitmap_sync(self):
        self.sync_count += 1
        newly = 0
        for page in range(self.n):
            if self.dlog[page]:
                if not self.bmap[page]:
                    self.bmap[page] = True
                    newly += 1
                if "sync-no-rearm" not in self.faults:
                    self.armed[page] = True
                self.dlog[page] = False
        self.pending += newly
        self.period_dirty += newly
        return newly

    def auto_converge_check(self, t):
        if not self.p["auto_converge"] or t - self.period_start < 1000.0:
            return
        if self.period_dirty * PAGE_SIZE > self.period_bytes / 2:
            self.ac_cnt += 1
            if self.ac_cnt >= 2:
                self.ac_cnt = 0
                self.throttle = 0.2 if self.throttle == 0.0 else min(0.99, self.throttle + 0.1)
        self.period_start = t
        self.period_dirty = 0
        self.period_bytes = 0

    def close_round(self, newly, t):
        if len(self.rounds) < ROUND_CAP:
            self.rounds.append(
                {
                    "round-start": self.round_start,
                    "round-end": t,
                    "round-duplicate": self.r["dup"],
                    "round-normal": self.r["normal"],
                    "round-bytes": self.r["bytes"],
                    "round-skipped": self.r["skipped"],
                    "round-dirtied": newly,
                    "round-pending-after-sync": self.pending,
                    "round-threshold": self.threshold,
                    "round-bandwidth": self.bandwidth * 1000.0,
                }
            )
        self.r = {"dup": 0, "normal": 0, "bytes": 0, "skipped": 0}
        self.round_start = t

    def sync_point(self, last):
        if self.hint:
            self.host_free_page_stop()
        newly = self.bitmap_sync()
        self.sender_time += self.p["t_sync"] / self.share
        self.cpu_mig += self.p["t_sync"]
        self.busy["migration"] += self.p["t_sync"] / self.share
        t = self.sender_time
        self.auto_converge_check(t)
        self.close_round(newly, t)
        if self.hint:
            for pfn in self.stale:
                self.apply_hint(pfn)
            self.stale = []
            if last:
                self.host_status = S_DONE
            else:
                self.host_free_page_start(t)

    def add_bytes(self, nbytes):
        self.bytes += nbytes
        self.r["bytes"] += nbytes
        self.window_bytes += nbytes
        self.period_bytes += nbytes

    # ---- the destination and the stream --------------------------------------------------

    def dst_receive(self, page, normal, t):
        """The destination processes the page's record, written into the stream at ``t``,
        once it is done with everything before it; a normal page in a region of its RAM not
        written before first costs the region's allocation (``t_first_touch``)."""
        p = self.p
        if normal:
            cost = p["t_dst_normal"]
            region = page >> self.region_shift
            if p["t_first_touch"] > 0.0 and region not in self.dst_touched:
                self.dst_touched.add(region)
                cost += p["t_first_touch"]
        else:
            cost = p["t_dst_zero"]
        if cost > 0.0:
            self.dst_clock = max(self.dst_clock, t) + cost / self.share
            self.cpu_dst += cost

    def note_progress(self):
        """Every CHECKPOINT_BYTES sent: how far the destination is (when it will have
        processed every byte sent so far)."""
        if self.bytes >= self.ck_next:
            self.checkpoints.append((self.bytes, self.dst_clock))
            self.ck_next = self.bytes + CHECKPOINT_BYTES
            self.ck_most = max(self.ck_most, len(self.checkpoints))

    def dst_done_at(self, nbytes):
        """When the destination has processed the first ``nbytes`` of the stream: the time of
        the first checkpoint at or after it (now: the destination's clock if there is none).
        Older checkpoints are forgotten (``nbytes`` only grows)."""
        while self.checkpoints and self.checkpoints[0][0] < nbytes:
            self.checkpoints.popleft()
        if self.checkpoints:
            return self.checkpoints[0][1]
        return self.dst_clock

    def room_at(self, t):
        """When the stream has room for what was sent (``t`` if it had already)."""
        buf = self.p["stream_bytes"]
        if buf < math.inf and self.bytes > buf:
            return max(t, self.dst_done_at(self.bytes - buf))
        return t

    # ---- the migration thread, continued ---------------------------------------------------

    def send_pages(self, until, window_budget, check_slice):
        """Send pending pages from the cursor upward, looking at the bitmap one 64-page word at
        a time (each look costs ``t_word``).  Every 64 pages the batch is written into the
        stream, waiting for room.  Returns "until", "slice" or "empty"."""
        p = self.p
        n = self.n
        link = p["link_bytes_per_ms"]
        share = self.share
        lock = 0.0 if self.lock_per_slice else p["t_lock"]  # QEMU 4.0: the lock, every page
        cpu_zero = p["t_zero"] + lock
        cpu_normal = p["t_normal"] + lock
        # CPU time, stretched by sharing the CPU, or wire time, whichever is longer
        t_zero = max(cpu_zero / share, ZERO_RECORD / link)
        t_normal = max(cpu_normal / share, NORMAL_RECORD / link)
        bounded = p["stream_bytes"] < math.inf
        words = zeros = normals = 0
        t = self.sender_time
        while True:
            if t >= until:
                reason = "until"
                break
            if self.pending == 0:
                reason = "empty"
                break
            if self.cursor >= n:  # left at the end by the last slice: wrap, nothing looked at
                self.cursor = 0
                continue
            t += p["t_word"] / share
            words += 1
            word_end = (self.cursor // 64 + 1) * 64
            dirty = [page for page in range(self.cursor, word_end) if self.bmap[page]]
            if not dirty:
                self.cursor = word_end if word_end < n else 0
                continue
            reason = None
            for page in dirty:
                self.bmap[page] = False
                self.ver_dst[page] = self.ver_src[page]
                if self.nonzero[page]:
                    self.normal += 1
                    self.r["normal"] += 1
                    normals += 1
                    self.add_bytes(NORMAL_RECORD)
                    t += t_normal
                else:
                    self.dup += 1
                    self.r["dup"] += 1
                    zeros += 1
                    self.add_bytes(ZERO_RECORD)
                    t += t_zero
                self.dst_receive(page, self.nonzero[page], t)
                if bounded:
                    self.note_progress()
                self.pending -= 1
                self.slice_pages += 1
                self.cursor = page + 1
                if self.slice_pages % BATCH == 0:
                    if check_slice and t - self.slice_start > MAX_WAIT:
                        reason = "slice"  # the batch is written after the slice ends
                        break
                    t = self.room_at(t)  # write the batch into the stream
                if check_slice and self.window_bytes > window_budget:
                    reason = "slice"
                    break
                if t >= until:
                    reason = "until"
                    break
            if reason is not None:
                break
            if self.cursor >= n:
                self.cursor = 0
        cpu = words * p["t_word"] + zeros * cpu_zero + normals * cpu_normal
        self.cpu_mig += cpu
        self.busy["migration"] += cpu / share
        self.sender_time = t
        return reason

    def end_slice(self):
        """The slice ends: the lock is released and the footer and the last batch are written
        into the stream (waiting for room); with QEMU 6.1's lock the iothread may apply its
        queued hints meanwhile."""
        self.in_slice = False
        self.add_bytes(SLICE_OVERHEAD)
        t = self.sender_time
        gap = self.room_at(t) - t
        if self.hint and self.lock_per_slice:
            self.sender_time = self.slice_end_hints(t, gap)
        else:
            self.sender_time = t + gap

    def migration_completion(self):
        p = self.p
        self.vm_running = False
        self.downtime_start = self.sender_time
        if self.bandwidth > 0.0:
            self.expected_downtime = self.pending * PAGE_SIZE / self.bandwidth
        self.sync_point(last=True)
        self.cursor = 0
        self.send_pages(math.inf, math.inf, check_slice=False)
        self.sender_time = self.room_at(self.sender_time)  # the last batch
        self.bytes += SLICE_OVERHEAD
        self.r["bytes"] += SLICE_OVERHEAD
        self.sender_time += p["t_switchover"]
        self.end_time = self.sender_time
        self.close_round(0, self.end_time)
        self.status = "completed"

    def sender_run(self, until):
        p = self.p
        window_budget = p["max_bandwidth"] / 10.0
        while self.sender_time < until and self.status == "running":
            t = self.sender_time
            if t >= self.window_start + BUFFER_DELAY:
                self.bandwidth = self.window_bytes / (t - self.window_start)
                self.threshold = self.bandwidth * p["downtime_limit"]
                self.window_bytes = 0
                self.window_start = t
            if self.window_bytes > window_budget:
                self.sender_time = self.window_start + BUFFER_DELAY
                continue
            if not self.in_slice:
                if self.pending * PAGE_SIZE < self.threshold:
                    self.sync_point(last=False)
                if self.pending == 0 or self.pending * PAGE_SIZE < self.threshold:
                    self.migration_completion()
                    return
                self.in_slice = True
                self.slices += 1
                self.slice_start = self.sender_time
                self.slice_pages = 0
            if self.send_pages(until, window_budget, check_slice=True) != "until":
                self.end_slice()

    # ---- main loop -------------------------------------------------------------------------

    def run(self, until=math.inf):
        """Step until the migration ends or the clock reaches ``until`` (ms); call again to
        go on from there (the tests of single steps start from such a mid-run state)."""
        p = self.p
        dt = p["step_ms"]
        while self.status == "running" and self.now < until:
            now = self.now
            step_end = now + dt
            if not self.logging and now >= self.log_start_at:
                self.armed = [True] * self.n
                self.logging = True
            if self.vm_running:
                speed = dt * (1.0 - self.throttle) * p["cpu_speed"] * p["intensity"]
                self.workload_step(speed * self.share)
                if self.status != "running":
                    self.end_time = step_end
                    break
                if self.hint:
                    self.guest_hint_step(now, dt)
            if self.hint:
                self.host_hint_step(step_end)
            if not self.setup_done and self.sender_time <= step_end:
                self.bitmap_sync()  # setup's sync #1
                self.setup_done = True
                self.setup_time = self.setup_end
                self.round_start = self.setup_end
                self.window_start = self.setup_end
                self.period_start = self.setup_end
                if self.hint:
                    self.host_free_page_start(self.setup_end)
            if self.setup_done:
                self.sender_run(step_end)
            self.share = self.cpu_share(now, dt)
            if self.share < 1.0:
                self.contended_steps += 1
            self.now = step_end
            if self.status != "running":
                break
            if step_end >= p["max_time"]:
                self.status = "not-converged"
                self.end_time = step_end
                break

    def cpu_share(self, step_start, dt):
        """Each busy thread's share of a host CPU in the next step.  What each thread wants is
        the share of this step it was busy: the migration thread, the destination (busy until
        its clock), the vCPUs' hinting and dirty loop, the iothread, the workload's busy vCPUs
        while the guest runs, and other work on the host.  If they want more CPUs than the
        host has, each gets ``host_cpus / demand`` of one."""
        p = self.p
        dst = min(dt, max(0.0, self.dst_clock - step_start))
        busy = self.busy
        want = (busy["migration"] + dst + busy["vcpus"] + busy["iothread"]) / dt + p["background"]
        if self.vm_running:
            want += p["guest_busy"] * (1.0 - self.throttle)
        self.busy = {"migration": 0.0, "vcpus": 0.0, "iothread": 0.0}
        if want > p["host_cpus"]:
            return p["host_cpus"] / want
        return 1.0

    def count_lost(self):
        """Pages whose last version did not reach the destination: (lost, stale_free)."""
        free = self.buddy.free_pages()
        lost = stale_free = 0
        for page in range(self.n):
            if self.ver_src[page] != self.ver_dst[page]:
                relied = not self.held[page] and (not free[page] or self.poison != "off")
                if relied:
                    lost += 1
                else:
                    stale_free += 1
        return lost, stale_free

    def results(self) -> dict:
        completed = self.status == "completed"
        nan = float("nan")
        lost, stale_free = self.count_lost() if completed else (-1, -1)
        total = self.end_time if self.status != "failed" else nan
        setup = self.setup_time if self.setup_done else nan
        moving = total - setup if completed else nan
        mbps = self.bytes * 8 / moving / 1000 if completed and moving > 0 else nan
        overhead_ns = self.write_faults * self.write_fault_ns + self.hint_cpu_ns

        def num(v):
            if isinstance(v, float):
                return None if math.isnan(v) else round(v, 3)
            return int(v)

        rounds = [dict(row) for row in self.rounds]
        if completed and len(rounds) >= 2 and rounds[-2]["round-start"] >= self.downtime_start:
            # the round closed by the final sync, after the VM stopped, sent nothing: it is the
            # start of the stop-and-copy
            final, last = rounds[-2], rounds[-1]
            merged = dict(last)
            for k in ("round-start", "round-dirtied", "round-pending-after-sync"):
                merged[k] = final[k]
            for k in ("round-duplicate", "round-normal", "round-bytes", "round-skipped"):
                merged[k] = final[k] + last[k]
            rounds[-2:] = [merged]
        out = {
            "status": self.status,
            "total-time": num(total),
            "downtime": num(self.end_time - self.downtime_start if completed else nan),
            "setup-time": num(setup),
            "expected-downtime": num(self.expected_downtime if completed else nan),
            "dirty-sync-count": self.sync_count,
            "mbps": num(mbps),
            "ram": {
                "transferred": self.bytes,
                "duplicate": self.dup,
                "normal": self.normal,
                "normal-bytes": self.normal * PAGE_SIZE,
            },
            "rounds": max(0, len(rounds) - (1 if completed else 0)),
            "cpu-throttle-percentage": num(self.throttle * 100),
            "hinted-pages": self.hinted,
            "skipped-pages": self.skipped,
            "lost-pages": lost if completed else None,
            "stale-free-pages": stale_free if completed else None,
            "guest-overhead-time": num(overhead_ns / 1e6),
            # the reference covers hinting "none" and "fph": no free page reporting, and a
            # migration that is never cancelled (the driver holds its blocks past DONE)
            "reported-pages": 0,
            "held-pages-at-end": self.held_pages,
            "failure": self.failure,
            # beyond fk.summary()
            "hint-cpu-time": self.hint_cpu_ns / 1e6,
            "zeroing-cpu-time": self.zero_cpu_ns / 1e6,
            "write-faults": self.write_faults,
            "held-pages-max": self.held_max,
            "zero-pages-at-start": self.zero_at_start,
            "free-pages-at-start": self.free_at_start,
            "cpu-migration-thread": self.cpu_mig,
            "cpu-destination": self.cpu_dst,
            "cpu-vcpus": self.cpu_vcpu,
            "hints-before-first-slice": self.hints_early,
            "slice-end-drains": self.boundary_drains,
            # statistics of the naive run only
            "dirty-loop-writes-dropped": self.dl_dropped,
            "contended-steps": self.contended_steps,
            "start-delays": list(self.start_delays),
            "checkpoints-kept-max": self.ck_most,
            "held-blocks": list(self.held_blocks),
        }
        for name in ROUND_NAMES:
            out[name] = [row[name] for row in rounds]
        return out


ROUND_NAMES = (
    "round-start",
    "round-end",
    "round-duplicate",
    "round-normal",
    "round-bytes",
    "round-skipped",
    "round-dirtied",
    "round-pending-after-sync",
    "round-threshold",
    "round-bandwidth",
)


def naive_simulate(scenario, profile=None, step_ms=1.0, guest=None) -> dict:
    """The results of one migration, computed plainly.

    Returns the scalars of :func:`fphint_kernels.summary` (without ``scenario``), a few more
    scalars of the Dataset, and the per-round variables as lists.
    """
    m = NaiveMigration(scenario, profile, step_ms, guest)
    if m.status == "running":
        m.run()
    return m.results()
