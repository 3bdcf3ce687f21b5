"""A reference date's MODIS rebuilt from its Landsat and the cell's averaged MODIS offset."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from conftest import texture_world, tiny_config
from lst_pipeline.errors import ConfigError
from lst_pipeline.fusion.reference_offset import (
    MIN_CELL_CLEAR,
    cell_means,
    horizon_days,
    smoothed_reference_modis,
)

NOISE_K = 1.5  # sd of each date's MODIS error per cell, injected


def test_the_reference_modis_is_the_landsat_mean_plus_the_weighted_offset_of_nearby_dates():
    days = np.array([0, 16, 200])
    landsat = np.array([[[300.0, 310.0]], [[301.0, 311.0]], [[302.0, np.nan]]], np.float32)
    offset = np.array([[[1.0, 2.0]], [[3.0, 4.0]], [[9.0, 5.0]]], np.float32)
    modis = landsat + offset
    modis[1, 0, 1] = np.nan  # a MODIS gap on a date whose Landsat sees the cell
    modis[2, 0, 1] = 320.0  # a cell Landsat does not see: kept as observed
    got = smoothed_reference_modis(landsat, modis, days, 32)
    assert horizon_days(32) == 64  # day 200 is beyond both others' horizon
    w = math.exp(-16 / 32)
    assert got[0, 0, 0] == pytest.approx(300 + (1 + 3 * w) / (1 + w), abs=1e-4)
    assert got[1, 0, 0] == pytest.approx(301 + (w * 1 + 3) / (w + 1), abs=1e-4)
    assert got[0, 0, 1] == pytest.approx(310 + 2.0, abs=1e-4)  # the gap's date adds nothing
    assert got[1, 0, 1] == pytest.approx(311 + 2.0, abs=1e-4)  # filled from day 0's offset
    assert got[2, 0, 0] == pytest.approx(302 + 9.0, abs=1e-4)  # alone: as observed
    assert got[2, 0, 1] == 320.0
    assert got.dtype == np.float32


def test_cell_means_need_a_mostly_clear_cell():
    rng = np.random.default_rng(0)
    landsat = (300 + rng.normal(0, 2, (16, 16))).astype(np.float32)
    landsat[:8, :3] = np.nan  # cell (0, 0): 62 % clear
    landsat[8, 8] = np.nan  # cell (1, 1): 98 % clear
    got = cell_means(landsat, 8)
    assert np.isnan(got[0, 0]) and MIN_CELL_CLEAR > 0.62
    assert got[1, 1] == pytest.approx(np.nanmean(landsat[8:, 8:]), abs=1e-4)
    assert got[0, 1] == pytest.approx(landsat[:8, 8:].mean(), abs=1e-4)


def _noisy_modis_world(tmp_path, **fusion):
    """A texture world whose MODIS is the cell mean + a static offset + noise per date and cell.

    No view times; ``reference_change`` errs only by the target day's MODIS noise minus
    the reference's.
    """
    world = texture_world(tmp_path, 7, **fusion)
    rng = world.rng
    world.write(world.cells + rng.normal(0, 1.0, (8, 8)) + rng.normal(0, NOISE_K, (40, 8, 8)))
    return world.config, world.truth, world.landsat_days, world.days


def _mae_off_landsat_days(config, truth, ldays, days) -> float:
    from lst_pipeline.fusion.engine import fuse_scene, plan_run

    block = fuse_scene(plan_run(config, log=lambda _: None))
    off = ~np.isin(days, ldays)
    err = np.abs(block.lst_k[off] - truth[off])
    assert np.isfinite(err).mean() > 0.9
    return float(np.nanmean(err))


def test_averaging_the_offset_takes_the_reference_dates_noise_out_of_every_fused_value(
        tmp_path):
    config, truth, ldays, days = _noisy_modis_world(tmp_path)
    assert config.fusion.reference_offset_days == 32  # the default
    averaged = _mae_off_landsat_days(config, truth, ldays, days)
    one_date = _mae_off_landsat_days(dataclasses.replace(config, fusion=dataclasses.replace(
        config.fusion, reference_offset_days=0)), truth, ldays, days)
    print(f"MAE one date {one_date:.3f} K, averaged {averaged:.3f} K")
    assert one_date > 1.0  # the difference of two dates' noise (smoothed by upsampling)
    assert averaged < 0.8 * one_date  # about one date's noise: sqrt(1.1 / 2) = 0.74


def test_a_hidden_date_is_no_part_of_another_references_offset(tmp_path):
    from lst_pipeline.fusion.block import read_block_inputs
    from lst_pipeline.fusion.engine import plan_run
    from lst_pipeline.grid import Window
    from lst_pipeline.io.zarr_store import open_group

    config, _truth, ldays, _days = _noisy_modis_world(tmp_path)
    task = plan_run(config, log=lambda _: None).task
    whole = Window(0, 128, 0, 128)
    hide = int(ldays[3].astype(np.int64))
    before = read_block_inputs(task, 14, 15, whole, hide_day=hide)
    seen = read_block_inputs(task, 14, 15, whole)
    assert hide not in before.landsat_days and hide in seen.landsat_days
    stack = open_group(config.inputs.stack, mode="r+")
    stack["modis_lst"][12] = stack["modis_lst"][12] + 50.0  # the hidden date's MODIS
    from lst_pipeline.fusion import block

    block._reader.cache_clear()
    after = read_block_inputs(task, 14, 15, whole, hide_day=hide)
    np.testing.assert_array_equal(after.landsat_modis, before.landsat_modis)
    changed = read_block_inputs(task, 14, 15, whole)  # the same date seen: it counts
    assert np.nanmax(np.abs(changed.landsat_modis - seen.landsat_modis)) > 1.0


def test_chunked_in_time_equals_the_whole_scene_when_blocks_read_dates_beyond_their_own(
        tmp_path, client):
    from fusion.test_engine import run_and_compare_with_scene

    from lst_pipeline.fusion.engine import plan_run

    config, *_ = _noisy_modis_world(tmp_path, max_reference_gap_days=6)
    config = dataclasses.replace(config, chunks=dataclasses.replace(
        config.chunks, time=8, y=64, x=64))
    plan = plan_run(config, log=lambda _: None)
    assert plan.chunks.chunks == (8, 64, 64)
    run_and_compare_with_scene(plan, client)


def test_a_changed_landsat_date_makes_every_chunk_within_its_horizon_stale(tmp_path):
    from lst_pipeline.fusion.block import fuse_scene
    from lst_pipeline.fusion.engine import plan_run
    from lst_pipeline.fusion.plan import stale_chunks
    from lst_pipeline.io.zarr_store import open_group

    config, *_ = _noisy_modis_world(tmp_path, max_reference_gap_days=6,
                                    reference_offset_days=4)
    config = dataclasses.replace(config, chunks=dataclasses.replace(
        config.chunks, time=8, y=128, x=128))
    plan = plan_run(config, log=lambda _: None)
    done = {(t, 0, 0) for t in range(5)}
    changed = {"landsat": ["2021-01-01"], "modis": []}  # day 0
    dates = {str(d) for d in np.datetime64("2021-01-01") + np.arange(0, 40, 4)}
    # days 8-15 reach day 0 only through the 8-day horizon of their reference day 8
    assert stale_chunks(plan, done, changed, dates) == {(0, 0, 0), (1, 0, 0)}
    off = dataclasses.replace(plan, task=dataclasses.replace(plan.task,
                                                             reference_offset_days=0))
    assert stale_chunks(off, done, changed, dates) == {(0, 0, 0)}

    before = fuse_scene(plan).lst_k
    stack = open_group(config.inputs.stack, mode="r+")
    stack["landsat_lst"][0] = stack["landsat_lst"][0] + 5.0  # the changed date
    from lst_pipeline.fusion import block

    block._reader.cache_clear()
    after = fuse_scene(plan).lst_k
    moved = np.nanmax(np.abs(after - before), axis=(1, 2))
    assert moved[8:16].max() > 0.1  # the dependency is real
    np.testing.assert_array_equal(after[16:], before[16:])  # and ends there


def test_the_timescale_is_checked_and_off_fingerprints_as_before(tmp_path, simulated_tiny):
    from lst_pipeline.fusion.engine import plan_run
    from lst_pipeline.fusion.plan import _task_fingerprint

    with pytest.raises(ConfigError, match=r"fusion\.reference_offset_days"):
        tiny_config(tmp_path, fusion={"reference_offset_days": -3})
    off = dataclasses.replace(simulated_tiny, fusion=dataclasses.replace(
        simulated_tiny.fusion, reference_offset_days=0), output=dataclasses.replace(
        simulated_tiny.output, uncertainty=False))
    fields = _task_fingerprint(plan_run(off, log=lambda _: None).task)
    assert "reference_offset_days" not in fields  # cubes made before the option resume
    on = dataclasses.replace(off, fusion=dataclasses.replace(off.fusion,
                                                             reference_offset_days=32))
    assert _task_fingerprint(plan_run(on, log=lambda _: None).task)[
        "reference_offset_days"] == 32
