"""`lst-pipeline rechunk`: an exact, time-series-chunked copy by dask's p2p rechunking."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
import zarr

from lst_pipeline.cli import main
from lst_pipeline.errors import StoreError
from lst_pipeline.io.cube import open_cube
from lst_pipeline.io.read_cost import measure_read
from lst_pipeline.io.rechunk import (
    RECHUNKED_FROM_ATTR,
    build_rechunk,
    execute_rechunk,
    plan_rechunk,
    time_series_chunks,
)


@pytest.fixture(scope="module")
def rechunked(small_cube, client, tmp_path_factory):
    out = tmp_path_factory.mktemp("rechunk") / "ts.zarr"
    plan = plan_rechunk(small_cube.output.cube, out, chunks=(-1, 16, 16))
    execute_rechunk(plan, client, progress=False)
    return out


def test_plan_uses_p2p_rechunk_and_reads_no_pixels(small_cube, tmp_path):
    plan = plan_rechunk(small_cube.output.cube, tmp_path / "ts.zarr", chunks=(-1, 16, 16))
    assert plan.chunks == (40, 16, 16) and plan.source_chunks == (16, 32, 32)
    assert plan.n_chunks == 16

    def names(plan):
        return {str(k[0] if isinstance(k, tuple) else k).rsplit("-", 1)[0]
                for k in dict(build_rechunk(plan).__dask_graph__())}

    p2p = names(plan)  # distributed's peer-to-peer shuffle: transfer tasks and a barrier
    assert any(n.startswith("rechunk-transfer") for n in p2p)
    assert any(n.startswith("shuffle-barrier") for n in p2p)
    tasks = names(plan_rechunk(small_cube.output.cube, tmp_path / "t.zarr",
                               chunks=(-1, 16, 16), method="tasks"))
    assert not any(n.startswith("shuffle-barrier") for n in tasks)


def test_copy_is_exact_and_keeps_encoding(small_cube, rechunked):
    src = zarr.open_group(str(small_cube.output.cube), mode="r")
    dst = zarr.open_group(str(rechunked), mode="r")
    for name in ("lst", "qa", "reference_date"):
        assert dst[name].chunks == (40, 16, 16)
        assert dst[name].dtype == src[name].dtype and dst[name].fill_value == src[name].fill_value
        np.testing.assert_array_equal(dst[name][:], src[name][:], err_msg=name)
        assert dict(dst[name].attrs) == dict(src[name].attrs)
    a = xr.open_zarr(small_cube.output.cube, consolidated=False)
    b = xr.open_zarr(rechunked, consolidated=False)
    for name in a.variables:
        xr.testing.assert_identical(a[name], b[name])
    assert b["lst"].encoding["scale_factor"] == 0.01 and b["lst"].dtype == a["lst"].dtype
    assert open_cube(rechunked).rio.crs == open_cube(small_cube.output.cube).rio.crs
    assert {k: v for k, v in b.attrs.items() if k not in (RECHUNKED_FROM_ATTR, "title")} == \
        {k: v for k, v in a.attrs.items() if k != "title"}
    assert b.attrs[RECHUNKED_FROM_ATTR]["source_chunks"] == [16, 32, 32]


def test_point_series_reads_fewer_chunks_in_the_copy(small_cube, rechunked):
    def point(c):
        return c["lst"].isel(x=40, y=12)

    production = measure_read(small_cube.output.cube, point)
    copy = measure_read(rechunked, point)
    assert production.chunks == 3 and copy.chunks == 1  # 40 days in 16-day chunks vs one


def test_refuses_to_write_over_the_source(small_cube, tmp_path, capsys):
    cube = str(small_cube.output.cube)
    assert main(["rechunk", cube, cube]) == 2
    assert "OUT is the cube" in capsys.readouterr().err
    with pytest.raises(StoreError, match="OUT is the cube"):
        plan_rechunk(cube, small_cube.output.cube / "inside.zarr")
    import shutil

    shutil.copytree(cube, tmp_path / "exists.zarr")  # a cube of ours: --overwrite may replace it
    with pytest.raises(StoreError, match="already exists; pass --overwrite"):
        plan_rechunk(cube, tmp_path / "exists.zarr")
    (tmp_path / "empty.zarr").mkdir()  # an empty directory is free to write into
    assert plan_rechunk(cube, tmp_path / "empty.zarr").target == tmp_path / "empty.zarr"


def test_refuses_an_incomplete_cube(small_cube, tmp_path):
    import shutil

    copy = tmp_path / "partial.zarr"
    shutil.copytree(small_cube.output.cube, copy)
    zarr.open_group(str(copy), mode="r+").attrs["lst_pipeline:status"] = "writing"
    with pytest.raises(StoreError, match="not complete"):
        plan_rechunk(copy, tmp_path / "ts.zarr")


def test_default_chunks_follow_the_size_budget():
    assert time_series_chunks((3653, 7008, 7008), target_mib=32) == (3653, 64, 64)
    assert time_series_chunks((40, 64, 64)) == (40, 64, 64)
    ct, cy, _ = time_series_chunks((365, 4096, 4096), target_mib=8)
    assert ct == 365 and cy % 8 == 0 and ct * cy * cy * 2 <= 8 * 2**20
