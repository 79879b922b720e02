"""The shape of the kernels: short argument lists, one layout module, names derived once."""

import importlib
import inspect
import pkgutil
import shutil

import fphint_kernels.kernels as K
from fphint_kernels import variables
from fphint_kernels._numba import DISPATCHERS, KERNELS, _kernels_stamp
from fphint_kernels.kernels import layout as L


def jitted():
    """The Python functions of every jitted kernel (compiled or not)."""
    for m in pkgutil.iter_modules(K.__path__):
        importlib.import_module(f"{K.__name__}.{m.name}")
    return [getattr(d, "py_func", d) for d in DISPATCHERS]


def test_no_kernel_takes_more_than_8_parameters():
    funcs = jitted()
    assert len(funcs) >= 50
    counts = {f"{f.__module__}.{f.__name__}": len(inspect.signature(f).parameters) for f in funcs}
    assert {name: n for name, n in counts.items() if n > 8} == {}


def test_buddy_fields_lead_the_guest():
    # the buddy kernels take either bundle: the fields they read must be the same
    assert L.Guest._fields[: len(L.Buddy._fields)] == L.Buddy._fields


def test_columns_and_indices_come_from_the_names():
    assert [L.TRACE_COLUMNS[i] for i in (L.T_PENDING, L.T_HINT, L.T_ROUND)] == [
        "pending",
        "hint-pfn",
        "round-index",
    ]
    assert L.ROUND_COLUMNS[L.R_PENDING] == "round-pending-after-sync"
    assert len(set(L.TRACE_COLUMNS + L.ROUND_COLUMNS)) == L.N_TRACE + L.N_ROUND
    for name in L.TRACE_COLUMNS + L.ROUND_COLUMNS:
        assert name in variables.SPECS  # every column is a Dataset variable
    assert variables.PAGE_STATES is L.PAGE_STATES
    assert L.NORMAL_RECORD == L.PAGE_SIZE + 8 and L.HINT_PAGES == 1 << L.HINT_ORDER


def test_cache_directory_follows_the_kernel_sources(tmp_path):
    copy = tmp_path / "kernels"
    shutil.copytree(KERNELS, copy)
    assert _kernels_stamp(copy) == _kernels_stamp()
    layout = copy / "layout.py"
    layout.write_text(layout.read_text().replace("class Guest(", "class GuestMemory("))
    assert _kernels_stamp(copy) != _kernels_stamp()
