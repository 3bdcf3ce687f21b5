"""The truth store: the known daily LST of a synthetic region, on the fine target grid.

Written by :mod:`lst_pipeline.simulate` (the training simulator) and by
:mod:`lst_pipeline.worlds` (the independent test world); read by ``evaluate``, the demo and
the benchmarks to score fused cubes.

Layout (Zarr v3)
----------------
``lst (time, y, x)``
    float32 Kelvin, the daily truth.
``land_cover (y, x)``
    uint8 class of each pixel (CF ``flag_values``/``flag_meanings``: the generator's classes).
further static ``(y, x)`` layers
    Whatever the generator documents (``harvest_day``, ``parcel``, ``elevation_m`` ...).

Coordinates ``time``, ``y``, ``x``, ``spatial_ref``; root attributes ``lst_pipeline:kind``
``truth``, ``lst_pipeline:grid``, ``lst_pipeline:status`` (``complete`` once every day is
written) and the generator's parameters.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from lst_pipeline.config.locations import StorePath, as_store_path
from lst_pipeline.io.location import zarr_store
from lst_pipeline.io.zarr_store import (
    GRID_ATTR,
    STATUS_ATTR,
    create_store,
    grid_attrs,
    open_group,
    set_status,
    spatial_coords,
)

if TYPE_CHECKING:
    import xarray as xr

    from lst_pipeline.grid import TargetGrid

LST = "lst"
LAND_COVER = "land_cover"


def create_truth(path: StorePath, grid: TargetGrid, days: np.ndarray, *,
                 class_names: tuple[str, ...],
                 static: dict[str, tuple[str, dict[str, Any]]] | None = None,
                 day_chunk: int = 16, attrs: dict[str, Any] | None = None) -> None:
    """Create an empty truth store (filled by :class:`TruthWriter`) at a free path.

    Parameters
    ----------
    path
        Store directory.
    grid
        The fine target grid.
    days
        ``datetime64[D]`` days of the truth.
    class_names
        Land-cover class names, indexed by class value.
    static
        Further static layers: ``{name: (dtype, attributes)}``.
    day_chunk
        Days per chunk of ``lst``.
    attrs
        Root attributes (generator parameters).
    """
    import dask.array as da
    import xarray as xr

    ny, nx = grid.shape
    days = np.asarray(days, "datetime64[D]")
    ct = max(1, min(day_chunk, len(days)))
    cy, cx = min(256, ny), min(256, nx)
    gm = {"grid_mapping": "spatial_ref"}
    layers = {LAND_COVER: ("u1", {"long_name": "land cover class", **gm,
                                  "flag_values": list(range(len(class_names))),
                                  "flag_meanings": " ".join(class_names)})}
    layers.update({name: (dtype, {**a, **gm}) for name, (dtype, a) in (static or {}).items()})
    variables = {
        LST: (("time", "y", "x"), da.zeros((len(days), ny, nx), chunks=(ct, cy, cx), dtype="f4"),
              {"units": "K", "standard_name": "surface_temperature",
               "long_name": "true daily land surface temperature (simulated)", **gm}),
        **{name: (("y", "x"), da.zeros((ny, nx), chunks=(cy, cx), dtype=dtype), a)
           for name, (dtype, a) in layers.items()},
    }
    ds = xr.Dataset(variables, coords={**spatial_coords(grid),
                                       "time": days.astype("datetime64[ns]")},
                    attrs={**(attrs or {}), GRID_ATTR: grid_attrs(grid), STATUS_ATTR: "writing",
                           "title": "lst_pipeline simulated truth"})
    encoding: dict[str, dict[str, object]] = {
        LST: {"chunks": (ct, cy, cx), "_FillValue": np.float32("nan")},
        **{name: {"chunks": (cy, cx), "_FillValue": None} for name in layers}}
    create_store(path, ds, encoding, kind="truth")


class TruthWriter:
    """Fills a truth store: days of ``lst`` in any order, the static layers once."""

    def __init__(self, path: StorePath | str) -> None:
        self.path = as_store_path(path)
        self._group = open_group(self.path, mode="r+")

    def write_days(self, start: int, lst_k: np.ndarray) -> None:
        """Days ``start, start + 1, ...`` of ``lst`` (``(days, ny, nx)`` Kelvin)."""
        self._group[LST][start:start + len(lst_k)] = lst_k.astype(np.float32)

    def write_static(self, name: str, values: np.ndarray) -> None:
        """Write a static layer (land cover, elevation ...)."""
        self._group[name][:] = values

    def finish(self) -> None:
        """Mark the truth complete (with consolidated metadata)."""
        set_status(self.path, "complete", self._group)


def open_truth(path: StorePath | str) -> xr.Dataset:
    """Open a truth store lazily (``lst`` and its static layers)."""
    import xarray as xr

    return xr.open_zarr(zarr_store(as_store_path(path), read_only=True), consolidated=False)
