"""MOD11A1 readers on the real HDF4 tile and AppEEARS GeoTIFFs, and on written tiles."""

import datetime as dt
import shutil
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from odc.geo.geobox import GeoBox

from lst_pipeline.errors import InputError
from lst_pipeline.io import modis
from lst_pipeline.simulate_files import (
    granule_name,
    modis_tile,
    write_mod11a1_geotiff,
    write_mod11a1_hdf,
)

DATA = Path(__file__).parents[1] / "data"
HDF = DATA / "modis_hdf" / "MOD11A1.A2021227.h11v05.061.2021228105320.hdf"
APPEEARS = DATA / "appeears_mod11a1" / "MOD11A1.006_LST_Day_1km_doy2020133_aid0001.tif"


def test_real_hdf_tile_decodes_to_kelvin_with_its_qc():
    g = modis.find_granule(HDF)
    assert (g.product, g.platform, g.date, g.version) == ("MOD11A1", "terra",
                                                          dt.date(2021, 8, 15), "061")
    layers, box = modis.read_layers(g)
    # h11v05 upper-left corner from the tile formula of the sinusoidal grid
    assert box.affine.c == pytest.approx(-20015109.354 + 11 * 1111950.5197, abs=1.0)
    assert box.affine.f == pytest.approx(10007554.677 - 5 * 1111950.5197, abs=1.0)
    assert box.shape == (1200, 1200) and abs(box.affine.a) == pytest.approx(926.625433, abs=1e-3)
    kelvin = modis.decode_lst_dn(layers["lst"])
    assert np.isnan(kelvin).mean() == pytest.approx(0.9562, abs=5e-4)
    assert 283.0 < np.nanmin(kelvin) and np.nanmax(kelvin) < 311.0
    mandatory = modis.qc_field(layers["qc"], modis.QC_MANDATORY_SHIFT)
    # every pixel with a value was produced (00 or 01); every fill pixel was not (10, 11)
    assert set(np.unique(mandatory[np.isfinite(kelvin)])) == {0, 1}
    assert set(np.unique(mandatory[np.isnan(kelvin)])) == {2, 3}
    # LST error <= 2 K (the default) keeps all but the 229 pixels of class 10 (<= 3 K)
    assert modis.usable_mask(layers["qc"]).sum() == np.isfinite(kelvin).sum() - 229
    view = layers["view_time"][np.isfinite(kelvin)] * 0.1
    assert 9.5 < view.min() and view.max() < 12.5   # Terra's late-morning overpass


def test_real_hdf_onto_a_coarse_grid_averages_valid_pixels():
    g = modis.find_granule(HDF)
    target = GeoBox.from_bbox((-85, 30, -75, 40), "EPSG:4326", resolution=0.05)
    out = modis.read_granule(g, target)
    assert out.lst.shape == target.shape
    ok = np.isfinite(out.lst)
    assert 0.005 < ok.mean() < 0.05
    assert (out.valid_fraction[ok] >= 0.5).all()
    assert 283.0 < np.nanmin(out.lst) and np.nanmax(out.lst) < 311.0
    assert 10.0 < out.view_time_h < 12.0


def test_appeears_geotiff_pair_decodes_the_same_way():
    g = modis.find_granule(APPEEARS)
    assert g.date == dt.date(2020, 5, 12) and g.version == "006"
    layers, box = modis.read_layers(g)
    assert box.crs.epsg == 4326 and box.shape == (40, 70)
    kelvin = modis.decode_lst_dn(layers["lst"])
    assert np.isnan(kelvin).sum() == 106
    assert 278.0 < np.nanmin(kelvin) and np.nanmax(kelvin) < 293.0
    mandatory = modis.qc_field(layers["qc"], modis.QC_MANDATORY_SHIFT)
    assert set(np.unique(mandatory[np.isnan(kelvin)])) == {modis.MANDATORY_CLOUD}


def test_names_products_and_missing_companions(tmp_path):
    with pytest.raises(InputError, match="unknown MODIS file name"):
        modis.find_granule(tmp_path / "LST_2021.tif")
    with pytest.raises(InputError, match="MOD11A2 is not supported"):
        modis.find_granule(tmp_path / "MOD11A2.A2021225.h11v05.061.2021234040000.hdf")
    with pytest.raises(InputError, match="collection 005 is not supported"):
        modis.find_granule(tmp_path / "MOD11A1.A2021225.h11v05.005.2021234040000.hdf")
    shutil.copy(APPEEARS, tmp_path / APPEEARS.name)
    with pytest.raises(InputError, match="QC_Day file missing"):
        modis.find_granule(tmp_path / APPEEARS.name)
    qc = tmp_path / APPEEARS.name.replace("LST_Day_1km", "QC_Day")
    shutil.copy(APPEEARS.parent / qc.name, qc)
    with pytest.raises(InputError, match="is the QC_Day layer"):
        modis.find_granule(qc)
    assert modis.find_granule(tmp_path / APPEEARS.name).layers["qc"] == str(qc)


def test_corrupt_and_truncated_hdf_are_clear_errors(tmp_path):
    bad = tmp_path / HDF.name
    bad.write_bytes(HDF.read_bytes()[:200_000])
    target = GeoBox.from_bbox((-85, 30, -75, 40), "EPSG:4326", resolution=0.05)
    with pytest.raises(InputError, match=f"{HDF.name}: cannot (open|read)"):
        modis.read_granule(modis.find_granule(bad), target)
    bad.write_bytes(b"not an hdf file" * 100)
    with pytest.raises(InputError, match="cannot open as HDF4"):
        modis.read_granule(modis.find_granule(bad), target)


@pytest.mark.parametrize("fmt", ["hdf", "geotiff"])
def test_written_tile_round_trips(tmp_path, fmt):
    tile = modis_tile(30, 12)
    lst = np.zeros(tile.shape, np.uint16)
    qc = np.full(tile.shape, modis.make_qc(modis.MANDATORY_NOT_PRODUCED), np.uint8)
    lst[100:110, 200:220] = 15000  # 300 K
    qc[100:110, 200:220] = modis.make_qc(modis.MANDATORY_GOOD, lst_error=1)
    qc[100:102, 200:220] = modis.make_qc(modis.MANDATORY_OTHER_QUALITY, lst_error=3)
    view = np.full(tile.shape, 105, np.uint8)
    day = dt.date(2021, 3, 1)
    if fmt == "hdf":
        path = write_mod11a1_hdf(tmp_path / granule_name("MOD11A1", day, 30, 12), tile, lst,
                                 qc, view)
    else:
        path = write_mod11a1_geotiff(tmp_path, "MOD11A1", day, tile, lst, qc, view)
    g = modis.find_granule(path)
    assert g.date == day
    target = tile[96:112, 196:228]
    out = modis.read_granule(g, target)
    assert np.nanmax(np.abs(out.lst - 300.0)) < 1e-3
    assert np.isfinite(out.lst).sum() == 8 * 20          # the > 3 K rows are rejected
    strict = modis.read_granule(g, target, max_lst_error_class=0)
    assert np.isnan(strict.lst).all()                    # all <= 2 K, none <= 1 K
    assert out.view_time_h == pytest.approx(10.5)
    far = GeoBox.from_bbox((0, 0, 1, 1), "EPSG:4326", resolution=0.1)
    assert modis.read_granule(g, far) is None            # no overlap


@given(st.integers(0, 3), st.integers(0, 3), st.integers(0, 3), st.integers(0, 3),
       st.integers(0, 3))
def test_qc_fields_pack_and_unpack(mandatory, quality, emissivity, error, max_class):
    qc = modis.make_qc(mandatory, lst_error=error, emissivity_error=emissivity,
                       data_quality=quality)
    assert modis.qc_field(qc, modis.QC_MANDATORY_SHIFT) == mandatory
    assert modis.qc_field(qc, modis.QC_DATA_QUALITY_SHIFT) == quality
    assert modis.qc_field(qc, modis.QC_EMISSIVITY_ERROR_SHIFT) == emissivity
    assert modis.qc_field(qc, modis.QC_LST_ERROR_SHIFT) == error
    usable = modis.usable_mask(np.array([qc]), max_lst_error_class=max_class)[0]
    assert usable == (mandatory <= 1 and error <= max_class)
