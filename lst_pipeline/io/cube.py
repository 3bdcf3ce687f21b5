"""The output cube: daily fine-resolution LST in Zarr v3, CF-described.

Layout
------
``lst (time, y, x)``
    Kelvin. Default storage int16, CF-packed with ``scale_factor`` 0.01 K and
    ``add_offset`` 300 K (so -27.67 K to 627.67 K fit), ``_FillValue`` -32768; or float32.
``qa (time, y, x)``
    uint8 flag: 0 no data, 1 observed (clear Landsat that day), 2 fused from one reference,
    3 fused from two references (before and after the day, blended), 4 fused from MODIS
    interpolated in time over a cloud gap (``fusion.modis_gaps: interpolate``).
``reference_date (time, y, x)``
    The (nearest) Landsat date the value comes from, int32 days since 1970-01-01 (CF time).
``lst_uncertainty (time, y, x)``
    Estimated 1-sigma error of ``lst`` (K), present exactly where ``lst`` is (unless
    ``output.uncertainty: false``). Stored as uint16 with ``scale_factor`` 0.01 K and
    ``_FillValue`` 65535 (float32 with ``output.dtype: float32``). The error model that made
    it is recorded in the root attribute ``lst_pipeline:uncertainty``.

``spatial_ref`` carries the CRS (``xr.open_zarr(path).rio.crs``), the root attributes carry
provenance (method, parameters, package version, inputs) and ``lst_pipeline:status`` which is
``complete`` only once every chunk was written.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from lst_pipeline.config.locations import StorePath, as_store_path
from lst_pipeline.errors import InputError, StoreError
from lst_pipeline.flags import REFERENCE_DATE_FILL, Flag
from lst_pipeline.io.location import zarr_store
from lst_pipeline.io.zarr_store import (
    GRID_ATTR,
    STATUS_ATTR,
    create_store,
    grid_attrs,
    open_group,
    set_status,
    spatial_coords,
    store_status,
)

if TYPE_CHECKING:
    import xarray as xr

    from lst_pipeline.grid import TargetGrid, Window

LST = "lst"
QA = "qa"
REFERENCE_DATE = "reference_date"
UNCERTAINTY = "lst_uncertainty"

#: CF packing of ``lst`` when stored as int16.
LST_SCALE_K = 0.01
LST_OFFSET_K = 300.0
LST_FILL = np.int16(-32768)
#: CF packing of ``lst_uncertainty`` when ``lst`` is int16.
UNCERTAINTY_SCALE_K = 0.01
UNCERTAINTY_FILL = np.uint16(65535)


def encode_lst(lst_k: np.ndarray) -> np.ndarray:
    """Pack Kelvin into int16 exactly as CF decoding expects (NaN -> fill).

    Values outside the representable range are clipped to it.
    """
    packed = np.round((np.asarray(lst_k, dtype=np.float64) - LST_OFFSET_K) / LST_SCALE_K)
    packed = np.clip(packed, -32767, 32767)
    return np.where(np.isfinite(lst_k), packed, LST_FILL).astype(np.int16)


def decode_lst(packed: np.ndarray) -> np.ndarray:
    """Inverse of :func:`encode_lst` (fill -> NaN), float32 Kelvin."""
    packed = np.asarray(packed)
    out = packed.astype(np.float64) * LST_SCALE_K + LST_OFFSET_K
    return np.where(packed == LST_FILL, np.nan, out).astype(np.float32)


def encode_uncertainty(sigma_k: np.ndarray) -> np.ndarray:
    """Pack a 1-sigma error (K) into uint16 as CF decoding expects (NaN -> fill)."""
    packed = np.clip(np.round(np.asarray(sigma_k, np.float64) / UNCERTAINTY_SCALE_K), 0, 65534)
    return np.where(np.isfinite(sigma_k), packed, UNCERTAINTY_FILL).astype(np.uint16)


def create_cube(
    path: StorePath,
    grid: TargetGrid,
    days: np.ndarray,
    chunks: tuple[int, int, int],
    *,
    dtype: str = "int16",
    attrs: dict[str, Any] | None = None,
    uncertainty: bool = False,
) -> None:
    """Create an empty output cube (metadata and coordinates only) at a free path.

    Parameters
    ----------
    path
        Store directory.
    grid
        Target fine grid.
    days
        ``datetime64[D]`` output days.
    chunks
        Zarr chunk shape ``(time, y, x)``; the engine writes whole chunks.
    dtype
        ``"int16"`` (CF-packed, 0.01 K) or ``"float32"``.
    attrs
        Provenance attributes for the root group.
    uncertainty
        Add ``lst_uncertainty``.

    Raises
    ------
    StoreError
        If a store exists at ``path`` (replace one with
        :func:`~lst_pipeline.io.zarr_store.remove_store` first).
    """
    import dask.array as da
    import xarray as xr

    days = np.asarray(days, dtype="datetime64[D]")
    shape = (len(days), *grid.shape)
    clipped = tuple(min(c, n) for c, n in zip(chunks, shape))

    def lazy(dtype_):
        return da.zeros(shape, chunks=clipped, dtype=dtype_)

    lst_attrs = {"standard_name": "surface_temperature", "long_name":
                 "daily land surface temperature", "units": "K", "grid_mapping": "spatial_ref",
                 "ancillary_variables": f"{QA} {REFERENCE_DATE}"
                                        + (f" {UNCERTAINTY}" if uncertainty else "")}
    extra = {UNCERTAINTY: (("time", "y", "x"), lazy("f4"), {
        "standard_name": "surface_temperature standard_error", "units": "K",
        "long_name": "estimated 1-sigma error of lst (leave-one-date-out error model for "
                     "fused values, Landsat ST_QA for observed ones)",
        "grid_mapping": "spatial_ref"})} if uncertainty else {}
    ds = xr.Dataset(
        {**extra,
            LST: (("time", "y", "x"), lazy("f4"), lst_attrs),
            QA: (("time", "y", "x"), lazy("u1"), {
                "long_name": "how the value was obtained", "flag_values": list(Flag.values),
                "flag_meanings": Flag.meanings, "grid_mapping": "spatial_ref"}),
            REFERENCE_DATE: (("time", "y", "x"), lazy("i4"), {
                "long_name": "date of the Landsat reference the value comes from",
                "units": "days since 1970-01-01", "calendar": "proleptic_gregorian",
                "grid_mapping": "spatial_ref"}),
        },
        coords={**spatial_coords(grid), "time": days.astype("datetime64[ns]")},
        attrs={**(attrs or {}), GRID_ATTR: grid_attrs(grid), STATUS_ATTR: "writing",
               "Conventions": "CF-1.10", "title": "lst_pipeline daily LST cube"},
    )
    create_store(path, ds, _encoding(dtype, clipped, uncertainty), kind="cube")


def _encoding(dtype: str, chunks: tuple[int, ...], uncertainty: bool
              ) -> dict[str, dict[str, object]]:
    """Zarr encoding of the cube's variables for ``output.dtype``."""
    if dtype == "int16":
        lst_encoding = {"dtype": "int16", "scale_factor": LST_SCALE_K,
                        "add_offset": LST_OFFSET_K, "_FillValue": LST_FILL,
                        "fill_value": LST_FILL}
        sigma_encoding = {"dtype": "uint16", "scale_factor": UNCERTAINTY_SCALE_K,
                          "add_offset": 0.0, "_FillValue": UNCERTAINTY_FILL,
                          "fill_value": UNCERTAINTY_FILL}
    elif dtype == "float32":
        lst_encoding = sigma_encoding = {"dtype": "float32", "_FillValue": np.float32("nan")}
    else:
        raise StoreError(f"output.dtype: {dtype!r} is not int16 or float32")
    return {
        LST: {**lst_encoding, "chunks": chunks},
        **({UNCERTAINTY: {**sigma_encoding, "chunks": chunks}} if uncertainty else {}),
        QA: {"chunks": chunks, "_FillValue": None, "fill_value": Flag.NO_DATA},
        REFERENCE_DATE: {"chunks": chunks, "_FillValue": REFERENCE_DATE_FILL,
                         "fill_value": REFERENCE_DATE_FILL},
    }


@dataclass
class CubeWriter:
    """Region writes into a cube created by :func:`create_cube` (safe from any worker)."""

    path: StorePath

    def __post_init__(self) -> None:
        self.path = as_store_path(self.path)
        self._group = open_group(self.path, mode="r+")
        self._packed = np.dtype(self._group[LST].dtype) == np.int16
        self.has_uncertainty = UNCERTAINTY in set(self._group.array_keys())

    def write(self, t0: int, window: Window, lst_k: np.ndarray, qa: np.ndarray,
              reference_day: np.ndarray, uncertainty_k: np.ndarray | None = None) -> None:
        """Write one output block starting at day index ``t0`` over ``window``.

        Raises
        ------
        ValueError
            If the cube has ``lst_uncertainty`` and ``uncertainty_k`` is None, or the reverse.
        """
        ys, xs = window.slices
        ts = slice(t0, t0 + lst_k.shape[0])
        if self.has_uncertainty != (uncertainty_k is not None):
            raise ValueError(f"{self.path}: lst_uncertainty is "
                             f"{'in' if self.has_uncertainty else 'not in'} the cube but "
                             f"{'not ' if uncertainty_k is None else ''}given")
        if uncertainty_k is not None:
            self._group[UNCERTAINTY][ts, ys, xs] = (
                encode_uncertainty(uncertainty_k) if self._packed
                else uncertainty_k.astype(np.float32))
        lst = encode_lst(lst_k) if self._packed else lst_k.astype(np.float32)
        self._group[LST][ts, ys, xs] = lst
        self._group[QA][ts, ys, xs] = qa.astype(np.uint8)
        self._group[REFERENCE_DATE][ts, ys, xs] = reference_day.astype(np.int32)

    def set_status(self, status: str) -> None:
        """Record the cube as ``writing`` or ``complete``."""
        set_status(self.path, status, self._group)



def cube_status(path: StorePath | str) -> str | None:
    """The ``lst_pipeline:status`` of a cube (``writing`` or ``complete``), None if absent."""
    return store_status(path)


#: Boolean helper variables added by :func:`open_cube`, derived from ``qa`` (never stored).
FLAG_HELPERS: dict[str, tuple[tuple[int, ...], str]] = {
    "observed": ((1,), "clear Landsat observation on the day"),
    "fused": ((2, 3, 4), "fused from one or two Landsat references (any fused value)"),
    "fused_two": ((3,), "fused from two references before and after the day, blended"),
    "gap_filled": ((4,), "fused from MODIS interpolated in time over a cloud gap"),
    "no_data": ((0,), "no value (no usable reference or no MODIS that day)"),
}


def flag_helpers(qa: xr.DataArray) -> dict[str, xr.DataArray]:
    """Boolean views of a ``qa`` array, one per name of :data:`FLAG_HELPERS` (lazy if ``qa`` is).

    Parameters
    ----------
    qa
        The cube's ``qa`` flag variable (or any selection of it).
    """
    out = {}
    for name, (codes, meaning) in FLAG_HELPERS.items():
        mask = qa == codes[0]
        for code in codes[1:]:
            mask = mask | (qa == code)
        out[name] = mask.rename(name).assign_attrs(
            long_name=meaning, flag_values_of_qa=list(codes), grid_mapping="spatial_ref")
    return out


def flag_category(qa: xr.DataArray) -> xr.DataArray:
    """The ``qa`` codes as their names (``observed``, ``fused_one_reference`` ...), loaded.

    Meant for small selections (a point's series, a summary table); use the boolean helpers of
    :func:`open_cube` for maps.
    """
    names = np.array(Flag.meanings.split(), dtype=object)
    values = np.asarray(qa.values)
    labels = np.where(values < len(names), names[np.minimum(values, len(names) - 1)], "unknown")
    return qa.copy(data=labels).rename("flag").assign_attrs(
        long_name="how the value was obtained", categories=list(names))


def open_cube(path: StorePath | str, *, flags: bool = True) -> xr.Dataset:
    """Open an output cube lazily: CF-decoded Kelvin, dates, CRS via rioxarray, flag helpers.

    Parameters
    ----------
    path
        The cube's Zarr store (the production cube or a copy from ``lst-pipeline rechunk``).
    flags
        Add the boolean helpers of :data:`FLAG_HELPERS` (``observed``, ``fused``,
        ``fused_two``, ``gap_filled``, ``no_data``) as lazy variables computed from ``qa``.

    Returns
    -------
    xarray.Dataset
        Dask-backed: nothing but metadata and coordinates is read until values are used,
        and a selection reads only the chunks it touches. ``cube.rio.crs`` is the grid's CRS.

    Raises
    ------
    InputError
        If ``path`` holds no cube.
    """
    import rioxarray  # noqa: F401  (registers the .rio accessor)
    import xarray as xr

    path = as_store_path(path)
    if not (path / "zarr.json").is_file():
        raise InputError(f"{path}: no cube here (no zarr.json); give the path of an output "
                         "cube, e.g. demo_output/cube.zarr after `lst-pipeline demo`")
    try:
        cube = xr.open_zarr(zarr_store(as_store_path(path), read_only=True), consolidated=False)
    except (OSError, ValueError, KeyError) as exc:
        raise InputError(f"{path}: cannot open as a cube ({type(exc).__name__}: {exc})") from exc
    if LST not in cube or QA not in cube:
        raise InputError(f"{path}: not an lst_pipeline cube (needs `{LST}` and `{QA}`)")
    if flags:
        cube = cube.assign(flag_helpers(cube[QA]))
    return cube


# The cube's own records live in lst_pipeline.io.cube_store; these names are re-exported.
from lst_pipeline.io.cube_store import CubeStore, RunRecord, remove_partial_writes  # noqa: E402

__all__ = ["LST", "QA", "REFERENCE_DATE", "UNCERTAINTY", "CubeStore", "CubeWriter", "Flag",
           "RunRecord", "create_cube", "cube_status", "decode_lst", "encode_lst",
           "encode_uncertainty", "flag_category", "flag_helpers", "open_cube",
           "remove_partial_writes"]
