"""MODIS registration: the shift it measures and what it does to a run."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from scipy import ndimage

from conftest import texture_world
from lst_pipeline.fusion.registration import (
    ModisRegistration,
    cell_means_moved,
    fit_shift,
    shift_correction,
)
from lst_pipeline.grid import Window

F = 16  # the texture world's coarse factor


def _landscape(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """Smooth fields and a sharp edge (a lake shore): what a shift shows in."""
    smooth = ndimage.gaussian_filter(rng.normal(0, 1, shape), 6) * 40
    edge = np.where(np.add.outer(np.arange(shape[0]), np.arange(shape[1])) > shape[0], 6.0, 0.0)
    return smooth + edge


def _moved_modis(truth: np.ndarray, f: int, dy: int, dx: int) -> np.ndarray:
    """Cell means of ``truth`` seen ``(dy, dx)`` px away (edges repeated, as the simulator)."""
    pad = np.pad(truth, f, mode="edge")
    ny, nx = truth.shape
    return cell_means_moved(pad[f + dy:f + dy + ny, f + dx:f + dx + nx], f, 0, 0)


def test_fit_shift_finds_the_days_shift_and_gain():
    rng = np.random.default_rng(3)
    fine = _landscape(rng, (256, 256)) + 290.0
    for dy, dx in [(5, -3), (0, 0), (-8, 8), (1, 0)]:
        modis = 0.8 * _moved_modis(fine, F, dy, dx) + 60.0 + rng.normal(0, 0.02, (16, 16))
        found = fit_shift([modis], [fine], F)
        assert found is not None
        assert found[:2] == (dy, dx)
        assert found[2] == pytest.approx(0.8, abs=0.02)
    # two windows pooled: each alone is the same scene's half
    modis = _moved_modis(fine, F, 4, 2)
    assert fit_shift([modis[:, :8], modis[:, 8:]], [fine[:, :128], fine[:, 128:]], F)[:2] == (4, 2)
    # a day anticorrelated with the reference gives no fit, nor do too few cells; one the
    # reference does not explain gets a gain near 0, so next to no correction
    assert fit_shift([600.0 - modis], [fine], F) is None
    assert abs(fit_shift([rng.normal(0, 1, (16, 16))], [fine], F)[2]) < 0.05
    assert fit_shift([modis[:4, :4]], [fine[:64, :64]], F) is None


def test_the_correction_puts_modis_back_on_its_cells_where_the_moved_cell_is_known():
    rng = np.random.default_rng(4)
    fine = _landscape(rng, (256, 256)) + 290.0
    cells = cell_means_moved(fine, F, 0, 0)
    modis = _moved_modis(fine, F, 6, -5)
    corrected = modis + shift_correction(fine, F, 6, -5, 1.0, (0, 0), cells.shape)
    inside = np.isfinite(cell_means_moved(fine, F, 6, -5))
    assert np.abs(modis - cells)[inside].mean() > 0.3  # K: what the shift does here
    assert np.abs(corrected - cells)[inside].max() < 1e-4
    assert np.array_equal(corrected[~inside], modis[~inside])  # moved out of the grid: as is
    # a cloudy reference corrects nothing where the cloud is
    cloudy = fine.copy()
    cloudy[:64, :64] = np.nan
    got = shift_correction(cloudy, F, 6, -5, 1.0, (0, 0), cells.shape)
    assert np.all(got[:4, :4] == 0) and np.all(np.isfinite(got))


def test_a_block_computes_what_the_whole_scene_computes():
    rng = np.random.default_rng(5)
    fine = _landscape(rng, (256, 256)).astype(np.float32)
    whole = shift_correction(fine, F, -7, 3, 0.9, (0, 0), (16, 16))
    read = Window(64, 160, 96, 256)  # a read window, cell-aligned, touching the east edge
    outer = Window(read.y0 - F // 2, read.y1 + F // 2, read.x0 - F // 2, 256)
    block = shift_correction(fine[outer.slices], F, -7, 3, 0.9,
                             (read.y0 - outer.y0, read.x0 - outer.x0), read.coarse(F).shape)
    assert np.array_equal(block, whole[read.coarse(F).slices])


def test_leave_one_date_out_takes_the_next_fit_for_days_measured_on_the_hidden_date():
    reg = ModisRegistration(
        days=(10, 11, 12, 13),
        fits=(((10, 2, 1, 0.9), (14, 3, 1, 0.8)),  # a Landsat date: measured on itself first
              ((10, -4, 0, 1.1), None),
              ((14, 0, 5, 1.0), (10, 0, 4, 1.0)),
              ((14, 1, 1, 1.0), None)))
    hidden = reg.without(10)
    assert hidden.days == (10, 12, 13)
    assert hidden.on(10) == (14, 3, 1, 0.8)  # the held-out date, as a day without Landsat
    assert hidden.on(11) is None  # only the hidden date could register it
    assert hidden.on(12) == (14, 0, 5, 1.0)
    assert all(first[0] != 10 for first, _ in hidden.fits)  # no MODIS corrected with it
    assert reg.without(99) == reg
    assert ModisRegistration.from_attrs(json.loads(json.dumps(reg.as_attrs()))) == reg
    assert "4 day(s)" in reg.describe()


def _shifted_world(tmp_path, **fusion):
    """The texture world over a smooth landscape, whose MODIS cells look a few px away.

    Each day's MODIS is the cell means of the truth moved by that day's shift, otherwise
    exact, so ``reference_change`` errs only by what the shift does.
    """
    world = texture_world(tmp_path, 6, **fusion)
    chunks = dataclasses.replace(world.config.chunks, time=8, y=64, x=64)
    texture = _landscape(world.rng, (128, 128))
    truth = world.truth - (world.truth - world.truth.mean(axis=(1, 2), keepdims=True)) + texture
    shifts = world.rng.integers(-6, 7, (40, 2))
    shifts[::4] = 0  # Landsat dates: MODIS on its cells (the rebuilt references read them)
    modis = np.stack([_moved_modis(t, F, int(dy), int(dx)) for t, (dy, dx) in zip(truth, shifts)])
    world = dataclasses.replace(world, truth=truth,
                                config=dataclasses.replace(world.config, chunks=chunks))
    world.write(modis.astype(np.float32))
    return world, shifts


def _fused_error(plan, truth, days, ldays) -> np.ndarray:
    from lst_pipeline.fusion.engine import fuse_scene

    block = fuse_scene(plan)
    off = ~np.isin(days, ldays)
    return np.abs(block.lst_k[off] - truth[off])[:, F:-F, F:-F]  # cells a shift keeps inside


def test_a_run_registers_each_days_modis_and_records_it(tmp_path, client):
    from lst_pipeline.fusion.engine import execute, fuse_scene, plan_run
    from lst_pipeline.fusion.holdout import predict_held_out
    from lst_pipeline.fusion.provenance import REGISTRATION_ATTR
    from lst_pipeline.io.cube import open_cube
    from lst_pipeline.io.zarr_store import open_group

    world, shifts = _shifted_world(tmp_path, modis_registration="auto",
                                   overpass_correction="off")
    config = world.config
    plan = plan_run(config, log=lambda _: None)
    reg = plan.task.registration
    assert reg is not None and len(reg.days) == 40
    measured = np.array([reg.on(int(d))[1:3] for d in world.days.astype(np.int64)])
    assert np.abs(measured - shifts).max() <= 1  # px
    assert any(n.startswith("MODIS registered to Landsat on 40 day(s)") for n in plan.notes)
    registered = _fused_error(plan, world.truth, world.days, world.landsat_days)

    off = dataclasses.replace(config, fusion=dataclasses.replace(
        config.fusion, modis_registration="off"))
    plan_off = plan_run(off, log=lambda _: None)
    assert plan_off.task.registration is None
    observed = _fused_error(plan_off, world.truth, world.days, world.landsat_days)
    assert np.nanmean(observed) > 0.4  # K: the shifts' error
    assert np.nanmean(registered) < 0.25 * np.nanmean(observed)

    # chunked equals whole scene, and the cube records the shifts
    execute(plan, client, progress=False)
    whole = fuse_scene(plan)
    lst = open_cube(config.output.cube)["lst"].values
    ok = np.isfinite(whole.lst_k)
    assert ok.mean() > 0.9 and np.array_equal(ok, np.isfinite(lst))
    assert np.abs(lst[ok] - whole.lst_k[ok]).max() <= 0.0051  # K: the cube's 0.01 K packing
    recorded = open_group(config.output.cube, mode="r").attrs[REGISTRATION_ATTR]
    assert ModisRegistration.from_attrs(dict(recorded)) == reg

    # a held-out date is predicted with MODIS not registered on its own Landsat
    held = predict_held_out(config, ("reference_change",), max_dates=3, log=lambda _: None)
    err = np.abs(held.predictions["reference_change"] - held.truth)[held.mask]
    assert err.size > 1000 and np.isfinite(err).all()
