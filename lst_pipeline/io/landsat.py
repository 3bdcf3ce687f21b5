"""Landsat 8/9 Collection 2 Level-2 surface temperature: constants and QA_PIXEL bits.

The one place for Landsat facts (USGS Landsat 8-9 Collection 2 Level-2 Science Product
Guide). Collection 1 used other bit positions; these are Collection 2 only.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from lst_pipeline.errors import InputError

if TYPE_CHECKING:
    from odc.geo.geobox import GeoBox

#: ST_B10 DN -> Kelvin: K = DN * ST_SCALE_K + ST_OFFSET_K; DN 0 is fill.
ST_SCALE_K = 0.00341802
ST_OFFSET_K = 149.0
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

_PRODUCT_ID = re.compile(
    r"^(?P<sensor>L[COTEM])(?P<mission>0[4-9])_(?P<level>L[12][A-Z]{2})_(?P<pathrow>\d{6})_"
    r"(?P<acquired>\d{8})_(?P<processed>\d{8})_(?P<collection>\d{2})_(?P<category>T1|T2|RT)$")


@dataclass(frozen=True)
class SceneMetadata:
    """What the ingest needs from a Collection 2 Level-2 MTL file.

    Corner coordinates are pixel centres in the scene's UTM projection, as in the MTL.
    """

    mtl: Path
    product_id: str
    spacecraft: str
    acquired: dt.datetime
    st_scale: float
    st_offset: float
    files: dict[str, str]
    utm_zone: int | None = None
    cell_size: float | None = None
    shape: tuple[int, int] | None = None
    upper_left: tuple[float, float] | None = None

    @property
    def date(self) -> dt.date:
        """UTC acquisition date."""
        return self.acquired.date()

    def georeference(self) -> GeoBox:
        """The scene grid described by the MTL (for band files without GeoTIFF tags).

        Landsat UTM products use EPSG:326xx for both hemispheres (negative northings south).
        """
        from affine import Affine
        from odc.geo.geobox import GeoBox

        if None in (self.utm_zone, self.cell_size, self.shape, self.upper_left):
            raise InputError(f"{self.mtl}: lacks UTM_ZONE, GRID_CELL_SIZE_THERMAL, "
                             "THERMAL_LINES/SAMPLES or corner coordinates, so the scene "
                             "cannot be georeferenced from it")
        x, y = self.upper_left
        half = self.cell_size / 2
        transform = Affine(self.cell_size, 0, x - half, 0, -self.cell_size, y + half)
        return GeoBox(self.shape, transform, f"EPSG:{32600 + self.utm_zone}")


def parse_mtl(path: Path) -> dict[str, dict[str, str]]:
    """Parse a Landsat MTL (``.txt`` ODL or ``.xml``) into ``{group: {key: value}}``.

    Only the first occurrence of a group is kept: Level-2 MTLs repeat Level-1 groups whose
    keys (product id, processing level) describe the Level-1 parent.
    """
    path = Path(path)
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        raise InputError(f"{path}: MTL metadata file not found") from None
    groups: dict[str, dict[str, str]] = {}
    if path.suffix.lower() == ".xml":
        import xml.etree.ElementTree as ET

        try:
            root = ET.fromstring(text)
        except ET.ParseError as exc:
            raise InputError(f"{path}: not a valid MTL XML file ({exc})") from exc
        for group in root:
            groups.setdefault(group.tag.upper(),
                              {child.tag.upper(): (child.text or "").strip() for child in group})
        return groups
    stack: list[str] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or "=" not in line:
            continue
        key, _, value = (part.strip() for part in line.partition("="))
        if key == "GROUP":
            stack.append(value)
        elif key == "END_GROUP":
            if stack:
                stack.pop()
        elif stack:
            groups.setdefault(stack[-1], {}).setdefault(key, value.strip('"'))
    if not groups:
        raise InputError(f"{path}: no MTL groups found; is this a Landsat MTL file?")
    return groups


def check_product_id(product_id: str, where: object, *, collection: str | None = None) -> None:
    """Refuse anything but a Landsat 8/9 Collection 2 Level-2 product id.

    Raises
    ------
    InputError
        Unknown ids, Collection 1 (other QA bits), Level-1 products, other missions.
    """
    mtl = where
    match = _PRODUCT_ID.match(product_id)
    if match is None:
        raise InputError(f"{mtl}: unknown product {product_id or '(no LANDSAT_PRODUCT_ID)'}; "
                         "expected a Landsat Collection 2 Level-2 product id such as "
                         "LC08_L2SP_017051_20151205_20200908_02_T1")
    collection = (collection or match["collection"]).lstrip("0")
    if match["collection"] != "02" or collection != "2":
        raise InputError(f"{mtl}: {product_id} is a Collection 1 product; its QA bits differ "
                         "from Collection 2, download the Collection 2 Level-2 scene instead")
    if not match["level"].startswith("L2"):
        raise InputError(f"{mtl}: {product_id} is a Level-1 product; surface temperature "
                         "needs the Collection 2 Level-2 (L2SP) product")
    if match["sensor"] != "LC" or match["mission"] not in ("08", "09"):
        raise InputError(f"{mtl}: {product_id} is not Landsat 8/9 OLI/TIRS; only Landsat 8 and "
                         "9 Collection 2 Level-2 surface temperature (ST_B10) is supported")


def read_metadata(mtl: Path) -> SceneMetadata:
    """Read and check the MTL of a Landsat 8/9 Collection 2 Level-2 scene.

    Raises
    ------
    InputError
        Collection 1 or Level-1 products, products other than Landsat 8/9 surface
        temperature, or an MTL missing the fields the ingest needs.
    """
    mtl = Path(mtl)
    groups = parse_mtl(mtl)
    product = groups.get("PRODUCT_CONTENTS", {})
    image = groups.get("IMAGE_ATTRIBUTES", {})
    proj = groups.get("PROJECTION_ATTRIBUTES", {})
    st = groups.get("LEVEL2_SURFACE_TEMPERATURE_PARAMETERS", {})
    product_id = product.get("LANDSAT_PRODUCT_ID") or groups.get(
        "METADATA_FILE_INFO", {}).get("LANDSAT_PRODUCT_ID", "")
    check_product_id(product_id, mtl, collection=product.get("COLLECTION_NUMBER"))
    if "FILE_NAME_BAND_ST_B10" not in product:
        raise InputError(f"{mtl}: {product_id} has no ST_B10 band (an L2SR product without "
                         "surface temperature?); use the L2SP product")
    try:
        date = dt.date.fromisoformat(image["DATE_ACQUIRED"])
        time = image.get("SCENE_CENTER_TIME", "00:00:00Z").rstrip("Z")[:15]
        acquired = dt.datetime.combine(date, dt.time.fromisoformat(time), dt.UTC)
    except (KeyError, ValueError) as exc:
        raise InputError(f"{mtl}: missing or invalid DATE_ACQUIRED / SCENE_CENTER_TIME "
                         f"({exc})") from exc
    named = _PRODUCT_ID.match(product_id)["acquired"]
    if named != f"{date:%Y%m%d}":
        raise InputError(f"{mtl}: DATE_ACQUIRED {date} disagrees with the acquisition date "
                         f"{named[:4]}-{named[4:6]}-{named[6:]} in the product id {product_id}; "
                         "the MTL is damaged or belongs to another scene: download it again")
    scale = float(st.get("TEMPERATURE_MULT_BAND_ST_B10", ST_SCALE_K))
    offset = float(st.get("TEMPERATURE_ADD_BAND_ST_B10", ST_OFFSET_K))
    files = {
        "st_b10": product["FILE_NAME_BAND_ST_B10"],
        "qa_pixel": product.get("FILE_NAME_QUALITY_L1_PIXEL", f"{product_id}_QA_PIXEL.TIF"),
        "st_qa": product.get("FILE_NAME_QUALITY_L2_SURFACE_TEMPERATURE",
                             f"{product_id}_ST_QA.TIF"),
    }

    def number(key: str) -> float | None:
        value = proj.get(key)
        return None if value is None else float(value)

    zone = proj.get("UTM_ZONE")
    lines, samples = proj.get("THERMAL_LINES"), proj.get("THERMAL_SAMPLES")
    ul = (number("CORNER_UL_PROJECTION_X_PRODUCT"), number("CORNER_UL_PROJECTION_Y_PRODUCT"))
    return SceneMetadata(
        mtl=mtl, product_id=product_id, spacecraft=image.get("SPACECRAFT_ID", ""),
        acquired=acquired, st_scale=scale, st_offset=offset, files=files,
        utm_zone=None if zone is None else int(zone),
        cell_size=number("GRID_CELL_SIZE_THERMAL"),
        shape=None if lines is None or samples is None else (int(lines), int(samples)),
        upper_left=None if None in ul else ul,
    )


@dataclass(frozen=True)
class Scene:
    """One Landsat Level-2 scene on disk (or at URLs): its metadata and band locations."""

    metadata: SceneMetadata
    st_b10: str
    qa_pixel: str | None
    st_qa: str | None

    @property
    def name(self) -> str:
        return self.metadata.product_id


def find_scene(path: Path | str) -> Scene:
    """Locate a scene from its directory, its MTL file or its ST_B10 file.

    Raises
    ------
    InputError
        No MTL beside the bands, or the ST_B10 file named by the MTL is missing.
    """
    path = Path(path)
    if path.is_dir():
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
        mtl = next((c for c in candidates if c.is_file()), candidates[0])
        if not mtl.is_file():
            raise InputError(f"{path}: no MTL file beside it (looked for {candidates[0].name}); "
                             "the MTL gives the date, time and scale factors")
    meta = read_metadata(mtl)
    folder = mtl.parent
    st_b10 = folder / meta.files["st_b10"]
    if not path.is_dir() and path != mtl and path.name != meta.files["st_b10"]:
        raise InputError(f"{path}: the MTL beside it ({mtl.name}) describes "
                         f"{meta.files['st_b10']}; the band and metadata do not match")
    if not st_b10.is_file():
        raise InputError(f"{st_b10}: ST_B10 band file named by {mtl.name} is missing")
    qa = folder / meta.files["qa_pixel"]
    st_qa = folder / meta.files["st_qa"]
    return Scene(meta, str(st_b10), str(qa) if qa.is_file() else None,
                 str(st_qa) if st_qa.is_file() else None)


def scene_key(scene: Scene) -> tuple[str, str]:
    """What makes two scenes the same acquisition: WRS-2 path/row and acquisition date."""
    match = _PRODUCT_ID.match(scene.metadata.product_id)
    return match["pathrow"], match["acquired"]


def processed(scene: Scene) -> str:
    """The processing date of a scene (``YYYYMMDD``); a later one supersedes an earlier."""
    return _PRODUCT_ID.match(scene.metadata.product_id)["processed"]


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
    common = dict(expect_shape=meta.shape, described_by=meta.mtl.name,
                  georeferenced=not georeference_from_mtl,
                  no_georeference="set the landsat source's georeference_from_mtl: true to "
                                  "place it with the MTL's UTM zone and corner coordinates")
    st = check_tiff(scene.st_b10, **common)
    for band, used in ((scene.qa_pixel, True), (scene.st_qa, max_st_uncertainty_k is not None)):
        if band is None or not used:
            continue
        other = check_tiff(band, **common)
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
               georeference_from_mtl: bool = False) -> tuple[np.ndarray, np.ndarray] | None:
    """Read a scene onto ``target``: masked Kelvin (area average) and QA_PIXEL (nearest).

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
    (lst_k, qa_pixel) on ``target``, or ``None`` when the scene does not overlap it.
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
    if max_st_uncertainty_k is not None:
        if scene.st_qa is None:
            raise InputError(f"{meta.mtl.parent / meta.files['st_qa']}: ST_QA band file is "
                             "missing but max_st_uncertainty_k is set")
        uncertainty = decode_st_qa(_same_window(read_tiff(scene.st_qa, **common), st,
                                                scene.st_qa).data)
        usable &= uncertainty <= max_st_uncertainty_k
    kelvin = np.where(usable, decode_st(st.data, scale=meta.st_scale, offset=meta.st_offset),
                      np.float32(np.nan))
    from lst_pipeline.io.raster import GeoRaster

    lst, _ = to_grid_mean(GeoRaster(kelvin, st.geobox), target)
    qa_on_grid = to_grid_nearest(GeoRaster(qa.astype(np.uint16), st.geobox), target,
                                 nodata=QA_VALUE_FILL)
    return lst, qa_on_grid


def _same_window(raster, reference, path):
    """``raster`` if it covers exactly the pixels of ``reference`` (the ST_B10 window)."""
    from lst_pipeline.io.raster import grid_offset, same_grid

    if raster is None or not same_grid(raster.geobox, reference.geobox):
        how = "no overlap" if raster is None else grid_offset(raster.geobox, reference.geobox)
        raise InputError(f"{path}: does not cover the same pixels as the ST_B10 band of its "
                         f"scene ({how}); the band files belong to different scenes")
    return raster
