"""The test guest: a Debian 6.1 kernel and a busybox initramfs, in a cache directory.

This module holds what the guest is (its workload program, its ``/init`` script, the
modules it loads, the ``newc`` archive of its initramfs) and finds a prepared guest
(:func:`load_guest`).  :func:`fphint_kernels.qemu.prepare.prepare` (``fphint qemu prepare``)
builds it, once per cache directory:

1. ``apt-get download linux-image-6.1.0-N-amd64`` (the newest N apt knows, or a given package
   or ``.deb``) and ``dpkg -x`` it into a temporary directory;
2. copies ``vmlinuz`` and the modules ``virtio_ring, virtio, virtio_pci_legacy_dev,
   virtio_pci_modern_dev, virtio_pci, virtio_balloon``;
3. compiles ``fphint-mem`` (the guest workload program, C source below) with ``gcc -static``;
4. writes an initramfs (``newc`` cpio, gzip) holding busybox (static), the modules, the program
   and ``/init``, the script that runs the guest modes and prints markers on the serial console.

Nothing fetched is ever committed: everything lives in ``$FPHINT_QEMU_CACHE`` (default
``~/.cache/fphint/qemu``).  ``guest.json`` in that directory describes what was built.
"""

from __future__ import annotations

import io
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import FphintError

MODULES = (
    "virtio_ring",
    "virtio",
    "virtio_pci_legacy_dev",
    "virtio_pci_modern_dev",
    "virtio_pci",
    "virtio_balloon",
)
GUEST_FORMAT = 3  # bump when the init script or the program change, to force a rebuild
KERNEL_PKG_RE = re.compile(r"^linux-image-6\.1\.0-(\d+)-amd64$")

# The guest workload program.  Modes:
#   fill FRAC            write FRAC of MemTotal (capped by MemAvailable) with non-zero data, free it
#   dirty BYTES MS       rewrite one word in each page of a BYTES buffer every MS milliseconds
#   hold BYTES           keep a buffer with a known pattern, verify it every second, print a heartbeat
#   touch FRAC           allocate FRAC of MemAvailable, write and verify it, free it (post-migration)
MEM_C = r"""
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/mman.h>

static long meminfo_kb(const char *key) {
    FILE *f = fopen("/proc/meminfo", "r");
    char line[256]; long v = -1; size_t n = strlen(key);
    if (!f) return -1;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, key, n) == 0) { v = strtol(line + n, NULL, 10); break; }
    fclose(f);
    return v;
}

static double now_s(void) {
    struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static uint64_t pattern(uint64_t i, uint64_t seed) {
    uint64_t x = (i + 1) * 0x9E3779B97F4A7C15ull ^ seed;
    x ^= x >> 29; x *= 0xBF58476D1CE4E5B9ull; x ^= x >> 32;
    return x | 1;  /* never zero */
}

static unsigned char *map(size_t bytes) {
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) { printf("FPHINT-ERROR mmap %zu failed\n", bytes); fflush(stdout); exit(1); }
    return p;
}

/* write every 8-byte word of the buffer; returns nothing */
static void write_all(unsigned char *p, size_t bytes, uint64_t seed) {
    uint64_t *q = (uint64_t *)p; size_t n = bytes / 8;
    for (size_t i = 0; i < n; i++) q[i] = pattern(i, seed);
}

static size_t verify_all(unsigned char *p, size_t bytes, uint64_t seed) {
    uint64_t *q = (uint64_t *)p; size_t n = bytes / 8, bad = 0;
    for (size_t i = 0; i < n; i++) if (q[i] != pattern(i, seed)) bad++;
    return bad;
}

static size_t capped(double frac, long base_kb) {
    long avail = meminfo_kb("MemAvailable:");
    long want_kb = (long)(frac * base_kb);
    long cap_kb = avail - 48 * 1024;
    if (want_kb > cap_kb) want_kb = cap_kb;
    if (want_kb < 0) want_kb = 0;
    return (size_t)want_kb * 1024 / 4096 * 4096;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc >= 3 && !strcmp(argv[1], "fill")) {
        size_t bytes = capped(atof(argv[2]), meminfo_kb("MemTotal:"));
        double t0 = now_s();
        if (bytes) { unsigned char *p = map(bytes); write_all(p, bytes, 0x5eed); munmap(p, bytes); }
        printf("FPHINT-FILL bytes=%zu seconds=%.3f\n", bytes, now_s() - t0);
        return 0;
    }
    if (argc >= 3 && !strcmp(argv[1], "touch")) {
        size_t bytes = capped(atof(argv[2]), meminfo_kb("MemAvailable:"));
        double t0 = now_s(); size_t bad = 0;
        if (bytes) {
            unsigned char *p = map(bytes); write_all(p, bytes, 0x70c4);
            bad = verify_all(p, bytes, 0x70c4); munmap(p, bytes);
        }
        printf("FPHINT-TOUCH %s bytes=%zu bad_words=%zu seconds=%.3f\n",
               bad ? "BAD" : "ok", bytes, bad, now_s() - t0);
        return bad != 0;
    }
    if (argc >= 4 && !strcmp(argv[1], "dirty")) {
        size_t bytes = (size_t)atoll(argv[2]) / 4096 * 4096;
        long ms = atol(argv[3]);
        unsigned char *p = map(bytes ? bytes : 4096);
        struct timespec next; clock_gettime(CLOCK_MONOTONIC, &next);
        uint64_t gen = 0;
        printf("FPHINT-DIRTY bytes=%zu interval_ms=%ld\n", bytes, ms);
        for (;;) {
            gen++;
            for (size_t off = 0; off < bytes; off += 4096) *(volatile uint64_t *)(p + off) = gen;
            next.tv_nsec += ms * 1000000L;
            while (next.tv_nsec >= 1000000000L) { next.tv_nsec -= 1000000000L; next.tv_sec++; }
            clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL);
        }
    }
    if (argc >= 3 && !strcmp(argv[1], "hold")) {
        size_t bytes = (size_t)atoll(argv[2]) / 4096 * 4096;
        unsigned char *p = map(bytes);
        write_all(p, bytes, 0x401d);
        for (unsigned long seq = 0;; seq++) {
            size_t bad = verify_all(p, bytes, 0x401d);
            printf("FPHINT-HB %lu %s bad_words=%zu\n", seq, bad ? "BAD" : "ok", bad);
            if (bad) write_all(p, bytes, 0x401d);
            sleep(1);
        }
    }
    fprintf(stderr, "usage: fphint-mem fill FRAC | touch FRAC | dirty BYTES MS | hold BYTES\n");
    return 2;
}
"""

# /init of the guest.  Parameters come from the kernel command line (fphint.*=...).
INIT_SH = r"""#!/bin/busybox sh
/bin/busybox mkdir -p /proc /sys /dev /tmp /bin /sbin /usr/bin /usr/sbin
/bin/busybox --install -s
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
echo "FPHINT-BOOT kernel=$(uname -r)"
for m in virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci virtio_balloon; do
    insmod /lib/modules/$m.ko || echo "FPHINT-ERROR insmod $m"
done
MODE=idle; FILL=0.6; DBYTES=134217728; DMS=100; HOLD=4194304
for a in $(cat /proc/cmdline); do
    case "$a" in
        fphint.mode=*) MODE="${a#*=}" ;;
        fphint.fill=*) FILL="${a#*=}" ;;
        fphint.dirty_bytes=*) DBYTES="${a#*=}" ;;
        fphint.dirty_ms=*) DMS="${a#*=}" ;;
        fphint.hold=*) HOLD="${a#*=}" ;;
    esac
done
i=0
while [ ! -e /sys/bus/virtio/devices/virtio0/features ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done
FEAT=$(cat /sys/bus/virtio/devices/virtio0/features 2>/dev/null || echo none)
echo "FPHINT-FEATURES $FEAT"
/bin/fphint-mem hold $HOLD &
case "$MODE" in
    idle) ;;
    fill-free) /bin/fphint-mem fill $FILL ;;
    dirty-loop) /bin/fphint-mem dirty $DBYTES $DMS & ;;
    *) echo "FPHINT-ERROR unknown mode $MODE" ;;
esac
sleep 1
echo "FPHINT-MEMINFO $(grep -E '^(MemTotal|MemFree|MemAvailable):' /proc/meminfo | tr -s ' ' | tr '\n' ' ')"
echo "FPHINT-READY mode=$MODE"
while true; do setsid cttyhack sh; sleep 1; done
"""


@dataclass(frozen=True)
class Guest:
    """A prepared guest: paths and versions (the content of ``guest.json``)."""

    cache_dir: Path
    kernel: Path
    initrd: Path
    kernel_version: str
    kernel_package: str
    kernel_package_version: str

    def to_dict(self) -> dict:
        """Plain-JSON description."""
        return {
            "format": GUEST_FORMAT,
            "kernel": str(self.kernel),
            "initrd": str(self.initrd),
            "kernel_version": self.kernel_version,
            "kernel_package": self.kernel_package,
            "kernel_package_version": self.kernel_package_version,
        }


def cache_dir(path: str | os.PathLike | None = None) -> Path:
    """The cache directory: ``path``, else ``$FPHINT_QEMU_CACHE``, else ``~/.cache/fphint/qemu``."""
    if path:
        return Path(path).expanduser()
    env = os.environ.get("FPHINT_QEMU_CACHE")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "fphint" / "qemu"


def load_guest(path: str | os.PathLike | None = None) -> Guest:
    """The guest prepared in the cache directory.

    Raises
    ------
    FphintError
        Nothing prepared there yet, or prepared by an older version of the harness.
    """
    d = cache_dir(path)
    manifest = d / "guest.json"
    if not manifest.exists():
        raise FphintError(f"no guest prepared in {d}: run `fphint qemu prepare` first")
    raw = json.loads(manifest.read_text())
    if raw.get("format") != GUEST_FORMAT:
        raise FphintError(f"guest in {d} is from an older harness: run `fphint qemu prepare` again")
    g = Guest(
        cache_dir=d,
        kernel=Path(raw["kernel"]),
        initrd=Path(raw["initrd"]),
        kernel_version=raw["kernel_version"],
        kernel_package=raw["kernel_package"],
        kernel_package_version=raw["kernel_package_version"],
    )
    for p in (g.kernel, g.initrd):
        if not p.exists():
            raise FphintError(f"{p} is missing: run `fphint qemu prepare` again")
    return g


def _cpio_newc(entries: list[tuple[str, int, bytes]]) -> bytes:
    """A ``newc`` cpio archive of ``(name, mode, data)`` entries (directories have no data)."""
    out = io.BytesIO()

    def pad4(n: int) -> None:
        out.write(b"\0" * ((4 - n % 4) % 4))

    for ino, (name, mode, data) in enumerate([*entries, ("TRAILER!!!", 0, b"")], start=1):
        nm = name.encode() + b"\0"
        fields = [ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(nm), 0]
        hdr = b"070701" + b"".join(f"{v:08X}".encode() for v in fields)
        out.write(hdr + nm)
        pad4(len(hdr) + len(nm))
        out.write(data)
        pad4(len(data))
    return out.getvalue()
