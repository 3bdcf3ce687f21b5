"""Leave-one-date-out on a stack's own dates, and fusion.method: auto."""

import dataclasses

import numpy as np
import pytest
import yaml

from conftest import config_dict
from lst_pipeline.cli import main
from lst_pipeline.fusion.holdout import choose_method, predict_held_out
from lst_pipeline.fusion.stacking import cross_fitted_weights, date_moments, simplex_weights
from lst_pipeline.grid import Window


def test_held_out_predictions_hide_the_date(simulated_tiny):
    held = predict_held_out(simulated_tiny, ("reference_change", "starfm"),
                            min_clear_fraction=0.2, log=lambda _: None)
    assert len(held.days) >= 1 and held.mask.any()
    for m, p in held.predictions.items():
        e = (p - held.truth)[held.mask]
        assert 0.1 < np.abs(e).mean() < 4.0, m  # a real prediction, not the observation
    windows = [Window(0, 64, 0, 64), Window(64, 128, 64, 128)]
    parts = predict_held_out(simulated_tiny, ("reference_change",), min_clear_fraction=0.2,
                             windows=windows, log=lambda _: None)
    whole = held.predictions["reference_change"][0]
    np.testing.assert_allclose(parts.predictions["reference_change"][1], whole[64:, 64:],
                               atol=1e-4)  # a window with its halo equals the whole scene


def test_auto_chooses_deterministically_and_records_why(simulated_tiny, tiny_checkpoint):
    config = dataclasses.replace(simulated_tiny, fusion=dataclasses.replace(
        simulated_tiny.fusion, checkpoint=tiny_checkpoint, device="cpu"))
    first = choose_method(config, log=lambda _: None)
    second = choose_method(config, log=lambda _: None)
    assert first == second
    assert first.method == min(first.scores, key=lambda m: first.scores[m]["mae_k"])
    # how sure: the chosen method against each other, by the held-out dates' MAE
    candidates = {"dlstfm", "starfm", "gain_change", "reference_change", "ensemble"}
    assert set(first.comparisons) == candidates - {first.method}
    for m, c in first.comparisons.items():
        by_date = {k: [] for k in (first.method, m)}
        for day in np.unique(first.held.days):
            rows = first.held.days == day
            for k in by_date:
                e = (first.held.predictions[k] - first.held.truth)[rows][first.held.mask[rows]]
                by_date[k].append(np.abs(e.astype(np.float64)).mean())
        assert c.dates == len(by_date[m]) >= 2
        difference = np.mean(by_date[first.method]) - np.mean(by_date[m])
        assert c.mean_difference_k == pytest.approx(difference) and difference <= 0.05
    assert first.as_attrs()["chosen_against"].keys() == first.comparisons.keys()
    assert set(first.scores) == candidates
    assert "fusion.method auto: " in first.describe()
    # the ensemble is scored honestly: each date by weights fitted on the other dates
    held, members = first.held, ("dlstfm", "starfm", "reference_change")
    _, moments, counts = date_moments([held.predictions[m] - held.truth for m in members],
                                      held.mask, held.days)
    for d, w in zip(np.unique(held.days), cross_fitted_weights(moments, counts)):
        rows = held.days == d
        expected = sum(wi * held.predictions[m][rows] for wi, m in zip(w, members))
        np.testing.assert_allclose(held.predictions["ensemble"][rows][held.mask[rows]],
                                   expected[held.mask[rows]], atol=1e-4)
    np.testing.assert_allclose(first.ensemble_weights,
                               simplex_weights(moments.sum(0) / counts.sum()))


@pytest.mark.slow
def test_auto_through_the_cli_fuses_with_the_chosen_method(simulated_tiny, tmp_path, capsys):
    from lst_pipeline.io.cube import open_cube

    data = config_dict(tmp_path, fusion={"method": "auto", "max_reference_gap_days": 32})
    data["inputs"]["stack"] = str(simulated_tiny.inputs.stack)
    data.pop("simulation")
    path = tmp_path / "auto.yaml"
    path.write_text(yaml.safe_dump(data))
    assert main(["run", str(path), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "fusion.method auto: " in out
    cube = open_cube(tmp_path / "cube.zarr")
    chosen = cube.attrs["lst_pipeline:auto"]["chosen"]
    assert cube.attrs["lst_pipeline:method"] == chosen
    assert set(cube.attrs["lst_pipeline:auto"]["scores"]) == {
        "dlstfm", "starfm", "gain_change", "reference_change", "ensemble"}
