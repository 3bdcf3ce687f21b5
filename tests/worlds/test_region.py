"""The independent test world: files a user would download, a truth, and no simulator code."""

import ast
import dataclasses
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import lst_pipeline.worlds as worlds_pkg
from lst_pipeline.config import load_pipeline
from lst_pipeline.worlds import WORLD_REGIONS, generate_region
from lst_pipeline.worlds.landscape import CLASS_NAMES, power_law_field
from lst_pipeline.worlds.physics import solar_position


def test_the_world_shares_no_physics_with_the_training_simulator():
    """Only the file-format writers of simulate_files may be used, never simulate itself."""
    for path in Path(worlds_pkg.__file__).parent.glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                assert node.module != "lst_pipeline.simulate", path
                assert not node.module.startswith("lst_pipeline.model"), path
                if node.module == "lst_pipeline.simulate_files":
                    allowed = {"granule_name", "modis_tile", "tile_of", "st_dn",
                               "write_landsat_scene", "write_mod11a1_hdf"}
                    assert {a.name for a in node.names} <= allowed, (path, node.names)


def test_power_law_fields_and_the_sun():
    field = power_law_field(np.random.default_rng(0), (64, 96), 3.0)
    assert field.shape == (64, 96) and abs(field.mean()) < 1e-5 and abs(field.std() - 1) < 1e-5
    # summer noon at 45 N: the sun stands about 68 degrees high in the south
    elevation, azimuth = solar_position(172, 12.0, 45.0)
    assert np.degrees(elevation) == pytest.approx(68.4, abs=0.5)
    assert np.degrees(azimuth) == pytest.approx(180, abs=1)
    morning = solar_position(172, 10.25, 45.0)
    assert morning[0] < elevation and 90 < np.degrees(morning[1]) < 180  # south-east


@pytest.fixture(scope="module")
def small_world(tmp_path_factory):
    spec = dataclasses.replace(WORLD_REGIONS[2], size_px=128, days=24)  # snowy front range
    root = tmp_path_factory.mktemp("world")
    return spec, generate_region(spec, root)


def test_a_region_is_files_a_truth_and_a_pipeline(small_world):
    from lst_pipeline.ingest import ingest

    _, yaml_path = small_world
    root = yaml_path.parent
    scenes = sorted((root / "files" / "landsat").iterdir())
    assert len(scenes) == 3 and {s.name[:4] for s in scenes} == {"LC08", "LC09"}
    tiles = list((root / "files" / "modis").glob("MOD11A1.A2021*.hdf"))
    assert len({t.name.split(".")[1] for t in tiles}) == 24  # a tile per day, or two
    assert len({t.name.split(".")[2] for t in tiles}) == 2  # the region straddles h09/h10
    config = load_pipeline(yaml_path)
    assert config.simulation is None and config.grid.coarse_factor == 32
    summary = ingest(config, progress=False)
    assert (summary.landsat_dates, summary.modis_dates) == (3, 24)  # tiles mosaicked
    truth = xr.open_zarr(root / "truth.zarr", consolidated=False)
    stack = xr.open_zarr(config.inputs.stack, consolidated=False)
    assert truth.lst.shape == (24, 128, 128) and truth.attrs["lst_pipeline:kind"] == "truth"
    assert set(np.unique(truth.land_cover.values)) <= set(range(len(CLASS_NAMES)))
    lst = truth.lst.values
    assert 240 < np.nanmin(lst) and np.nanmax(lst) < 340
    # what Landsat saw is the truth up to noise, offsets and a few missed clouds
    for i, day in enumerate(stack.time_landsat.values):
        seen = stack.landsat_lst.values[i]
        ok = np.isfinite(seen)
        if ok.mean() > 0.1:
            assert np.median(np.abs(seen - truth.lst.sel(time=day).values)[ok]) < 1.0
    # MODIS sees the same surface on its own grid, later or earlier in the morning
    f = config.grid.coarse_factor
    coarse = lst.reshape(24, 4, f, 4, f).mean(axis=(2, 4))
    modis = stack.modis_lst.values
    both = np.isfinite(modis)
    assert both.mean() > 0.2
    assert np.median(np.abs(modis - coarse)[both]) < 3.0


def test_generation_is_deterministic(small_world, tmp_path):
    """The same spec gives the same truth and files; another seed gives another world."""
    spec, _ = small_world
    short = dataclasses.replace(spec, days=6)
    first = generate_region(short, tmp_path / "first")
    again = generate_region(short, tmp_path / "again")
    other = generate_region(dataclasses.replace(short, seed=spec.seed + 1), tmp_path / "other")
    truths = [xr.open_zarr(p.parent / "truth.zarr", consolidated=False).lst.values
              for p in (first, again, other)]
    np.testing.assert_array_equal(truths[0], truths[1])
    assert np.nanmean(np.abs(truths[0] - truths[2])) > 0.5  # K: the seed matters
    for hdf in sorted((first.parent / "files" / "modis").glob("*.hdf")):
        twin = again.parent / "files" / "modis" / hdf.name
        assert _hdf_lst(hdf).tobytes() == _hdf_lst(twin).tobytes(), hdf.name


def _hdf_lst(path):
    from pyhdf.SD import SD, SDC

    sd = SD(str(path), SDC.READ)
    try:
        return sd.select("LST_Day_1km")[:]
    finally:
        sd.end()
