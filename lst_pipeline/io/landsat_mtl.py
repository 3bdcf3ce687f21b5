"""Landsat Collection 2 Level-2 MTL files: product ids and the metadata the ingest needs.

Re-exported by :mod:`lst_pipeline.io.landsat`, the one place for Landsat facts.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from lst_pipeline.config.locations import StorePath, input_path
from lst_pipeline.errors import InputError

if TYPE_CHECKING:
    from odc.geo.geobox import GeoBox

#: ST_B10 DN -> Kelvin: K = DN * ST_SCALE_K + ST_OFFSET_K (the MTL's values when it has them).
ST_SCALE_K = 0.00341802
ST_OFFSET_K = 149.0

__all__ = ["ST_OFFSET_K", "ST_SCALE_K", "SceneMetadata", "check_product_id", "parse_mtl",
           "product_fields", "read_metadata"]

_PRODUCT_ID = re.compile(
    r"^(?P<sensor>L[COTEM])(?P<mission>0[4-9])_(?P<level>L[12][A-Z]{2})_(?P<pathrow>\d{6})_"
    r"(?P<acquired>\d{8})_(?P<processed>\d{8})_(?P<collection>\d{2})_(?P<category>T1|T2|RT)$")


@dataclass(frozen=True)
class SceneMetadata:
    """What the ingest needs from a Collection 2 Level-2 MTL file.

    Corner coordinates are pixel centres in the scene's UTM projection, as in the MTL.
    """

    mtl: StorePath
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

        zone, cell, shape, upper_left = self.utm_zone, self.cell_size, self.shape, self.upper_left
        if zone is None or cell is None or shape is None or upper_left is None:
            raise InputError(f"{self.mtl}: lacks UTM_ZONE, GRID_CELL_SIZE_THERMAL, "
                             "THERMAL_LINES/SAMPLES or corner coordinates, so the scene "
                             "cannot be georeferenced from it")
        x, y = upper_left
        half = cell / 2
        transform = Affine(cell, 0, x - half, 0, -cell, y + half)
        return GeoBox(shape, transform, f"EPSG:{32600 + zone}")


def parse_mtl(path: StorePath | str) -> dict[str, dict[str, str]]:
    """Parse a Landsat MTL (``.txt`` ODL or ``.xml``) into ``{group: {key: value}}``.

    Only the first occurrence of a group is kept: Level-2 MTLs repeat Level-1 groups whose
    keys (product id, processing level) describe the Level-1 parent.
    """
    path = input_path(path, "MTL")
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


def product_fields(product_id: str) -> re.Match[str]:
    """The named fields of a product id that :func:`check_product_id` has accepted."""
    match = _PRODUCT_ID.match(product_id)
    assert match is not None  # scenes are built only from ids check_product_id accepted
    return match


def read_metadata(mtl: StorePath | str) -> SceneMetadata:
    """Read and check the MTL of a Landsat 8/9 Collection 2 Level-2 scene.

    Raises
    ------
    InputError
        Collection 1 or Level-1 products, products other than Landsat 8/9 surface
        temperature, or an MTL missing the fields the ingest needs.
    """
    mtl = input_path(mtl, "MTL")
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
    named = product_fields(product_id)["acquired"]
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
    ul_x, ul_y = number("CORNER_UL_PROJECTION_X_PRODUCT"), number("CORNER_UL_PROJECTION_Y_PRODUCT")
    return SceneMetadata(
        mtl=mtl, product_id=product_id, spacecraft=image.get("SPACECRAFT_ID", ""),
        acquired=acquired, st_scale=scale, st_offset=offset, files=files,
        utm_zone=None if zone is None else int(zone),
        cell_size=number("GRID_CELL_SIZE_THERMAL"),
        shape=None if lines is None or samples is None else (int(lines), int(samples)),
        upper_left=None if ul_x is None or ul_y is None else (ul_x, ul_y),
    )
