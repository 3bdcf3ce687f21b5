"""Simulated regions written as real-format files: Landsat C2 L2 scenes and MOD11A1 tiles.

The simulator's stores hold the answer; these writers turn a simulated region into the
files a user downloads, so that files -> ingest -> fuse -> compare with truth exercises
every reader, mask and reprojection on data whose answer is known:

- Landsat 8/9 Collection 2 Level-2 scene directories on the region's UTM grid: uint16
  ``ST_B10`` with the real scale and offset, ``QA_PIXEL`` bits, ``ST_QA``, and an MTL.txt
  with the keys the product guide documents. Each date is split into two overlapping
  scenes (adjacent rows of one path), so the mosaicking is exercised. Under cloud and
  shadow the band holds cold cloud-top / shadow temperatures, so a mask that fails shows
  up as an error in Kelvin.
- MOD11A1 v061 tiles on the MODIS sinusoidal grid (926.6 m): HDF4-EOS written with pyhdf
  (``StructMetadata.0`` and the SDS names of the real product) or GeoTIFF layers named
  like AppEEARS exports. MODIS values are area averages of the true fine LST over each
  sinusoidal pixel, plus the simulation's offset and noise, with the simulated day's
  clouds and QC bits.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from lst_pipeline.errors import InputError, MissingDependencyError
from lst_pipeline.io import landsat, modis

if TYPE_CHECKING:
    from odc.geo.geobox import GeoBox

    from lst_pipeline.config import PipelineConfig

#: Sinusoidal tile edge (m) and the grid origin (upper-left corner of tile h00v00).
TILE_SIZE_M = 1111950.5197665554
SINUSOIDAL_X0 = -20015109.355798
SINUSOIDAL_Y0 = 10007554.677899
#: Extra true-LST pixels (edge-extended) around the region so border MODIS pixels are whole.
TRUTH_PAD_PX = 64


# --------------------------------------------------------------------------------------
# Landsat Collection 2 Level-2 scenes.


def st_dn(kelvin: np.ndarray) -> np.ndarray:
    """Kelvin -> ST_B10 DN (uint16), NaN -> fill (0)."""
    dn = np.round((np.asarray(kelvin, np.float64) - landsat.ST_OFFSET_K) / landsat.ST_SCALE_K)
    dn = np.clip(np.nan_to_num(dn, nan=0.0), 0, 65535)
    return dn.astype(np.uint16)


def mtl_text(product_id: str, acquired: dt.datetime, box: GeoBox, spacecraft: str) -> str:
    """A Collection 2 Level-2 MTL.txt (ODL) with the groups and keys the reader uses."""
    epsg = box.crs.epsg
    zone = epsg - 32600 if epsg and 32601 <= epsg <= 32660 else epsg - 32700
    a = box.affine
    half = a.a / 2
    ul = (a.c + half, a.f - half)
    lr = (a.c + a.a * (box.shape[1] - 0.5), a.f + a.e * (box.shape[0] - 0.5))
    f = {suffix: f"{product_id}_{suffix}" for suffix in
         ("ST_B10.TIF", "ST_QA.TIF", "QA_PIXEL.TIF", "MTL.txt")}
    groups = {
        "PRODUCT_CONTENTS": [
            ("LANDSAT_PRODUCT_ID", f'"{product_id}"'), ("PROCESSING_LEVEL", '"L2SP"'),
            ("COLLECTION_NUMBER", "02"), ("COLLECTION_CATEGORY", '"T1"'),
            ("FILE_NAME_BAND_ST_B10", f'"{f["ST_B10.TIF"]}"'),
            ("FILE_NAME_QUALITY_L2_SURFACE_TEMPERATURE", f'"{f["ST_QA.TIF"]}"'),
            ("FILE_NAME_QUALITY_L1_PIXEL", f'"{f["QA_PIXEL.TIF"]}"'),
            ("FILE_NAME_METADATA_ODL", f'"{f["MTL.txt"]}"')],
        "IMAGE_ATTRIBUTES": [
            ("SPACECRAFT_ID", f'"{spacecraft}"'), ("SENSOR_ID", '"OLI_TIRS"'),
            ("DATE_ACQUIRED", acquired.date().isoformat()),
            ("SCENE_CENTER_TIME", f'"{acquired.strftime("%H:%M:%S.%f")}0Z"')],
        "PROJECTION_ATTRIBUTES": [
            ("MAP_PROJECTION", '"UTM"'), ("DATUM", '"WGS84"'), ("ELLIPSOID", '"WGS84"'),
            ("UTM_ZONE", str(zone)), ("GRID_CELL_SIZE_THERMAL", f"{a.a:.2f}"),
            ("THERMAL_LINES", str(box.shape[0])), ("THERMAL_SAMPLES", str(box.shape[1])),
            ("CORNER_UL_PROJECTION_X_PRODUCT", f"{ul[0]:.1f}"),
            ("CORNER_UL_PROJECTION_Y_PRODUCT", f"{ul[1]:.1f}"),
            ("CORNER_LR_PROJECTION_X_PRODUCT", f"{lr[0]:.1f}"),
            ("CORNER_LR_PROJECTION_Y_PRODUCT", f"{lr[1]:.1f}")],
        "LEVEL2_SURFACE_TEMPERATURE_PARAMETERS": [
            ("TEMPERATURE_MULT_BAND_ST_B10", f"{landsat.ST_SCALE_K}"),
            ("TEMPERATURE_ADD_BAND_ST_B10", f"{landsat.ST_OFFSET_K}")],
    }
    lines = ["GROUP = LANDSAT_METADATA_FILE"]
    for name, items in groups.items():
        lines.append(f"  GROUP = {name}")
        lines += [f"    {k} = {v}" for k, v in items]
        lines.append(f"  END_GROUP = {name}")
    lines += ["END_GROUP = LANDSAT_METADATA_FILE", "END"]
    return "\n".join(lines) + "\n"


def _write_tiff(path: Path, data: np.ndarray, box: GeoBox, nodata: float | None,
                tags: dict[str, str] | None = None) -> None:
    import rasterio

    profile = {"driver": "GTiff", "height": data.shape[0], "width": data.shape[1],
               "count": 1, "dtype": data.dtype.name, "crs": box.crs.to_wkt(),
               "transform": box.affine, "compress": "deflate", "tiled": True,
               "blockxsize": 256, "blockysize": 256}
    if nodata is not None:
        profile["nodata"] = nodata
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data, 1)
        if tags:
            dst.update_tags(**tags)


def write_landsat_scene(folder: Path, product_id: str, acquired: dt.datetime, box: GeoBox,
                        st_b10_dn: np.ndarray, qa_pixel: np.ndarray,
                        st_qa_dn: np.ndarray | None = None, *,
                        spacecraft: str | None = None) -> Path:
    """Write one Level-2 scene directory (ST_B10, QA_PIXEL, ST_QA, MTL.txt); return it.

    ``spacecraft`` defaults to the mission of ``product_id`` (``LC09_...``: LANDSAT_9).
    """
    if st_b10_dn.shape != tuple(box.shape):
        raise ValueError(f"band shape {st_b10_dn.shape} differs from the grid {box.shape}")
    spacecraft = spacecraft or f"LANDSAT_{int(product_id[2:4])}"
    scene = Path(folder) / product_id
    scene.mkdir(parents=True, exist_ok=True)
    _write_tiff(scene / f"{product_id}_ST_B10.TIF", st_b10_dn.astype(np.uint16), box,
                landsat.ST_FILL_DN)
    _write_tiff(scene / f"{product_id}_QA_PIXEL.TIF", qa_pixel.astype(np.uint16), box,
                landsat.QA_VALUE_FILL)
    if st_qa_dn is not None:
        _write_tiff(scene / f"{product_id}_ST_QA.TIF", st_qa_dn.astype(np.int16), box,
                    landsat.ST_QA_FILL_DN)
    (scene / f"{product_id}_MTL.txt").write_text(mtl_text(product_id, acquired, box,
                                                          spacecraft))
    return scene


# --------------------------------------------------------------------------------------
# MOD11A1 tiles.


def modis_tile(h: int, v: int) -> GeoBox:
    """The 1200 x 1200 sinusoidal grid of MODIS 1 km tile ``h``/``v``."""
    from affine import Affine
    from odc.geo.geobox import GeoBox

    res = TILE_SIZE_M / modis.TILE_PIXELS_1KM
    x0 = SINUSOIDAL_X0 + h * TILE_SIZE_M
    y0 = SINUSOIDAL_Y0 - v * TILE_SIZE_M
    return GeoBox((modis.TILE_PIXELS_1KM,) * 2, Affine(res, 0, x0, 0, -res, y0),
                  modis.SINUSOIDAL)


def tile_of(box: GeoBox) -> tuple[int, int]:
    """The tile (h, v) holding the centre of ``box``."""
    centre = box.extent.centroid.to_crs(modis.SINUSOIDAL)
    x, y = centre.coords[0]
    return (math.floor((x - SINUSOIDAL_X0) / TILE_SIZE_M),
            math.floor((SINUSOIDAL_Y0 - y) / TILE_SIZE_M))


def struct_metadata(box: GeoBox, layers: dict[str, str]) -> str:
    """``StructMetadata.0`` of a MODIS 1 km LST grid (what HDF-EOS readers parse)."""
    a = box.affine
    x1, y1 = a.c + a.a * box.shape[1], a.f + a.e * box.shape[0]
    fields = "".join(
        f'\t\t\tOBJECT=DataField_{i}\n\t\t\t\tDataFieldName="{name}"\n'
        f'\t\t\t\tDataType={dtype}\n\t\t\t\tDimList=("YDim","XDim")\n'
        f'\t\t\tEND_OBJECT=DataField_{i}\n'
        for i, (name, dtype) in enumerate(layers.items(), start=1))
    return ("GROUP=SwathStructure\nEND_GROUP=SwathStructure\nGROUP=GridStructure\n"
            '\tGROUP=GRID_1\n\t\tGridName="MODIS_Grid_Daily_1km_LST"\n'
            f"\t\tXDim={box.shape[1]}\n\t\tYDim={box.shape[0]}\n"
            f"\t\tUpperLeftPointMtrs=({a.c:.6f},{a.f:.6f})\n"
            f"\t\tLowerRightMtrs=({x1:.6f},{y1:.6f})\n"
            "\t\tProjection=GCTP_SNSOID\n"
            "\t\tProjParams=(6371007.181000,0,0,0,0,0,0,0,0,0,0,0,0)\n"
            "\t\tSphereCode=-1\n\t\tGridOrigin=HDFE_GD_UL\n"
            "\t\tGROUP=Dimension\n\t\tEND_GROUP=Dimension\n"
            f"\t\tGROUP=DataField\n{fields}\t\tEND_GROUP=DataField\n"
            "\tEND_GROUP=GRID_1\nEND_GROUP=GridStructure\nEND\n")


def core_metadata(product: str, date: dt.date) -> str:
    """The part of ``CoreMetadata.0`` (ECS ODL) that names the product and its day."""
    def obj(name: str, value: str) -> str:
        return (f"    OBJECT                 = {name}\n      NUM_VAL              = 1\n"
                f"      VALUE                = {value}\n    END_OBJECT             = {name}\n")

    return ("GROUP                  = INVENTORYMETADATA\n"
            "  GROUP                  = COLLECTIONDESCRIPTIONCLASS\n"
            + obj("VERSIONID", "61") + obj("SHORTNAME", f'"{product}"')
            + "  END_GROUP              = COLLECTIONDESCRIPTIONCLASS\n"
            "  GROUP                  = RANGEDATETIME\n"
            + obj("RANGEBEGINNINGDATE", f'"{date.isoformat()}"')
            + "  END_GROUP              = RANGEDATETIME\n"
            "END_GROUP              = INVENTORYMETADATA\nEND\n")


def granule_name(product: str, date: dt.date, h: int, v: int) -> str:
    """``MOD11A1.A2021001.h30v12.061.<production>.hdf`` (production time derived from date)."""
    produced = date + dt.timedelta(days=1)
    return (f"{product}.A{date.year}{date.timetuple().tm_yday:03d}.h{h:02d}v{v:02d}.061."
            f"{produced.year}{produced.timetuple().tm_yday:03d}101500.hdf")


def write_mod11a1_hdf(path: Path, box: GeoBox, lst_dn: np.ndarray, qc: np.ndarray,
                      view_time_dn: np.ndarray) -> Path:
    """Write a MOD11A1-like HDF4-EOS tile (day layers) with pyhdf."""
    try:
        from pyhdf.SD import SD, SDC
    except ImportError as exc:
        raise MissingDependencyError("writing HDF4 tiles needs pyhdf: "
                                     "pip install 'lst_pipeline[hdf4]'") from exc

    layers = {"LST_Day_1km": ("DFNT_UINT16", SDC.UINT16, lst_dn, 0, 0.02, "K"),
              "QC_Day": ("DFNT_UINT8", SDC.UINT8, qc, None, None, None),
              "Day_view_time": ("DFNT_UINT8", SDC.UINT8, view_time_dn, 255, 0.1, "hrs")}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    named = re.match(r"(M[OY]D\w+?)\.A(\d{4})(\d{3})\.", path.name)
    sd = SD(str(path), SDC.WRITE | SDC.CREATE | SDC.TRUNC)
    try:
        sd.attr("StructMetadata.0").set(
            SDC.CHAR8, struct_metadata(box, {k: v[0] for k, v in layers.items()}))
        if named:  # named like a granule: its inventory metadata says the same
            day = dt.date(int(named[2]), 1, 1) + dt.timedelta(days=int(named[3]) - 1)
            sd.attr("CoreMetadata.0").set(SDC.CHAR8, core_metadata(named[1], day))
        for name, (_, kind, data, fill, scale, units) in layers.items():
            sds = sd.create(name, kind, data.shape)
            sds.setcompress(SDC.COMP_DEFLATE, value=1)
            if fill is not None:
                sds.attr("_FillValue").set(kind, fill)
            if scale is not None:
                sds.attr("scale_factor").set(SDC.FLOAT64, scale)
                sds.attr("units").set(SDC.CHAR8, units)
            sds[:] = data
            sds.endaccess()
    finally:
        sd.end()
    return path


def write_mod11a1_geotiff(folder: Path, product: str, date: dt.date, box: GeoBox,
                          lst_dn: np.ndarray, qc: np.ndarray, view_time_dn: np.ndarray
                          ) -> Path:
    """Write the day layers as GeoTIFFs named like AppEEARS exports; return the LST file."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    stem = f"{product}.061_{{}}_doy{date.year}{date.timetuple().tm_yday:03d}_aid0001.tif"
    _write_tiff(folder / stem.format("QC_Day"), qc.astype(np.uint8), box, None,
                {"scale_factor": "1", "units": "Bit Field"})
    _write_tiff(folder / stem.format("Day_view_time"), view_time_dn.astype(np.uint8), box,
                255, {"scale_factor": "0.1", "units": "hours"})
    lst_path = folder / stem.format("LST_Day_1km")
    _write_tiff(lst_path, lst_dn.astype(np.uint16), box, 0,
                {"scale_factor": "0.02", "add_offset": "0", "units": "Kelvin"})
    return lst_path


# --------------------------------------------------------------------------------------
# A simulated region as files.


def _padded_truth(truth: np.ndarray, fine: GeoBox) -> tuple[np.ndarray, GeoBox]:
    p = TRUTH_PAD_PX
    padded = np.pad(truth, p, mode="edge")
    return padded, fine.pad(p)


#: The two overlapping scenes (rows of one WRS-2 path) each date is cut into: (start, end)
#: as fractions of the grid's rows.
_SCENE_ROWS = {"084": (0.0, 0.6), "085": (0.4, 1.0)}
#: Fill pixels around each scene.
_SCENE_MARGIN = 8


def _landsat_scenes(out: Path, fine: Any, day: np.datetime64, true: np.ndarray, qa: np.ndarray,
                    lst: np.ndarray) -> list[Path]:
    """One date's two scene directories; clouds and shadows are colder than the truth."""
    usable = landsat.usable_mask(qa)
    cloud = (qa & np.uint16(1 << landsat.QA_CLOUD)) > 0
    shadow = (qa & np.uint16(1 << landsat.QA_CLOUD_SHADOW)) > 0
    kelvin = np.where(usable, lst, true - 3.0)       # dilated cloud edge / cirrus
    kelvin = np.where(shadow, true - 6.0, kelvin)
    kelvin = np.where(cloud, true - 25.0, kelvin)    # cold cloud tops
    date = dt.date.fromisoformat(str(day))
    ny, m = fine.shape[0], _SCENE_MARGIN
    written = []
    for k, (path_row, (f0, f1)) in enumerate(_SCENE_ROWS.items()):
        r0, r1 = int(f0 * ny), int(f1 * ny)
        box = fine[r0:r1, :].pad(m)
        dn = np.zeros(box.shape, np.uint16)
        qa_out = np.full(box.shape, landsat.QA_VALUE_FILL, np.uint16)
        dn[m:-m, m:-m] = st_dn(kelvin[r0:r1])
        qa_out[m:-m, m:-m] = qa[r0:r1]
        st_qa = np.where(qa_out == landsat.QA_VALUE_FILL, landsat.ST_QA_FILL_DN,
                         np.where(cloud_ring(qa_out), 450, 120)).astype(np.int16)
        acquired = dt.datetime.combine(date, dt.time(0, 5, 11 + 24 * k), dt.UTC)
        product_id = (f"LC08_L2SP_093{path_row}_{date:%Y%m%d}_"
                      f"{date + dt.timedelta(days=9):%Y%m%d}_02_T1")
        written.append(write_landsat_scene(out, product_id, acquired, box, dn, qa_out, st_qa))
    return written


def _modis_layers(tile: Any, roi: tuple[slice, slice], grid: Any, true: np.ndarray,
                  qc_coarse: np.ndarray, bias_k: float, noise_k: np.ndarray
                  ) -> dict[str, np.ndarray]:
    """A day's whole-tile LST, QC and view-time layers; outside ``roi`` not produced."""
    from lst_pipeline.io.raster import GeoRaster, to_grid_mean, to_grid_nearest

    not_produced = modis.make_qc(modis.MANDATORY_NOT_PRODUCED)
    ys, xs = roi
    crop = tile[ys, xs]
    padded, padded_box = _padded_truth(true, grid.fine)
    mean, frac = to_grid_mean(GeoRaster(padded, padded_box), crop)
    qc = to_grid_nearest(GeoRaster(qc_coarse, grid.coarse), crop, nodata=int(not_produced))
    kelvin = mean + bias_k + noise_k
    ok = (frac > 0.999) & modis.usable_mask(qc, max_lst_error_class=3)
    lst_dn = np.where(ok, np.round(kelvin / modis.LST_SCALE_K), 0).astype(np.uint16)
    qc = np.where(ok | (qc_field_mandatory(qc) >= modis.MANDATORY_CLOUD), qc,
                  not_produced).astype(np.uint8)
    view = np.where(ok, 105, 255).astype(np.uint8)
    full = {name: np.full(tile.shape, fill, dtype) for name, fill, dtype in
            (("lst", 0, np.uint16), ("qc", not_produced, np.uint8), ("view", 255, np.uint8))}
    full["lst"][ys, xs], full["qc"][ys, xs], full["view"][ys, xs] = lst_dn, qc, view
    return full


def write_scene_files(config: PipelineConfig, out_dir: Path | str, *,
                      modis_format: str = "hdf", seed: int = 0,
                      progress: bool = True) -> dict[str, list[Path]]:
    """Write the simulated region of ``config`` as Landsat scenes and MOD11A1 tiles.

    The region must have been simulated (``lst-pipeline simulate``): the input stack gives
    the Landsat dates, noise and QA bits and the MODIS clouds and QC, the truth store the
    temperatures under clouds and at MODIS's own pixels.

    Parameters
    ----------
    config
        A pipeline with a ``simulation`` section.
    out_dir
        Where ``landsat/<scene>/`` and ``modis/`` go.
    modis_format
        ``hdf`` (HDF4-EOS tiles) or ``geotiff`` (AppEEARS-like layers).
    seed
        Seed of the MODIS noise drawn at sinusoidal pixels.
    progress
        Show a progress bar.

    Returns
    -------
    dict
        ``{"landsat": [scene directories], "modis": [tile files]}``.
    """
    from tqdm.auto import tqdm

    from lst_pipeline.grid import TargetGrid
    from lst_pipeline.io.raster import overlap_roi
    from lst_pipeline.io.stack import LANDSAT_LST, LANDSAT_QA, MODIS_QC, StackReader
    from lst_pipeline.io.zarr_store import open_group
    from lst_pipeline.simulate import modis_bias

    if config.simulation is None:
        raise InputError("write_scene_files needs a simulated region (a `simulation` section)")
    if modis_format not in ("hdf", "geotiff"):
        raise InputError(f"modis_format: {modis_format!r} is not one of 'hdf', 'geotiff'")
    out = Path(out_dir)
    grid = TargetGrid.from_config(config.grid)
    reader = StackReader(config.inputs.stack)
    stack = open_group(config.inputs.stack)
    truth = open_group(config.simulation.truth)
    truth_days = np.asarray(reader.modis_dates)
    written: dict[str, list[Path]] = {"landsat": [], "modis": []}

    fine = grid.fine
    n_files = len(reader.landsat_dates) + len(truth_days)
    bar = tqdm(total=n_files, unit="file", desc="write files", disable=not progress)
    for i, day in enumerate(reader.landsat_dates):
        t = int(np.searchsorted(truth_days, day))
        written["landsat"] += _landsat_scenes(out / "landsat", fine, day, truth["lst"][t],
                                              stack[LANDSAT_QA][i], stack[LANDSAT_LST][i])
        bar.update(1)

    # MODIS: true LST averaged over each sinusoidal pixel, + offset + noise, clouds and QC
    # of the simulated day (nearest coarse cell).
    h, v = tile_of(fine)
    tile = modis_tile(h, v)
    roi = overlap_roi(tile, fine, padding=2)
    assert roi is not None  # the tile holds the grid's centre, so they overlap
    bias = modis_bias(truth_days, config.simulation.modis_offset_k)
    rng = np.random.default_rng(seed)
    for t, day in enumerate(truth_days):
        noise = config.simulation.modis_noise_k * rng.standard_normal(tile[roi].shape)
        layers = _modis_layers(tile, roi, grid, truth["lst"][t], stack[MODIS_QC][t], bias[t],
                               noise)
        date = dt.date.fromisoformat(str(day))
        if modis_format == "hdf":
            path = write_mod11a1_hdf(out / "modis" / granule_name("MOD11A1", date, h, v),
                                     tile, layers["lst"], layers["qc"], layers["view"])
        else:
            path = write_mod11a1_geotiff(out / "modis", "MOD11A1", date, tile, layers["lst"],
                                         layers["qc"], layers["view"])
        written["modis"].append(path)
        bar.update(1)
    bar.close()
    return written


def cloud_ring(qa: np.ndarray) -> np.ndarray:
    """Pixels flagged dilated cloud: the doubtful ring, given a large ST_QA uncertainty."""
    return (qa & np.uint16(1 << landsat.QA_DILATED_CLOUD)) > 0


def qc_field_mandatory(qc: np.ndarray) -> np.ndarray:
    """The two mandatory-QA bits of MODIS QC values."""
    return modis.qc_field(qc, modis.QC_MANDATORY_SHIFT)
