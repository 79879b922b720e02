"""Building the test guest (``fphint qemu prepare``): download a Debian kernel package, extract
its kernel and virtio modules, compile the guest program, write the initramfs.

Everything here runs other programs (``apt-cache``, ``apt-get download``, ``dpkg-deb``,
``gcc -static``) and reads the static ``busybox`` of this host; what the guest is lives in
:mod:`fphint_kernels.qemu.guest`.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from ..errors import FphintError
from .guest import (
    INIT_SH,
    KERNEL_PKG_RE,
    MEM_C,
    MODULES,
    Guest,
    _cpio_newc,
    cache_dir,
    load_guest,
)


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
