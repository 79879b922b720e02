"""Real QEMU: a measurement harness for pre-copy live migration with free page hinting.

The harness prepares a small guest (a Debian 6.1 kernel taken from Debian's packages and a
busybox initramfs that loads the virtio-balloon driver), boots a source and a destination
``qemu-system-x86_64`` on this host, drives both over QMP, migrates over loopback and records
every ``query-migrate`` field and a trace of polls.  After each run it checks that the
destination guest is alive and that its kernel log has no Oops/BUG.  Runs are stored as netCDF
in the simulator's vocabulary (:mod:`fphint_kernels.qemu.measurement`), so that
:mod:`fphint_kernels.qemu.compare` can predict each one with :func:`fphint_kernels.simulate`.

Modules
-------
qmp
    A small QMP client (stdlib ``socket`` + ``json``).
guest
    What the guest is: its program, its ``/init`` script, the prepared guest in the cache.
prepare
    Building the guest kernel + initramfs into the cache directory (``fphint qemu prepare``).
health
    Parsing the serial console log of a guest: markers, Oops/BUG, liveness.
runconfig
    What one measured migration does (:class:`~.runconfig.RunConfig`) and its QEMU command line.
process
    A QEMU process with its QMP monitor and serial console.
runner
    One migration between two local QEMUs (``fphint qemu migrate``).
result
    Everything recorded about one run, and its raw ``result.json``.
measurement
    The measured run as an ``xarray.Dataset`` (files through :mod:`fphint_kernels.io`).
campaign
    A plan of many runs (``fphint qemu campaign``).
hostbench
    Facts and microbenchmarks of this host.
compare
    Measured runs against the simulator, and the fit of this host's profile (``fphint qemu fit``).

The ``fphint qemu`` command is :mod:`fphint_kernels.cli.qemu`; the comparison figure is
:func:`fphint_kernels.plot.measured_vs_simulated`.
"""

from .qmp import QMPClient, QMPError

__all__ = ["QMPClient", "QMPError"]
