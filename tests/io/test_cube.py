import numpy as np
import pytest
import rioxarray  # noqa: F401
import xarray as xr
import zarr
from test_grid import make_grid

from lst_pipeline.errors import StoreError
from lst_pipeline.grid import Window
from lst_pipeline.io.cube import (
    LST_FILL,
    CubeWriter,
    Flag,
    create_cube,
    cube_status,
    decode_lst,
    encode_lst,
    open_cube,
)

DAYS = np.arange(np.datetime64("2021-01-01"), np.datetime64("2021-01-11"))


def test_encoding_error_within_half_step_and_nan_survives():
    rng = np.random.default_rng(0)
    lst = rng.uniform(200, 400, 100_000).astype(np.float32)
    lst[::97] = np.nan
    packed = encode_lst(lst)
    assert packed.dtype == np.int16
    assert (packed[::97] == LST_FILL).all()
    back = decode_lst(packed)
    assert np.isnan(back[::97]).all()
    ok = np.isfinite(lst)
    assert np.abs(back[ok] - lst[ok]).max() <= 0.005 + 1e-4  # float32 input rounding
    # out of range values clip instead of wrapping around
    assert decode_lst(encode_lst(np.array([1000.0, -100.0]))).tolist() == \
        pytest.approx([627.67, -27.67])


@pytest.mark.parametrize("dtype", ["int16", "float32"])
def test_cube_round_trip_through_xarray(tmp_path, dtype):
    grid = make_grid(ny=64, nx=96)
    path = tmp_path / "cube.zarr"
    create_cube(path, grid, DAYS, (4, 32, 32), dtype=dtype, attrs={"lst_pipeline:method": "x"})
    rng = np.random.default_rng(1)
    lst = rng.uniform(250, 340, (4, 32, 64)).astype(np.float32)
    lst[0, :3, :5] = np.nan
    qa = np.full(lst.shape, Flag.FUSED, np.uint8)
    qa[0, :3, :5] = Flag.NO_DATA
    ref = np.full(lst.shape, 18628, np.int32)  # 2021-01-01
    writer = CubeWriter(path)
    writer.write(4, Window(32, 64, 32, 96), lst, qa, ref)

    cube = open_cube(path)
    assert cube.rio.crs.to_epsg() == 32755
    assert xr.open_zarr(path, consolidated=False).rio.crs == cube.rio.crs
    assert cube["lst"].attrs["units"] == "K"
    assert cube["lst"].attrs["standard_name"] == "surface_temperature"
    assert cube["qa"].attrs["flag_meanings"].split()[Flag.FUSED] == "fused_one_reference"
    got = cube["lst"].isel(time=slice(4, 8), y=slice(32, 64), x=slice(32, 96)).values
    tol = 0.005 + 1e-4 if dtype == "int16" else 0.0
    np.testing.assert_array_equal(np.isnan(got), np.isnan(lst))
    assert np.nanmax(np.abs(got - lst)) <= tol
    ref_dates = cube["reference_date"].isel(time=4, y=40, x=40).values
    assert ref_dates == np.datetime64("2021-01-01")
    # never-written chunks read as missing, not as plausible numbers
    assert np.isnan(cube["lst"].isel(time=0).values).all()
    assert np.isnat(cube["reference_date"].isel(time=0, y=0, x=0).values)
    assert (cube["qa"].isel(time=0).values == Flag.NO_DATA).all()
    assert cube.attrs["lst_pipeline:method"] == "x"
    assert cube_status(path) == "writing"
    writer.set_status("complete")
    assert cube_status(path) == "complete"
    assert zarr.open_group(path).metadata.zarr_format == 3


def test_existing_cube_not_replaced_without_overwrite(tmp_path):
    grid = make_grid(ny=64, nx=64)
    create_cube(tmp_path / "c.zarr", grid, DAYS, (4, 32, 32))
    with pytest.raises(StoreError, match="already exists; pass --overwrite"):
        create_cube(tmp_path / "c.zarr", grid, DAYS, (4, 32, 32))
    from lst_pipeline.io.ownership import remove_store

    remove_store(tmp_path / "c.zarr", "cube", field="output.cube")  # provably a cube: removed
    create_cube(tmp_path / "c.zarr", grid, DAYS, (4, 32, 32))


def test_partial_writes_of_killed_workers_are_swept(tmp_path):
    from lst_pipeline.io.cube import remove_partial_writes

    grid = make_grid(ny=64, nx=64)
    path = tmp_path / "c.zarr"
    create_cube(path, grid, DAYS, (4, 32, 32))
    chunk_dir = path / "qa" / "c" / "1" / "1"
    chunk_dir.mkdir(parents=True)
    (chunk_dir / "0.998ac13361434da19511bc87b82c3ee5.partial").write_bytes(b"")
    (chunk_dir / "0").write_bytes(b"a real chunk")
    assert remove_partial_writes(path) == 1
    assert sorted(p.name for p in chunk_dir.iterdir()) == ["0"]
