"""Landsat Collection 2 Level-2 readers, on the real xlandsat crops and on written scenes."""

import datetime as dt
import shutil
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from odc.geo.geobox import GeoBox

from lst_pipeline.errors import InputError
from lst_pipeline.io import landsat
from lst_pipeline.simulate_files import st_dn, write_landsat_scene

DATA = Path(__file__).parents[1] / "data" / "landsat_c2l2_st"
LIVERPOOL = DATA / "LC08_L2SP_204023_20200927_20201006_02_T1"
MOMOTOMBO = DATA / "LC08_L2SP_017051_20151205_20200908_02_T1"


def _read_dn(path):
    import warnings

    import rasterio

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with rasterio.open(path) as src:
            return src.read(1)


def test_real_mtl_parsed():
    meta = landsat.find_scene(LIVERPOOL).metadata
    assert meta.product_id == "LC08_L2SP_204023_20200927_20201006_02_T1"
    assert meta.spacecraft == "LANDSAT_8"
    assert meta.acquired == dt.datetime(2020, 9, 27, 11, 10, 50, 314003, tzinfo=dt.UTC)
    assert (meta.st_scale, meta.st_offset) == (0.00341802, 149.0)
    assert meta.utm_zone == 30 and meta.shape == (267, 433)
    box = meta.georeference()
    assert box.crs.epsg == 32630
    # MTL corners are pixel centres: the grid's edge lies half a pixel outside
    assert box.affine.c == 487020.0 - 15 and box.affine.f == 5929980.0 + 15


@pytest.mark.parametrize("scene, lo, hi, fill", [(LIVERPOOL, 284.9, 295.3, 0),
                                                  (MOMOTOMBO, 234.3, 372.5, 48)])
def test_real_st_b10_decodes_with_mtl_factors(scene, lo, hi, fill):
    s = landsat.find_scene(scene)
    dn = _read_dn(s.st_b10)
    kelvin = landsat.decode_st(dn, scale=s.metadata.st_scale, offset=s.metadata.st_offset)
    assert np.isnan(kelvin).sum() == fill == (dn == 0).sum()
    assert lo < np.nanmin(kelvin) and np.nanmax(kelvin) < hi
    i = np.flatnonzero(dn.ravel() > 0)[100]
    assert kelvin.ravel()[i] == pytest.approx(dn.ravel()[i] * 0.00341802 + 149.0, abs=1e-4)


def test_real_crops_lack_georeference_and_qa_pixel():
    scene = landsat.find_scene(LIVERPOOL)
    # aligned with the scene grid (edges at 487005 + 30 k, 5929995 - 30 k)
    target = GeoBox.from_bbox((490005, 5923035, 496005, 5928015), "EPSG:32630", resolution=60,
                              tight=True)
    with pytest.raises(InputError, match=r"no georeference.*georeference_from_mtl"):
        landsat.read_scene(scene, target)
    with pytest.raises(InputError, match="QA_PIXEL band file is missing"):
        landsat.read_scene(scene, target, georeference_from_mtl=True)
    lst, qa, sigma = landsat.read_scene(scene, target, georeference_from_mtl=True,
                                        require_qa_pixel=False)
    # 60 m target pixels average 2 x 2 source pixels of the MTL-placed grid
    dn = _read_dn(scene.st_b10).astype(np.float64) * 0.00341802 + 149.0
    box = scene.metadata.georeference()
    row = round((box.affine.f - 5928015) / 30)
    col = round((490005 - box.affine.c) / 30)
    assert (row, col) == (66, 100)
    assert lst[0, 0] == pytest.approx(dn[row:row + 2, col:col + 2].mean(), abs=1e-3)
    assert (qa == landsat.QA_VALUE_CLEAR_LAND).all()
    assert scene.st_qa is None and sigma is None  # this crop came without its ST_QA band


def _copy_scene(tmp_path, scene=LIVERPOOL):
    dst = tmp_path / scene.name
    shutil.copytree(scene, dst)
    return dst


def test_collection1_level1_and_unknown_products_refused(tmp_path):
    mtl = _copy_scene(tmp_path) / f"{LIVERPOOL.name}_MTL.txt"
    text = mtl.read_text()
    mtl.write_text(text.replace("_02_T1", "_01_T1").replace("COLLECTION_NUMBER = 02",
                                                            "COLLECTION_NUMBER = 01"))
    with pytest.raises(InputError, match="Collection 1 product"):
        landsat.read_metadata(mtl)
    mtl.write_text(text.replace("LC08_L2SP_204023_20200927_20201006_02_T1\"\n    PROC",
                                "LC08_L1TP_204023_20200927_20201006_02_T1\"\n    PROC", 1))
    with pytest.raises(InputError, match="Level-1 product"):
        landsat.read_metadata(mtl)
    mtl.write_text(text.replace("LC08_L2SP_204023", "LE07_L2SP_204023"))
    with pytest.raises(InputError, match="not Landsat 8/9"):
        landsat.read_metadata(mtl)
    mtl.write_text(text.replace("LC08_L2SP_204023_20200927_20201006_02_T1\"\n    PROC",
                                "S2A_MSIL2A\"\n    PROC", 1))
    with pytest.raises(InputError, match="unknown product S2A_MSIL2A"):
        landsat.read_metadata(mtl)


def test_missing_band_missing_mtl_and_mismatch(tmp_path):
    scene = _copy_scene(tmp_path)
    band = scene / f"{LIVERPOOL.name}_ST_B10.TIF"
    other = _copy_scene(tmp_path, MOMOTOMBO)
    # an ST_B10 beside the MTL of another scene
    foreign = scene / f"{MOMOTOMBO.name}_ST_B10.TIF"
    shutil.copy(other / f"{MOMOTOMBO.name}_ST_B10.TIF", foreign)
    with pytest.raises(InputError, match="no MTL file beside it"):
        landsat.find_scene(foreign)
    # the MTL describes 267 x 433 px, the file is another size
    shutil.copy(other / f"{MOMOTOMBO.name}_ST_B10.TIF", band)
    s = landsat.find_scene(scene)
    target = s.metadata.georeference()
    with pytest.raises(InputError, match=r"333 x 467 pixels but .*MTL.txt describes 267 x 433"):
        landsat.read_scene(s, target, georeference_from_mtl=True, require_qa_pixel=False)
    band.unlink()
    with pytest.raises(InputError, match=r"ST_B10 band file named by .* is missing"):
        landsat.find_scene(scene)
    (scene / f"{LIVERPOOL.name}_MTL.txt").unlink()
    with pytest.raises(InputError, match=r"no \*_MTL.txt"):
        landsat.find_scene(scene)


def _written_scene(tmp_path, qa, kelvin):
    box = GeoBox.from_bbox((400000, 6200000, 400000 + 30 * qa.shape[1],
                            6200000 + 30 * qa.shape[0]), "EPSG:32755", resolution=30,
                          tight=True)
    when = dt.datetime(2021, 1, 5, 0, 5, 11, tzinfo=dt.UTC)
    folder = write_landsat_scene(tmp_path, "LC09_L2SP_093084_20210105_20210114_02_T1", when,
                                 box, st_dn(kelvin), qa,
                                 np.full(qa.shape, 150, np.int16))
    return landsat.find_scene(folder), box


def test_written_scene_masks_clouds_before_averaging(tmp_path):
    qa = np.full((8, 8), landsat.QA_VALUE_CLEAR_LAND, np.uint16)
    kelvin = np.full((8, 8), 300.0)
    qa[0, 0], kelvin[0, 0] = landsat.QA_VALUE_CLOUD_HIGH, 250.0   # cold cloud top
    qa[0, 2], kelvin[0, 2] = landsat.QA_VALUE_CLOUD_SHADOW, 290.0
    qa[2:4, 2:4], kelvin[2:4, 2:4] = landsat.QA_VALUE_CLOUD_HIGH, 250.0  # a whole 60 m cell
    kelvin[4:, 4:] = 310.0
    scene, box = _written_scene(tmp_path, qa, kelvin)
    assert scene.metadata.spacecraft == "LANDSAT_9" and scene.st_qa is not None
    coarse = GeoBox.from_bbox(box.boundingbox, box.crs, resolution=60, tight=True)
    lst, _qa60, sigma = landsat.read_scene(scene, coarse)
    assert lst[0, 0] == pytest.approx(300.0, abs=0.002)  # the 250 K cloud never leaks in
    # ST_QA comes along, on the usable pixels only (1.5 K written everywhere)
    assert np.array_equal(np.isnan(sigma), np.isnan(lst))
    assert np.allclose(sigma[np.isfinite(sigma)], 1.5, atol=1e-3)
    assert lst[0, 1] == pytest.approx(300.0, abs=0.002)  # nor the shadow
    assert np.isnan(lst[1, 1])                          # all four pixels cloudy
    assert lst[3, 3] == pytest.approx(310.0, abs=0.002)
    # the uncertainty threshold (1.5 K everywhere) rejects everything below it
    lst_strict, _, _ = landsat.read_scene(scene, coarse, max_st_uncertainty_k=1.0)
    assert np.isnan(lst_strict).all()


def test_corrupt_tiff_is_a_clear_error(tmp_path):
    qa = np.full((64, 64), landsat.QA_VALUE_CLEAR_LAND, np.uint16)
    scene, box = _written_scene(tmp_path, qa, np.full((64, 64), 300.0))
    band = Path(scene.st_b10)
    band.write_bytes(band.read_bytes()[: band.stat().st_size // 3])
    with pytest.raises(InputError, match=r"ST_B10.TIF: cannot read .*corrupt or truncated"):
        landsat.read_scene(scene, box)


@given(st.integers(0, 0xFFFF))
def test_usable_mask_matches_the_bit_definitions(value):
    qa = np.array([value], np.uint16)
    bits = {b: bool(value >> b & 1) for b in range(16)}
    expected = not (bits[0] or bits[1] or bits[2] or bits[3] or bits[4])
    assert landsat.usable_mask(qa)[0] == expected
    assert landsat.usable_mask(qa, mask_snow=True)[0] == (expected and not bits[5])


@given(st.floats(150.0, 372.0))
def test_st_dn_round_trip_within_half_a_step(kelvin):
    back = landsat.decode_st(st_dn(np.array([kelvin])))[0]
    assert abs(back - kelvin) <= landsat.ST_SCALE_K / 2 + 1e-4
