"""Selecting from a cube: a day, a point (by lon/lat or in the cube's CRS), a region.

Pure selection on lazy datasets from :func:`lst_pipeline.io.cube.open_cube`: nothing here reads
pixels, so a selection followed by ``.load()`` reads only the chunks it touches. Every helper
checks its request against the cube and raises :class:`~lst_pipeline.errors.SelectionError`
naming the cube, the request and the valid range.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from lst_pipeline.errors import SelectionError

if TYPE_CHECKING:
    import xarray as xr


@dataclass(frozen=True)
class Point:
    """A point in the cube's CRS (metres) and, when it was given so, its lon/lat (degrees)."""

    x: float
    y: float
    lon: float | None = None
    lat: float | None = None

    def label(self) -> str:
        """The point in words: longitude/latitude if known, else map coordinates."""
        if self.lon is not None and self.lat is not None:
            return f"lon {self.lon:.5f}, lat {self.lat:.5f}"
        return f"x {self.x:.1f} m, y {self.y:.1f} m"


def parse_lonlat(text: str, *, option: str = "--point") -> tuple[float, float]:
    """``"lon,lat"`` in degrees -> ``(lon, lat)``.

    Raises
    ------
    SelectionError
        Naming ``option`` if the text is not two numbers in range.
    """
    parts = text.replace(" ", "").split(",")
    try:
        lon, lat = (float(p) for p in parts)
    except ValueError:
        raise SelectionError(f"{option}: {text!r} is not 'lon,lat' in degrees "
                             "(e.g. --point 148.05,-34.30)") from None
    if not (-180.0 <= lon <= 180.0 and -90.0 <= lat <= 90.0):
        raise SelectionError(f"{option}: {text!r} is out of range; give 'lon,lat' with lon in "
                             "[-180, 180] and lat in [-90, 90] (longitude first)")
    return lon, lat


def parse_date(text: str, *, option: str = "--date") -> np.datetime64:
    """``"YYYY-MM-DD"`` -> ``datetime64[D]``, or :class:`SelectionError` naming ``option``."""
    try:
        return np.datetime64(str(text), "D")
    except ValueError:
        raise SelectionError(f"{option}: {text!r} is not a date YYYY-MM-DD") from None


def _crs(cube: xr.Dataset):
    import rioxarray  # noqa: F401  (registers the .rio accessor)

    crs = cube.rio.crs
    if crs is None:
        raise SelectionError("the cube has no CRS (no spatial_ref); was it written by "
                             "lst_pipeline?")
    return crs


def lonlat_to_cube(cube: xr.Dataset, lon: float, lat: float) -> Point:
    """The point at ``lon``/``lat`` (WGS 84 degrees) in the cube's CRS."""
    from pyproj import Transformer

    to_cube = Transformer.from_crs("EPSG:4326", _crs(cube), always_xy=True)
    x, y = to_cube.transform(lon, lat)
    return Point(float(x), float(y), lon, lat)


def coordinate_edges(coord: xr.DataArray) -> tuple[float, float]:
    """Outer pixel edges (low, high) of a regular pixel-centre coordinate."""
    v = np.asarray(coord.values, dtype=np.float64)
    half = abs(v[1] - v[0]) / 2 if v.size > 1 else 0.0
    return float(v.min() - half), float(v.max() + half)


def extent(cube: xr.Dataset) -> tuple[float, float, float, float]:
    """Outer pixel edges of the cube's grid: ``(x0, x1, y0, y1)`` in its CRS."""
    x0, x1 = coordinate_edges(cube["x"])
    y0, y1 = coordinate_edges(cube["y"])
    return x0, x1, y0, y1


def check_inside(cube: xr.Dataset, point: Point) -> None:
    """Raise :class:`SelectionError` if ``point`` is outside the cube's grid."""
    x0, x1, y0, y1 = extent(cube)
    if not (x0 <= point.x <= x1 and y0 <= point.y <= y1):
        raise SelectionError(
            f"point {point.label()} (x {point.x:.1f}, y {point.y:.1f} in {_crs(cube)}) is "
            f"outside the cube's grid x {x0:.0f} .. {x1:.0f}, y {y0:.0f} .. {y1:.0f}")


def point_series(cube: xr.Dataset, point: Point) -> xr.Dataset:
    """The cube's full time series at the pixel containing ``point`` (lazy)."""
    check_inside(cube, point)
    return cube.sel(x=point.x, y=point.y, method="nearest")


def day_range(cube: xr.Dataset) -> tuple[np.datetime64, np.datetime64]:
    """The first and last day of the cube."""
    days = cube["time"].values.astype("datetime64[D]")
    return days[0], days[-1]


def check_day(cube: xr.Dataset, day: np.datetime64, *, option: str = "--date") -> None:
    """Raise :class:`SelectionError` if ``day`` is not one of the cube's days."""
    first, last = day_range(cube)
    # numpy's stubs take no unit with a datetime64 argument; numpy itself converts it
    if not first <= np.datetime64(day, "D") <= last:  # type: ignore[call-overload]
        raise SelectionError(f"{option}: {day} is outside the cube's days {first} .. {last}")


def day_map(cube: xr.Dataset, day: np.datetime64 | str) -> xr.Dataset:
    """The cube's map of one day (lazy)."""
    # numpy's stubs take no unit with a datetime64 argument; numpy itself converts it
    on_day = np.datetime64(day, "D")  # type: ignore[call-overload]
    check_day(cube, on_day)
    return cube.sel(time=on_day.astype("datetime64[ns]"))


def region(cube: xr.Dataset, left: float, bottom: float, right: float, top: float
           ) -> xr.Dataset:
    """Pixels whose centres lie in a box given in the cube's CRS (metres), lazy."""
    if not (left < right and bottom < top):
        raise SelectionError(f"region: need left < right and bottom < top, got "
                             f"{left}, {bottom}, {right}, {top}")
    ys = slice(top, bottom) if cube["y"].values[0] > cube["y"].values[-1] else slice(bottom, top)
    out = cube.sel(x=slice(left, right), y=ys)
    if out.sizes["x"] == 0 or out.sizes["y"] == 0:
        x0, x1, y0, y1 = extent(cube)
        raise SelectionError(f"region {left}, {bottom}, {right}, {top} does not overlap the "
                             f"cube's grid x {x0:.0f} .. {x1:.0f}, y {y0:.0f} .. {y1:.0f}")
    return out


def region_lonlat(cube: xr.Dataset, west: float, south: float, east: float, north: float
                  ) -> xr.Dataset:
    """Pixels inside a lon/lat box (its outline reprojected into the cube's CRS), lazy."""
    from pyproj import Transformer

    to_cube = Transformer.from_crs("EPSG:4326", _crs(cube), always_xy=True)
    left, bottom, right, top = to_cube.transform_bounds(west, south, east, north, densify_pts=21)
    return region(cube, left, bottom, right, top)


def inputs_at_point(stack: xr.Dataset, point: Point) -> tuple[xr.DataArray, xr.DataArray]:
    """The input stack's Landsat (fine pixel) and MODIS (coarse pixel) series at ``point``."""
    landsat = stack["landsat_lst"].sel(x=point.x, y=point.y, method="nearest")
    modis = stack["modis_lst"].sel(xc=point.x, yc=point.y, method="nearest")
    return landsat, modis
