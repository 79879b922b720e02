#!/bin/bash
# Trace every page a kernel build takes from the buddy allocator (data/measurements/host-build).
#
#   sudo bash tools/measure_build_footprint.sh SRC OUT [LIMIT_S]
#
# SRC: a configured Linux source tree (e.g. Debian's linux-source-6.1, `make defconfig`);
# OUT: an empty folder for the raw files; LIMIT_S: stop the build after this many seconds.
# Needs root: tracefs, /proc/kpageflags, drop_caches.  Records the kmem:mm_page_alloc_zone_locked
# tracepoint for the build's process tree, /proc/kpageflags before and after, /proc/meminfo and
# the number of objects every 5 s, and GNU time's summary.  Then:
#   python tools/build_footprint.py OUT data/measurements/host-build
set -euo pipefail
SRC=$(cd "$1" && pwd); OUT=$(mkdir -p "$2" && cd "$2" && pwd); LIMIT=${3:-1500}
T=/sys/kernel/tracing
[ -d $T/events ] || mount -t tracefs nodev $T
snap() {  # a copy of /proc/kpageflags (one uint64 of page flags per pfn) as .npy
  python3 -c '
import os, sys, numpy as np
fd = os.open("/proc/kpageflags", os.O_RDONLY); chunks = []; off = 0
while True:
    c = os.pread(fd, 1 << 24, off)
    if not c: break
    chunks.append(c); off += len(c)
np.save(sys.argv[1], np.frombuffer(b"".join(chunks), dtype=np.uint64))' "$1"
}
cd "$SRC"
make clean >/dev/null 2>&1
sync; echo 3 > /proc/sys/vm/drop_caches; sleep 2
echo 0 > $T/tracing_on; echo > $T/trace; echo mono > $T/trace_clock
echo 131072 > $T/buffer_size_kb
echo 1 > $T/options/event-fork
echo $$ > $T/set_event_pid
echo 1 > $T/events/kmem/mm_page_alloc_zone_locked/enable
snap "$OUT/flags0.npy"
cat $T/trace_pipe > "$OUT/trace.txt" &
CATPID=$!
(echo t,memfree_kb,cached_kb,anon_kb,objs,load1
 while true; do
   python3 -c 'import time; print(f"{time.monotonic():.3f}", end="")'
   awk '/^MemFree:/{f=$2} /^Cached:/{c=$2} /^AnonPages:/{a=$2} END{printf ",%d,%d,%d", f, c, a}' /proc/meminfo
   echo ",$(find "$SRC" -name '*.o' | wc -l),$(cut -d' ' -f1 /proc/loadavg)"
   sleep 5
 done) > "$OUT/meminfo.csv" &
SPID=$!
echo 1 > $T/tracing_on
python3 -c 'import time; print(time.monotonic())' > "$OUT/t0.txt"
set +e
/usr/bin/time -v timeout "$LIMIT" make -j2 bzImage > "$OUT/make.log" 2> "$OUT/make.err"
echo "rc $?" >> "$OUT/make.err"
set -e
python3 -c 'import time; print(time.monotonic())' > "$OUT/t1.txt"
echo 0 > $T/tracing_on
sleep 2; kill $CATPID $SPID
echo 0 > $T/events/kmem/mm_page_alloc_zone_locked/enable
echo > $T/set_event_pid
snap "$OUT/flags1.npy"
