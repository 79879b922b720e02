"""Reading and writing result Datasets (netCDF4 files through h5netcdf)."""

from __future__ import annotations

from pathlib import Path

import xarray as xr

from .errors import FphintError


def save_dataset(ds: xr.Dataset, path) -> Path:
    """Write ``ds`` to ``path`` (netCDF4/HDF5), creating the folder; nothing half-written.

    The file is written next to its destination and renamed into place, so an interrupted
    write never leaves a truncated result behind.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise FphintError(f"cannot create {path.parent}: {exc.strerror}") from None
    tmp = path.with_name(f".{path.name}.part")
    try:
        ds.to_netcdf(tmp, engine="h5netcdf", invalid_netcdf=True)
        tmp.replace(path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise FphintError(f"cannot write {path}: {exc.strerror or exc}") from None
    return path


def load_dataset(path) -> xr.Dataset:
    """Read a Dataset written by :func:`save_dataset` (fully loaded, file closed)."""
    path = Path(path)
    if not path.is_file():
        raise FphintError(f"no such file: {path}")
    with xr.open_dataset(path, engine="h5netcdf") as ds:
        return ds.load()
