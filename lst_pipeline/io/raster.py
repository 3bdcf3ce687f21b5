"""Georeferenced rasters in, target-grid arrays out: windowed reads and odc-geo reprojection.

Every reader in :mod:`lst_pipeline.io` returns a :class:`GeoRaster` (a numpy array and the
odc-geo ``GeoBox`` it lives on), read only over the part of the file that overlaps the
target grid. :func:`to_grid_mean` and :func:`to_grid_nearest` put it onto a target
``GeoBox`` with odc-geo (GDAL warp underneath), masking *before* resampling so that a
cloudy or fill pixel never leaks into an average.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from lst_pipeline.errors import InputError

if TYPE_CHECKING:
    from odc.geo.geobox import GeoBox


@dataclass
class GeoRaster:
    """A 2-D array and the grid it lives on."""

    data: np.ndarray
    geobox: GeoBox


#: GDAL options for files at URLs (``/vsicurl/``): no directory listing or side-car probes
#: on open (one HEAD and range GETs of the file itself), bounded waits and a few retries.
URL_GDAL_OPTIONS = {"GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR", "GDAL_HTTP_TIMEOUT": "60",
                    "GDAL_HTTP_MAX_RETRY": "3", "GDAL_HTTP_RETRY_DELAY": "1",
                    "CPL_VSIL_CURL_USE_HEAD": "YES"}


@contextlib.contextmanager
def open_raster(path: Path | str) -> Iterator[Any]:
    """``rasterio.open(path)`` for reading; a URL is read with :data:`URL_GDAL_OPTIONS`."""
    import rasterio

    text = str(path)
    env = (rasterio.Env(**URL_GDAL_OPTIONS, **_s3_endpoint_options()) if "://" in text
           else contextlib.nullcontext())
    with env, rasterio.open(text) as src:
        yield src


def _s3_endpoint_options() -> dict[str, str]:
    """GDAL's ``/vsis3/`` options for ``AWS_ENDPOINT_URL`` (an S3-compatible server).

    boto and fsspec read the endpoint as a URL; GDAL wants the host, whether to use HTTPS,
    and path-style addressing. Credentials GDAL reads from the environment itself.
    """
    import os
    from urllib.parse import urlparse

    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    if not endpoint or "AWS_S3_ENDPOINT" in os.environ:
        return {}
    url = urlparse(endpoint)
    return {"AWS_S3_ENDPOINT": url.netloc, "AWS_HTTPS": "YES" if url.scheme == "https" else "NO",
            "AWS_VIRTUAL_HOSTING": "FALSE"}


def overlap_roi(source: GeoBox, target: GeoBox, *, padding: int = 2
                ) -> tuple[slice, slice] | None:
    """Rows and columns of ``source`` needed to fill ``target`` (``None``: no overlap).

    Parameters
    ----------
    source, target
        Grids of the file and of the destination.
    padding
        Extra source pixels on each side (resampling kernels reach past the edge).
    """
    from odc.geo.overlap import compute_reproject_roi

    try:
        info = compute_reproject_roi(source, target, padding=padding)
    except ValueError:  # grids so far apart that no transform between them is finite
        return None
    ys, xs = info.roi_src
    if ys.stop <= ys.start or xs.stop <= xs.start:
        return None
    return ys, xs


def read_tiff(path: Path | str, *, band: int = 1, target: GeoBox | None = None,
              georeference: GeoBox | None = None, expect_shape: tuple[int, int] | None = None,
              described_by: str = "its metadata",
              no_georeference: str = "use the original GeoTIFF from the provider"
              ) -> GeoRaster | None:
    """Read one band of a GeoTIFF/COG, only over ``target`` when given.

    Parameters
    ----------
    path
        The file (local path or a GDAL-readable URL).
    band
        1-based band index.
    target
        Read only the part overlapping this grid; ``None`` reads the whole band.
    georeference
        The file's grid when the file itself carries none (e.g. from a Landsat MTL).
    expect_shape, described_by
        Shape the file must have according to its metadata (named ``described_by`` in the
        error when it does not).
    no_georeference
        What to tell the user when the file has no georeference.

    Returns
    -------
    GeoRaster, or ``None`` when the file does not overlap ``target``.

    Raises
    ------
    InputError
        Missing, unreadable, truncated or non-georeferenced file.
    """
    import rasterio
    from odc.geo.geobox import GeoBox
    from rasterio.errors import CRSError, NotGeoreferencedWarning, RasterioIOError

    path_str = str(path)
    if "://" not in path_str and not Path(path).is_file():
        raise InputError(f"{path}: file not found")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            with open_raster(path_str) as src:
                if expect_shape is None and georeference is not None:
                    expect_shape = tuple(georeference.shape)
                if expect_shape is not None and tuple(expect_shape) != (src.height, src.width):
                    raise InputError(
                        f"{path}: image is {src.height} x {src.width} pixels but "
                        f"{described_by} describes {expect_shape[0]} x {expect_shape[1]}; "
                        "the metadata belongs to another file")
                if georeference is not None:
                    box = georeference
                else:
                    if src.crs is None or src.transform.is_identity:
                        raise InputError(
                            f"{path}: the file has no georeference (no CRS or geotransform), "
                            f"so it cannot be placed on the target grid; {no_georeference}")
                    box = GeoBox((src.height, src.width), src.transform, src.crs)
                if band > src.count:
                    raise InputError(f"{path}: has {src.count} band(s), band {band} requested")
                if target is None:
                    ys, xs = slice(0, src.height), slice(0, src.width)
                else:
                    roi = overlap_roi(box, target)
                    if roi is None:
                        return None
                    ys, xs = roi
                window = rasterio.windows.Window.from_slices(ys, xs)
                data = src.read(band, window=window)
    except CRSError as exc:
        raise InputError(f"{path}: its CRS cannot be understood ({exc}); the file is damaged "
                         "or was written with a non-standard projection") from exc
    except RasterioIOError as exc:
        raise InputError(f"{path}: cannot read the raster (corrupt or truncated file?): "
                         f"{exc}") from exc
    return GeoRaster(data, box[ys, xs])


def check_tiff(path: Path | str, *, expect_shape: tuple[int, int] | None = None,
               described_by: str = "its metadata", georeferenced: bool = True,
               no_georeference: str = "use the original GeoTIFF from the provider"
               ) -> GeoBox | None:
    """Check a GeoTIFF/COG from its header only: readable, complete, shape, georeference.

    What planning can know without reading pixels: the file opens, every image block the
    header points to lies inside the file (a truncated download fails here), the size is
    what the metadata says, and it carries a CRS and geotransform.

    Parameters
    ----------
    path
        The file (local path or a GDAL-readable URL).
    expect_shape, described_by
        Shape the file must have according to ``described_by``.
    georeferenced
        Require a CRS and geotransform (False: the grid comes from elsewhere, e.g. an MTL).
    no_georeference
        What to tell the user when the file has no georeference.

    Returns
    -------
    GeoBox or None
        The file's grid (None when it has none and ``georeferenced`` is False).

    Raises
    ------
    InputError
        Naming the file and what is wrong with it.
    """
    import math
    import os

    from odc.geo.geobox import GeoBox
    from rasterio.errors import CRSError, NotGeoreferencedWarning, RasterioIOError

    path_str = str(path)
    local = "://" not in path_str
    if local and not Path(path).is_file():
        raise InputError(f"{path}: file not found")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            with open_raster(path_str) as src:
                shape = (src.height, src.width)
                if expect_shape is not None and tuple(expect_shape) != shape:
                    raise InputError(f"{path}: image is {shape[0]} x {shape[1]} pixels but "
                                     f"{described_by} describes {expect_shape[0]} x "
                                     f"{expect_shape[1]}; the metadata belongs to another file")
                if local and src.driver == "GTiff":
                    size = os.path.getsize(path_str)
                    bh, bw = src.block_shapes[0]
                    for by in range(math.ceil(shape[0] / bh)):
                        for bx in range(math.ceil(shape[1] / bw)):
                            offset = src.get_tag_item(f"BLOCK_OFFSET_{bx}_{by}", "TIFF", bidx=1)
                            nbytes = src.get_tag_item(f"BLOCK_SIZE_{bx}_{by}", "TIFF", bidx=1)
                            if offset and nbytes and int(offset) + int(nbytes) > size:
                                raise InputError(
                                    f"{path}: truncated: its header points to image data up to "
                                    f"byte {int(offset) + int(nbytes):,} but the file has "
                                    f"{size:,} bytes; download it again")
                if src.crs is None or src.transform.is_identity:
                    if georeferenced:
                        raise InputError(
                            f"{path}: the file has no georeference (no CRS or geotransform), "
                            f"so it cannot be placed on the target grid; {no_georeference}")
                    return None
                return GeoBox(shape, src.transform, src.crs)
    except CRSError as exc:
        raise InputError(f"{path}: its CRS cannot be understood ({exc}); the file is damaged "
                         "or was written with a non-standard projection") from exc
    except RasterioIOError as exc:
        raise InputError(f"{path}: cannot read the raster (corrupt or truncated file?): "
                         f"{exc}") from exc


def same_grid(a: GeoBox, b: GeoBox, *, tolerance: float = 1e-3) -> bool:
    """Same CRS, shape and pixel corners (within ``tolerance`` of a pixel)."""
    if tuple(a.shape) != tuple(b.shape) or a.crs != b.crs:
        return False
    ta, tb = a.affine, b.affine
    res = max(abs(tb.a), abs(tb.e))
    return all(abs(x - y) <= tolerance * res for x, y in zip(ta[:6], tb[:6], strict=True))


def grid_offset(a: GeoBox, b: GeoBox) -> str:
    """How grid ``a`` differs from ``b``, in words (for registration errors)."""
    if a.crs != b.crs:
        return f"another CRS ({a.crs} instead of {b.crs})"
    if tuple(a.shape) != tuple(b.shape):
        return f"{a.shape[0]} x {a.shape[1]} pixels instead of {b.shape[0]} x {b.shape[1]}"
    dx, dy = a.affine.c - b.affine.c, a.affine.f - b.affine.f
    return f"shifted by ({dx:+g}, {dy:+g}) in x, y"


def to_grid_mean(raster: GeoRaster, target: GeoBox) -> tuple[np.ndarray, np.ndarray]:
    """NaN-aware area average of a float raster onto ``target``, and the valid fraction.

    Parameters
    ----------
    raster
        Float data with NaN for every unusable pixel.
    target
        Destination grid.

    Returns
    -------
    mean : numpy.ndarray of float32
        Average of the valid source pixels covering each target pixel (NaN where none).
    valid_fraction : numpy.ndarray of float32
        Fraction of each target pixel's area covered by valid source pixels (0 outside the
        source).
    """
    from odc.geo.xr import wrap_xr, xr_reproject

    data = np.asarray(raster.data, dtype=np.float32)
    valid = np.isfinite(data).astype(np.float32)
    mean = xr_reproject(wrap_xr(data, raster.geobox, nodata=np.nan), target,
                        resampling="average", dst_nodata=np.nan).values
    # The mask with a nodata value it never takes: the average counts every covered pixel.
    frac = xr_reproject(wrap_xr(valid, raster.geobox, nodata=-1.0), target,
                        resampling="average", dst_nodata=0.0).values
    frac = np.clip(np.nan_to_num(frac, nan=0.0), 0.0, 1.0).astype(np.float32)
    return mean.astype(np.float32), frac


def to_grid_nearest(raster: GeoRaster, target: GeoBox, *, nodata: int) -> np.ndarray:
    """Nearest-neighbour resampling (for bit fields such as QA_PIXEL or QC_Day)."""
    from odc.geo.xr import wrap_xr, xr_reproject

    out = xr_reproject(wrap_xr(raster.data, raster.geobox, nodata=nodata), target,
                       resampling="nearest", dst_nodata=nodata)
    return out.values.astype(raster.data.dtype)
