"""Series already on the target grid: one GeoTIFF per date, prepared by the user.

Nothing is reprojected here: a file must lie exactly on the fine grid (Landsat-like
files) or on the fine or coarse grid (MODIS-like files), otherwise the error says how the
grids differ. That keeps a silent half-pixel shift from ever entering a stack.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from lst_pipeline.errors import InputError
from lst_pipeline.grid import describe_geobox

if TYPE_CHECKING:
    from odc.geo.geobox import GeoBox


def file_date(path: Path | str, date_regex: str, date_format: str) -> dt.date:
    """The date in a file name (first group of ``date_regex``, parsed with ``date_format``)."""
    name = Path(path).name
    match = re.search(date_regex, name)
    if match is None:
        raise InputError(f"{path}: no date in the file name (ingest.pregridded.date_regex "
                         f"{date_regex!r} does not match)")
    try:
        return dt.datetime.strptime(match.group(1), date_format).date()
    except ValueError as exc:
        raise InputError(f"{path}: {match.group(1)!r} is not a date in format "
                         f"{date_format!r} (ingest.pregridded.date_format)") from exc


def read_on_grid(path: Path | str, grid: GeoBox, *, alternatives: tuple[GeoBox, ...] = (),
                 scale: float = 1.0, offset: float = 0.0) -> tuple[np.ndarray, int]:
    """Read a single-band GeoTIFF lying on ``grid`` (or one of ``alternatives``) as Kelvin.

    Returns
    -------
    (kelvin, which)
        Float32 Kelvin with NaN for nodata and non-finite values, and the index of the grid
        it lies on (0: ``grid``, 1...: ``alternatives``).

    Raises
    ------
    InputError
        The file lies on none of the grids (the message compares them).
    """
    from lst_pipeline.io.raster import open_raster, read_tiff, same_grid

    raster = read_tiff(path)
    assert raster is not None  # read_tiff returns None only when it misses a target grid
    grids = (grid, *alternatives)
    which = next((i for i, g in enumerate(grids) if same_grid(raster.geobox, g)), None)
    if which is None:
        expected = " or ".join(describe_geobox(g) for g in grids)
        raise InputError(f"{path}: lies on {describe_geobox(raster.geobox)}, not on the target "
                         f"grid ({expected}); pre-gridded files must match the configured grid "
                         "exactly: fix grid: in the config, or ingest them as landsat/modis "
                         "sources, which are reprojected")

    with open_raster(str(path)) as src:
        nodata = src.nodata
    data = raster.data.astype(np.float64)
    bad = ~np.isfinite(data)
    if nodata is not None:
        bad |= np.isclose(data, nodata, rtol=1e-6) if np.isfinite(nodata) else np.isnan(data)
    kelvin = np.where(bad, np.nan, data * scale + offset).astype(np.float32)
    return kelvin, which
