"""The input stack: Landsat and MODIS LST on one target grid, in one Zarr v3 store.

Layout
------
``landsat_lst (time_landsat, y, x)``
    float32 Kelvin on the fine grid, NaN where the pixel is unusable (fill, cloud, shadow).
``landsat_qa_pixel (time_landsat, y, x)``
    uint16 Collection 2 QA_PIXEL bits the mask was derived from.
``landsat_clear_fraction (time_landsat)``
    float32 fraction of usable pixels of the target grid on that date.
``landsat_st_uncertainty (time_landsat, y, x)``
    float16 Kelvin, the Landsat ST_QA uncertainty (1 sigma) of usable pixels where the
    scene had an ST_QA band (the simulator: its noise), NaN elsewhere; absent from stacks
    written before it existed.
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

Dates are kept sorted. :class:`~lst_pipeline.io.stack_writer.StackWriter` fills a stack;
an ingest grows it through :class:`~lst_pipeline.io.stack_writer.StackCommit` from staging
stores inside it (repeatable after a crash). Which files each date came from is in the ingest record
``_lst_pipeline/ingest.json`` (:class:`IngestRecord`), and a digest of every date's LST in
``_lst_pipeline/content.json`` (:func:`read_content`), which cubes compare on resume.

Coordinates are pixel centres (``y``, ``x`` fine; ``yc``, ``xc`` coarse), ``time_landsat`` and
``time_modis`` are dates, ``spatial_ref`` carries the CRS (rioxarray/CF), and the root attribute
``lst_pipeline:grid`` records the grid so readers rebuild it exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np

from lst_pipeline.config.locations import StorePath, as_store_path
from lst_pipeline.errors import InputError
from lst_pipeline.io import landsat, modis
from lst_pipeline.io.location import zarr_store
from lst_pipeline.io.zarr_store import (
    GRID_ATTR,
    STATUS_ATTR,
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
LANDSAT_ST_UNCERTAINTY = "landsat_st_uncertainty"
MODIS_LST = "modis_lst"
MODIS_QC = "modis_qc"
MODIS_VALID = "modis_valid_fraction"
MODIS_CLEAR = "modis_clear_fraction"
MODIS_VIEW_TIME = "modis_view_time"
TIME_DIMS = {"landsat": "time_landsat", "modis": "time_modis"}
RECORD_PATH = "_lst_pipeline/ingest.json"


def _stack_variables(fine_shape: tuple[int, int, int], fine_chunks: tuple[int, int, int],
                     coarse_shape: tuple[int, int, int], coarse_chunks: tuple[int, int, int]
                     ) -> dict[str, tuple]:
    """The stack's variables, lazy zeros with their CF attributes (the schema in one place)."""
    import dask.array as da

    nl, nm = fine_shape[0], coarse_shape[0]
    lst_attrs = {"units": "K", "standard_name": "surface_temperature",
                 "grid_mapping": "spatial_ref"}
    fine_dims, coarse_dims = ("time_landsat", "y", "x"), ("time_modis", "yc", "xc")

    def fine(dtype):
        return da.zeros(fine_shape, chunks=fine_chunks, dtype=dtype)

    def coarse(dtype):
        return da.zeros(coarse_shape, chunks=coarse_chunks, dtype=dtype)

    return {
        LANDSAT_LST: (fine_dims, fine("f4"),
                      {**lst_attrs, "long_name": "Landsat surface temperature"}),
        LANDSAT_QA: (fine_dims, fine("u2"), {"long_name": "Landsat Collection 2 QA_PIXEL bits",
                                             "grid_mapping": "spatial_ref"}),
        LANDSAT_ST_UNCERTAINTY: (fine_dims, fine("f2"), {
            "units": "K", "long_name": "Landsat ST_QA surface temperature uncertainty",
            "standard_name": "surface_temperature standard_error",
            "grid_mapping": "spatial_ref"}),
        LANDSAT_CLEAR: (("time_landsat",), np.zeros(nl, "f4"),
                        {"long_name": "fraction of usable Landsat pixels", "units": "1"}),
        LANDSAT_HOUR: (("time_landsat",), np.full(nl, np.nan, "f4"),
                       {"long_name": "Landsat acquisition time after 00:00 UTC",
                        "units": "hours"}),
        MODIS_LST: (coarse_dims, coarse("f4"),
                    {**lst_attrs, "long_name": "MODIS daytime land surface temperature"}),
        MODIS_QC: (coarse_dims, coarse("u1"),
                   {"long_name": "MOD11A1 QC_Day bits", "grid_mapping": "spatial_ref"}),
        MODIS_VALID: (coarse_dims, coarse("f4"),
                      {"long_name": "fraction of the coarse cell with usable MODIS pixels",
                       "units": "1", "grid_mapping": "spatial_ref"}),
        MODIS_CLEAR: (("time_modis",), np.zeros(nm, "f4"),
                      {"long_name": "fraction of the coarse grid with usable MODIS LST",
                       "units": "1"}),
        MODIS_VIEW_TIME: (("time_modis",), np.full(nm, np.nan, "f4"),
                          {"long_name": "mean MODIS view time (local solar)", "units": "hours"}),
    }


def create_stack(
    path: StorePath,
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
    coords = {**spatial_coords(grid), **spatial_coords(grid, coarse=True),
              "time_landsat": landsat_dates.astype("datetime64[ns]"),
              "time_modis": modis_dates.astype("datetime64[ns]")}
    fine, coarse = (1, cy, cx), (ct, ccy, ccx)
    ds = xr.Dataset(
        _stack_variables((nl, ny, nx), fine, (nm, nyc, nxc), coarse), coords=coords,
        attrs={**(attrs or {}), GRID_ATTR: grid_attrs(grid), STATUS_ATTR: "writing",
               "title": "lst_pipeline input stack"},
    )
    cl = 1024  # per-date scalars: one chunk for years of dates
    encoding: dict[str, dict[str, object]] = {
        LANDSAT_LST: {"chunks": fine, "_FillValue": np.float32("nan")},
        LANDSAT_QA: {"chunks": fine, "_FillValue": None,  # bits, not masked
                     "fill_value": landsat.QA_VALUE_FILL},
        LANDSAT_ST_UNCERTAINTY: {"chunks": fine, "_FillValue": np.float16("nan")},
        LANDSAT_CLEAR: {"chunks": (cl,), "_FillValue": np.float32("nan")},
        LANDSAT_HOUR: {"chunks": (cl,), "_FillValue": np.float32("nan")},
        MODIS_LST: {"chunks": coarse, "_FillValue": np.float32("nan")},
        MODIS_VALID: {"chunks": coarse, "_FillValue": np.float32("nan")},
        MODIS_CLEAR: {"chunks": (cl,), "_FillValue": np.float32("nan")},
        MODIS_VIEW_TIME: {"chunks": (cl,), "_FillValue": np.float32("nan")},
        MODIS_QC: {"chunks": coarse, "_FillValue": None,
                   "fill_value": int(modis.make_qc(modis.MANDATORY_NOT_PRODUCED))},
    }
    create_store(path, ds, encoding, kind="stack")


#: Digests of every date's LST (``{sensor: {YYYY-MM-DD: digest}}``), in the private group.
CONTENT_RECORD = "content.json"


def read_content(stack: StorePath | str) -> dict[str, dict[str, str]] | None:
    """The content record of a stack (None for stacks written before it existed)."""
    return read_json(stack, CONTENT_RECORD)


def content_fingerprint(stack: StorePath | str) -> str | None:
    """SHA-256 of a stack's whole content record (None for stacks written before it existed).

    One digest for every date's digest: what a checkpoint adapted on the stack records.
    """
    import hashlib
    import json

    content = read_content(stack)
    if content is None:
        return None
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()


@dataclass
class StackReader:
    """Windowed, eager reads from an input stack, as used inside fusion tasks.

    Only the requested dates and window are read; nothing loads a whole scene.
    """

    path: StorePath

    def __post_init__(self) -> None:
        self.path = as_store_path(self.path)
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
        # read once: listing a group reads every array's metadata (two requests each on
        # S3), and the methods below asked for the list on every call
        self._arrays = frozenset(self._group.array_keys())
        missing = {LANDSAT_LST, LANDSAT_CLEAR, MODIS_LST} - self._arrays
        if missing:
            raise InputError(f"{self.path}: input stack lacks {sorted(missing)}")

    @cached_property
    def grid(self) -> TargetGrid:
        """The stack's target grid."""
        return grid_from_attrs(dict(self._group.attrs), self.path)

    @cached_property
    def landsat_dates(self) -> np.ndarray:
        """Landsat dates (``datetime64[D]``)."""
        return decode_dates(self._group["time_landsat"])

    @cached_property
    def modis_dates(self) -> np.ndarray:
        """MODIS dates (``datetime64[D]``)."""
        return decode_dates(self._group["time_modis"])

    @cached_property
    def landsat_clear_fraction(self) -> np.ndarray:
        """Clear fraction of each Landsat date."""
        return self._group[LANDSAT_CLEAR][:]

    @cached_property
    def landsat_hour_utc(self) -> np.ndarray:
        """Acquisition time of each Landsat date, hours after 00:00 UTC (NaN: unknown)."""
        if LANDSAT_HOUR not in self._arrays:
            return np.full(len(self.landsat_dates), np.nan, np.float32)
        return self._group[LANDSAT_HOUR][:]

    @cached_property
    def modis_view_time(self) -> np.ndarray:
        """Mean local solar view time of each MODIS date, hours (NaN: unknown)."""
        if MODIS_VIEW_TIME not in self._arrays:
            return np.full(len(self.modis_dates), np.nan, np.float32)
        return self._group[MODIS_VIEW_TIME][:]

    def modis_view_time_on(self, dates: np.ndarray) -> np.ndarray:
        """The MODIS view time (hours) of the given dates; NaN where absent or unknown."""
        present, idx = self._modis_positions(dates)
        out = np.full(len(present), np.nan, np.float64)
        out[present] = self.modis_view_time[idx]
        return out

    def _modis_positions(self, dates: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Which of ``dates`` the stack holds, and their positions along ``time_modis``."""
        dates = np.asarray(dates, dtype="datetime64[D]")
        if not len(self.modis_dates) or not len(dates):
            return np.zeros(len(dates), bool), np.zeros(0, np.int64)
        pos = np.minimum(np.searchsorted(self.modis_dates, dates), len(self.modis_dates) - 1)
        present = self.modis_dates[pos] == dates
        return present, pos[present]

    @cached_property
    def content(self) -> dict[str, dict[str, str]] | None:
        """Digest of every date's LST (``{sensor: {YYYY-MM-DD: digest}}``), if recorded."""
        return read_content(self.path)

    def read_landsat(self, indices: np.ndarray, window: Window) -> np.ndarray:
        """Landsat LST (K, NaN = unusable) at the given date indices, ``(n, wy, wx)``."""
        return self._read_fine(LANDSAT_LST, indices, window)

    def read_landsat_uncertainty(self, indices: np.ndarray, window: Window
                                 ) -> np.ndarray | None:
        """ST_QA uncertainty (K, float32, NaN unknown) at the date indices; None if unstored."""
        if LANDSAT_ST_UNCERTAINTY not in self._arrays:
            return None
        return self._read_fine(LANDSAT_ST_UNCERTAINTY, indices, window)

    def _read_fine(self, name: str, indices: np.ndarray, window: Window) -> np.ndarray:
        """``(n, wy, wx)`` float32 of a fine-grid Landsat array at the date indices."""
        arr = self._group[name]
        ys, xs = window.slices
        out = np.empty((len(indices), *window.shape), dtype=np.float32)
        for k, i in enumerate(indices):
            out[k] = arr[int(i), ys, xs]
        return out

    def read_modis(self, dates: np.ndarray, coarse_window: Window) -> np.ndarray:
        """MODIS LST (K, NaN = gap) on the given dates, ``(n, wyc, wxc)``.

        Dates absent from the stack come back as all-NaN images (a missing day is a gap).
        """
        return self._read_modis(MODIS_LST, np.float32(np.nan), dates, coarse_window)

    def read_modis_error_class(self, dates: np.ndarray, coarse_window: Window) -> np.ndarray:
        """MOD11A1 QC LST-error class (0: <= 1 K ... 3: > 3 K), uint8 ``(n, wyc, wxc)``.

        0 on dates absent from the stack and in stacks without QC.
        """
        if MODIS_QC not in self._arrays:
            return np.zeros((len(dates), *coarse_window.shape), np.uint8)
        qc = self._read_modis(MODIS_QC, np.uint8(0), dates, coarse_window)
        return modis.qc_field(qc, modis.QC_LST_ERROR_SHIFT)

    def _read_modis(self, name: str, fill: Any, dates: np.ndarray, coarse_window: Window
                    ) -> np.ndarray:
        present, idx = self._modis_positions(dates)
        out = np.full((len(present), *coarse_window.shape), fill, dtype=np.asarray(fill).dtype)
        if not present.any():
            return out
        ys, xs = coarse_window.slices
        arr = self._group[name]
        lo, hi = int(idx.min()), int(idx.max()) + 1
        block = arr[lo:hi, ys, xs]  # consecutive days: one read
        out[present] = block[idx - lo]
        return out


def stack_dates(path: StorePath | str, sensor: str) -> np.ndarray:
    """Sorted ``datetime64[D]`` dates of ``sensor`` (``landsat`` or ``modis``) in a stack."""
    return decode_dates(open_group(path)[TIME_DIMS[sensor]])


@dataclass
class IngestRecord:
    """Per-date provenance of an ingested stack: sensor, time, clear fraction, sources.

    Kept as JSON inside the store (``_lst_pipeline/ingest.json``) and replaced atomically.
    ``dates[sensor][YYYY-MM-DD]`` is a dict with ``platform``, ``time``, ``clear_fraction``
    and ``sources`` (file names).
    """

    path: StorePath
    dates: dict[str, dict[str, dict[str, Any]]]

    @classmethod
    def load(cls, stack: StorePath | str) -> IngestRecord:
        """The record of ``stack`` (empty if it has none yet)."""
        import json

        path = as_store_path(stack) / RECORD_PATH
        dates: dict[str, dict[str, dict[str, Any]]] = {"landsat": {}, "modis": {}}
        if path.is_file():
            dates.update(json.loads(path.read_text()))
        return cls(path, dates)

    def save(self) -> None:
        """Write the record into the stack's private group."""
        write_json(self.path.parent.parent, self.path.name, self.dates)


def decode_dates(array: Any) -> np.ndarray:
    """Decode a CF time coordinate written by xarray to ``datetime64[D]``."""
    import xarray as xr

    values = array[:]
    attrs = dict(array.attrs)
    var = xr.Variable(("t",), values, attrs)
    decoded = xr.conventions.decode_cf_variable("t", var)
    return np.asarray(decoded.values, dtype="datetime64[D]")


def open_stack(path: StorePath | str) -> xr.Dataset:
    """Open an input stack lazily as an xarray Dataset (CRS available via rioxarray)."""
    import xarray as xr

    return xr.open_zarr(zarr_store(as_store_path(path), read_only=True), consolidated=False)
