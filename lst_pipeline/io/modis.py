"""MODIS MOD11A1 / MYD11A1 v061 daily LST: constants and QC bits.

The one place for MODIS facts (MOD11 User's Guide, Collection 6.1).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from lst_pipeline.config.locations import StorePath, input_path, is_input_file
from lst_pipeline.errors import InputError, MissingDependencyError

if TYPE_CHECKING:
    from odc.geo.geobox import GeoBox

#: LST_Day_1km DN -> Kelvin: K = DN * LST_SCALE_K; DN 0 is fill; valid DN 7500-65535.
LST_SCALE_K = 0.02
LST_FILL_DN = 0
LST_VALID_MIN_DN = 7500

# QC_Day bit fields (two bits each).
QC_MANDATORY_SHIFT = 0  # 00 good, 01 other quality, 10 cloud, 11 not produced (other)
QC_DATA_QUALITY_SHIFT = 2
QC_EMISSIVITY_ERROR_SHIFT = 4
QC_LST_ERROR_SHIFT = 6  # 00 <= 1 K, 01 <= 2 K, 10 <= 3 K, 11 > 3 K

MANDATORY_GOOD = 0
MANDATORY_OTHER_QUALITY = 1
MANDATORY_CLOUD = 2
MANDATORY_NOT_PRODUCED = 3


def qc_field(qc: np.ndarray, shift: int) -> np.ndarray:
    """Extract one two-bit field of a QC_Day/QC_Night array."""
    return (np.asarray(qc).astype(np.uint8, copy=False) >> np.uint8(shift)) & np.uint8(0b11)


def make_qc(mandatory: np.ndarray | int, lst_error: np.ndarray | int = 0,
            emissivity_error: np.ndarray | int = 0, data_quality: np.ndarray | int = 0
            ) -> np.ndarray:
    """Pack QC bit fields into uint8 QC_Day values (inverse of :func:`qc_field`)."""
    out = (np.asarray(mandatory, dtype=np.uint8) << QC_MANDATORY_SHIFT)
    out |= np.asarray(data_quality, dtype=np.uint8) << QC_DATA_QUALITY_SHIFT
    out |= np.asarray(emissivity_error, dtype=np.uint8) << QC_EMISSIVITY_ERROR_SHIFT
    out |= np.asarray(lst_error, dtype=np.uint8) << QC_LST_ERROR_SHIFT
    return out.astype(np.uint8)


def usable_mask(qc: np.ndarray, *, max_lst_error_class: int = 1) -> np.ndarray:
    """Pixels whose LST was produced with LST error within ``max_lst_error_class``.

    Parameters
    ----------
    qc
        QC_Day values (uint8).
    max_lst_error_class
        0: <= 1 K, 1: <= 2 K (default), 2: <= 3 K, 3: any.
    """
    mandatory = qc_field(qc, QC_MANDATORY_SHIFT)
    produced = mandatory <= MANDATORY_OTHER_QUALITY
    return produced & (qc_field(qc, QC_LST_ERROR_SHIFT) <= max_lst_error_class)


# --------------------------------------------------------------------------------------
# Granules on disk: HDF4-EOS tiles (pyhdf) and GeoTIFF/COG exports of single layers.

#: The MODIS sinusoidal projection (sphere of radius 6371007.181 m).
SINUSOIDAL = "+proj=sinu +lon_0=0 +x_0=0 +y_0=0 +R=6371007.181 +units=m +no_defs"
TILE_PIXELS_1KM = 1200
VIEW_TIME_SCALE_H = 0.1
VIEW_TIME_FILL = 255
PRODUCTS = {"MOD11A1": "terra", "MYD11A1": "aqua"}
VERSIONS = ("006", "061")

_HDF_NAME = re.compile(r"^(?P<product>M[OY]D\w+?)\.A(?P<year>\d{4})(?P<doy>\d{3})\."
                       r"(?P<tile>h\d{2}v\d{2})\.(?P<version>\d{3})\.(?P<production>\d+)\.hdf$",
                       re.IGNORECASE)
# AppEEARS: MOD11A1.006_LST_Day_1km_doy2020133_aid0001.tif
_APPEEARS_NAME = re.compile(r"^(?P<product>M[OY]D\w+?)\.(?P<version>\d{3})_(?P<layer>\w+?)_doy"
                            r"(?P<year>\d{4})(?P<doy>\d{3})_aid\d+\.tif$", re.IGNORECASE)
# Planetary Computer / LP DAAC COGs: MOD11A1.A2021227.h11v05.061.2021228105320_LST_Day_1km.tif
_COG_NAME = re.compile(r"^(?P<product>M[OY]D\w+?)\.A(?P<year>\d{4})(?P<doy>\d{3})\."
                       r"(?P<tile>h\d{2}v\d{2})\.(?P<version>\d{3})\.(?P<production>\d+)_"
                       r"(?P<layer>\w+)\.tif$", re.IGNORECASE)


def layer_names(overpass: str) -> dict[str, str]:
    """Names of the LST, QC and view-time layers of the ``day`` or ``night`` overpass."""
    part = {"day": "Day", "night": "Night"}[overpass]
    return {"lst": f"LST_{part}_1km", "qc": f"QC_{part}", "view_time": f"{part}_view_time"}


@dataclass(frozen=True)
class Granule:
    """One day of one MODIS LST product: an HDF tile, or GeoTIFF layers of one export.

    Attributes
    ----------
    path
        The HDF file, or the LST GeoTIFF.
    product
        ``MOD11A1`` (Terra) or ``MYD11A1`` (Aqua).
    date
        The day (UTC) of the granule.
    layers
        For GeoTIFFs: layer name -> file (``LST_Day_1km``, ``QC_Day``, ...).
    tile, production
        ``h11v05`` and the production stamp (``2021228105320``) when the name has them: the
        same tile and day produced twice is one granule, the later production wins.
    """

    path: str
    product: str
    date: dt.date
    version: str
    layers: dict[str, str] | None = None
    tile: str | None = None
    production: str | None = None

    @property
    def platform(self) -> str:
        """``Terra`` or ``Aqua``."""
        return PRODUCTS[self.product]

    @property
    def name(self) -> str:
        """The granule's file name."""
        return Path(self.path).name


def find_granule(path: StorePath | str, overpass: str = "day") -> Granule:
    """Identify a MOD11A1/MYD11A1 file from its name (HDF tile or GeoTIFF export).

    Raises
    ------
    InputError
        Unknown product or version, or a GeoTIFF whose QC companion is missing.
    """
    path = input_path(path, "MODIS file")
    name = path.name
    match = _HDF_NAME.match(name) or _APPEEARS_NAME.match(name) or _COG_NAME.match(name)
    if match is None:
        raise InputError(f"{path}: unknown MODIS file name; expected a MOD11A1/MYD11A1 HDF "
                         "tile (MOD11A1.A2021227.h11v05.061.<production>.hdf) or a GeoTIFF "
                         "export of its LST layer (AppEEARS or Planetary Computer naming)")
    product = match["product"].upper()
    if product not in PRODUCTS:
        raise InputError(f"{path}: product {product} is not supported; use MOD11A1 (Terra) or "
                         "MYD11A1 (Aqua) daily 1 km LST")
    if match["version"] not in VERSIONS:
        raise InputError(f"{path}: collection {match['version']} is not supported "
                         f"(supported: {', '.join(VERSIONS)})")
    date = dt.date(int(match["year"]), 1, 1) + dt.timedelta(days=int(match["doy"]) - 1)
    parts = match.groupdict()
    tile, production = parts.get("tile"), parts.get("production")
    if name.lower().endswith(".hdf"):
        if not is_input_file(path):
            raise InputError(f"{path}: file not found")
        return Granule(str(path), product, date, match["version"], None, tile, production)
    names = layer_names(overpass)
    layer = match["layer"]
    if layer != names["lst"]:
        raise InputError(f"{path}: is the {layer} layer; list the {names['lst']} files (their "
                         f"{names['qc']} companions are found beside them)")
    layers = {}
    for key, layer_name in names.items():
        companion = path.with_name(name.replace(layer, layer_name))
        if is_input_file(companion):
            layers[key] = str(companion)
        elif key != "view_time":
            raise InputError(f"{companion}: {layer_name} file missing beside {name}; the QC "
                             "layer is needed to reject poor-quality pixels")
    return Granule(str(path), product, date, match["version"], layers, tile, production)


#: ``GridName`` of the MOD11A1/MYD11A1 daily 1 km grid in ``StructMetadata.0``.
DAILY_GRID_NAME = "MODIS_Grid_Daily_1km_LST"


def _odl_value(text: str, name: str) -> str | None:
    """``VALUE`` of ``OBJECT = name`` in ECS ODL metadata (``CoreMetadata.0``)."""
    m = re.search(rf"OBJECT\s*=\s*{name}\b.*?VALUE\s*=\s*\"?([^\"\n]*)\"?", text, re.S)
    return m.group(1).strip() if m else None


def check_granule(granule: Granule, overpass: str = "day") -> GeoBox:
    """Check a granule from its header: the product inside, its day, its layers, completeness.

    The file name is not trusted alone: an HDF tile must be on the daily 1 km LST grid, and
    its ``CoreMetadata.0`` (when present) must name the same product and day; every layer the
    ingest reads must be present and readable to its last row (a truncated download fails).
    GeoTIFF layers must open, be complete and lie on one grid.

    Returns
    -------
    GeoBox
        The granule's grid (its footprint), before any reading of pixels.

    Raises
    ------
    InputError
        Naming the file and what is wrong with it.
    """
    if granule.layers is not None:
        from lst_pipeline.io.raster import check_tiff, grid_offset, same_grid

        box = check_tiff(granule.layers["lst"])
        for key in ("qc", "view_time"):
            if key in granule.layers:
                other = check_tiff(granule.layers[key])
                if not same_grid(other, box):
                    raise InputError(f"{granule.layers[key]}: not on the grid of {granule.name} "
                                     f"({grid_offset(other, box)}); the layers come from "
                                     "different exports")
        return box
    with _open_hdf(granule) as sd:
        attrs = sd.attributes()
        struct = attrs.get("StructMetadata.0")
        if struct is None:
            raise InputError(f"{granule.path}: no StructMetadata.0; not an HDF4-EOS grid file")
        grid_name = re.search(r'GridName="([^"]*)"', struct)
        found = grid_name.group(1) if grid_name else "(none)"
        if found != DAILY_GRID_NAME:
            raise InputError(f"{granule.path}: holds grid {found}, not the daily 1 km LST grid "
                             f"{DAILY_GRID_NAME} of {granule.product}; the file is another "
                             "product (8-day MOD11A2?) under a MOD11A1-like name")
        core = str(attrs.get("CoreMetadata.0", ""))
        short = _odl_value(core, "SHORTNAME")
        if short is not None and short.upper() != granule.product:
            raise InputError(f"{granule.path}: its metadata says product {short}, its name "
                             f"says {granule.product}; use the file under its real name")
        begin = _odl_value(core, "RANGEBEGINNINGDATE")
        if begin is not None and begin[:10] != granule.date.isoformat():
            raise InputError(f"{granule.path}: its metadata says day {begin[:10]}, its name says "
                             f"{granule.date}; the file was renamed or is damaged")
        box = hdf_grid(granule.path, struct)
        for layer in layer_names(overpass).values():  # a truncated or damaged tile fails
            _read_layer(sd, granule, layer, None, slice(None))
    return box


@contextlib.contextmanager
def _open_hdf(granule: Granule) -> Iterator[Any]:
    """The tile's pyhdf ``SD`` (a URL is downloaded to a temporary file first), closed after."""
    try:
        from pyhdf.error import HDF4Error
        from pyhdf.SD import SD, SDC
    except ImportError as exc:
        raise MissingDependencyError(
            f"{granule.path}: reading MODIS HDF4 tiles needs pyhdf: "
            "pip install 'lst_pipeline[hdf4]' (or use GeoTIFF exports)") from exc
    from lst_pipeline.io.location import local_copy

    with local_copy(granule.path, ".hdf") as local:
        try:
            sd = SD(local, SDC.READ)
        except HDF4Error as exc:
            raise InputError(f"{granule.path}: cannot open as HDF4 (corrupt or truncated "
                             f"download?): {exc}") from exc
        try:
            yield sd
        finally:
            sd.end()


def _read_layer(sd: Any, granule: Granule, layer: str, rows: slice | None,
                cols: slice) -> np.ndarray:
    """``rows`` x ``cols`` of one layer (``rows`` None: the last row, to check the tile).

    Raises
    ------
    InputError
        A missing layer, or data that cannot be read (truncated or damaged file).
    """
    from pyhdf.error import HDF4Error

    try:
        sds = sd.select(layer)
    except HDF4Error as exc:
        raise InputError(f"{granule.path}: has no {layer} dataset") from exc
    try:
        if rows is None:
            last = sds.info()[2][0]
            rows = slice(last - 1, last)
        return np.asarray(sds[rows, cols])
    except (HDF4Error, ValueError) as exc:  # pyhdf: ValueError "SDreaddata failure"
        raise InputError(f"{granule.path}: cannot read {layer} (corrupt or truncated "
                         f"file?): {exc}") from exc
    finally:
        sds.endaccess()


def hdf_grid(path: Path | str, struct_metadata: str) -> GeoBox:
    """The sinusoidal grid of an HDF4-EOS tile, from its ``StructMetadata.0`` text."""
    from affine import Affine
    from odc.geo.geobox import GeoBox

    def numbers(key: str) -> list[float]:
        m = re.search(rf"{key}=\(([^)]*)\)", struct_metadata)
        if m is None:
            raise InputError(f"{path}: StructMetadata.0 lacks {key}; not a MODIS grid file?")
        return [float(v) for v in m.group(1).split(",")]

    def integer(key: str) -> int:
        m = re.search(rf"\b{key}=(\d+)", struct_metadata)
        if m is None:
            raise InputError(f"{path}: StructMetadata.0 lacks {key}")
        return int(m.group(1))

    if "GCTP_SNSOID" not in struct_metadata:
        raise InputError(f"{path}: grid projection is not sinusoidal (GCTP_SNSOID)")
    (x0, y0), (x1, y1) = numbers("UpperLeftPointMtrs"), numbers("LowerRightMtrs")
    nx, ny = integer("XDim"), integer("YDim")
    transform = Affine((x1 - x0) / nx, 0, x0, 0, (y1 - y0) / ny, y0)
    return GeoBox((ny, nx), transform, SINUSOIDAL)


def decode_lst_dn(dn: np.ndarray) -> np.ndarray:
    """LST DN -> Kelvin (float32); fill and DN below the valid range as NaN."""
    dn = np.asarray(dn)
    kelvin = dn.astype(np.float32) * np.float32(LST_SCALE_K)
    return np.where(dn >= LST_VALID_MIN_DN, kelvin, np.float32(np.nan))


def read_layers(granule: Granule, overpass: str = "day", target: GeoBox | None = None
                ) -> tuple[dict[str, np.ndarray], GeoBox] | None:
    """The raw ``lst`` (DN), ``qc`` and ``view_time`` layers of a granule and their grid.

    Only the part overlapping ``target`` is read (``None``: the whole granule; returns
    ``None`` when nothing overlaps).
    """
    if granule.layers is None:
        return _read_hdf_layers(granule, overpass, target)
    return _read_tiff_layers(granule, granule.layers, target)


def _read_hdf_layers(granule: Granule, overpass: str, target: GeoBox | None
                     ) -> tuple[dict[str, np.ndarray], GeoBox] | None:
    from lst_pipeline.io.raster import overlap_roi

    with _open_hdf(granule) as sd:
        attrs = sd.attributes()
        if "StructMetadata.0" not in attrs:
            raise InputError(f"{granule.path}: no StructMetadata.0; not an HDF4-EOS grid file")
        box = hdf_grid(granule.path, attrs["StructMetadata.0"])
        roi = overlap_roi(box, target) if target is not None else (
            slice(0, box.shape[0]), slice(0, box.shape[1]))
        if roi is None:
            return None
        ys, xs = roi
        out = {key: _read_layer(sd, granule, layer, ys, xs)
               for key, layer in layer_names(overpass).items()}
    return out, box[ys, xs]


def _read_tiff_layers(granule: Granule, layers: dict[str, str], target: GeoBox | None
                      ) -> tuple[dict[str, np.ndarray], GeoBox] | None:

    from lst_pipeline.io.raster import open_raster, read_tiff

    lst = read_tiff(layers["lst"], target=target)
    if lst is None:
        return None
    out = {"lst": lst.data}
    with open_raster(layers["lst"]) as src:
        scale = float(src.tags().get("scale_factor", 1.0 if src.dtypes[0].startswith("float")
                                     else LST_SCALE_K))
    if scale != LST_SCALE_K:  # e.g. an export already in Kelvin: back to DN
        out["lst"] = np.where(lst.data > 0, np.round(lst.data * (scale / LST_SCALE_K)), 0)
    for key in ("qc", "view_time"):
        if key in layers:
            layer = read_tiff(layers[key], target=target)
            if layer is None or layer.data.shape != lst.data.shape:
                raise InputError(f"{layers[key]}: does not cover the same pixels as "
                                 f"{granule.name}; the layers come from different exports")
            out[key] = layer.data
    # AppEEARS writes QC fill as -999: not produced.
    qc = out["qc"].astype(np.int32)
    out["qc"] = np.where((qc < 0) | (qc > 255), make_qc(MANDATORY_NOT_PRODUCED), qc
                         ).astype(np.uint8)
    return out, lst.geobox


@dataclass
class GranuleOnGrid:
    """A granule on the coarse target grid."""

    lst: np.ndarray            # K, NaN where no usable pixel or too little of the cell valid
    valid_fraction: np.ndarray  # fraction of the cell covered by usable pixels
    qc: np.ndarray             # QC bits of the nearest MODIS pixel
    view_time_h: float         # mean local solar view time over usable pixels (NaN: none)


def read_granule(granule: Granule, target: GeoBox, *, overpass: str = "day",
                 max_lst_error_class: int = 1, min_valid_fraction: float = 0.5
                 ) -> GranuleOnGrid | None:
    """Read a granule onto the coarse target grid (NaN-aware area average of usable pixels).

    Parameters
    ----------
    granule
        From :func:`find_granule`.
    target
        The coarse target grid.
    overpass
        ``day`` or ``night`` layers.
    max_lst_error_class
        Highest accepted QC LST-error class (1: <= 2 K).
    min_valid_fraction
        Coarse cells with less usable MODIS area than this are left as NaN.

    Returns
    -------
    GranuleOnGrid, or ``None`` when the granule does not overlap ``target``.
    """
    from lst_pipeline.io.raster import GeoRaster, to_grid_mean, to_grid_nearest

    read = read_layers(granule, overpass, target)
    if read is None:
        return None
    layers, box = read
    dn = layers["lst"]
    usable = usable_mask(layers["qc"], max_lst_error_class=max_lst_error_class)
    kelvin = np.where(usable, decode_lst_dn(dn), np.nan)
    lst, frac = to_grid_mean(GeoRaster(kelvin.astype(np.float32), box), target)
    lst = np.where(frac >= min_valid_fraction, lst, np.nan).astype(np.float32)
    qc = to_grid_nearest(GeoRaster(layers["qc"].astype(np.uint8), box), target,
                         nodata=int(make_qc(MANDATORY_NOT_PRODUCED)))
    view_time = np.nan
    if "view_time" in layers:
        vt = layers["view_time"]
        ok = usable & (vt != VIEW_TIME_FILL)
        if ok.any():
            view_time = float(vt[ok].mean()) * VIEW_TIME_SCALE_H
    return GranuleOnGrid(lst, frac, qc, view_time)
