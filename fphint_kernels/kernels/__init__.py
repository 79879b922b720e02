"""Pure ``@njit`` kernels over NumPy arrays (no Python objects, no I/O).

Modules, from the bottom up: ``layout`` (every constant, the scalar records and the named
bundles of arrays: ``Guest``, ``Workload``, ``HintChannel``, ``Recorders``), ``rng``
(MRG32k3a random streams), ``bitmap`` (word-level bitmaps), ``buddy`` (the binary buddy
allocator), ``workload`` (guest activity), ``balloon`` (free page hint driver and device),
``precopy`` (the QEMU migration thread: sender, bitmap syncs, completion), ``recorders``
(trace, rounds, page map), ``engine`` (the main loop that runs them on one clock) and
``lost_check`` (the nothing-lost check at switchover).  Every kernel also runs as plain Python
with ``NUMBA_DISABLE_JIT=1`` (the coverage pass), so they avoid Numba-only features and integer
overflow.
"""
