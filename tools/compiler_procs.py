"""Peak RSS and lifetime of every compiler process (``cc1``) of a build, from ``/proc``.

Polls ``/proc/*/comm`` every ``--interval`` seconds while ``CMD`` runs and keeps, for each
``cc1``, the first and last time it was seen, its ``VmHWM`` (peak resident set, the
compiler's own text included) and the largest ``RssAnon`` (anonymous memory) it was seen with.
Writes ``pid,first_s,last_s,hwm_kib,anon_kib`` lines to ``--out``.

    python tools/compiler_procs.py --out procs.csv -- make -j2 kernel/ mm/ fs/
"""

from __future__ import annotations

import argparse
import os
import subprocess
import time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--interval", type=float, default=0.02)
    ap.add_argument("--out", required=True)
    ap.add_argument("cmd", nargs=argparse.REMAINDER)
    a = ap.parse_args()
    cmd = a.cmd[1:] if a.cmd and a.cmd[0] == "--" else a.cmd
    seen: dict[int, list] = {}
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
    while proc.poll() is None:
        now = time.monotonic() - t0
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                with open(f"/proc/{d}/status") as fh:
                    status = fh.read()
            except OSError:
                continue
            if not status.startswith("Name:\tcc1\n"):
                continue
            kib = {x.split(":")[0]: int(x.split()[1]) for x in status.splitlines()
                   if x.startswith(("VmHWM", "RssAnon"))}  # fmt: skip
            rec = seen.setdefault(int(d), [now, now, 0, 0])
            rec[1] = now
            rec[2] = max(rec[2], kib.get("VmHWM", 0))
            rec[3] = max(rec[3], kib.get("RssAnon", 0))
        time.sleep(a.interval)
    with open(a.out, "w") as fh:
        fh.write("pid,first_s,last_s,hwm_kib,anon_kib\n")
        for pid, (f, last, hwm, anon) in seen.items():
            fh.write(f"{pid},{f:.3f},{last:.3f},{hwm},{anon}\n")


if __name__ == "__main__":
    main()
