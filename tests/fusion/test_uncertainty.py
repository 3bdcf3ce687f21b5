"""lst_uncertainty in the cube: fitted per run, encoded like lst, seamless, resumable."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import xarray as xr
import zarr

from conftest import tiny_config
from lst_pipeline.errors import InputError
from lst_pipeline.fusion.engine import execute, fuse_scene, plan_run
from lst_pipeline.fusion.provenance import UNCERTAINTY_ATTR
from lst_pipeline.io.cube import (
    UNCERTAINTY,
    UNCERTAINTY_FILL,
    Flag,
    encode_uncertainty,
    open_cube,
)


def with_output(config, path, **output):
    return dataclasses.replace(config, output=dataclasses.replace(config.output, cube=path,
                                                                  **output))


@pytest.fixture(scope="module")
def uncertain_cube(simulated_tiny, client, tmp_path_factory):
    """The tiny region fused with reference_change into an int16 cube with lst_uncertainty."""
    config = with_output(simulated_tiny, tmp_path_factory.mktemp("unc") / "cube.zarr",
                         dtype="int16")
    plan = plan_run(config)
    execute(plan, client, progress=False)
    return config, plan


def test_variable_is_cf_encoded_and_present_exactly_where_lst_is(uncertain_cube):
    config, plan = uncertain_cube
    raw = xr.open_zarr(config.output.cube, consolidated=False, mask_and_scale=False,
                       decode_times=False)
    assert raw[UNCERTAINTY].dtype == np.uint16
    cube = open_cube(config.output.cube)
    var = cube[UNCERTAINTY]
    assert var.attrs["standard_name"] == "surface_temperature standard_error"
    assert var.attrs["units"] == "K" and "1-sigma" in var.attrs["long_name"]
    assert UNCERTAINTY in cube["lst"].attrs["ancillary_variables"]
    lst, sigma, qa = cube["lst"].values, var.values, cube["qa"].values
    assert np.array_equal(np.isnan(lst), np.isnan(sigma))
    assert np.isfinite(lst).sum() > 10_000
    assert (sigma[np.isfinite(sigma)] > 0).all()
    model = plan.task.error_model
    # observed pixels: the stack's ST_QA, here the simulated sensor's own noise
    noise = config.simulation.landsat_noise_k
    assert (qa == Flag.OBSERVED).sum() > 1000
    assert np.allclose(sigma[qa == Flag.OBSERVED], noise, atol=0.006)
    recorded = cube.attrs[UNCERTAINTY_ATTR]
    assert recorded["method"] == "reference_change"
    assert recorded["coefficients"] == pytest.approx(list(model.coefficients))
    assert recorded["fitted"]["residuals"] >= 1000
    # the held-out observations' own error, from their ST_QA, is taken out of fused sigma
    assert model.observation_k == pytest.approx(noise, abs=0.006)
    assert recorded["observation_k"] == pytest.approx(model.observation_k)
    assert sigma[Flag.fused(qa)].min() >= noise - 0.006


def test_chunked_equals_whole_scene(uncertain_cube):
    config, plan = uncertain_cube
    whole = fuse_scene(plan)
    stored = zarr.open_group(config.output.cube, mode="r")[UNCERTAINTY][:]
    assert np.array_equal(stored, encode_uncertainty(whole.uncertainty_k))
    assert (stored != UNCERTAINTY_FILL).sum() > 10_000


def test_older_references_get_larger_sigma(uncertain_cube):
    _, plan = uncertain_cube
    whole = fuse_scene(plan)
    fused = Flag.fused(whole.qa)
    day = plan.task.first_day + np.arange(whole.qa.shape[0])[:, None, None]
    age = np.abs(day - whole.reference_day)
    young = whole.uncertainty_k[fused & (age <= 4)].mean()
    old = whole.uncertainty_k[fused & (age >= 12)].mean()
    assert old > 1.1 * young


def test_resume_reuses_the_recorded_model(uncertain_cube):
    config, plan = uncertain_cube
    said = []
    again = plan_run(config, log=said.append)
    assert any("recorded in" in s for s in said)
    assert again.task.error_model == plan.task.error_model


def test_switched_off_and_left_out_when_the_stack_is_too_short(tmp_path, client):
    from lst_pipeline.simulate import simulate_region

    config = tiny_config(tmp_path, grid={"bounds": [400000, 6200000, 400000 + 64 * 30,
                                                    6200000 + 64 * 30]},
                         dates={"end": "2021-01-24"})  # 64 x 64 px, 2 Landsat dates
    simulate_region(config, progress=False)
    plan = plan_run(config)  # auto: left out, and the plan says why
    assert not plan.task.uncertainty and plan.task.error_model is None
    assert any("lst_uncertainty left out" in n for n in plan.notes)
    execute(plan, client, progress=False)
    assert UNCERTAINTY not in open_cube(config.output.cube)
    required = with_output(config, tmp_path / "required.zarr", uncertainty=True)
    with pytest.raises(InputError, match="too few to fit the error model"):
        plan_run(required)
    off = with_output(config, tmp_path / "off.zarr", uncertainty=False)
    assert not plan_run(off).task.uncertainty


def test_uncertainty_config_values(tmp_path):
    from lst_pipeline.errors import ConfigError

    assert tiny_config(tmp_path).output.uncertainty == "auto"
    assert tiny_config(tmp_path, output={"uncertainty": False}).output.uncertainty is False
    with pytest.raises(ConfigError, match=r"output\.uncertainty"):
        tiny_config(tmp_path, output={"uncertainty": "yes"})


def test_inspect_names_the_error_model(uncertain_cube, capsys):
    from lst_pipeline.cli import main

    config, _ = uncertain_cube
    assert main(["inspect", str(config.output.cube)]) == 0
    out = capsys.readouterr().out
    assert "lst_uncertainty" in out
    assert "uncertainty: error model of reference_change fitted on" in out


def test_the_memory_model_counts_the_features(simulated_tiny, tmp_path):
    from lst_pipeline.fusion.plan import UNCERTAINTY_BYTES_PER_PIXEL_DAY
    from lst_pipeline.fusion.plan import plan_run as plan_only

    on = plan_only(with_output(simulated_tiny, tmp_path / "a.zarr"))
    off = plan_only(with_output(simulated_tiny, tmp_path / "b.zarr", uncertainty=False))
    assert on.chunks.chunks == off.chunks.chunks  # given in the config
    ct, cy, cx = on.chunks.chunks
    halo = on.chunks.halo_aligned
    read_pixels = min(cy + 2 * halo, 128) * min(cx + 2 * halo, 128)
    extra = on.task_bytes - off.task_bytes
    assert 0 < extra <= UNCERTAINTY_BYTES_PER_PIXEL_DAY * read_pixels * ct * 1.01


def test_a_cube_is_calibrated_against_its_truth(uncertain_cube):
    from lst_pipeline.evaluate import calibrate_cube_with_truth
    from lst_pipeline.fusion.error_model import within

    config, _ = uncertain_cube
    cal = calibrate_cube_with_truth(config.output.cube, config.simulation.truth)
    assert set(cal) == {"all", "fused", "observed"}
    cube = open_cube(config.output.cube)
    truth = xr.open_zarr(config.simulation.truth, consolidated=False)["lst"].values
    err, sigma, qa = cube["lst"].values - truth, cube[UNCERTAINTY].values, cube["qa"].values
    fused = Flag.fused(qa) & np.isfinite(err)
    # the same coverage as over every pixel-day (the sample is evenly spaced)
    assert cal["fused"].overall.within_1 == pytest.approx(within(err[fused], sigma[fused]),
                                                          abs=0.01)
    assert cal["all"].overall.n >= cal["fused"].overall.n + cal["observed"].overall.n - 1
    # observed values: the simulated sensor reports its true noise, so about 68 % within it
    assert 0.6 < cal["observed"].overall.within_1 < 0.76
