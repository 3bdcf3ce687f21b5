"""Selections by date, lon/lat, CRS box; each error names the request and the valid range."""

from __future__ import annotations

import numpy as np
import pytest
from pyproj import Transformer

from lst_pipeline import explore
from lst_pipeline.errors import SelectionError
from lst_pipeline.io.cube import open_cube


@pytest.fixture(scope="module")
def cube(small_cube):
    return open_cube(small_cube.output.cube)


def _lonlat(cube, x, y):
    return Transformer.from_crs(cube.rio.crs, "EPSG:4326", always_xy=True).transform(x, y)


def test_point_by_lonlat_finds_the_pixel(cube):
    x, y = float(cube.x[10]), float(cube.y[20])
    lon, lat = _lonlat(cube, x + 3.0, y - 4.0)  # inside the pixel, off its centre
    point = explore.lonlat_to_cube(cube, lon, lat)
    series = explore.point_series(cube, point)
    assert float(series.x) == x and float(series.y) == y
    np.testing.assert_array_equal(series["lst"].values, cube["lst"].values[:, 20, 10])


def test_point_outside_the_grid(cube):
    lon, lat = _lonlat(cube, float(cube.x[-1]) + 100.0, float(cube.y[0]))
    with pytest.raises(SelectionError, match="outside the cube's grid"):
        explore.point_series(cube, explore.lonlat_to_cube(cube, lon, lat))


@pytest.mark.parametrize("text", ["147.9", "a,b", "1,2,3", "-34.3,200"])
def test_bad_lonlat(text):
    with pytest.raises(SelectionError, match="--point"):
        explore.parse_lonlat(text)


def test_day_map_and_day_outside(cube):
    day = explore.day_map(cube, "2021-01-20")
    np.testing.assert_array_equal(day["qa"].values, cube["qa"].values[19])
    with pytest.raises(SelectionError, match=r"2021-03-01 is outside the cube's days "
                                             r"2021-01-01 \.\. 2021-02-09"):
        explore.day_map(cube, "2021-03-01")
    with pytest.raises(SelectionError, match="not a date"):
        explore.parse_date("20-01-2021")


def test_region_in_crs_and_lonlat_agree(cube):
    left, right = float(cube.x[8]), float(cube.x[23])
    top, bottom = float(cube.y[4]), float(cube.y[19])
    box = explore.region(cube, left, bottom, right, top)
    assert box.sizes["x"] == 16 and box.sizes["y"] == 16
    assert float(box.x[0]) == left and float(box.y[0]) == top
    west, south = _lonlat(cube, left - 14, bottom - 14)
    east, north = _lonlat(cube, right + 14, top + 14)
    by_lonlat = explore.region_lonlat(cube, west, south, east, north)
    # The lon/lat box's outline, reprojected, covers at least the same pixels.
    assert by_lonlat.sizes["x"] >= 16 and by_lonlat.sizes["y"] >= 16
    assert left in by_lonlat.x.values and top in by_lonlat.y.values
    with pytest.raises(SelectionError, match="does not overlap"):
        explore.region(cube, 0, 0, 10, 10)
