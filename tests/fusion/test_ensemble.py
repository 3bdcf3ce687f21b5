"""fusion.method: ensemble: the weighted mean of its members, weights fitted per run."""

import dataclasses

import numpy as np
import pytest
import yaml

from conftest import config_dict
from lst_pipeline.cli import main
from lst_pipeline.flags import Flag
from lst_pipeline.fusion.engine import fuse_scene, plan_run
from lst_pipeline.fusion.ensemble import fit_ensemble
from lst_pipeline.fusion.holdout import predict_auto_held_out
from lst_pipeline.fusion.methods import get_method
from lst_pipeline.fusion.stacking import date_moments, simplex_weights


def _ensemble(config, members, weights=(), **fusion):
    return dataclasses.replace(config, fusion=dataclasses.replace(
        config.fusion, method="ensemble", device="cpu", **fusion,
        ensemble=dataclasses.replace(config.fusion.ensemble, members=tuple(members),
                                     weights=tuple(weights))))


def test_the_ensemble_predicts_the_weighted_mean_of_its_members():
    rng = np.random.default_rng(0)
    fine = rng.normal(300, 3, (2, 64, 64)).astype(np.float32)
    fine[0, :4] = np.nan
    coarse_up = fine + rng.normal(0, 1, fine.shape).astype(np.float32)
    target = rng.normal(302, 2, (2, 4, 4)).astype(np.float32)
    params = (("members", (("starfm", (("window", 7),)), ("reference_change", ()),
                           ("gain_change", ()))), ("weights", (0.25, 0.75, 0.0)))
    ensemble = get_method("ensemble", params=params)
    members = [get_method("starfm", params=(("window", 7),)), get_method("reference_change")]
    expected = sum(w * m.predict(fine, coarse_up, target, coarse_factor=16)
                   for w, m in zip((0.25, 0.75), members))
    # gain_change (weight 0) is not run: it would refuse to predict without a gain
    got = ensemble.predict(fine, coarse_up, target, coarse_factor=16)
    np.testing.assert_allclose(got, expected, atol=1e-4)
    assert np.isnan(got[0, :4]).all() and np.isfinite(got[1]).all()
    assert ensemble.halo(16) == members[0].halo(16) and not ensemble.uses_gain
    assert ensemble.describe()["lst_pipeline:method_params"] == {
        "members": ("starfm", "reference_change", "gain_change"), "weights": (0.25, 0.75, 0.0)}


def test_given_weights_mix_the_members_values_from_the_same_reference(simulated_tiny):
    config = dataclasses.replace(simulated_tiny, fusion=dataclasses.replace(
        simulated_tiny.fusion, two_references=False))
    blocks = {m: fuse_scene(plan_run(dataclasses.replace(config, fusion=dataclasses.replace(
        config.fusion, method=m)))) for m in ("starfm", "reference_change")}
    ensemble = fuse_scene(plan_run(_ensemble(config, ("starfm", "reference_change"),
                                             (0.3, 0.7), two_references=False)))
    same = Flag.fused(ensemble.qa) & np.logical_and.reduce([
        Flag.fused(b.qa) & (b.reference_day == ensemble.reference_day) for b in blocks.values()])
    assert same.mean() > 0.3
    expected = 0.3 * blocks["starfm"].lst_k + 0.7 * blocks["reference_change"].lst_k
    np.testing.assert_allclose(ensemble.lst_k[same], expected[same], atol=1e-3)
    # the mean is not either member: the weights matter
    assert np.abs(ensemble.lst_k - blocks["starfm"].lst_k)[same].mean() > 0.05


def test_weights_are_fitted_on_held_out_dates_deterministically(simulated_tiny,
                                                                 tiny_checkpoint):
    config = _ensemble(simulated_tiny, ("dlstfm", "starfm", "reference_change"),
                       checkpoint=tiny_checkpoint)
    fit = fit_ensemble(config, log=lambda _: None)
    assert fit == fit_ensemble(config, log=lambda _: None)
    assert min(fit.weights) >= 0 and sum(fit.weights) == pytest.approx(1.0)
    # the same computation by hand: the members' held-out errors, least squares on the simplex
    held = predict_auto_held_out(config, fit.members)
    _, moments, counts = date_moments([held.predictions[m] - held.truth for m in fit.members],
                                      held.mask, held.days)
    np.testing.assert_allclose(fit.weights, simplex_weights(moments.sum(0) / counts.sum()))
    for m in fit.members:
        e = (held.predictions[m] - held.truth)[held.mask]
        assert fit.mae_k[m] == pytest.approx(np.abs(e).mean(), rel=1e-5)
    assert len(fit.dates) >= 2 and np.isfinite(fit.mae_k["ensemble"])
    assert "fusion.method ensemble: weights dlstfm " in fit.describe()


@pytest.mark.slow
def test_an_ensemble_run_records_its_weights_and_resumes_with_them(simulated_tiny, tmp_path,
                                                                    capsys):
    from lst_pipeline.io.cube import open_cube

    data = config_dict(tmp_path, fusion={
        "method": "ensemble", "max_reference_gap_days": 32, "starfm": {"window": 15},
        "ensemble": {"members": ["starfm", "reference_change", "gain_change"]}})
    data["inputs"]["stack"] = str(simulated_tiny.inputs.stack)
    data.pop("simulation")
    path = tmp_path / "ensemble.yaml"
    path.write_text(yaml.safe_dump(data))
    assert main(["run", str(path), "--no-progress"]) == 0
    assert "fusion.method ensemble: weights starfm " in capsys.readouterr().out
    cube = open_cube(tmp_path / "cube.zarr")
    fitted = cube.attrs["lst_pipeline:ensemble"]
    weights = cube.attrs["lst_pipeline:fusion"]["ensemble"]["weights"]
    assert list(weights) == fitted["weights"] and sum(weights) == pytest.approx(1.0)
    assert cube.attrs["lst_pipeline:method"] == "ensemble"
    assert set(fitted["held_out_mae_k"]) == {"starfm", "reference_change", "gain_change",
                                             "ensemble"}
    lst = cube["lst"].values
    np.testing.assert_array_equal(np.isnan(cube["lst_uncertainty"].values), np.isnan(lst))
    # planned again, the finished cube is resumed with the recorded weights, fitting nothing
    from lst_pipeline.config import load_pipeline

    lines = []
    plan = plan_run(load_pipeline(path), log=lines.append)
    assert plan.ensemble is None and any("weights recorded in" in line for line in lines)
    assert plan.config.fusion.ensemble.weights == tuple(weights)
    assert plan.resume is not None and plan.resume.remaining == len(plan.chunks)


def test_the_plan_reads_the_widest_member_halo_and_counts_every_member():
    from lst_pipeline.fusion.registry import EnsembleParams, StarfmParams, method_geometry

    params = EnsembleParams(("dlstfm", "starfm", "reference_change"))
    sections = {"starfm": StarfmParams(window=61)}
    halo, align, cost = method_geometry("ensemble", 32, params=params, sections=sections)
    members = [method_geometry("dlstfm", 32),
               method_geometry("starfm", 32, params=sections["starfm"]),
               method_geometry("reference_change", 32)]
    assert halo == max(h for h, _, _ in members) and align == members[0][1]
    network = members[0][2]
    assert cost.per_forward_pixel == network.per_forward_pixel
    assert cost.per_pixel_day == network.per_pixel_day + 4.0 * 3  # each member's prediction
    wide = method_geometry("ensemble", 32, params=EnsembleParams(("starfm", "gain_change")),
                           sections={"starfm": StarfmParams(window=201)})
    assert wide[0] == 100 + 32  # starfm's half window + one coarse pixel
