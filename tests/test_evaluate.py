import numpy as np
import pytest

from lst_pipeline.evaluate import Scores, scores


def test_scores_against_hand_computed_values():
    prediction = np.array([301.0, 299.0, 302.0, np.nan, 300.0])
    reference = np.array([300.0, 300.0, 300.0, 300.0, np.nan])
    s = scores(prediction, reference)  # errors +1, -1, +2 over 3 pixels
    assert s.n == 3
    assert s.mae_k == pytest.approx(4 / 3)
    assert s.rmse_k == pytest.approx(np.sqrt(6 / 3))
    assert s.bias_k == pytest.approx(2 / 3)
    masked = scores(prediction, reference, mask=np.array([True, True, False, True, True]))
    assert (masked.n, masked.mae_k, masked.bias_k) == (2, 1.0, 0.0)
    empty = Scores.from_sums(0, 0, 0, 0)
    assert empty.n == 0 and np.isnan(empty.mae_k)
    assert "MAE 1.33 K" in str(s)


def test_metrics_against_hand_computed_values():
    from lst_pipeline.evaluate import metrics

    prediction = 300 + np.array([1.0, 2.0, 3.0, 5.0, np.nan, 9.0])
    reference = 300 + np.array([1.0, 2.0, 4.0, 4.0, 7.0, np.nan])
    m = metrics(prediction, reference, spatial=False)  # errors 0, 0, -1, +1
    assert m.n == 4
    assert m.mae_k == pytest.approx(0.5)
    assert m.bias_k == pytest.approx(0.0)
    assert m.rmse_k == pytest.approx(np.sqrt(0.5))
    assert m.ubrmse_k == pytest.approx(np.sqrt(0.5))
    # reference anomalies -1.75 -0.75 1.25 1.25 (SST 6.75); prediction -1.75 -0.75 0.25 2.25
    assert m.r == pytest.approx(6.75 / np.sqrt(8.75 * 6.75))
    assert m.r2 == pytest.approx(1 - 2 / 6.75)
    assert m.psnr_db == pytest.approx(10 * np.log10(50.0**2 / 0.5))
    assert np.isnan(m.ssim)
    biased = metrics(prediction + 2.0, reference, spatial=False)
    assert biased.bias_k == pytest.approx(2.0)
    assert biased.ubrmse_k == pytest.approx(np.sqrt(0.5))  # the offset is not in ubRMSE
    assert biased.rmse_k == pytest.approx(np.sqrt(0.5 + 4.0))
    only_two = metrics(prediction, reference, mask=np.array([1, 1, 0, 0, 1, 1], bool),
                       spatial=False)
    assert (only_two.n, only_two.mae_k) == (2, 0.0)
    assert metrics(prediction, reference + np.nan).n == 0


def test_ssim_of_constant_images_and_gaps():
    from lst_pipeline.evaluate import metrics, ssim_map

    a = np.full((6, 7), 300.0)
    c1 = (0.01 * 50) ** 2
    expected = (2 * 300 * 302 + c1) / (300**2 + 302**2 + c1)  # no variance: luminance only
    np.testing.assert_allclose(ssim_map(a + 2, a, data_range=50), expected, rtol=1e-9)
    rng = np.random.default_rng(0)
    texture = 300 + 5 * rng.random((12, 12))
    with_gap = texture.copy()
    with_gap[:3, :3] = np.nan  # gaps do not leak into their neighbours' statistics
    s = ssim_map(with_gap, texture)
    assert np.isnan(s[:3, :3]).all() and np.allclose(s[np.isfinite(s)], 1.0)
    assert metrics(with_gap, texture).ssim == pytest.approx(1.0)
    noisy = metrics(texture + rng.normal(0, 2, texture.shape), texture)
    assert 0 < noisy.ssim < 0.99


def test_grouped_metrics_by_day_class_and_edge():
    from lst_pipeline.evaluate import grouped_metrics

    truth = np.full((2, 4, 6), 300.0)
    land_cover = np.zeros((4, 6), int)
    land_cover[:, 3:] = 1  # columns 2 and 3 are edge pixels
    prediction = truth.copy()
    prediction[0] += 1.0
    prediction[1, :, 3:] -= 2.0
    mask = np.ones(truth.shape, bool)
    mask[1, 0, 0] = False
    g = grouped_metrics(prediction, truth, mask, land_cover=land_cover,
                        class_names={0: "crop", 1: "water"})
    assert g["overall"]["all"].n == 47
    assert g["day"][0].mae_k == pytest.approx(1.0) and g["day"][0].bias_k == pytest.approx(1.0)
    assert g["day"][1].mae_k == pytest.approx(24 / 23)  # 12 pixels off by 2 of 23
    assert g["class"]["crop"].n == 23 and g["class"]["water"].n == 24
    assert g["class"]["water"].bias_k == pytest.approx(-0.5)
    assert g["edge"]["edge"].n == 16 and g["edge"]["interior"].n == 31


def test_evaluate_command_writes_a_report(simulated_tiny, tmp_path, capsys):
    import yaml

    from conftest import config_dict
    from lst_pipeline.cli import main

    data = config_dict(simulated_tiny.inputs.stack.parent)
    data["fusion"]["starfm"] = {"window": 9}
    data["fusion"]["ubestarfm"] = {"window": 9}
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(data))
    out = tmp_path / "report"
    assert main(["evaluate", str(path), "--out", str(out), "--methods", "reference_change",
                 "starfm", "ubestarfm", "modis_only"]) == 0
    text = (out / "report.md").read_text()
    assert "| `starfm` |" in text and "MAE (K)" in text and "by edge" in text
    assert "## Calibration of lst_uncertainty" in text
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 4  # maps, scatter, errors, reliability
    printed, calibrated = capsys.readouterr().out.split("calibration of lst_uncertainty")
    rows = {line.split("|")[1].strip(" `"): float(line.split("|")[2])
            for line in printed.splitlines() if line.startswith("| `")}
    within = {line.split("|")[1].strip(" `"): float(line.split("|")[3])
              for line in calibrated.splitlines() if line.startswith("| `")}
    assert set(within) == {"reference_change", "starfm", "ubestarfm", "modis_only"}
    assert all(0.5 < w < 0.85 for w in within.values())  # against the truth
    # the simulated MODIS is 1 km-blurred and offset: fine detail from a reference must win
    assert rows["reference_change"] < rows["modis_only"] - 1.0
    assert rows["starfm"] < rows["modis_only"] - 1.0
    missing = tmp_path / "missing.yaml"
    data["simulation"]["truth"] = str(tmp_path / "nowhere.zarr")
    missing.write_text(yaml.safe_dump(data))
    assert main(["evaluate", str(missing), "--out", str(out), "--against", "truth"]) == 2
    assert "nowhere.zarr: evaluate needs the simulated truth store" in capsys.readouterr().err


def test_leave_one_date_out_hides_each_date_and_scores_against_it(simulated_tiny, tmp_path):
    import dataclasses

    from lst_pipeline.evaluate import compare_methods_holdout, write_report
    from lst_pipeline.grid import Window
    from lst_pipeline.io.stack import StackReader

    config = dataclasses.replace(simulated_tiny, simulation=None)  # as for a real stack
    c = compare_methods_holdout(config, ("reference_change", "modis_only"),
                                min_clear_fraction=0.2, log=lambda _m: None)
    reader = StackReader(config.inputs.stack)
    assert len(c.days) >= 2
    for i, day in enumerate(c.days):
        index = list(reader.landsat_dates.astype("datetime64[D]")).index(day)
        observed = reader.read_landsat(np.array([index]), Window(0, 128, 0, 128))[0]
        np.testing.assert_array_equal(c.truth[i], observed)  # compared with the hidden date
    assert (c.reference_age[c.mask] > 0).all()  # ... which was never its own reference
    rc = c.groups["reference_change"]["overall"]["all"]
    mo = c.groups["modis_only"]["overall"]["all"]
    assert rc.n == mo.n == c.mask.sum() > 1000
    assert rc.mae_k < mo.mae_k - 1.0 and rc.mae_k < 2.5
    out = write_report(c, tmp_path / "holdout")
    text = (out / "report.md").read_text()
    assert "leave-one-date-out" in text
    # the dates are the samples: modis_only's per-date MAE minus reference_change's
    per_date = {}
    for m in ("reference_change", "modis_only"):
        per_date[m] = [np.abs((c.predictions[m] - c.truth)[i][c.mask[i]]).mean()
                       for i in range(len(c.days))]
    d = np.array(per_date["modis_only"]) - np.array(per_date["reference_change"])
    se = d.std(ddof=1) / np.sqrt(len(d))
    assert f"| `modis_only` | {mo.mae_k:.3f} | {d.mean():+.3f} +- {se:.3f} |" in text


def test_leave_one_date_out_scores_an_ensemble_by_weights_fitted_on_the_other_dates(
        simulated_tiny):
    import dataclasses

    from lst_pipeline.evaluate import compare_methods_holdout
    from lst_pipeline.fusion.stacking import cross_fitted_weights, date_moments

    members = ("reference_change", "modis_only")
    fusion = dataclasses.replace(simulated_tiny.fusion, ensemble=dataclasses.replace(
        simulated_tiny.fusion.ensemble, members=members))
    config = dataclasses.replace(simulated_tiny, simulation=None, fusion=fusion)
    c = compare_methods_holdout(config, ("ensemble", "reference_change"),
                                min_clear_fraction=0.2, log=lambda _m: None)
    assert list(c.predictions) == list(c.groups) == ["ensemble", "reference_change"]
    both = compare_methods_holdout(config, members, min_clear_fraction=0.2,
                                   log=lambda _m: None)
    np.testing.assert_array_equal(both.mask, c.mask)
    _, moments, counts = date_moments([both.predictions[m] - both.truth for m in members],
                                      both.mask, both.days)
    assert len(counts) >= 2
    for i, w in enumerate(cross_fitted_weights(moments, counts)):
        expected = w[0] * both.predictions[members[0]][i] + w[1] * both.predictions[members[1]][i]
        np.testing.assert_allclose(c.predictions["ensemble"][i][c.mask[i]],
                                   expected[c.mask[i]], atol=1e-4)
    assert c.groups["ensemble"]["overall"]["all"].n == c.mask.sum() > 1000
