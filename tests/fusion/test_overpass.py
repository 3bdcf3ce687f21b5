"""The MODIS view-time correction: the rate it measures and what it does to a run."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from conftest import texture_world
from lst_pipeline.fusion.overpass import (
    OverpassCorrection,
    correct_modis,
    date_offsets,
    fit_heating_rate,
    fit_overpass,
)
from lst_pipeline.fusion.reference_offset import MIN_CELL_CLEAR
from lst_pipeline.grid import TargetGrid

RATE = 5.0  # K per hour of view time, injected
LANDSAT_LOCAL_HOUR = 10.25


def test_date_offsets_are_modis_minus_the_landsat_mean_of_clear_cells_only():
    rng = np.random.default_rng(0)
    landsat = 300 + rng.normal(0, 2, (2, 32, 32))
    cells = landsat.reshape(2, 4, 8, 4, 8).mean(axis=(2, 4))
    modis = cells + np.array([1.5, -0.5])[:, None, None]
    cloudy = landsat.copy()
    cloudy[0, :8, :8] = np.nan  # one whole cell clouded
    cloudy[0, 8:16, :3] = np.nan  # one cell 62 % clear: left out
    modis[0, 1, 0] += 50.0  # that cell's MODIS would otherwise spoil the median
    got = date_offsets(cloudy, modis, 8)
    assert got == pytest.approx([1.5, -0.5], abs=1e-9)
    assert MIN_CELL_CLEAR > 0.62


def test_the_rate_is_the_slope_of_offset_on_view_time_robust_to_one_bad_date():
    view = np.array([9.9, 10.4, 10.8, 10.1, 11.0, 10.6, 10.3, 9.8, 10.9, 10.5])
    offset = 1.0 + RATE * (view - 10.25) + np.random.default_rng(1).normal(0, 0.2, 10)
    rate, measured, se = fit_heating_rate(view, offset)
    assert measured == pytest.approx(RATE, abs=0.3)
    assert se < 0.5 and rate == pytest.approx(measured, rel=0.02)
    offset[3] -= 7.0  # a date with cloud-contaminated MODIS
    assert fit_heating_rate(view, offset)[1] == pytest.approx(RATE, abs=0.5)


def test_a_rate_the_dates_do_not_show_is_shrunk_and_too_little_data_gives_none():
    rng = np.random.default_rng(2)
    view = rng.uniform(9.8, 11.2, 8)
    noise = rng.normal(0, 2.0, 8)  # offsets unrelated to view time
    rate, measured, _se = fit_heating_rate(view, noise)
    assert abs(rate) < abs(measured) or rate == 0.0
    assert abs(rate) < 2.0
    assert fit_heating_rate(view[:4], noise[:4]) is None  # fewer than MIN_DATES
    assert fit_heating_rate(np.full(8, 10.5) + np.arange(8) * 0.01, noise) is None  # no spread


def test_offsets_are_zero_where_the_view_time_is_unknown():
    c = OverpassCorrection(RATE, LANDSAT_LOCAL_HOUR, RATE, 0.1, 10)
    modis = np.full((3, 2, 2), 300.0, np.float32)
    got = correct_modis(modis, np.array([10.25, 10.75, np.nan]), c)
    assert got[:, 0, 0] == pytest.approx([300.0, 297.5, 300.0])
    assert got.dtype == np.float32
    assert correct_modis(modis, np.array([11.0, 11.0, 11.0]), None) is modis
    assert OverpassCorrection.from_attrs(c.as_attrs()) == c


def test_leave_one_date_out_refits_the_rate_without_the_hidden_date():
    import json

    view = np.array([9.9, 10.4, 10.8, 10.1, 11.0, 10.6])
    offset = RATE * (view - 10.25)
    offset[4] += 6.0  # the date to hide widens the slope's interval, so shrinks the rate
    days = np.arange(18000, 18006)
    c = OverpassCorrection.fitted(10.25, days, view, offset)
    assert c.n_dates == 6 and c.days == tuple(range(18000, 18006))
    hidden = c.without(18004)
    assert hidden.n_dates == 5 and 18004 not in hidden.days
    assert hidden.measured_k_per_h == pytest.approx(RATE, abs=1e-9)  # the others lie on a line
    assert hidden.rate_k_per_h == pytest.approx(RATE, abs=1e-9)
    assert c.rate_k_per_h < RATE - 1.0 and c.standard_error_k_per_h > 1.0
    assert c.without(17000) is c  # not a date of the fit
    assert OverpassCorrection.fitted(10.25, days[:5], view[:5], offset[:5]).without(
        18000) is None  # four dates left: no rate
    assert OverpassCorrection.from_attrs(json.loads(json.dumps(c.as_attrs()))) == c


def _view_time_world(tmp_path, *, fusion=None):
    """A texture world whose MODIS is the cell mean plus RATE x (view time - Landsat's).

    A static per-cell offset too (emissivity-like: it cancels in a change), so
    ``reference_change`` recovers the truth exactly once MODIS is brought to Landsat's hour,
    and errs by RATE x the view-time difference otherwise.
    """
    world = texture_world(tmp_path, 5, drift_k_per_day=0.1, **(fusion or {}))
    view = world.rng.uniform(9.8, 11.2, 40)
    static = world.rng.normal(0, 1.0, (8, 8))
    grid = TargetGrid.from_config(world.config.grid)
    lon = float(grid.fine.extent.centroid.to_crs("epsg:4326").coords[0][0])
    world.write(world.cells + static + RATE * (view - LANDSAT_LOCAL_HOUR)[:, None, None],
                landsat_hour_utc=(LANDSAT_LOCAL_HOUR - lon / 15.0) % 24, view_time_h=view)
    return world.config, world.truth, world.landsat_days, world.days


def _fused_mae(plan, truth, ldays, days) -> float:
    from lst_pipeline.fusion.engine import fuse_scene

    block = fuse_scene(plan)
    off = ~np.isin(days, ldays)
    err = np.abs(block.lst_k[off] - truth[off])
    assert np.isfinite(err).mean() > 0.9
    return float(np.nanmean(err))


def test_a_run_measures_the_rate_on_its_stack_and_removes_the_view_time_offset(tmp_path):
    from lst_pipeline.fusion.engine import plan_run
    from lst_pipeline.fusion.provenance import OVERPASS_ATTR, provenance

    config, truth, ldays, days = _view_time_world(tmp_path)
    fitted = fit_overpass(config.inputs.stack)
    assert isinstance(fitted, OverpassCorrection)
    assert fitted.measured_k_per_h == pytest.approx(RATE, abs=0.05)
    assert fitted.rate_k_per_h == pytest.approx(RATE, abs=0.05)
    assert fitted.hour == pytest.approx(LANDSAT_LOCAL_HOUR, abs=0.01)
    assert fitted.n_dates == 10

    from lst_pipeline.fusion.holdout import predict_held_out

    held = predict_held_out(config, ("reference_change",), max_dates=3, log=lambda _: None)
    err = np.abs(held.predictions["reference_change"] - held.truth)[held.mask]
    assert err.size > 1000 and err.mean() < 0.05  # each hidden date refitted without itself

    plan = plan_run(config, log=lambda _: None)
    assert plan.task.overpass == fitted
    assert any(n.startswith("overpass: MODIS brought to 10.25 h") for n in plan.notes)
    assert provenance(plan)[OVERPASS_ATTR]["rate_k_per_h"] == fitted.rate_k_per_h
    corrected = _fused_mae(plan, truth, ldays, days)

    off = dataclasses.replace(config, fusion=dataclasses.replace(
        config.fusion, overpass_correction="off"))
    plan_off = plan_run(off, log=lambda _: None)
    assert plan_off.task.overpass is None
    observed = _fused_mae(plan_off, truth, ldays, days)
    assert corrected < 0.05  # K: the world is otherwise exact for reference_change
    assert observed > 1.0  # K: RATE x a view-time difference of ~0.5 h


def test_a_stack_without_view_times_is_left_as_observed_and_fingerprints_as_before(
        simulated_tiny):
    from lst_pipeline.fusion.engine import plan_run
    from lst_pipeline.fusion.plan import _task_fingerprint

    reason = fit_overpass(simulated_tiny.inputs.stack)
    assert isinstance(reason, str) and "not corrected for MODIS view time" in reason
    plan = plan_run(dataclasses.replace(simulated_tiny, output=dataclasses.replace(
        simulated_tiny.output, uncertainty=False)), log=lambda _: None)
    assert plan.task.overpass is None
    assert "overpass" not in _task_fingerprint(plan.task)  # earlier cubes still resume


def test_a_resumed_run_keeps_the_correction_its_cube_records(tmp_path, client):
    from lst_pipeline.fusion.engine import execute, plan_run
    from lst_pipeline.fusion.provenance import OVERPASS_ATTR
    from lst_pipeline.io.zarr_store import open_group

    config, *_ = _view_time_world(tmp_path)
    first = plan_run(config, log=lambda _: None)
    execute(first, client, progress=False)
    group = open_group(config.output.cube, mode="r+")
    recorded = dict(group.attrs[OVERPASS_ATTR]) | {"rate_k_per_h": 4.25}
    group.attrs[OVERPASS_ATTR] = recorded  # as if the stack had changed since
    again = plan_run(config, log=lambda _: None)
    assert again.resume is not None
    assert again.task.overpass.rate_k_per_h == 4.25
    fresh = plan_run(config, overwrite=True, log=lambda _: None)
    assert fresh.task.overpass.rate_k_per_h == pytest.approx(RATE, abs=0.05)


def test_adapt_reads_modis_as_the_run_does(tmp_path):
    from lst_pipeline.training import load_region

    config, *_ = _view_time_world(tmp_path)
    fitted = fit_overpass(config.inputs.stack)
    raw = load_region(config.inputs.stack)
    corrected = load_region(config.inputs.stack, overpass=fitted)
    from lst_pipeline.io.stack import StackReader

    reader = StackReader(config.inputs.stack)
    expect = fitted.offsets_k(reader.modis_view_time_on(reader.landsat_dates))
    got = (raw.coarse_up - corrected.coarse_up).mean(axis=(1, 2))
    assert got == pytest.approx(expect, abs=1e-3)
    assert np.ptp(expect) > 2.0
