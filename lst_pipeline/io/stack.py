"""The input stack: Landsat and MODIS LST on one target grid, in one Zarr v3 store.

Layout
------
``landsat_lst (time_landsat, y, x)``
    float32 Kelvin on the fine grid, NaN where the pixel is unusable (fill, cloud, shadow).
``landsat_qa_pixel (time_landsat, y, x)``
    uint16 Collection 2 QA_PIXEL bits the mask was derived from.
``landsat_clear_fraction (time_landsat)``
    float32 fraction of usable pixels of the target grid on that date.
``landsat_hour_utc (time_landsat)``
    float32 acquisition time, hours after 00:00 UTC of the date (NaN: unknown).
``modis_lst (time_modis, yc, xc)``
    float32 Kelvin on the coarse grid, NaN where QC rejects the pixel or it is fill.
``modis_qc (time_modis, yc, xc)``
    uint8 MOD11A1 QC_Day bits (of the nearest MODIS pixel when ingested from tiles).
``modis_valid_fraction (time_modis, yc, xc)``
    float32 fraction of each coarse cell covered by usable MODIS pixels.
``modis_clear_fraction (time_modis)``
    float32 fraction of the coarse grid with a usable value on that day.
``modis_view_time (time_modis)``
    float32 mean local solar view time in hours (NaN: unknown).

Dates are kept sorted; an ingest grows the stack with :meth:`StackWriter.set_dates` and
fills positions with :meth:`StackWriter.copy_dates` from its staging stores (both can be
repeated after a crash). Which files each date came from is in the ingest record
``_lst_pipeline/ingest.json`` (:class:`IngestRecord`), and a digest of every date's LST in
``_lst_pipeline/content.json`` (:func:`read_content`), which cubes compare on resume.

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
    content_digest,
    create_store,
    grid_attrs,
    grid_from_attrs,
    open_group,
    read_json,
    spatial_coords,
    write_json,
)

if TYPE_CHECKING:
    import xarray as xr

    from lst_pipeline.grid import TargetGrid, Window

LANDSAT_LST = "landsat_lst"
LANDSAT_QA = "landsat_qa_pixel"
LANDSAT_CLEAR = "landsat_clear_fraction"
LANDSAT_HOUR = "landsat_hour_utc"
MODIS_LST = "modis_lst"
MODIS_QC = "modis_qc"
MODIS_VALID = "modis_valid_fraction"
MODIS_CLEAR = "modis_clear_fraction"
MODIS_VIEW_TIME = "modis_view_time"
TIME_DIMS = {"landsat": "time_landsat", "modis": "time_modis"}
RECORD_PATH = "_lst_pipeline/ingest.json"


def create_stack(
    path: Path,
    grid: TargetGrid,
    landsat_dates: np.ndarray,
    modis_dates: np.ndarray,
    *,
    spatial_chunk: int = 512,
    modis_time_chunk: int = 32,
    attrs: dict[str, Any] | None = None,
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
        Extra root attributes (provenance; ``source`` says which command made it).

    Raises
    ------
    StoreError
        If a store exists at ``path``.
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
    ct = max(1, modis_time_chunk if nm == 0 else min(modis_time_chunk, nm))
    cl = 1024  # per-date scalars: one chunk for years of dates

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
            LANDSAT_HOUR: (("time_landsat",), np.full(nl, np.nan, "f4"),
                           {"long_name": "Landsat acquisition time after 00:00 UTC",
                            "units": "hours"}),
            MODIS_LST: (("time_modis", "yc", "xc"), lazy((nm, nyc, nxc), (ct, ccy, ccx), "f4"),
                        {**lst_attrs, "long_name": "MODIS daytime land surface temperature"}),
            MODIS_QC: (("time_modis", "yc", "xc"), lazy((nm, nyc, nxc), (ct, ccy, ccx), "u1"),
                       {"long_name": "MOD11A1 QC_Day bits", "grid_mapping": "spatial_ref"}),
            MODIS_VALID: (("time_modis", "yc", "xc"),
                          lazy((nm, nyc, nxc), (ct, ccy, ccx), "f4"),
                          {"long_name": "fraction of the coarse cell with usable MODIS pixels",
                           "units": "1", "grid_mapping": "spatial_ref"}),
            MODIS_CLEAR: (("time_modis",), np.zeros(nm, "f4"),
                          {"long_name": "fraction of the coarse grid with usable MODIS LST",
                           "units": "1"}),
            MODIS_VIEW_TIME: (("time_modis",), np.full(nm, np.nan, "f4"),
                              {"long_name": "mean MODIS view time (local solar)",
                               "units": "hours"}),
        },
        coords=coords,
        attrs={**(attrs or {}), GRID_ATTR: grid_attrs(grid), STATUS_ATTR: "writing",
               "title": "lst_pipeline input stack"},
    )
    encoding = {
        LANDSAT_LST: {"chunks": (1, cy, cx), "_FillValue": np.float32("nan")},
        LANDSAT_QA: {"chunks": (1, cy, cx), "_FillValue": None,  # bits, not masked
                     "fill_value": landsat.QA_VALUE_FILL},
        LANDSAT_CLEAR: {"chunks": (cl,), "_FillValue": np.float32("nan")},
        LANDSAT_HOUR: {"chunks": (cl,), "_FillValue": np.float32("nan")},
        MODIS_LST: {"chunks": (ct, ccy, ccx), "_FillValue": np.float32("nan")},
        MODIS_VALID: {"chunks": (ct, ccy, ccx), "_FillValue": np.float32("nan")},
        MODIS_CLEAR: {"chunks": (cl,), "_FillValue": np.float32("nan")},
        MODIS_VIEW_TIME: {"chunks": (cl,), "_FillValue": np.float32("nan")},
        MODIS_QC: {"chunks": (ct, ccy, ccx), "_FillValue": None,
                   "fill_value": int(modis.make_qc(modis.MANDATORY_NOT_PRODUCED))},
    }
    create_store(path, ds, encoding, kind="stack")


class StackWriter:
    """Fills an input stack created by :func:`create_stack`, date by date or in batches.

    Every write records a digest of the LST it wrote (:attr:`content`), which
    :meth:`finish` keeps in the store (``_lst_pipeline/content.json``): a cube records the
    digests of the dates it was computed from, so a resume sees exactly which dates changed.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._group = open_group(self.path, mode="r+")
        self.content: dict[str, dict[str, str]] = {"landsat": {}, "modis": {}}
        self._dates: dict[str, np.ndarray] = {}

    def _date(self, sensor: str, index: int) -> str:
        if sensor not in self._dates:
            self._dates[sensor] = _dates(self._group[TIME_DIMS[sensor]])
        return str(self._dates[sensor][index])

    def write_landsat(self, index: int, qa_pixel: np.ndarray, lst_k: np.ndarray, *,
                      masked: bool = False, hour_utc: float = float("nan")) -> float:
        """Write one Landsat date: QA bits and LST, masked from the QA bits.

        Parameters
        ----------
        index
            Date position in the stack.
        qa_pixel, lst_k
            QA_PIXEL bits and Kelvin on the fine grid.
        masked
            ``lst_k`` is already NaN wherever it is unusable (ingested scenes are masked
            on their own pixels before resampling); otherwise mask from ``qa_pixel``.
        hour_utc
            Acquisition time, hours after 00:00 UTC.

        Returns
        -------
        float
            The clear fraction recorded for that date.
        """
        usable = np.isfinite(lst_k)
        if not masked:
            usable &= landsat.usable_mask(qa_pixel)
        lst = np.where(usable, lst_k, np.nan).astype(np.float32)
        self._group[LANDSAT_LST][index] = lst
        self._group[LANDSAT_QA][index] = qa_pixel.astype(np.uint16)
        clear = float(usable.mean())
        self._group[LANDSAT_CLEAR][index] = np.float32(clear)
        self._group[LANDSAT_HOUR][index] = np.float32(hour_utc)
        self.content["landsat"][self._date("landsat", index)] = content_digest(lst)
        return clear

    def write_modis(self, start: int, qc: np.ndarray, lst_k: np.ndarray, *,
                    masked: bool = False, valid_fraction: np.ndarray | None = None,
                    view_time_h: np.ndarray | None = None) -> np.ndarray:
        """Write consecutive MODIS days ``start, start + 1, ...`` (arrays ``(days, yc, xc)``).

        Parameters
        ----------
        start
            Position of the first day in the stack.
        qc, lst_k
            QC bits and Kelvin on the coarse grid.
        masked
            ``lst_k`` is already NaN wherever it is unusable; otherwise mask from ``qc``.
        valid_fraction
            Usable fraction of each coarse cell (default: 1 where usable, else 0).
        view_time_h
            Mean view time of each day (hours, local solar).

        Returns
        -------
        numpy.ndarray
            The clear fraction of each day.
        """
        usable = np.isfinite(lst_k)
        if not masked:
            usable &= modis.usable_mask(qc)
        lst = np.where(usable, lst_k, np.nan).astype(np.float32)
        if valid_fraction is None:
            valid_fraction = usable.astype(np.float32)
        stop = start + lst.shape[0]
        clear = usable.reshape(lst.shape[0], -1).mean(axis=1).astype(np.float32)
        self._group[MODIS_LST][start:stop] = lst
        self._group[MODIS_QC][start:stop] = qc.astype(np.uint8)
        self._group[MODIS_VALID][start:stop] = valid_fraction.astype(np.float32)
        self._group[MODIS_CLEAR][start:stop] = clear
        if view_time_h is not None:
            self._group[MODIS_VIEW_TIME][start:stop] = np.asarray(view_time_h, np.float32)
        for k in range(lst.shape[0]):
            self.content["modis"][self._date("modis", start + k)] = content_digest(lst[k])
        return clear

    def save_content(self) -> None:
        """Merge the digests of this writer's dates into the store's content record."""
        stored = read_content(self.path) or {"landsat": {}, "modis": {}}
        for sensor, entries in self.content.items():
            stored.setdefault(sensor, {}).update(entries)
        write_json(self.path, CONTENT_RECORD, stored)

    def finish(self) -> None:
        """Keep the content record and mark the stack complete (readers refuse it before)."""
        self.save_content()
        self._group.attrs[STATUS_ATTR] = "complete"

    # -- commit of an ingest: idempotent operations, safe to repeat after a crash ----------

    def time_arrays(self, sensor: str) -> list[str]:
        """Names of the arrays indexed by ``sensor``'s time dimension (its coordinate too)."""
        dim = TIME_DIMS[sensor]
        return [n for n in self._group.array_keys()
                if n != dim and tuple(self._group[n].metadata.dimension_names or ())[:1]
                == (dim,)]

    def set_dates(self, sensor: str, dates: np.ndarray) -> None:
        """Give ``sensor`` exactly ``dates`` (sorted): resize its arrays, rewrite the coordinate.

        Data at positions that exist before and after is not moved: the caller writes every
        position whose date changed (see :meth:`copy_dates`). Repeating the call is harmless.
        """
        import xarray as xr

        dates = np.asarray(dates, dtype="datetime64[D]")
        for name in self.time_arrays(sensor):
            arr = self._group[name]
            if arr.shape[0] != len(dates):
                arr.resize((len(dates), *arr.shape[1:]))
        coord = self._group[TIME_DIMS[sensor]]
        attrs = dict(coord.attrs)
        encoded, _, _ = xr.coding.times.encode_cf_datetime(
            dates.astype("datetime64[ns]"), attrs.get("units"), attrs.get("calendar"))
        if coord.shape[0] != len(dates):
            coord.resize((len(dates),))
        if len(dates):
            coord[:] = np.asarray(encoded).astype(coord.dtype)
        self._dates.pop(sensor, None)

    def copy_dates(self, source: Any, sensor: str, src: np.ndarray, dst: np.ndarray, *,
                   block_bytes: int = 16 << 20) -> None:
        """Copy positions ``src`` of ``source`` (a stack group) to positions ``dst`` here.

        Every array on ``sensor``'s time dimension is copied, in runs of consecutive
        positions of at most ``block_bytes`` per array, so memory stays bounded.
        """
        names = self.time_arrays(sensor)
        if not len(src) or not names:
            return
        per_date = max(int(np.prod(source[n].shape[1:])) * source[n].dtype.itemsize
                       for n in names)
        for lo, hi in _runs(np.asarray(src), np.asarray(dst), max(1, block_bytes // per_date)):
            for name in names:
                self._group[name][int(dst[lo]):int(dst[hi - 1]) + 1] = \
                    source[name][int(src[lo]):int(src[hi - 1]) + 1]

    def set_status(self, status: str) -> None:
        self._group.attrs[STATUS_ATTR] = status


def _runs(src: np.ndarray, dst: np.ndarray, limit: int) -> list[tuple[int, int]]:
    """Split indices into runs where both ``src`` and ``dst`` advance by one (at most
    ``limit`` long), so each run is one slice copy."""
    runs, lo = [], 0
    for i in range(1, len(src) + 1):
        if (i == len(src) or src[i] != src[i - 1] + 1 or dst[i] != dst[i - 1] + 1
                or i - lo >= limit):
            runs.append((lo, i))
            lo = i
    return runs


#: Digests of every date's LST (``{sensor: {YYYY-MM-DD: digest}}``), in the private group.
CONTENT_RECORD = "content.json"


def read_content(stack: Path | str) -> dict[str, dict[str, str]] | None:
    """The content record of a stack (None for stacks written before it existed)."""
    return read_json(stack, CONTENT_RECORD)


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
                             "the command that wrote it (simulate or ingest) did not finish; "
                             "run it again (any `lst-pipeline ingest` into this stack first "
                             "finishes an interrupted commit)")
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

    @cached_property
    def content(self) -> dict[str, dict[str, str]] | None:
        """Digest of every date's LST (``{sensor: {YYYY-MM-DD: digest}}``), if recorded."""
        return read_content(self.path)

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
        if not len(self.modis_dates) or not len(dates):
            return out
        pos = np.searchsorted(self.modis_dates, dates)
        pos_clipped = np.minimum(pos, len(self.modis_dates) - 1)
        present = self.modis_dates[pos_clipped] == dates
        if not present.any():
            return out
        idx = pos_clipped[present]
        ys, xs = coarse_window.slices
        arr = self._group[MODIS_LST]
        lo, hi = int(idx.min()), int(idx.max()) + 1
        block = arr[lo:hi, ys, xs]  # consecutive days: one read
        out[present] = block[idx - lo]
        return out


def stack_dates(path: Path | str, sensor: str) -> np.ndarray:
    """Sorted ``datetime64[D]`` dates of ``sensor`` (``landsat`` or ``modis``) in a stack."""
    return _dates(open_group(path)[TIME_DIMS[sensor]])


@dataclass
class IngestRecord:
    """Per-date provenance of an ingested stack: sensor, time, clear fraction, sources.

    Kept as JSON inside the store (``_lst_pipeline/ingest.json``) and replaced atomically.
    ``dates[sensor][YYYY-MM-DD]`` is a dict with ``platform``, ``time``, ``clear_fraction``
    and ``sources`` (file names).
    """

    path: Path
    dates: dict[str, dict[str, dict[str, Any]]]

    @classmethod
    def load(cls, stack: Path | str) -> IngestRecord:
        import json

        path = Path(stack) / RECORD_PATH
        dates: dict[str, dict[str, dict[str, Any]]] = {"landsat": {}, "modis": {}}
        if path.is_file():
            dates.update(json.loads(path.read_text()))
        return cls(path, dates)

    def save(self) -> None:
        write_json(self.path.parent.parent, self.path.name, self.dates)


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
