"""The engine on a real LocalCluster of worker processes, real Zarr stores on disk."""

import dataclasses
import datetime as dt
import json
import warnings

import numpy as np
import pytest
import xarray as xr

from conftest import tiny_config
from lst_pipeline.errors import GridError, InputError, StoreError
from lst_pipeline.evaluate import compare_with_truth
from lst_pipeline.fusion.engine import execute, fuse_scene, plan_run
from lst_pipeline.io.cube import Flag, cube_status, open_cube


def run_and_compare_with_scene(plan, client, tolerance_k=1e-4):
    """Run ``plan`` on the cluster; its cube must equal the single-process whole scene."""
    execute(plan, client, progress=False)
    reference = fuse_scene(plan)
    cube = open_cube(plan.config.output.cube)
    lst = cube["lst"].values
    np.testing.assert_array_equal(np.isnan(lst), np.isnan(reference.lst_k))
    assert np.nanmax(np.abs(lst - reference.lst_k)) <= tolerance_k
    return cube, reference


def with_output(config, path, **output):
    return dataclasses.replace(
        config, output=dataclasses.replace(config.output, cube=path, **output))


def with_chunks(config, **chunks):
    return dataclasses.replace(config, chunks=dataclasses.replace(config.chunks, **chunks))


def test_distributed_run_equals_single_process_whole_scene(simulated_tiny, client, tmp_path):
    config = with_output(simulated_tiny, tmp_path / "cube.zarr")
    plan = plan_run(config)
    assert len(plan.chunks) == 3 * 2 * 2
    summary = execute(plan, client, progress=False)
    assert cube_status(config.output.cube) == "complete"
    reference = fuse_scene(plan)  # this process, one block, no halo logic

    cube = xr.open_zarr(config.output.cube, consolidated=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # complete: consolidated metadata, no fallback warning
        consolidated = xr.open_zarr(config.output.cube)
    assert consolidated.identical(cube)
    lst = cube["lst"].values
    np.testing.assert_array_equal(np.isnan(lst), np.isnan(reference.lst_k))
    assert np.nanmax(np.abs(lst - reference.lst_k)) <= 1e-4
    np.testing.assert_array_equal(cube["qa"].values, reference.qa)
    assert summary.pixel_days == lst.size
    assert summary.fused == int(Flag.fused(reference.qa).sum())
    assert summary.observed + summary.fused + summary.no_data == lst.size
    assert 0.3 < summary.fused / summary.pixel_days < 0.95


def test_other_chunking_and_int16_output_give_the_same_cube(simulated_tiny, client, tmp_path):
    config = with_chunks(with_output(simulated_tiny, tmp_path / "c16.zarr", dtype="int16"),
                         time=7, y=32, x=64)
    plan = plan_run(config)
    execute(plan, client, progress=False)
    reference = fuse_scene(plan)
    cube = open_cube(config.output.cube)
    assert cube["lst"].encoding["dtype"] == np.int16
    assert cube["lst"].encoding["chunks"] == (7, 32, 64)
    lst = cube["lst"].values
    np.testing.assert_array_equal(np.isnan(lst), np.isnan(reference.lst_k))
    assert np.nanmax(np.abs(lst - reference.lst_k)) <= 0.005 + 1e-4
    days = (cube["reference_date"].values.astype("datetime64[D]").astype(np.int64))
    has_ref = cube["qa"].values != Flag.NO_DATA
    np.testing.assert_array_equal(days[has_ref], reference.reference_day[has_ref])


def test_fused_cube_is_close_to_truth(simulated_tiny, client, tmp_path):
    config = with_output(simulated_tiny, tmp_path / "cube.zarr")
    execute(plan_run(config), client, progress=False)
    scores = compare_with_truth(config.output.cube, config.simulation.truth)
    # Landsat observations carry only sensor noise (0.4 K)
    assert scores["observed"].mae_k < 0.5
    # fusion carries the MODIS noise, offset drift and sub-pixel change: a few K at most
    assert scores["fused"].n > 100_000
    assert 0.3 < scores["fused"].mae_k < 2.5
    assert abs(scores["fused"].bias_k) < 1.0
    # and it beats using the reference image alone as the prediction
    truth = xr.open_zarr(config.simulation.truth, consolidated=False)["lst"].values
    cube = open_cube(config.output.cube)
    qa = cube["qa"].values
    ref_days = cube["reference_date"].values
    landsat = xr.open_zarr(config.inputs.stack, consolidated=False)["landsat_lst"]
    persistence = np.full(truth.shape, np.nan, np.float32)
    for date in np.unique(ref_days[Flag.fused(qa)]):
        sel = (ref_days == date) & Flag.fused(qa)
        image = landsat.sel(time_landsat=date).values
        persistence[sel] = np.broadcast_to(image, truth.shape)[sel]
    fused = Flag.fused(qa)
    persistence_mae = np.nanmean(np.abs(persistence[fused] - truth[fused]))
    assert scores["fused"].mae_k < 0.8 * persistence_mae


def test_rerun_resumes_and_other_configuration_is_refused(simulated_tiny, client, tmp_path):
    config = with_output(simulated_tiny, tmp_path / "cube.zarr")
    first = execute(plan_run(config), client, progress=False)
    assert (first.chunks, first.skipped) == (12, 0)
    mtimes = {p: p.stat().st_mtime_ns for p in (tmp_path / "cube.zarr" / "lst").rglob("*")
              if p.is_file()}
    messages = []
    again = execute(plan_run(config), client, progress=False, log=messages.append)
    assert (again.chunks, again.skipped) == (12 - 12, 12)
    assert "12 of 12 chunks already done" in messages[0]
    assert mtimes == {p: p.stat().st_mtime_ns for p in mtimes}  # nothing rewritten
    other = dataclasses.replace(config, fusion=dataclasses.replace(
        config.fusion, max_reference_gap_days=20))
    with pytest.raises(StoreError, match=r"different configuration.*--overwrite"):
        execute(plan_run(other), client, progress=False)
    redone = execute(plan_run(other), client, progress=False, overwrite=True)
    assert (redone.chunks, redone.skipped) == (12, 0)
    assert cube_status(config.output.cube) == "complete"


def test_a_cube_of_another_network_names_both_checkpoints(simulated_tiny, client, tmp_path):
    """After the shipped default changed, resuming a cube of the first network says which
    network made it and how to finish it, not just 'a different configuration'."""
    from lst_pipeline.model.checkpoint import V1_CHECKPOINT

    config = with_output(simulated_tiny, tmp_path / "cube.zarr")
    config = dataclasses.replace(
        config, dates=dataclasses.replace(config.dates, end=dt.date(2021, 1, 16)),
        chunks=dataclasses.replace(config.chunks, time=16, y=128, x=128),
        fusion=dataclasses.replace(config.fusion, method="dlstfm", checkpoint=V1_CHECKPOINT))
    execute(plan_run(config), client, progress=False)
    default = dataclasses.replace(config, fusion=dataclasses.replace(config.fusion,
                                                                     checkpoint=None))
    with pytest.raises(StoreError, match=r"made with the DLSTFM checkpoint .*dlstfm_v1\.pt "
                                         r"\(sha256 1157fa34\.\.\.\), this run uses the "
                                         r"shipped default .*set fusion\.checkpoint"):
        execute(plan_run(default), client, progress=False)
    again = execute(plan_run(config), client, progress=False)  # with its network: resumes
    assert again.skipped == 1 and again.chunks == 0


def test_lock_refuses_a_second_writer_and_recognises_a_stale_one(simulated_tiny, client,
                                                                  tmp_path):
    import json
    import os
    import socket

    from lst_pipeline.io.cube import RunRecord

    config = with_output(simulated_tiny, tmp_path / "cube.zarr")
    execute(plan_run(config), client, progress=False)
    record = RunRecord(config.output.cube)
    record.lock_path.write_text(json.dumps({"pid": os.getppid(), "host": socket.gethostname(),
                                            "started": "earlier"}))
    with pytest.raises(StoreError, match=r"another run is writing this cube \(pid"):
        execute(plan_run(config), client, progress=False)
    dead = 2**22 + 12345  # above pid_max: no such process
    record.lock_path.write_text(json.dumps({"pid": dead, "host": socket.gethostname()}))
    execute(plan_run(config), client, progress=False)  # stale lock recognised
    assert not record.lock_path.exists()


def test_grid_mismatch_is_a_clear_error(simulated_tiny, tmp_path):
    grid = dataclasses.replace(simulated_tiny.grid, crs="EPSG:32756")
    with pytest.raises(GridError, match="differs from the configured grid"):
        plan_run(dataclasses.replace(simulated_tiny, grid=grid))


def test_missing_stack_and_no_reference_in_range(simulated_tiny, tmp_path):
    with pytest.raises(InputError, match="input stack not found"):
        plan_run(tiny_config(tmp_path))
    far = dataclasses.replace(simulated_tiny, dates=dataclasses.replace(
        simulated_tiny.dates, start=simulated_tiny.dates.start.replace(year=2030),
        end=simulated_tiny.dates.end.replace(year=2030)))
    with pytest.raises(InputError, match="no Landsat date with clear pixels within"):
        plan_run(far)


def test_corrupt_input_chunk_fails_run_and_cube_never_looks_complete(
        simulated_tiny, client, tmp_path):
    import shutil

    stack = tmp_path / "inputs.zarr"
    shutil.copytree(simulated_tiny.inputs.stack, stack)
    chunk_files = sorted((stack / "modis_lst" / "c").rglob("*"))
    victim = next(p for p in chunk_files if p.is_file())
    victim.write_bytes(b"not a zstd frame at all")
    config = dataclasses.replace(
        with_output(simulated_tiny, tmp_path / "cube.zarr"),
        inputs=dataclasses.replace(simulated_tiny.inputs, stack=stack))
    # with lst_uncertainty, planning reads the stack too (leave-one-date-out)
    with pytest.raises(InputError, match=r"inputs\.zarr: cannot read"):
        execute(plan_run(config), client, progress=False)
    assert cube_status(config.output.cube) in (None, "writing")
    config = dataclasses.replace(config, output=dataclasses.replace(config.output,
                                                                    uncertainty=False))
    with pytest.raises(InputError, match=r"inputs\.zarr: cannot read inputs of days"):
        execute(plan_run(config), client, progress=False)
    assert cube_status(config.output.cube) == "writing"
    root = json.loads((config.output.cube / "zarr.json").read_text())
    assert "consolidated_metadata" not in root or root["consolidated_metadata"] is None


def test_dlstfm_on_workers_is_seamless_and_equals_single_process(
        simulated_256, tiny_checkpoint, client, tmp_path):
    config = dataclasses.replace(
        with_output(simulated_256, tmp_path / "dl.zarr"),
        fusion=dataclasses.replace(simulated_256.fusion, method="dlstfm",
                                   checkpoint=tiny_checkpoint, device="cpu",
                                   batch_pixels=40_000))
    plan = plan_run(config)
    assert plan.chunks.halo_aligned == 64  # receptive radius 47 + one coarse pixel (16)
    assert plan.chunks.chunk(0, 1, 1).read_window.shape == (192, 192)  # real halos

    def worker_state():
        import torch

        from lst_pipeline.fusion.methods import DLSTFMMethod

        return DLSTFMMethod.loads, torch.get_num_threads()

    before = client.run(worker_state)  # the session's workers may have run other networks
    cube, _ = run_and_compare_with_scene(plan, client)
    lst = cube["lst"].values
    assert cube.attrs["lst_pipeline:method"] == "dlstfm"
    assert len(cube.attrs["lst_pipeline:checkpoint_sha256"]) == 64

    # the model was loaded once per worker process (not per task), with torch limited to
    # the worker's single thread
    states = client.run(worker_state)
    assert all(loads - before[w][0] == 1 and threads == 1
               for w, (loads, threads) in states.items()), (before, states)
    # the network really departs from reference + coarse change
    base = plan_run(dataclasses.replace(config, fusion=dataclasses.replace(
        config.fusion, method="reference_change")))
    baseline = fuse_scene(base).lst_k
    both = np.isfinite(baseline) & np.isfinite(lst) & Flag.fused(cube["qa"].values)
    assert np.abs(lst[both] - baseline[both]).mean() > 0.05


def test_modis_gap_interpolation_is_seamless_across_time_chunks(simulated_tiny, client,
                                                                tmp_path):
    config = dataclasses.replace(
        with_chunks(with_output(simulated_tiny, tmp_path / "gaps.zarr"), time=5),
        fusion=dataclasses.replace(simulated_tiny.fusion, modis_gaps="interpolate",
                                   max_modis_interpolation_days=3))
    plan = plan_run(config)
    summary = execute(plan, client, progress=False)
    reference = fuse_scene(plan)
    cube = open_cube(config.output.cube)
    np.testing.assert_array_equal(cube["qa"].values, reference.qa)
    assert np.nanmax(np.abs(cube["lst"].values - reference.lst_k)) <= 1e-4
    gap_filled = (reference.qa == Flag.MODIS_GAP_FILLED).sum()
    assert gap_filled > 0
    kept = fuse_scene(plan_run(dataclasses.replace(config, fusion=dataclasses.replace(
        config.fusion, modis_gaps="keep"))))
    assert summary.no_data < (kept.qa == Flag.NO_DATA).sum()  # fewer gaps, all flagged


@pytest.mark.parametrize("method,params", [
    ("modis_only", {}),
    ("gain_change", {}),
    pytest.param("starfm", {}, marks=pytest.mark.slow),  # window 31: halo 15 + 16 -> 32 px
    ("starfm", {"starfm": {"window": 15, "pairs": 2}}),
    ("ubestarfm", {"ubestarfm": {"window": 15}}),
    ("ensemble", {"ensemble": {"members": ["starfm", "gain_change"]}, "starfm": {"window": 15}}),
])
def test_baselines_on_workers_equal_single_process_whole_scene(simulated_tiny, client, tmp_path,
                                                                method, params):
    from lst_pipeline.config import FusionConfig, from_mapping

    fusion = from_mapping(FusionConfig, {"method": method, "max_reference_gap_days": 32,
                                         **params}, "fusion")
    config = dataclasses.replace(with_output(simulated_tiny, tmp_path / f"{method}.zarr"),
                                 fusion=fusion)
    plan = plan_run(config)
    window = {"starfm": fusion.starfm.window, "ubestarfm": fusion.ubestarfm.window,
              "ensemble": fusion.starfm.window}.get(method, 0)
    assert plan.chunks.halo_aligned >= window // 2 + 16
    cube, reference = run_and_compare_with_scene(plan, client)
    np.testing.assert_array_equal(cube["qa"].values, reference.qa)
    assert cube.attrs["lst_pipeline:method"] == method
    fused = Flag.fused(reference.qa)
    assert fused.mean() > 0.1
    truth = xr.open_zarr(config.simulation.truth, consolidated=False)["lst"].values
    mae = np.abs(reference.lst_k - truth)[fused].mean()
    assert mae < {"modis_only": 6.0, "starfm": 1.5, "ubestarfm": 6.0, "gain_change": 1.5,
                  "ensemble": 1.5}[method]
    if method == "ubestarfm" or fusion.starfm.pairs == 2:  # one prediction from both pairs
        assert set(np.unique(reference.qa[fused])) == {Flag.FUSED_TWO}


# --------------------------------------------------------------------------------------
# Any grid size and coarse factor, with chunks chosen or rounded for the user.

#: (ny, nx, coarse factor, days): grids that are not multiples of the methods' alignments
#: (the shipped DLSTFM's pooling windows with the coarse grid: lcm(8, f)) or smaller than
#: one chunk. 1000 x 700 at factor 32 is widened to 1024 x 704 by grid.snap: out.
ODD_GRIDS = {
    "600x600-f30": (600, 600, 30, 12),
    "400x400-f10": (400, 400, 10, 12),
    "1000x700-f32": (1000, 700, 32, 8),
    "330x270-f30": (330, 270, 30, 12),   # padded to 360 x 360 for lcm(8, 30) = 120
    "90x120-f30": (90, 120, 30, 12),     # smaller than one chunk
}


@pytest.fixture(scope="module")
def odd_grid(request, tmp_path_factory):
    from conftest import tiny_config
    from lst_pipeline.simulate import simulate_region

    cache = {}

    def make(name):
        if name not in cache:
            ny, nx, f, days = ODD_GRIDS[name]
            root = tmp_path_factory.mktemp(name)
            config = tiny_config(
                root, grid={"coarse_factor": f,
                            "bounds": [400000, 6200000, 400000 + nx * 30, 6200000 + ny * 30]},
                dates={"end": str(np.datetime64("2021-01-01") + days - 1)},
                simulation={"landsat_revisit_days": 8},
                fusion={"max_reference_gap_days": 12})
            simulate_region(config, progress=False)
            cache[name] = config
        return cache[name]

    return make


@pytest.mark.parametrize("grid_name", [
    pytest.param(name, marks=pytest.mark.slow) if ODD_GRIDS[name][0] >= 600 else name
    for name in ODD_GRIDS])
@pytest.mark.parametrize("method", ["dlstfm", "starfm", "reference_change"])
def test_any_grid_and_coarse_factor_chunked_equals_whole_scene(odd_grid, grid_name, method,
                                                              client, tmp_path):
    config = odd_grid(grid_name)
    ny, nx, f, _ = ODD_GRIDS[grid_name]
    fusion = dataclasses.replace(config.fusion, method=method, device="cpu")
    probe = plan_run(dataclasses.replace(config, fusion=fusion))
    a = probe.chunks.alignment
    ny_, nx_ = probe.grid.shape
    # about 2 x 2 tiles (one when the grid is smaller than one aligned tile), 5-day blocks
    chunks = dataclasses.replace(config.chunks, time=5, y=-(-ny_ // (2 * a)) * a,
                                 x=-(-nx_ // (2 * a)) * a)
    run = dataclasses.replace(with_output(config, tmp_path / "c.zarr"), fusion=fusion,
                              chunks=chunks)
    plan = plan_run(run)
    cube, reference = run_and_compare_with_scene(plan, client)  # within 1e-4 K
    expected = (-(-ny // f) * f, -(-nx // f) * f)  # whole coarse pixels
    assert cube["lst"].shape[1:] == expected == plan.grid.shape
    np.testing.assert_array_equal(cube["qa"].values, reference.qa)
    assert Flag.fused(reference.qa).mean() > 0.2  # the edges fused too, not left empty
    edge = reference.qa[:, -f:, -f:]
    assert Flag.fused(edge).any()


def test_chunks_left_out_are_chosen_and_odd_ones_rounded(odd_grid, tmp_path, capsys):
    config = odd_grid("330x270-f30")
    auto = plan_run(dataclasses.replace(config, chunks=type(config.chunks)(),
                                        fusion=dataclasses.replace(config.fusion,
                                                                   method="dlstfm")))
    _, cy, cx = auto.chunks.chunks
    assert auto.chunks.alignment == 120 and cy % 120 == 0 and cx % 120 == 0
    assert (cy, cx) == (360, 360) and auto.chunks.computed_ratio == pytest.approx(
        360 * 360 / (330 * 270))  # one padded tile: no halo recomputed
    assert any("chosen" in n for n in auto.notes)
    assert "pixels computed per output pixel" in auto.describe()
    assert "GiB per task" in auto.describe()
    odd = plan_run(dataclasses.replace(config, chunks=type(config.chunks)(time=4, y=100,
                                                                          x=170)))
    assert odd.chunks.chunks == (4, 90, 180)  # reference_change: multiples of 30
    assert "chunks.y: 100 rounded to 90, a multiple of 30" in odd.describe()
    assert "chunks.x: 170 rounded to 180" in odd.describe()
