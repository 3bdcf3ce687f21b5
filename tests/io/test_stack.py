import numpy as np
import pytest
import rioxarray  # noqa: F401
from test_grid import make_grid

from lst_pipeline.errors import InputError
from lst_pipeline.grid import Window
from lst_pipeline.io import landsat
from lst_pipeline.io.modis import MANDATORY_CLOUD, make_qc
from lst_pipeline.io.stack import StackReader, create_stack, open_stack
from lst_pipeline.io.stack_writer import StackWriter

LDATES = np.array(["2021-01-03", "2021-01-19"], dtype="datetime64[D]")
MDATES = np.arange(np.datetime64("2021-01-01"), np.datetime64("2021-01-31"))


def write_small_stack(path, finish=True):
    grid = make_grid(ny=64, nx=64)
    create_stack(path, grid, LDATES, MDATES, spatial_chunk=32)
    w = StackWriter(path)
    qa = np.full((64, 64), landsat.QA_VALUE_CLEAR_LAND, np.uint16)
    qa[:16] = landsat.QA_VALUE_CLOUD_HIGH
    qa[16:20] = landsat.QA_VALUE_CLOUD_SHADOW
    lst = np.full((64, 64), 300.0, np.float32)
    clear = w.write_landsat(0, qa, lst)
    qc = np.zeros((len(MDATES), 4, 4), np.uint8)
    qc[3, 0, 0] = make_qc(MANDATORY_CLOUD)
    w.write_modis(0, qc, np.arange(len(MDATES) * 16, dtype=np.float32).reshape(-1, 4, 4) + 250)
    if finish:
        w.finish()
    return grid, clear


def test_stack_write_and_windowed_read(tmp_path):
    grid, clear = write_small_stack(tmp_path / "s.zarr")
    assert clear == pytest.approx(44 / 64)
    r = StackReader(tmp_path / "s.zarr")
    assert r.grid == grid
    np.testing.assert_array_equal(r.landsat_dates, LDATES)
    lst = r.read_landsat(np.array([0]), Window(0, 32, 0, 32))
    assert np.isnan(lst[0, :20]).all() and (lst[0, 20:] == 300).all()
    days = np.array(["2021-01-04", "2021-01-05", "2022-06-01"], dtype="datetime64[D]")
    m = r.read_modis(days, Window(0, 2, 0, 2))
    assert np.isnan(m[0, 0, 0])  # cloud QC -> gap
    assert m[1, 1, 1] == 250 + 4 * 16 + 5
    assert np.isnan(m[2]).all()  # absent day -> gap
    ds = open_stack(tmp_path / "s.zarr")
    assert ds.rio.crs.to_epsg() == 32755
    assert ds["landsat_qa_pixel"].dtype == np.uint16


def test_incomplete_or_missing_stack_refused(tmp_path):
    write_small_stack(tmp_path / "s.zarr", finish=False)
    with pytest.raises(InputError, match="incomplete"):
        StackReader(tmp_path / "s.zarr")
    with pytest.raises(InputError, match="input stack not found"):
        StackReader(tmp_path / "none.zarr")


def test_qa_pixel_usable_mask_collection2_bits():
    values = np.array([landsat.QA_VALUE_CLEAR_LAND, landsat.QA_VALUE_CLEAR_WATER,
                       landsat.QA_VALUE_CLOUD_HIGH, landsat.QA_VALUE_CLOUD_SHADOW,
                       landsat.QA_VALUE_DILATED_CLOUD, landsat.QA_VALUE_FILL,
                       1 << landsat.QA_CIRRUS | 1 << landsat.QA_CLEAR,
                       1 << landsat.QA_SNOW | 1 << landsat.QA_CLEAR], dtype=np.uint16)
    assert landsat.usable_mask(values).tolist() == [True, True, False, False, False, False,
                                                    False, True]
    assert not landsat.usable_mask(values, mask_snow=True)[-1]
