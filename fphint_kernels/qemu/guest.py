"""Build the test guest: a Debian 6.1 kernel and a busybox initramfs, in a cache directory.

``prepare()`` (``fphint qemu prepare``) does, once per cache directory:

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

import gzip
import hashlib
import io
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..errors import FphintError

log = logging.getLogger(__name__)

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


def newest_kernel_package() -> str:
    """Name of the newest ``linux-image-6.1.0-N-amd64`` package apt knows about."""
    if shutil.which("apt-cache") is None:
        raise FphintError("apt-cache not found: pass --kernel-deb FILE.deb instead")
    out = subprocess.run(
        ["apt-cache", "pkgnames", "linux-image-6.1.0-"], capture_output=True, text=True, check=False
    ).stdout
    best = None
    for name in out.split():
        m = KERNEL_PKG_RE.match(name.strip())
        if m and (best is None or int(m.group(1)) > best[0]):
            best = (int(m.group(1)), name.strip())
    if best is None:
        raise FphintError(
            "apt knows no linux-image-6.1.0-N-amd64 package: run `apt-get update` "
            "(on Debian 12) or pass --kernel-deb FILE.deb"
        )
    return best[1]


def _download(package: str, dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    found = sorted(dest.glob(f"{package}_*.deb"))
    if found:
        return found[-1]
    sys.stderr.write(f"fphint qemu prepare: apt-get download {package}\n")
    r = subprocess.run(
        ["apt-get", "download", package], cwd=dest, capture_output=True, text=True, check=False
    )
    found = sorted(dest.glob(f"{package}_*.deb"))
    if r.returncode != 0 or not found:
        msg = (r.stderr.strip().splitlines() or ["no output"])[-1]
        raise FphintError(f"apt-get download {package} failed: {msg}")
    return found[-1]


def _deb_field(deb: Path, field: str) -> str:
    return subprocess.run(
        ["dpkg-deb", "-f", str(deb), field], capture_output=True, text=True, check=True
    ).stdout.strip()


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


def _compile_mem(work: Path) -> bytes:
    gcc = shutil.which("gcc") or shutil.which("cc")
    if gcc is None:
        raise FphintError("gcc not found: install gcc and libc6-dev (see .ci/install-qemu.sh)")
    src = work / "fphint-mem.c"
    src.write_text(MEM_C)
    exe = work / "fphint-mem"
    r = subprocess.run(
        [gcc, "-O2", "-static", "-o", str(exe), str(src)], capture_output=True, text=True
    )
    if r.returncode != 0:
        raise FphintError(f"gcc -static failed: {r.stderr.strip().splitlines()[-1:]}")
    return exe.read_bytes()


def _static_busybox() -> bytes:
    bb = shutil.which("busybox")
    if bb is None:
        raise FphintError("busybox not found: apt-get install busybox-static")
    data = Path(bb).read_bytes()
    if b"/lib64/ld-linux" in data[:4096] or b"ld-linux-x86-64" in data[:8192]:
        raise FphintError(f"{bb} is dynamically linked: apt-get install busybox-static")
    return data


def prepare(
    path: str | os.PathLike | None = None,
    *,
    kernel_package: str | None = None,
    kernel_deb: str | os.PathLike | None = None,
    force: bool = False,
) -> Guest:
    """Build (or reuse) the guest kernel and initramfs in the cache directory.

    Parameters
    ----------
    path : path-like, optional
        Cache directory (default: see :func:`cache_dir`).
    kernel_package : str, optional
        Debian package to download (default: newest ``linux-image-6.1.0-N-amd64``).
    kernel_deb : path-like, optional
        Use this ``.deb`` instead of downloading.
    force : bool
        Rebuild even if a guest is already prepared.

    Returns
    -------
    Guest
    """
    d = cache_dir(path)
    if not force:
        try:
            return load_guest(d)
        except FphintError:
            pass
    d.mkdir(parents=True, exist_ok=True)
    for tool in ("dpkg-deb",):
        if shutil.which(tool) is None:
            raise FphintError(f"{tool} not found: the guest is built from Debian packages")
    if kernel_deb:
        deb = Path(kernel_deb)
        if not deb.exists():
            raise FphintError(f"--kernel-deb: {deb} does not exist")
    else:
        deb = _download(kernel_package or newest_kernel_package(), d / "debs")
    package, version = _deb_field(deb, "Package"), _deb_field(deb, "Version")
    with tempfile.TemporaryDirectory(prefix="fphint-guest-") as tmp:
        tmpd = Path(tmp)
        sys.stderr.write(f"fphint qemu prepare: extracting {deb.name}\n")
        subprocess.run(["dpkg-deb", "-x", str(deb), str(tmpd / "x")], check=True)
        vmlinuz = sorted((tmpd / "x" / "boot").glob("vmlinuz-*"))
        if not vmlinuz:
            raise FphintError(f"{deb.name} holds no /boot/vmlinuz-*")
        kver = vmlinuz[-1].name[len("vmlinuz-") :]
        kdir = d / f"kernel-{kver}"
        kdir.mkdir(exist_ok=True)
        kernel = kdir / "vmlinuz"
        shutil.copyfile(vmlinuz[-1], kernel)
        moddir = tmpd / "x" / "lib" / "modules" / kver / "kernel"
        mods = {}
        for m in MODULES:
            hits = list(moddir.rglob(f"{m}.ko")) + list(moddir.rglob(f"{m}.ko.xz"))
            if not hits:
                raise FphintError(f"module {m}.ko not found in {deb.name}")
            data = hits[0].read_bytes()
            if hits[0].suffix == ".xz":
                import lzma

                data = lzma.decompress(data)
            mods[m] = data
        sys.stderr.write("fphint qemu prepare: compiling fphint-mem (gcc -static)\n")
        mem = _compile_mem(tmpd)
    entries: list[tuple[str, int, bytes]] = [
        (name, 0o040755, b"")
        for name in ("bin", "dev", "proc", "sys", "tmp", "lib", "lib/modules", "sbin", "usr")
    ]
    entries += [("usr/bin", 0o040755, b""), ("usr/sbin", 0o040755, b"")]
    entries += [("bin/busybox", 0o100755, _static_busybox()), ("bin/fphint-mem", 0o100755, mem)]
    entries += [(f"lib/modules/{m}.ko", 0o100644, mods[m]) for m in MODULES]
    entries += [("init", 0o100755, INIT_SH.encode())]
    blob = gzip.compress(_cpio_newc(entries), compresslevel=6, mtime=0)
    digest = hashlib.sha256(blob).hexdigest()[:12]
    initrd = d / f"initramfs-{kver}-{digest}.cpio.gz"
    initrd.write_bytes(blob)
    guest = Guest(d, kernel, initrd, kver, package, version)
    (d / "guest.json").write_text(json.dumps(guest.to_dict(), indent=2) + "\n")
    sys.stderr.write(
        f"fphint qemu prepare: guest ready in {d} (kernel {kver}, {package} {version})\n"
    )
    return guest
