"""The netCDF files of the package: simulated runs, reproduction results and measured runs.

One writer, :func:`save_dataset`, and one reader, :func:`load_dataset`, for every Dataset the
package stores (``fphint simulate --out``, ``reproduction.nc`` of ``fphint reproduce``, the
measured runs of ``fphint qemu migrate`` and ``fphint qemu campaign``).

* Format: netCDF-4 (HDF5) written by one engine, :data:`ENGINE` (``h5netcdf``, on top of
  ``h5py``, both dependencies of the package).  netCDF-4 keeps 64-bit integers and strings as
  they are; booleans, which netCDF has no type for, are stored as ``int8`` (0/1).
* Atomic: the file is written next to its destination under a temporary name and renamed into
  place (:func:`os.replace`), so an interrupted write never leaves a truncated file behind.
* Older files: measured runs written before this module (``data/measurements/``) are netCDF-3
  files written by scipy, where 64-bit integers were stored as float64 with the variable
  attribute ``fphint_dtype = "int64"``.  The reader recognises the format by its first bytes,
  reads netCDF-3 with scipy, and casts such variables back to ``int64`` (missing values: -1).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
from pathlib import Path

import numpy as np
import xarray as xr

from .errors import FphintError

__all__ = [
    "ENGINE",
    "MANIFEST",
    "deferred_interrupts",
    "load_dataset",
    "publish_folder",
    "save_dataset",
]

#: The engine of every file the package writes.
ENGINE = "h5netcdf"

#: First bytes of a netCDF-3 file (classic, 64-bit offset, 64-bit data) and of an HDF5 file.
_NETCDF3_MAGIC = (b"CDF\x01", b"CDF\x02", b"CDF\x05")
_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"


def save_dataset(ds: xr.Dataset, path: str | os.PathLike) -> Path:
    """Write ``ds`` to ``path`` (netCDF-4 through :data:`ENGINE`), creating the folder.

    Parameters
    ----------
    ds : xarray.Dataset
    path : path-like

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    FphintError
        The folder cannot be created or the file cannot be written (nothing is left behind).
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise FphintError(f"cannot create {path.parent}: {exc.strerror}") from None
    out = ds.copy()
    for name, v in out.data_vars.items():
        if v.dtype == bool:
            out[name] = v.astype("int8")
    out.attrs = {k: int(v) if isinstance(v, (bool, np.bool_)) else v for k, v in ds.attrs.items()}
    tmp = path.with_name(f".{path.name}.{os.getpid()}.part")
    try:
        out.to_netcdf(tmp, engine=ENGINE)
        with deferred_interrupts():
            os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        why = exc.strerror or str(exc).split(" (")[0]
        raise FphintError(f"cannot write {path}: {why}") from None
    except BaseException:  # Ctrl-C, SIGTERM: nothing left behind
        tmp.unlink(missing_ok=True)
        raise
    return path


def save_json(doc: dict, path: str | os.PathLike) -> Path:
    """Write ``doc`` as indented JSON to ``path`` (profiles, guests), creating the folder: under
    a temporary name beside it, then renamed into place, so the file is whole or absent."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.part")
    tmp.write_text(json.dumps(doc, indent=2) + "\n")
    os.replace(tmp, path)
    return path


@contextlib.contextmanager
def deferred_interrupts():
    """Hold SIGINT and SIGTERM back while the block runs (a few renames that must happen all
    or none) and raise ``KeyboardInterrupt`` after it if one came.  Outside the main thread,
    where Python does not handle signals, it does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    got = []

    def hold(signum, frame):
        got.append(signum)

    old = {sig: signal.signal(sig, hold) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
    if got:
        raise KeyboardInterrupt


#: the file that a folder of results is complete: written last, lists every file with its size
#: and SHA-256
MANIFEST = "manifest.json"


def publish_folder(staging: str | os.PathLike, out: str | os.PathLike, meta: dict) -> list[Path]:
    """Move every file of ``staging`` into ``out`` with a manifest written last.

    The previous run's files (those of its manifest, and any of the same names) are removed
    first, with the manifest itself first of all, so a folder is either a whole run with its
    manifest or lacks the manifest; old and new files are never mixed.  Signals are held back
    during the moves (:func:`deferred_interrupts`).

    Returns
    -------
    list of pathlib.Path
        The files now in ``out`` (the manifest last).
    """
    import hashlib
    import json

    staging, out = Path(staging), Path(out)
    names = sorted(p.name for p in staging.iterdir() if p.is_file())
    files = {}
    for name in names:
        data = (staging / name).read_bytes()
        files[name] = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    manifest = {**meta, "files": files}
    (staging / f".{MANIFEST}.part").write_text(json.dumps(manifest, indent=2) + "\n")
    with deferred_interrupts():
        old = out / MANIFEST
        stale = set(names)
        if old.is_file():
            try:
                stale |= set(json.loads(old.read_text()).get("files", {}))
            except (ValueError, AttributeError, OSError):
                pass
            old.unlink()
        for name in stale:
            if "/" not in name and name not in (MANIFEST, ""):
                (out / name).unlink(missing_ok=True)
        for name in names:
            os.replace(staging / name, out / name)
        os.replace(staging / f".{MANIFEST}.part", out / MANIFEST)
    return [out / n for n in names] + [out / MANIFEST]


def load_dataset(path: str | os.PathLike) -> xr.Dataset:
    """Read a Dataset written by :func:`save_dataset` (or an older netCDF-3 measured run).

    The Dataset is fully loaded and the file closed.  Text variables come back as ``str``
    arrays; integer variables stored as floats by the netCDF-3 writer come back as ``int64``.

    Parameters
    ----------
    path : path-like

    Returns
    -------
    xarray.Dataset

    Raises
    ------
    FphintError
        No such file, or not a netCDF file.
    """
    path = Path(path)
    if not path.is_file():
        raise FphintError(f"no such file: {path}")
    with open(path, "rb") as fh:
        head = fh.read(8)
    if head[:4] in _NETCDF3_MAGIC:
        engine = "scipy"
    elif head == _HDF5_MAGIC:
        engine = ENGINE
    else:
        raise FphintError(f"{path}: not a netCDF file")
    with xr.open_dataset(path, engine=engine) as ds:
        out = ds.load()
    for name in list(out.data_vars):
        v = out[name]
        if v.attrs.get("fphint_dtype") == "int64":
            attrs = {k: a for k, a in v.attrs.items() if k != "fphint_dtype"}
            out[name] = v.fillna(-1).astype("i8")
            out[name].attrs = attrs
        elif v.dtype.kind in "SUO":
            out[name] = v.astype(str)
    return out
