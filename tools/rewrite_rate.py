"""How much of its own anonymous memory one compiler process touches again (referenced bits).

Runs one compile command, finds its ``cc1``, and every ``--interval`` seconds reads the present
pages of its writable private mappings from ``/proc/PID/pagemap`` and the ``Referenced`` memory
of those mappings from ``/proc/PID/smaps``, then clears the referenced bits
(``echo 1 > /proc/PID/clear_refs``, Documentation/filesystems/proc.rst).  Pages referenced in
an interval, less those that became present in it, were touched again: read or written, so an
upper bound of the pages rewritten.  (Soft-dirty bits, ``echo 4``, would count writes only, but
need ``CONFIG_MEM_SOFT_DIRTY``.)  Prints one CSV line per sample: t_s, present pages, newly
present pages, referenced pages.  Needs root (pagemap's page frames).

    python tools/rewrite_rate.py --interval 0.1 -- gcc <flags> -c file.c -o /tmp/x.o
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

import numpy as np

PRESENT = np.uint64(1 << 63)


def regions(pid: int):
    out = []
    with open(f"/proc/{pid}/maps") as fh:
        for line in fh:
            parts = line.split()
            lo, hi = (int(x, 16) for x in parts[0].split("-"))
            path = parts[5] if len(parts) > 5 else ""
            if parts[1].startswith("rw") and parts[1][3] == "p" and (not path or path == "[heap]"):
                out.append((lo, hi))
    return out


def referenced_kib(pid: int, wanted: set) -> int:
    """``Referenced`` kB of the mappings that start at an address in ``wanted``."""
    total, current = 0, None
    with open(f"/proc/{pid}/smaps") as fh:
        for line in fh:
            head = line.split()[0]
            if "-" in head and not head.endswith(":"):
                current = int(head.split("-")[0], 16)
            elif head == "Referenced:" and current in wanted:
                total += int(line.split()[1])
    return total


def sample(pid: int) -> dict:
    pages = {}
    fd = os.open(f"/proc/{pid}/pagemap", os.O_RDONLY)
    try:
        for lo, hi in regions(pid):
            raw = os.pread(fd, (hi - lo) // 4096 * 8, lo // 4096 * 8)
            e = np.frombuffer(raw, np.uint64)
            vpn = np.arange(lo // 4096, lo // 4096 + e.size)
            pages[lo] = vpn[(e & PRESENT) != 0]
    finally:
        os.close(fd)
    referenced = referenced_kib(pid, set(pages)) // 4
    with open(f"/proc/{pid}/clear_refs", "w") as fh:
        fh.write("1")
    vpn = np.concatenate(list(pages.values())) if pages else np.zeros(0, int)
    return {"vpn": vpn, "referenced": referenced}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--interval", type=float, default=0.1)
    ap.add_argument("cmd", nargs=argparse.REMAINDER)
    a = ap.parse_args()
    cmd = a.cmd[1:] if a.cmd and a.cmd[0] == "--" else a.cmd
    proc = subprocess.Popen(cmd)
    t0 = time.monotonic()
    cc1 = None
    while cc1 is None and proc.poll() is None:
        kids = subprocess.run(["pgrep", "-P", str(proc.pid), "cc1"], capture_output=True, text=True)
        cc1 = int(kids.stdout.split()[0]) if kids.stdout.split() else None
        time.sleep(0.002)
    sys.stdout.write("t_s,present,new,referenced\n")
    prev = np.zeros(0, int)
    try:
        while cc1 is not None and proc.poll() is None:
            s = sample(cc1)
            new = np.setdiff1d(s["vpn"], prev, assume_unique=True).size
            t = time.monotonic() - t0
            sys.stdout.write(f"{t:.3f},{s['vpn'].size},{new},{s['referenced']}\n")
            sys.stdout.flush()
            prev = s["vpn"]
            time.sleep(a.interval)
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        pass
    proc.wait()


if __name__ == "__main__":
    main()
