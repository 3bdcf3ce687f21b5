"""Ingest: files and pre-gridded series -> input stack; append, replace, failure, e2e."""

import datetime as dt
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import zarr

from conftest import ingest_config, load_pipeline
from lst_pipeline.errors import ConfigError, InputError, InputWarning, StoreError
from lst_pipeline.ingest import execute_ingest, ingest, plan_ingest
from lst_pipeline.io import landsat, modis
from lst_pipeline.io.stack import IngestRecord, StackReader, stack_dates
from lst_pipeline.simulate_files import granule_name, modis_tile, write_mod11a1_hdf

YANCO = Path(__file__).parent / "data" / "yanco"


def files(root, kind):
    return {"landsat": str(root / "files" / "landsat" / "*"),
            "modis": str(root / "files" / "modis" / "*.hdf"),
            "modis_tif": str(root / "files" / "modis_tif" / "*LST_Day_1km*.tif")}[kind]


def open_stack(path):
    return xr.open_zarr(path, consolidated=False)


def arrays(path):
    g = zarr.open_group(str(path), mode="r")
    return {k: g[k][...] for k in g.array_keys()}


def assert_same_stack(a, b):
    va, vb = arrays(a), arrays(b)
    assert set(va) == set(vb)
    for name in va:
        np.testing.assert_array_equal(va[name], vb[name], err_msg=name)


@pytest.fixture(scope="module")
def ingested(real_format_region):
    _config, root = real_format_region
    cfg = ingest_config(root, landsat={"paths": [files(root, "landsat")]},
                        modis={"paths": [files(root, "modis")]})
    summary = ingest(cfg, progress=False)
    return cfg, summary


def test_files_ingest_reproduces_the_simulated_stack(real_format_region, ingested):
    config, _ = real_format_region
    cfg, summary = ingested
    sim, got = open_stack(config.inputs.stack), open_stack(cfg.inputs.stack)
    np.testing.assert_array_equal(sim.time_landsat, got.time_landsat)
    np.testing.assert_array_equal(sim.time_modis, got.time_modis)
    assert summary.landsat_dates == sim.sizes["time_landsat"]
    assert summary.modis_dates == sim.sizes["time_modis"]
    # Landsat: same grid and masks; values within half an ST_B10 step
    a, b = sim.landsat_lst.values, got.landsat_lst.values
    np.testing.assert_array_equal(np.isnan(a), np.isnan(b))
    assert np.nanmax(np.abs(a - b)) <= landsat.ST_SCALE_K / 2 + 1e-4
    np.testing.assert_allclose(got.landsat_clear_fraction, sim.landsat_clear_fraction,
                               atol=1e-6)
    # ST_QA comes along on the usable pixels: 1.2 K, 4.5 K next to clouds (as written)
    sigma = got.landsat_st_uncertainty.values
    np.testing.assert_array_equal(np.isnan(sigma), np.isnan(b))
    finite = sigma[np.isfinite(sigma)]
    assert finite.min() == pytest.approx(1.2, abs=0.01) and finite.max() <= 4.5 + 0.01
    assert np.mean(np.abs(finite - 1.2) < 0.01) > 0.5
    # the simulator's stack reports its own Landsat noise
    noise = sim.landsat_st_uncertainty.values
    assert np.allclose(noise[np.isfinite(a)], config.simulation.landsat_noise_k, atol=1e-3)
    # two overlapping scenes per date, mosaicked; acquisition time from the MTLs
    record = IngestRecord.load(cfg.inputs.stack)
    first = record.dates["landsat"][str(sim.time_landsat.values[0])[:10]]
    assert len(first["sources"]) == 2 and first["platform"] == "LANDSAT_8"
    assert got.landsat_hour_utc.values[0] == pytest.approx((5 * 60 + 23) / 3600, abs=1e-3)
    # MODIS: a 926 m sinusoidal product averaged onto 960 m cells: same temperatures up to
    # footprint, noise (0.7 K in each) and cloud-edge differences
    m_sim, m_got = sim.modis_lst.values, got.modis_lst.values
    both = np.isfinite(m_sim) & np.isfinite(m_got)
    assert both.sum() > 0.6 * np.isfinite(m_sim).sum()
    assert abs(np.mean(m_got[both] - m_sim[both])) < 0.6
    assert np.median(np.abs(m_got[both] - m_sim[both])) < 1.2
    assert np.all(got.modis_valid_fraction.values[np.isfinite(m_got)] >= 0.5)
    assert got.modis_view_time.values[0] == pytest.approx(10.5)


@pytest.mark.slow
def test_files_to_fused_cube_matches_truth(real_format_region, ingested):
    """files -> ingest -> DLSTFM -> truth, against the same run on the simulated stack."""
    import dataclasses

    from lst_pipeline.fusion.engine import fuse_scene, plan_run

    config, _ = real_format_region
    cfg, _ = ingested
    days = slice(8, 24)  # 16 days around the second Landsat date
    truth = zarr.open_group(str(config.simulation.truth), mode="r")["lst"][days]
    dates = dataclasses.replace(cfg.dates, start=dt.date(2021, 1, 9), end=dt.date(2021, 1, 24))
    mae = {}
    for name, stack in (("simulated", config.inputs.stack), ("files", cfg.inputs.stack)):
        run = dataclasses.replace(cfg, inputs=dataclasses.replace(cfg.inputs, stack=stack),
                                  fusion=dataclasses.replace(cfg.fusion, method="dlstfm"),
                                  dates=dates)
        lst = fuse_scene(plan_run(run)).lst_k
        ok = np.isfinite(lst)
        assert ok.mean() > 0.6
        mae[name] = float(np.mean(np.abs(lst - truth)[ok]))
    assert mae["files"] < 1.0
    assert mae["files"] - mae["simulated"] < 0.15


def test_geotiff_exports_ingest_like_hdf_tiles(real_format_region, ingested, tmp_path):
    _, root = real_format_region
    cfg_hdf, _ = ingested
    cfg = ingest_config(root, stack=str(tmp_path / "tif.zarr"),
                        modis={"paths": [files(root, "modis_tif")]})
    ingest(cfg, progress=False)
    a, b = open_stack(cfg_hdf.inputs.stack), open_stack(cfg.inputs.stack)
    np.testing.assert_array_equal(a.time_modis, b.time_modis)
    np.testing.assert_allclose(a.modis_lst.values, b.modis_lst.values, atol=1e-4)
    assert b.sizes["time_landsat"] == 0


def test_reingest_is_idempotent_and_dates_merge_in_order(real_format_region, ingested,
                                                         tmp_path):
    _, root = real_format_region
    cfg_all, _ = ingested
    hdfs = sorted((root / "files" / "modis").glob("*.hdf"))
    scenes = sorted((root / "files" / "landsat").glob("*"))
    stack = str(tmp_path / "parts.zarr")
    # later MODIS days first, then the Landsat scenes, then the earlier days (inserted)
    parts = [{"modis": {"paths": [str(p) for p in hdfs[20:]]}},
             {"landsat": {"paths": [str(p) for p in scenes]}},
             {"modis": {"paths": [str(p) for p in hdfs[:20]]}},
             {"modis": {"paths": [str(p) for p in hdfs[10:30]]}}]  # replaces 20 days
    opened = []
    for part in parts:
        ingest(ingest_config(root, stack=stack, **part), progress=False)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # consolidated metadata: no fallback warning
            opened.append(xr.open_zarr(stack))
    # the consolidated metadata follows every commit: the dates grow as ingests add them
    sizes = [(ds.sizes["time_landsat"], ds.sizes["time_modis"]) for ds in opened]
    assert sizes == [(0, len(hdfs) - 20), (len(scenes) // 2, len(hdfs) - 20),
                     (len(scenes) // 2, len(hdfs)), (len(scenes) // 2, len(hdfs))]
    np.testing.assert_array_equal(opened[-1]["modis_lst"].values,
                                  xr.open_zarr(stack, consolidated=False)["modis_lst"].values)
    record = IngestRecord.load(stack)
    assert len(record.dates["modis"]) == len(hdfs)
    # same arrays as the one-shot ingest of everything
    assert_same_stack(stack, cfg_all.inputs.stack)
    before = arrays(stack)
    ingest(ingest_config(root, stack=stack, **parts[2]), progress=False)
    for name, values in arrays(stack).items():
        np.testing.assert_array_equal(values, before[name], err_msg=name)


def five_day_stack(real_format_region, tmp_path):
    """The files region's root, its HDF tiles, and a stack of its first 5 MODIS days."""
    _, root = real_format_region
    hdfs = sorted((root / "files" / "modis").glob("*.hdf"))
    stack = tmp_path / "s.zarr"
    ingest(ingest_config(root, stack=str(stack), modis={"paths": [str(p) for p in hdfs[:5]]}),
           progress=False)
    return root, hdfs, stack, arrays(stack)


def assert_unchanged(stack, before):
    """The stack holds exactly ``before``'s arrays and no staging store."""
    after = arrays(stack)
    assert set(after) == set(before)
    for name in before:
        np.testing.assert_array_equal(after[name], before[name], err_msg=name)
    assert not (stack / "_lst_pipeline" / "staging.zarr").exists()


def test_bad_file_leaves_the_stack_as_it_was(real_format_region, tmp_path):
    root, hdfs, stack, before = five_day_stack(real_format_region, tmp_path)
    broken = tmp_path / "broken"
    broken.mkdir()
    for p in hdfs[5:10]:
        shutil.copy(p, broken / p.name)
    victim = broken / hdfs[8].name
    victim.write_bytes(victim.read_bytes()[:5000])
    cfg = ingest_config(root, stack=str(stack), modis={"paths": [str(broken / "*.hdf")]})
    with pytest.raises(InputError, match=f"{victim.name}: cannot"):
        ingest(cfg, progress=False)
    assert_unchanged(stack, before)
    StackReader(stack)  # still complete
    # a stack this ingest would have created is not left behind
    fresh = tmp_path / "fresh.zarr"
    with pytest.raises(InputError):
        ingest(ingest_config(root, stack=str(fresh), modis={"paths": [str(broken / "*.hdf")]}),
               progress=False)
    assert not fresh.exists()


def test_an_empty_directory_is_a_new_stack_and_a_foreign_one_is_refused(
        real_format_region, tmp_path):
    _, root = real_format_region
    hdfs = [str(p) for p in sorted((root / "files" / "modis").glob("*.hdf"))[:3]]
    made = tmp_path / "made-by-the-user.zarr"
    made.mkdir()  # as `mkdir` would, or as a removed stack leaves its directory
    summary = ingest(ingest_config(root, stack=str(made), modis={"paths": hdfs}),
                     progress=False)
    assert summary.modis_dates == 3 and len(stack_dates(made, "modis")) == 3
    foreign = tmp_path / "notes.zarr"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(StoreError, match=f"inputs.stack: {foreign} exists and is not a store "
                                         "written by lst_pipeline"):
        plan_ingest(ingest_config(root, stack=str(foreign), modis={"paths": hdfs}))
    assert [p.name for p in foreign.iterdir()] == ["notes.txt"]


@pytest.mark.parametrize("timescale", [0, 4])
def test_landsat_dates_within_the_reference_offset_horizon_are_read_with_their_modis(
        real_format_region, tmp_path, timescale):
    from conftest import FILES_REGION, config_dict

    _, root = real_format_region
    data = config_dict(tmp_path, **{**FILES_REGION, "dates": {"start": "2021-01-20",
                                                               "end": "2021-01-21"}},
                       fusion={"max_reference_gap_days": 3,
                               "reference_offset_days": timescale})
    data.pop("simulation")
    data["ingest"] = {"landsat": {"paths": [files(root, "landsat")]},
                      "modis": {"paths": [files(root, "modis")]}}
    plan = plan_ingest(load_pipeline(data))
    every_landsat = sorted({landsat.find_scene(p).metadata.date
                            for p in (root / "files" / "landsat").glob("*")})
    start, end, reach = dt.date(2021, 1, 20), dt.date(2021, 1, 21), 3 + 2 * timescale
    near = [d for d in every_landsat
            if start - dt.timedelta(days=reach) <= d <= end + dt.timedelta(days=reach)]
    assert [d.date for d in plan.landsat] == near
    # MODIS: every day within the gap; beyond it, only on the Landsat dates
    inner = [start + dt.timedelta(days=k) for k in range(-3, 5)]
    assert [d.date for d in plan.modis] == sorted(set(inner) | set(near))
    if timescale:
        assert any(d < start - dt.timedelta(days=3) or d > end + dt.timedelta(days=3)
                   for d in near)  # the horizon reaches a Landsat date the gap does not
        assert any("no Landsat date is on that day" in s for s in plan.skipped)


def test_skips_cloud_and_platform_rules(real_format_region, tmp_path):
    _config, root = real_format_region
    tile = modis_tile(20, 5)  # far from the region
    blank = np.zeros(tile.shape, np.uint16)
    qc = np.full(tile.shape, modis.make_qc(modis.MANDATORY_CLOUD), np.uint8)
    view = np.full(tile.shape, 255, np.uint8)
    day = dt.date(2021, 1, 20)
    far = write_mod11a1_hdf(tmp_path / granule_name("MOD11A1", day, 20, 5), tile, blank, qc,
                            view)
    aqua = write_mod11a1_hdf(tmp_path / granule_name("MYD11A1", day, 20, 5), tile, blank, qc,
                             view)
    # the region's own tile on that day, all cloud: a date with zero clear fraction
    own = sorted((root / "files" / "modis").glob("*.A2021020.*.hdf"))[0]
    h, v = (int(own.name.split(".")[2][1:3]), int(own.name.split(".")[2][4:6]))
    cloudy = write_mod11a1_hdf(tmp_path / "cloudy" / own.name, modis_tile(h, v), blank, qc,
                               view)
    cfg = ingest_config(root, stack=str(tmp_path / "s.zarr"),
                        modis={"paths": [str(far), str(aqua), str(cloudy)]})
    plan = plan_ingest(cfg)
    assert any("MYD11A1 is aqua" in s for s in plan.skipped)
    with pytest.warns(InputWarning, match="does not overlap the target grid"):
        summary = execute_ingest(plan, progress=False)
    assert summary.modis_clear == {"2021-01-20": 0.0}
    assert stack_dates(cfg.inputs.stack, "modis").tolist() == [np.datetime64("2021-01-20")]
    aqua_cfg = ingest_config(root, stack=str(tmp_path / "s.zarr"),
                             modis={"paths": [str(aqua)], "platform": "aqua"})
    with pytest.raises(InputError, match="holds MODIS terra data, not aqua"):
        plan_ingest(aqua_cfg)


def test_configuration_errors(real_format_region, tmp_path):
    _, root = real_format_region
    with pytest.raises(InputError, match=r"ingest.modis.paths: no file matches"):
        plan_ingest(ingest_config(root, modis={"paths": [str(tmp_path / "*.hdf")]}))
    with pytest.raises(ConfigError, match="ingest: name at least one source"):
        ingest_config(root)
    with pytest.raises(ConfigError, match=r"ingest.stac: give exactly one"):
        ingest_config(root, stac={})
    with pytest.raises(ConfigError, match="max_lst_error_k: 5 is not one of"):
        ingest_config(root, modis={"paths": ["x"], "max_lst_error_k": 5})
    late = sorted((root / "files" / "modis").glob("*.hdf"))[-1]
    cfg = ingest_config(root, modis={"paths": [str(late)]})
    import dataclasses

    early = dataclasses.replace(cfg, dates=dataclasses.replace(
        cfg.dates, start=dt.date(2020, 1, 1), end=dt.date(2020, 1, 31)))
    with pytest.raises(InputError, match="no input falls within"):
        plan_ingest(early)


# --------------------------------------------------------------------------------------
# The real Yanco series, pre-gridded by its authors.


def yanco_config(tmp_path, **grid):
    data = {
        "name": "yanco",
        "grid": {"crs": "EPSG:4326", "resolution": 0.001, "bounds": [146.0, -35.2, 146.4, -34.8],
                 "coarse_factor": 10, "allow_geographic": True, **grid},
        "dates": {"start": "2016-02-05", "end": "2016-02-18"},
        "inputs": {"stack": str(tmp_path / "yanco.zarr")},
        "output": {"cube": str(tmp_path / "cube.zarr")},
        "chunks": {"time": 14, "y": 400, "x": 400},
        "ingest": {"pregridded": {"landsat": [str(YANCO / "Landsat_LST_*.tif")],
                                  "modis": [str(YANCO / "MOD11A1_LST_*.tif")]}},
    }
    return load_pipeline(data)


def test_yanco_series_ingests_as_pregridded(tmp_path):
    import rasterio

    cfg = yanco_config(tmp_path)
    summary = ingest(cfg, progress=False)
    assert (summary.landsat_dates, summary.modis_dates) == (1, 2)
    ds = open_stack(cfg.inputs.stack)
    assert ds.time_landsat.values.astype("datetime64[D]").tolist() == [dt.date(2016, 2, 5)]
    with rasterio.open(YANCO / "Landsat_LST_cloudrm_20160205.tif") as src:
        fine = src.read(1).astype(np.float32)
    fine[fine < 0] = np.nan  # the one nodata pixel (-3.4e38)
    np.testing.assert_array_equal(ds.landsat_lst.values[0], fine)
    assert ds.landsat_clear_fraction.values[0] == pytest.approx(1 - 1 / 160000)
    with rasterio.open(YANCO / "MOD11A1_LST_cloudrm_20160218.tif") as src:
        modis_fine = src.read(1)
    # the MODIS file is on the fine grid: averaged over each 10 x 10 block
    expected = modis_fine.reshape(40, 10, 40, 10).mean(axis=(1, 3))
    np.testing.assert_allclose(ds.modis_lst.values[1], expected, rtol=1e-6)
    assert 304 < float(ds.modis_lst.min()) and float(ds.modis_lst.max()) < 316


def test_pregridded_grid_mismatch_is_an_error(tmp_path):
    cfg = yanco_config(tmp_path, bounds=[146.01, -35.19, 146.41, -34.79])
    with pytest.raises(InputError, match=r"not on the target grid .*must match the configured"):
        ingest(cfg, progress=False)
    assert not Path(cfg.inputs.stack).exists()


def test_tiles_of_one_day_mosaic_by_area_across_the_tile_edge(tmp_path):
    from lst_pipeline.simulate_files import SINUSOIDAL_X0, SINUSOIDAL_Y0, TILE_SIZE_M

    x_edge = SINUSOIDAL_X0 + 31 * TILE_SIZE_M          # between h30 and h31
    top = SINUSOIDAL_Y0 - 12 * TILE_SIZE_M - 20000.0   # inside v12
    day = dt.date(2021, 3, 1)
    paths = []
    for h, kelvin in ((30, 300.0), (31, 310.0)):
        tile = modis_tile(h, 12)
        lst = np.full(tile.shape, round(kelvin / modis.LST_SCALE_K), np.uint16)
        qc = np.full(tile.shape, modis.make_qc(modis.MANDATORY_GOOD), np.uint8)
        view = np.full(tile.shape, 105, np.uint8)
        paths.append(str(write_mod11a1_hdf(tmp_path / granule_name("MOD11A1", day, h, 12),
                                           tile, lst, qc, view)))
    data = {"name": "edge",
            "grid": {"crs": modis.SINUSOIDAL, "resolution": 250, "coarse_factor": 8,
                     "bounds": [x_edge - 5000, top - 4000, x_edge + 7000, top]},
            "dates": {"start": str(day), "end": str(day)},
            "inputs": {"stack": str(tmp_path / "s.zarr")},
            "output": {"cube": str(tmp_path / "c.zarr")},
            "chunks": {"time": 1, "y": 16, "x": 48},
            "ingest": {"modis": {"paths": paths}}}
    ingest(load_pipeline(data), progress=False)
    ds = open_stack(tmp_path / "s.zarr")
    row = ds.modis_lst.values[0, 0]
    # coarse cells of 2000 m: the third one straddles the tile edge, half in each tile
    np.testing.assert_allclose(row, [300, 300, 305, 310, 310, 310], atol=0.02)
    np.testing.assert_allclose(ds.modis_valid_fraction.values[0, 0], 1.0, atol=1e-3)


def test_ingest_on_a_cluster_equals_ingest_in_this_process(real_format_region, ingested, client,
                                                          tmp_path):
    """Workers read, regrid and stage the dates; the stack is the one-process one exactly."""
    from lst_pipeline.io.stack import read_content

    _, root = real_format_region
    cfg_all, _ = ingested
    cfg = ingest_config(root, stack=str(tmp_path / "cluster.zarr"),
                        landsat={"paths": [files(root, "landsat")]},
                        modis={"paths": [files(root, "modis")]})
    summary = execute_ingest(plan_ingest(cfg), progress=False, client=client)
    assert summary.modis_dates == len(stack_dates(cfg_all.inputs.stack, "modis"))
    assert_same_stack(cfg.inputs.stack, cfg_all.inputs.stack)
    assert read_content(cfg.inputs.stack) == read_content(cfg_all.inputs.stack)
    assert IngestRecord.load(cfg.inputs.stack).dates == IngestRecord.load(
        cfg_all.inputs.stack).dates
    StackReader(cfg.inputs.stack)  # complete


def test_a_bad_file_read_on_a_worker_leaves_the_stack_as_it_was(real_format_region, client,
                                                                tmp_path):
    """Its header passes planning; its image fails on the worker that reads it."""
    root, hdfs, stack, before = five_day_stack(real_format_region, tmp_path)
    scenes = sorted((root / "files" / "landsat").glob("*"))
    broken = tmp_path / "scenes"
    for scene in scenes:
        shutil.copytree(scene, broken / scene.name)
    band = next((broken / scenes[0].name).glob("*ST_B10.TIF"))
    data = bytearray(band.read_bytes())
    lo, hi = int(len(data) * 0.3), int(len(data) * 0.7)  # the image strips, not the header
    data[lo:hi] = np.random.default_rng(1).integers(0, 256, hi - lo, np.uint8).tobytes()
    band.write_bytes(bytes(data))
    cfg = ingest_config(root, stack=str(stack), landsat={"paths": [str(broken / "*")]},
                        modis={"paths": [str(p) for p in hdfs[5:40]]})
    plan = plan_ingest(cfg)  # the header is sound
    with pytest.raises(InputError, match=f"{band.name}: cannot read the raster"):
        execute_ingest(plan, progress=False, client=client)
    assert_unchanged(stack, before)
    StackReader(stack)


def test_a_tile_with_damaged_data_is_named(real_format_region, tmp_path):
    """pyhdf reports damaged compressed data as a bare ValueError: it gets the file's name."""
    _, root = real_format_region
    hdf = sorted((root / "files" / "modis").glob("*.hdf"))[3]
    data = bytearray(hdf.read_bytes())
    lo, hi = int(len(data) * 0.4), int(len(data) * 0.6)
    data[lo:hi] = np.random.default_rng(2).integers(0, 256, hi - lo, np.uint8).tobytes()
    bad = tmp_path / hdf.name
    bad.write_bytes(bytes(data))
    with pytest.raises(InputError, match=rf"{bad.name}: cannot read \w+ \(corrupt or truncated"):
        plan_ingest(ingest_config(root, stack=str(tmp_path / "s.zarr"),
                                  modis={"paths": [str(bad)]}))


def test_inputs_over_http_ingest_like_the_same_files_on_disk(real_format_region, tmp_path):
    """COG bands are read with range requests; HDF4 tiles through a removed temporary file."""
    import tempfile

    from object_store import http_server

    _, root = real_format_region
    base = root / "files"
    mtls = sorted((base / "landsat").glob("*/*_MTL.txt"))
    tifs = sorted((base / "modis_tif").glob("*LST_Day_1km*.tif"))
    hdfs = sorted((base / "modis").glob("*.hdf"))[:6]
    temp_before = set(Path(tempfile.gettempdir()).glob("lst-pipeline-*"))
    with http_server(base) as web:
        def url(p):
            return f"{web.url}/{p.relative_to(base).as_posix()}"

        for name, sources in (("cog", {"landsat": mtls, "modis": tifs}),
                              ("hdf", {"modis": hdfs})):
            remote = ingest_config(root, stack=str(tmp_path / f"{name}-web.zarr"),
                                   **{k: {"paths": [url(p) for p in v]}
                                      for k, v in sources.items()})
            disk = ingest_config(root, stack=str(tmp_path / f"{name}-disk.zarr"),
                                 **{k: {"paths": [str(p) for p in v]}
                                    for k, v in sources.items()})
            summary = ingest(remote, progress=False)
            on_disk = ingest(disk, progress=False)
            assert_same_stack(remote.inputs.stack, disk.inputs.stack)
            assert summary.bytes_read == on_disk.bytes_read > 0  # sizes from HEAD requests
            web_record = IngestRecord.load(remote.inputs.stack).dates
            assert sorted(web_record["modis"]) == sorted(
                IngestRecord.load(disk.inputs.stack).dates["modis"])
        band_reads = [r for r in web.requests if r[0] == "GET" and r[1].endswith((".TIF", ".tif"))]
    assert band_reads and all(r[2] is not None for r in band_reads), band_reads[:3]
    assert web.served(".hdf")  # downloaded for pyhdf ...
    assert set(Path(tempfile.gettempdir()).glob("lst-pipeline-*")) == temp_before  # ... and gone
