"""open_cube for users: lazy, CF-decoded, CRS, provenance, and flag helpers that match qa."""

from __future__ import annotations

import numpy as np
import pytest
import zarr

import lst_pipeline
from lst_pipeline.errors import InputError
from lst_pipeline.io.cube import FLAG_HELPERS, Flag, decode_lst, flag_category, open_cube


def test_open_cube_is_lazy_decoded_and_described(small_cube):
    cube = lst_pipeline.open_cube(small_cube.output.cube)
    assert cube["lst"].chunks is not None  # dask-backed: nothing loaded yet
    assert cube.rio.crs.to_epsg() == 32755
    assert set(cube.dims) == {"time", "y", "x"}
    assert str(cube.time.values[0])[:10] == "2021-01-01" and cube.sizes["time"] == 40
    assert cube["lst"].attrs["units"] == "K"
    for key in ("lst_pipeline:method", "lst_pipeline:version", "lst_pipeline:input_stack",
                "references", "history", "source"):
        assert cube.attrs[key], key
    assert "DLSTFM" in cube.attrs["references"]
    # Decoded Kelvin equals the stored int16 decoded by hand.
    raw = zarr.open_group(str(small_cube.output.cube), mode="r")["lst"][5]
    np.testing.assert_allclose(cube["lst"].isel(time=5).values, decode_lst(raw), atol=1e-4)


def test_flag_helpers_match_qa_codes(small_cube):
    cube = open_cube(small_cube.output.cube)
    qa = cube["qa"].values
    expected = {"observed": qa == 1, "fused": np.isin(qa, (2, 3, 4)), "fused_two": qa == 3,
                "gap_filled": qa == 4, "no_data": qa == 0}
    assert set(FLAG_HELPERS) == set(expected)
    for name, mask in expected.items():
        np.testing.assert_array_equal(cube[name].values, mask, err_msg=name)
    assert cube["observed"].values.any() and cube["fused"].values.any()
    np.testing.assert_array_equal(cube["fused"].values, Flag.fused(qa))
    # Every pixel-day is exactly one of observed / fused / no data; and NaN only where no data.
    total = cube["observed"].values.astype(int) + cube["fused"].values + cube["no_data"].values
    assert (total == 1).all()
    np.testing.assert_array_equal(np.isnan(cube["lst"].values), qa == 0)


def test_flag_category_names_codes(small_cube):
    series = open_cube(small_cube.output.cube)["qa"].isel(y=3, x=4)
    labels = flag_category(series).values
    names = Flag.meanings.split()
    assert [names[c] for c in series.values] == list(labels)


def test_open_cube_missing_names_the_path(tmp_path):
    with pytest.raises(InputError, match=r"nope\.zarr: no cube here"):
        open_cube(tmp_path / "nope.zarr")
