"""fphint: a page-level simulator of QEMU/KVM pre-copy live migration with and without
virtio-balloon free page hinting (VIRTIO_BALLOON_F_FREE_PAGE_HINT).

>>> import fphint_kernels as fk
>>> ds = fk.simulate(fk.Scenario(memory="256M", workload="idle", hint=True, seed=1))
>>> str(ds["status"].values), int(ds["lost-pages"])
('completed', 0)
"""

from ._version import __version__
from .config import (
    FAULTS,
    HINT_RELEASE,
    Guest,
    HostProfile,
    Scenario,
    Workload,
    available_guests,
    available_profiles,
    available_workloads,
)
from .errors import FphintError, ScenarioError
from .simulate import simulate, simulate_many, summary

__all__ = [
    "FAULTS",
    "HINT_RELEASE",
    "FphintError",
    "Guest",
    "HostProfile",
    "Scenario",
    "ScenarioError",
    "__version__",
    "Workload",
    "available_guests",
    "available_profiles",
    "available_workloads",
    "simulate",
    "simulate_many",
    "summary",
]

_SUBMODULES = (
    "analytic", "calibrate", "experiments", "fitting", "io", "metrics", "plot", "published",
    "qemu", "report", "studies", "sweep", "units", "explorer",
)  # fmt: skip


def __getattr__(name):
    # ``fk.plot``, ``fk.explorer``... after a plain ``import fphint_kernels as fk``, without
    # importing matplotlib or ipywidgets for users who never touch them.
    if name in _SUBMODULES:
        import importlib

        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
