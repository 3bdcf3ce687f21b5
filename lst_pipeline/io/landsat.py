"""Landsat 8/9 Collection 2 Level-2 surface temperature: constants and QA_PIXEL bits.

The one place for Landsat facts (USGS Landsat 8-9 Collection 2 Level-2 Science Product
Guide). Collection 1 used other bit positions; these are Collection 2 only.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

import numpy as np

from lst_pipeline.config.locations import StorePath, input_path, is_input_file, is_remote
from lst_pipeline.errors import InputError

# MTL parsing lives in landsat_mtl; its names are part of this module's API.
from lst_pipeline.io.landsat_mtl import ST_OFFSET_K as ST_OFFSET_K
from lst_pipeline.io.landsat_mtl import ST_SCALE_K as ST_SCALE_K
from lst_pipeline.io.landsat_mtl import SceneMetadata as SceneMetadata
from lst_pipeline.io.landsat_mtl import check_product_id as check_product_id
from lst_pipeline.io.landsat_mtl import parse_mtl as parse_mtl
from lst_pipeline.io.landsat_mtl import product_fields, read_metadata

if TYPE_CHECKING:
    from odc.geo.geobox import GeoBox

#: ST_B10 DN 0 is fill (DN -> Kelvin: ``ST_SCALE_K`` and ``ST_OFFSET_K``, from the MTL module).
ST_FILL_DN = 0

# QA_PIXEL bit positions (Collection 2).
QA_FILL = 0
QA_DILATED_CLOUD = 1
QA_CIRRUS = 2
QA_CLOUD = 3
QA_CLOUD_SHADOW = 4
QA_SNOW = 5
QA_CLEAR = 6
QA_WATER = 7
QA_CLOUD_CONFIDENCE = 8  # two bits: 00 none, 01 low, 10 medium, 11 high
QA_SHADOW_CONFIDENCE = 10
QA_SNOW_CONFIDENCE = 12
QA_CIRRUS_CONFIDENCE = 14

#: Typical QA_PIXEL values of Landsat 8/9 C2 L2 scenes.
QA_VALUE_CLEAR_LAND = 21824
QA_VALUE_CLEAR_WATER = 21952
QA_VALUE_CLOUD_HIGH = 22280
QA_VALUE_CLOUD_SHADOW = 23888
QA_VALUE_DILATED_CLOUD = 21762  # dilated cloud over land, confidences low, not clear
QA_VALUE_CLEAR_SNOW = 30048  # snow/ice, clear, snow confidence high
QA_VALUE_FILL = 1


def usable_mask(qa_pixel: np.ndarray, *, mask_snow: bool = False) -> np.ndarray:
    """Pixels whose surface temperature can be used.

    Usable means: not fill, not cloud, not dilated cloud, not cirrus, not cloud shadow
    (and not snow if ``mask_snow``). Water is valid LST. Bit 6 "clear" is not used: it only
    means "neither cloud nor dilated cloud" and is set on shadow pixels too.

    Parameters
    ----------
    qa_pixel
        QA_PIXEL values (uint16, any shape).
    mask_snow
        Also reject snow/ice pixels.

    Returns
    -------
    numpy.ndarray of bool, same shape.
    """
    qa = np.asarray(qa_pixel).astype(np.uint16, copy=False)
    reject = (1 << QA_FILL) | (1 << QA_DILATED_CLOUD) | (1 << QA_CIRRUS) | (1 << QA_CLOUD)
    reject |= 1 << QA_CLOUD_SHADOW
    if mask_snow:
        reject |= 1 << QA_SNOW
    return (qa & np.uint16(reject)) == 0


# --------------------------------------------------------------------------------------
# Scenes on disk: MTL metadata and the ST_B10 / QA_PIXEL / ST_QA bands.

#: ST_QA DN -> Kelvin uncertainty; -9999 is fill.
ST_QA_SCALE_K = 0.01
ST_QA_FILL_DN = -9999

@dataclass(frozen=True)
class Scene:
    """One Landsat Level-2 scene on disk (or at URLs): its metadata and band locations."""

    metadata: SceneMetadata
    st_b10: str
    qa_pixel: str | None
    st_qa: str | None

    @property
    def name(self) -> str:
        """The scene's product id."""
        return self.metadata.product_id


def find_scene(path: StorePath | str) -> Scene:
    """Locate a scene from its directory, its MTL file or its ST_B10 file.

    Raises
    ------
    InputError
        No MTL beside the bands, or the ST_B10 file named by the MTL is missing.
    """
    path = input_path(path, "Landsat scene")
    mtl: StorePath
    if not is_remote(path) and path.is_dir():  # a URL is a file: its folder cannot be listed
        mtls = sorted(path.glob("*_MTL.txt")) or sorted(path.glob("*_MTL.xml"))
        if not mtls:
            raise InputError(f"{path}: no *_MTL.txt or *_MTL.xml here; a Landsat Level-2 "
                             "scene directory holds the MTL beside its bands")
        mtl = mtls[0]
    elif path.name.upper().endswith(("_MTL.TXT", "_MTL.XML")):
        mtl = path
    else:
        stem = path.name.rsplit("_ST_B10", 1)[0]
        candidates = [path.with_name(f"{stem}_MTL.txt"), path.with_name(f"{stem}_MTL.xml")]
        mtl = next((c for c in candidates if is_input_file(c)), candidates[0])
        if not is_input_file(mtl):
            raise InputError(f"{path}: no MTL file beside it (looked for {candidates[0].name}); "
                             "the MTL gives the date, time and scale factors")
    meta = read_metadata(mtl)
    folder = mtl.parent
    st_b10 = folder / meta.files["st_b10"]
    if not path.is_dir() and path != mtl and path.name != meta.files["st_b10"]:
        raise InputError(f"{path}: the MTL beside it ({mtl.name}) describes "
                         f"{meta.files['st_b10']}; the band and metadata do not match")
    if not is_input_file(st_b10):
        raise InputError(f"{st_b10}: ST_B10 band file named by {mtl.name} is missing")
    qa = folder / meta.files["qa_pixel"]
    st_qa = folder / meta.files["st_qa"]
    return Scene(meta, str(st_b10), str(qa) if is_input_file(qa) else None,
                 str(st_qa) if is_input_file(st_qa) else None)


def scene_key(scene: Scene) -> tuple[str, str]:
    """What makes two scenes the same acquisition: WRS-2 path/row and acquisition date."""
    match = product_fields(scene.metadata.product_id)
    return match["pathrow"], match["acquired"]


def processed(scene: Scene) -> str:
    """The processing date of a scene (``YYYYMMDD``); a later one supersedes an earlier."""
    return product_fields(scene.metadata.product_id)["processed"]


def check_scene(scene: Scene, *, require_qa_pixel: bool = True,
                max_st_uncertainty_k: float | None = None,
                georeference_from_mtl: bool = False) -> None:
    """Check a scene's band files from their headers, before anything is read or written.

    The bands must exist, open, be complete (a truncated download fails), have the MTL's
    size and lie on one grid: a QA_PIXEL band registered elsewhere than ST_B10 would put the
    cloud mask on the wrong pixels.

    Raises
    ------
    InputError
        Naming the band file and the problem.
    """
    from lst_pipeline.io.raster import check_tiff, grid_offset, same_grid

    meta = scene.metadata
    if scene.qa_pixel is None and require_qa_pixel:
        raise InputError(f"{meta.mtl.parent / meta.files['qa_pixel']}: QA_PIXEL band file is "
                         "missing; without it clouds cannot be masked (set the landsat "
                         "source's require_qa_pixel: false to mask fill only)")
    if scene.st_qa is None and max_st_uncertainty_k is not None:
        raise InputError(f"{meta.mtl.parent / meta.files['st_qa']}: ST_QA band file is "
                         "missing but max_st_uncertainty_k is set")
    check = partial(check_tiff, expect_shape=meta.shape, described_by=meta.mtl.name,
                    georeferenced=not georeference_from_mtl,
                    no_georeference="set the landsat source's georeference_from_mtl: true to "
                                    "place it with the MTL's UTM zone and corner coordinates")
    st = check(scene.st_b10)
    for band, used in ((scene.qa_pixel, True), (scene.st_qa, max_st_uncertainty_k is not None)):
        if band is None or not used:
            continue
        other = check(band)
        if st is not None and other is not None and not same_grid(other, st):
            raise InputError(f"{band}: not registered with the scene's ST_B10 band "
                             f"({grid_offset(other, st)}); the band files belong to "
                             "different scenes or were altered")


def decode_st(dn: np.ndarray, *, scale: float = ST_SCALE_K, offset: float = ST_OFFSET_K
              ) -> np.ndarray:
    """ST_B10 DN -> Kelvin (float32), fill (DN 0) as NaN."""
    dn = np.asarray(dn)
    kelvin = dn.astype(np.float32) * np.float32(scale) + np.float32(offset)
    return np.where(dn == ST_FILL_DN, np.float32(np.nan), kelvin)


def decode_st_qa(dn: np.ndarray) -> np.ndarray:
    """ST_QA DN -> Kelvin uncertainty (float32), fill (-9999) as NaN."""
    dn = np.asarray(dn)
    return np.where(dn == ST_QA_FILL_DN, np.float32(np.nan),
                    dn.astype(np.float32) * np.float32(ST_QA_SCALE_K))


def read_scene(scene: Scene, target: GeoBox, *, mask_snow: bool = False,
               max_st_uncertainty_k: float | None = None, require_qa_pixel: bool = True,
               georeference_from_mtl: bool = False
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None] | None:
    """Read a scene onto ``target``: masked Kelvin and ST_QA (area average), QA_PIXEL (nearest).

    Masking happens on the scene's own pixels, before resampling, so an average never
    mixes a cloudy pixel into a clear one.

    Parameters
    ----------
    scene
        From :func:`find_scene` (or a STAC item).
    target
        The fine target grid.
    mask_snow
        Also reject snow/ice pixels.
    max_st_uncertainty_k
        Reject pixels whose ST_QA uncertainty exceeds this (needs the ST_QA file).
    require_qa_pixel
        Without QA_PIXEL only fill can be masked; refuse such scenes unless this is False.
    georeference_from_mtl
        Place band files that carry no GeoTIFF georeference with the MTL's UTM zone and
        corner coordinates.

    Returns
    -------
    (lst_k, qa_pixel, st_uncertainty_k) on ``target`` (the last None without an ST_QA band),
    or ``None`` when the scene does not overlap it.
    """
    from lst_pipeline.io.raster import read_tiff, to_grid_mean, to_grid_nearest

    meta = scene.metadata
    georef = meta.georeference() if georeference_from_mtl else None
    common = dict(target=target, georeference=georef, expect_shape=meta.shape,
                  described_by=meta.mtl.name,
                  no_georeference="set the landsat source's georeference_from_mtl: true to "
                                  "place it with the MTL's UTM zone and corner coordinates")
    st = read_tiff(scene.st_b10, **common)
    if st is None:
        return None
    if scene.qa_pixel is None:
        if require_qa_pixel:
            raise InputError(f"{meta.mtl.parent / meta.files['qa_pixel']}: QA_PIXEL band file is "
                             "missing; without it clouds cannot be masked (set the landsat "
                             "source's require_qa_pixel: false to mask fill only)")
        qa = np.where(st.data == ST_FILL_DN, QA_VALUE_FILL, QA_VALUE_CLEAR_LAND).astype(np.uint16)
    else:
        qa = _same_window(read_tiff(scene.qa_pixel, **common), st, scene.qa_pixel).data
    usable = usable_mask(qa, mask_snow=mask_snow) & (st.data != ST_FILL_DN)
    if scene.st_qa is None and max_st_uncertainty_k is not None:
        raise InputError(f"{meta.mtl.parent / meta.files['st_qa']}: ST_QA band file is "
                         "missing but max_st_uncertainty_k is set")
    uncertainty = None if scene.st_qa is None else decode_st_qa(
        _same_window(read_tiff(scene.st_qa, **common), st, scene.st_qa).data)
    if max_st_uncertainty_k is not None and uncertainty is not None:
        usable &= uncertainty <= max_st_uncertainty_k
    kelvin = np.where(usable, decode_st(st.data, scale=meta.st_scale, offset=meta.st_offset),
                      np.float32(np.nan))
    from lst_pipeline.io.raster import GeoRaster

    lst, _ = to_grid_mean(GeoRaster(kelvin, st.geobox), target)
    qa_on_grid = to_grid_nearest(GeoRaster(qa.astype(np.uint16), st.geobox), target,
                                 nodata=QA_VALUE_FILL)
    sigma = None
    if uncertainty is not None:
        sigma, _ = to_grid_mean(GeoRaster(np.where(usable, uncertainty, np.float32(np.nan)),
                                          st.geobox), target)
    return lst, qa_on_grid, sigma


def _same_window(raster, reference, path):
    """``raster`` if it covers exactly the pixels of ``reference`` (the ST_B10 window)."""
    from lst_pipeline.io.raster import grid_offset, same_grid

    if raster is None or not same_grid(raster.geobox, reference.geobox):
        how = "no overlap" if raster is None else grid_offset(raster.geobox, reference.geobox)
        raise InputError(f"{path}: does not cover the same pixels as the ST_B10 band of its "
                         f"scene ({how}); the band files belong to different scenes")
    return raster
