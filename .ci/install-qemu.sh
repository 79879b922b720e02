#!/usr/bin/env bash
# Install what the real-QEMU harness and its test need (Debian 12, run as root). Idempotent.
#   qemu-system-x86   QEMU 7.2 (source and destination of the test migration)
#   busybox-static    the guest's userland (static, goes into the initramfs)
#   cpio              kept for inspecting initramfs images by hand
#   gcc, libc6-dev    `fphint qemu prepare` compiles the guest workload program with gcc -static
#   dpkg-dev/apt      `apt-get download` + `dpkg-deb -x` of the Debian guest kernel (base system)
# The guest kernel itself is downloaded by `fphint qemu prepare` into ~/.cache/fphint/qemu,
# which needs current apt lists: hence the unconditional `apt-get update`.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-qemu.sh: no apt-get here; install qemu-system-x86 busybox-static cpio gcc libc6-dev by hand" >&2
    exit 0
fi
apt-get update -qq
need=()
for pkg in qemu-system-x86 busybox-static cpio gcc libc6-dev; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
        need+=("$pkg")
    fi
done
if [ "${#need[@]}" -gt 0 ]; then
    apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
qemu-system-x86_64 --version | head -1
