"""The input stack: Landsat and MODIS LST on one target grid, in one Zarr v3 store.

Layout
------
``landsat_lst (time_landsat, y, x)``
    float32 Kelvin on the fine grid, NaN where the pixel is unusable (fill, cloud, shadow).
``landsat_qa_pixel (time_landsat, y, x)``
    uint16 Collection 2 QA_PIXEL bits the mask was derived from.
``landsat_clear_fraction (time_landsat)``
    float32 fraction of usable pixels of the scene on that date.
``modis_lst (time_modis, yc, xc)``
    float32 Kelvin on the coarse grid, NaN where QC rejects the pixel or it is fill.
``modis_qc (time_modis, yc, xc)``
    uint8 MOD11A1 QC_Day bits.

Coordinates are pixel centres (``y``, ``x`` fine; ``yc``, ``xc`` coarse), ``time_landsat`` and
``time_modis`` are dates, ``spatial_ref`` carries the CRS (rioxarray/CF), and the root attribute
``lst_pipeline:grid`` records the grid so readers rebuild it exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from lst_pipeline.errors import InputError
from lst_pipeline.io import landsat, modis
from lst_pipeline.io.zarr_store import (
    GRID_ATTR,
    STATUS_ATTR,
    create_store,
    grid_attrs,
    grid_from_attrs,
    open_group,
    spatial_coords,
)

if TYPE_CHECKING:
    import xarray as xr

    from lst_pipeline.grid import TargetGrid, Window

LANDSAT_LST = "landsat_lst"
LANDSAT_QA = "landsat_qa_pixel"
LANDSAT_CLEAR = "landsat_clear_fraction"
MODIS_LST = "modis_lst"
MODIS_QC = "modis_qc"


def create_stack(
    path: Path,
    grid: TargetGrid,
    landsat_dates: np.ndarray,
    modis_dates: np.ndarray,
    *,
    spatial_chunk: int = 512,
    modis_time_chunk: int = 32,
    attrs: dict[str, Any] | None = None,
    overwrite: bool = False,
) -> None:
    """Create an empty input stack for the given dates (filled later, date by date).

    Parameters
    ----------
    path
        Store directory.
    grid
        The target grid; MODIS lives on ``grid.coarse``.
    landsat_dates, modis_dates
        Sorted ``datetime64[D]`` dates of each sensor.
    spatial_chunk
        Fine-grid chunk edge in pixels (clipped to the grid).
    modis_time_chunk
        Days per MODIS chunk (the coarse images are small).
    attrs
        Extra root attributes (provenance).
    overwrite
        Replace an existing store.
    """
    import dask.array as da
    import xarray as xr

    landsat_dates = np.asarray(landsat_dates, dtype="datetime64[D]")
    modis_dates = np.asarray(modis_dates, dtype="datetime64[D]")
    for name, dates in (("landsat", landsat_dates), ("modis", modis_dates)):
        if np.any(np.diff(dates.astype(np.int64)) <= 0):
            raise InputError(f"{path}: {name} dates must be strictly increasing")
    ny, nx = grid.shape
    nyc, nxc = grid.coarse_shape
    cy, cx = min(spatial_chunk, ny), min(spatial_chunk, nx)
    ccy, ccx = max(1, cy // grid.coarse_factor), max(1, cx // grid.coarse_factor)
    nl, nm = len(landsat_dates), len(modis_dates)
    ct = max(1, min(modis_time_chunk, nm))

    def lazy(shape, chunks, dtype):
        return da.zeros(shape, chunks=chunks, dtype=dtype)

    coords = {**spatial_coords(grid), **spatial_coords(grid, coarse=True),
              "time_landsat": landsat_dates.astype("datetime64[ns]"),
              "time_modis": modis_dates.astype("datetime64[ns]")}
    lst_attrs = {"units": "K", "standard_name": "surface_temperature",
                 "grid_mapping": "spatial_ref"}
    ds = xr.Dataset(
        {
            LANDSAT_LST: (("time_landsat", "y", "x"), lazy((nl, ny, nx), (1, cy, cx), "f4"),
                          {**lst_attrs, "long_name": "Landsat surface temperature"}),
            LANDSAT_QA: (("time_landsat", "y", "x"), lazy((nl, ny, nx), (1, cy, cx), "u2"),
                         {"long_name": "Landsat Collection 2 QA_PIXEL bits",
                          "grid_mapping": "spatial_ref"}),
            LANDSAT_CLEAR: (("time_landsat",), np.zeros(nl, "f4"),
                            {"long_name": "fraction of usable Landsat pixels", "units": "1"}),
            MODIS_LST: (("time_modis", "yc", "xc"), lazy((nm, nyc, nxc), (ct, ccy, ccx), "f4"),
                        {**lst_attrs, "long_name": "MODIS daytime land surface temperature"}),
            MODIS_QC: (("time_modis", "yc", "xc"), lazy((nm, nyc, nxc), (ct, ccy, ccx), "u1"),
                       {"long_name": "MOD11A1 QC_Day bits", "grid_mapping": "spatial_ref"}),
        },
        coords=coords,
        attrs={**(attrs or {}), GRID_ATTR: grid_attrs(grid), STATUS_ATTR: "writing",
               "title": "lst_pipeline input stack"},
    )
    encoding = {
        LANDSAT_LST: {"chunks": (1, cy, cx), "_FillValue": np.float32("nan")},
        LANDSAT_QA: {"chunks": (1, cy, cx), "_FillValue": None,  # bits, not masked
                     "fill_value": landsat.QA_VALUE_FILL},
        LANDSAT_CLEAR: {"chunks": (max(nl, 1),), "_FillValue": np.float32("nan")},
        MODIS_LST: {"chunks": (ct, ccy, ccx), "_FillValue": np.float32("nan")},
        MODIS_QC: {"chunks": (ct, ccy, ccx), "_FillValue": None,
                   "fill_value": int(modis.make_qc(modis.MANDATORY_NOT_PRODUCED))},
    }
    create_store(path, ds, encoding, overwrite=overwrite)


class StackWriter:
    """Fills an input stack created by :func:`create_stack`, date by date or in batches."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._group = open_group(self.path, mode="r+")

    def write_landsat(self, index: int, qa_pixel: np.ndarray, lst_k: np.ndarray) -> float:
        """Write one Landsat date: QA bits and LST, masked from the QA bits.

        Returns the clear fraction recorded for that date.
        """
        usable = landsat.usable_mask(qa_pixel) & np.isfinite(lst_k)
        lst = np.where(usable, lst_k, np.nan).astype(np.float32)
        self._group[LANDSAT_LST][index] = lst
        self._group[LANDSAT_QA][index] = qa_pixel.astype(np.uint16)
        clear = float(usable.mean())
        self._group[LANDSAT_CLEAR][index] = np.float32(clear)
        return clear

    def write_modis(self, start: int, qc: np.ndarray, lst_k: np.ndarray) -> None:
        """Write consecutive MODIS days ``start, start + 1, ...`` (arrays ``(days, yc, xc)``)."""
        usable = modis.usable_mask(qc) & np.isfinite(lst_k)
        lst = np.where(usable, lst_k, np.nan).astype(np.float32)
        stop = start + lst.shape[0]
        self._group[MODIS_LST][start:stop] = lst
        self._group[MODIS_QC][start:stop] = qc.astype(np.uint8)

    def finish(self) -> None:
        """Mark the stack complete (readers refuse stacks still being written)."""
        self._group.attrs[STATUS_ATTR] = "complete"


@dataclass
class StackReader:
    """Windowed, eager reads from an input stack, as used inside fusion tasks.

    Only the requested dates and window are read; nothing loads a whole scene.
    """

    path: Path

    def __post_init__(self) -> None:
        self.path = Path(self.path)
        if not self.path.exists():
            raise InputError(f"{self.path}: input stack not found; create it with "
                             "`lst-pipeline simulate CONFIG` (or ingest real data)")
        self._group = open_group(self.path)
        status = self._group.attrs.get(STATUS_ATTR)
        if status != "complete":
            raise InputError(f"{self.path}: input stack is incomplete (status {status!r}); "
                             "the run that wrote it did not finish, write it again")
        missing = {LANDSAT_LST, LANDSAT_CLEAR, MODIS_LST} - set(self._group.array_keys())
        if missing:
            raise InputError(f"{self.path}: input stack lacks {sorted(missing)}")

    @cached_property
    def grid(self) -> TargetGrid:
        return grid_from_attrs(dict(self._group.attrs), self.path)

    @cached_property
    def landsat_dates(self) -> np.ndarray:
        return _dates(self._group["time_landsat"])

    @cached_property
    def modis_dates(self) -> np.ndarray:
        return _dates(self._group["time_modis"])

    @cached_property
    def landsat_clear_fraction(self) -> np.ndarray:
        return self._group[LANDSAT_CLEAR][:]

    def read_landsat(self, indices: np.ndarray, window: Window) -> np.ndarray:
        """Landsat LST (K, NaN = unusable) at the given date indices, ``(n, wy, wx)``."""
        arr = self._group[LANDSAT_LST]
        ys, xs = window.slices
        out = np.empty((len(indices), *window.shape), dtype=np.float32)
        for k, i in enumerate(indices):
            out[k] = arr[int(i), ys, xs]
        return out

    def read_modis(self, dates: np.ndarray, coarse_window: Window) -> np.ndarray:
        """MODIS LST (K, NaN = gap) on the given dates, ``(n, wyc, wxc)``.

        Dates absent from the stack come back as all-NaN images (a missing day is a gap).
        """
        dates = np.asarray(dates, dtype="datetime64[D]")
        out = np.full((len(dates), *coarse_window.shape), np.nan, dtype=np.float32)
        pos = np.searchsorted(self.modis_dates, dates)
        pos_clipped = np.minimum(pos, len(self.modis_dates) - 1)
        present = (len(self.modis_dates) > 0) & (self.modis_dates[pos_clipped] == dates)
        if not present.any():
            return out
        idx = pos_clipped[present]
        ys, xs = coarse_window.slices
        arr = self._group[MODIS_LST]
        lo, hi = int(idx.min()), int(idx.max()) + 1
        block = arr[lo:hi, ys, xs]  # consecutive days: one read
        out[present] = block[idx - lo]
        return out


def _dates(array: Any) -> np.ndarray:
    """Decode a CF time coordinate written by xarray to ``datetime64[D]``."""
    import xarray as xr

    values = array[:]
    attrs = dict(array.attrs)
    var = xr.Variable(("t",), values, attrs)
    decoded = xr.conventions.decode_cf_variable("t", var)
    return np.asarray(decoded.values, dtype="datetime64[D]")


def open_stack(path: Path | str) -> xr.Dataset:
    """Open an input stack lazily as an xarray Dataset (CRS available via rioxarray)."""
    import xarray as xr

    return xr.open_zarr(path, consolidated=False)
