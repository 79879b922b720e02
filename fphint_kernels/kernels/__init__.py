"""Pure ``@njit`` kernels over NumPy arrays (no Python objects, no I/O).

Modules: ``rng`` (MRG32k3a random streams), ``bitmap`` (word-level bitmaps), ``buddy`` (the
binary buddy allocator), ``workload`` (guest activity), ``balloon`` (free page hint driver and
device), ``precopy`` (the QEMU migration thread and the main loop).  Every kernel also runs as
plain Python with ``NUMBA_DISABLE_JIT=1`` (the coverage pass), so they avoid Numba-only features
and integer overflow.
"""
