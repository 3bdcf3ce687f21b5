"""The error model behind lst_uncertainty: fitting, calibration, recording."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from lst_pipeline.evaluate.calibration import (
    CalibrationSample,
    calibration,
    cross_validated_sigma,
)
from lst_pipeline.fusion.error_model import (
    AGE_SPLIT_DAYS,
    FEATURES,
    RAW,
    ErrorModel,
    design,
    fit_error_model,
    reference_cell_stats,
    within,
)


def synthetic_residuals(n: int, seed: int, coef: np.ndarray | None = None):
    """Raw features and Gaussian errors whose sigma follows a known log-linear model."""
    rng = np.random.default_rng(seed)
    raw = np.stack([
        rng.integers(1, 49, n).astype(float),           # age (days)
        rng.gamma(2.0, 1.0, n),                          # MODIS change (K)
        rng.gamma(2.0, 0.5, n),                          # sub-cell spread (K)
        rng.uniform(0, 0.5, n),                          # cloud fraction
        np.where(rng.random(n) < 0.4, np.nan, rng.gamma(2.0, 0.7, n)),  # disagreement
        rng.integers(0, 2, n).astype(float),             # MODIS error class
        np.zeros(n),                                     # gap filled: never here
        rng.gamma(1.5, 1.0, n),                          # MODIS departure (K)
    ])
    if coef is None:
        coef = np.array([-1.0, 0.3, 0.2, 0.4, 0.5, 0.6, 0.5, 0.3, 0.0, 0.4])
    sigma = np.exp(0.5 * design(raw) @ coef)
    return raw, rng.standard_normal(n) * sigma, sigma


def test_fit_recovers_a_known_model_and_is_calibrated_on_new_data():
    raw, err, _ = synthetic_residuals(40_000, seed=1)
    model = fit_error_model(raw, err, "starfm")
    assert len(model.coefficients) == 1 + len(FEATURES)
    truth = np.array([-1.0, 0.3, 0.2, 0.4, 0.5, 0.6, 0.5, 0.3, 0.0, 0.4])
    assert np.allclose(model.coefficients[1:], truth[1:], atol=0.12)
    # a feature that never varies stays out
    assert model.coefficients[1 + FEATURES.index("modis_gap_filled")] == 0.0
    # the Student-t fit's scale sits below a Gaussian's sigma by one factor, which the tail
    # scale makes up: alike in both age classes, and the intercept comes out right with it
    assert 1.1 < model.scale < 1.3 and abs(model.old_scale - model.scale) < 0.05
    assert model.coefficients[0] + 2 * np.log(model.scale) == pytest.approx(-1.0, abs=0.12)
    raw2, err2, sigma_true = synthetic_residuals(40_000, seed=2)
    sigma = model.sigma(raw2)
    assert within(err2, sigma) == pytest.approx(0.683, abs=0.015)
    assert within(err2, sigma, 2) == pytest.approx(0.954, abs=0.01)
    assert np.median(np.abs(sigma / sigma_true - 1)) < 0.1


def test_fit_is_deterministic_and_round_trips_through_the_cube_attributes():
    raw, err, _ = synthetic_residuals(5_000, seed=3)
    a = fit_error_model(raw, err, "dlstfm", info={"held_out_dates": ["2021-01-01"]})
    b = fit_error_model(raw, err, "dlstfm", info={"held_out_dates": ["2021-01-01"]})
    assert a.coefficients == b.coefficients and a.scale == b.scale
    back = ErrorModel.from_attrs(a.as_attrs())
    assert back == a and back.fitted == a.fitted
    assert np.array_equal(back.sigma(raw), a.sigma(raw))


def test_heavy_tails_are_calibrated_by_the_scale():
    raw, _, sigma = synthetic_residuals(40_000, seed=4)
    rng = np.random.default_rng(5)
    laplace = rng.laplace(0, sigma / np.sqrt(2))  # same variance, heavier tails
    model = fit_error_model(raw, laplace, "starfm")
    gaussian = fit_error_model(raw, rng.normal(0, sigma), "starfm")
    s = model.sigma(raw)
    # peaked errors get a smaller t scale for the same variance; the tail scale makes it up
    assert model.scale > gaussian.scale + 0.05
    assert 0.62 <= within(laplace, s) <= 0.74
    assert 0.92 <= within(laplace, s, 2)


def test_an_older_reference_is_never_predicted_better():
    raw, err, _ = synthetic_residuals(20_000, seed=6,
                                      coef=np.array([0.0, -0.5, 0.2, 0.4, 0, 0, 0, 0, 0, 0]))
    model = fit_error_model(raw, err, "starfm")
    assert model.coefficients[1 + FEATURES.index("log_age")] == 0.0


def test_sigma_is_nan_without_features_and_clipped():
    model = ErrorModel("starfm", (100.0,) + (0.0,) * len(FEATURES))
    raw = np.full((len(RAW), 3), 1.0)
    raw[0, 1] = np.nan
    sigma = model.sigma(raw)
    assert np.isnan(sigma[1]) and sigma[0] == sigma[2] == np.float32(50.0)


def test_reference_cell_stats_per_coarse_cell():
    fine = np.zeros((1, 4, 4), np.float32)
    fine[0, :2, :2] = [[300, 302], [300, 302]]  # spread 1 K
    clear = np.ones(fine.shape, bool)
    clear[0, 2:, 2:] = [[False, True], [True, True]]  # one of four cloudy
    std, cloud = reference_cell_stats(fine, clear, 2)
    assert std[0, 0, 0] == pytest.approx(1.0) and std[0, 0, 3] == 0.0
    assert cloud[0, 3, 3] == pytest.approx(0.25) and cloud[0, 0, 0] == 0.0


def test_calibration_by_age_class_and_cross_validation_by_date():
    raw, err, sigma = synthetic_residuals(30_000, seed=7)
    cal = calibration(err, sigma, raw[0])
    assert cal.overall.within_1 == pytest.approx(0.683, abs=0.015)
    assert cal.overall.spearman > 0.1  # Gaussian errors: |e| is a noisy rank of sigma
    assert set(cal.by_age) == {"0-4", "5-8", "9-16", "17-48"}
    assert sum(c.n for c in cal.by_age.values()) == cal.overall.n
    rows = np.arange(len(err)) % 3  # three "dates"
    cv = cross_validated_sigma(raw, err, rows, "starfm")
    assert np.isfinite(cv).all()
    assert within(err, cv) == pytest.approx(0.683, abs=0.02)


def test_features_outside_the_fitted_range_are_clamped_not_extrapolated():
    raw, err, _ = synthetic_residuals(20_000, seed=10,
                                      coef=np.array([-2.0, 1.5, 0.2, 0.4, 0, 0, 0, 0, 0, 0]))
    keep = raw[0] >= 16  # leave-one-date-out sees ages of a revisit interval and more
    model = fit_error_model(raw[:, keep], err[keep], "dlstfm")
    assert model.coefficients[1] > 1.0  # a steep age slope, learnt on 16 to 48 days
    young, at_16 = raw[:, :1].copy(), raw[:, :1].copy()
    young[0], at_16[0] = 1.0, 16.0
    assert model.sigma(young)[0] == model.sigma(at_16)[0]
    lo, hi = model.ranges[0]
    assert lo == pytest.approx(np.log1p(16)) and hi == pytest.approx(np.log1p(48))


def test_the_held_out_observations_error_is_taken_out_of_a_fused_values_sigma():
    raw, err, _ = synthetic_residuals(40_000, seed=11)
    rng = np.random.default_rng(12)
    q = 0.8  # the hidden observation's own error, as its ST_QA says
    residuals = err + rng.normal(0, q, err.shape)
    model = fit_error_model(raw, residuals, "starfm", observation_k=q)
    naive = fit_error_model(raw, residuals, "starfm")
    assert model.observation_k == q and naive.observation_k == 0.0
    raw2, err2, _ = synthetic_residuals(40_000, seed=13)  # fused values: no hidden observation
    assert within(err2, model.sigma(raw2)) == pytest.approx(0.683, abs=0.02)
    assert within(err2, naive.sigma(raw2)) > 0.70  # the observation's error widened it
    residuals2 = err2 + rng.normal(0, q, err2.shape)
    assert within(residuals2, model.residual_sigma(raw2)) == pytest.approx(0.683, abs=0.02)
    assert float(np.min(model.sigma(raw2))) >= np.float32(q)  # never below the reference's
    back = ErrorModel.from_attrs(model.as_attrs())
    assert back == model and np.array_equal(back.sigma(raw2), model.sigma(raw2))


def test_one_tail_scale_keeps_both_age_classes_in_the_bands_and_old_models_keep_two():
    raw, _, sigma = synthetic_residuals(60_000, seed=14)
    rng = np.random.default_rng(15)
    old = raw[0] > AGE_SPLIT_DAYS
    err = np.where(old, rng.laplace(0, sigma / np.sqrt(2)), rng.normal(0, sigma))
    model = fit_error_model(raw, err, "starfm")
    assert model.old_scale == model.scale
    s = model.sigma(raw)
    for part in (old, ~old):  # heavier tails with old references, and still in the bands
        assert 0.62 <= within(err[part], s[part]) <= 0.74
        assert 0.92 <= within(err[part], s[part], 2) <= 0.97
    # a model of an earlier version (a cube being resumed) keeps its factor per age class
    attrs = {**model.as_attrs(), "coefficients": [0.0] * (1 + len(FEATURES)),
             "scale": 1.0, "scale_old": 2.0}
    earlier = ErrorModel.from_attrs(attrs)
    raw2 = np.array([[10.0, 20.0]] + [[1.0, 1.0]] * (len(raw) - 1))
    assert np.allclose(earlier.sigma(raw2), [1.0, 2.0])
    legacy = {k: v for k, v in attrs.items() if k not in ("scale_old", "observation_k")}
    assert ErrorModel.from_attrs(legacy).old_scale == 1.0  # cubes from before either


def test_a_model_from_before_the_modis_departure_reads_as_one_without_it():
    # a cube being resumed keeps the model it was started with: 8 features, no departure
    raw, err, _ = synthetic_residuals(5_000, seed=16)
    model = fit_error_model(raw, err, "starfm")
    assert model.coefficients[1 + FEATURES.index("log_modis_departure")] > 0.2
    attrs = model.as_attrs()
    earlier = ErrorModel.from_attrs({**attrs, "coefficients": attrs["coefficients"][:-1],
                                     "ranges": attrs["ranges"][:-1]})
    without = dataclasses.replace(model, coefficients=(*model.coefficients[:-1], 0.0))
    np.testing.assert_array_equal(earlier.sigma(raw), without.sigma(raw))
    assert not np.array_equal(earlier.sigma(raw), model.sigma(raw))


def test_a_calibration_sample_weighs_every_pixel_day_alike_whichever_block_it_is_in():
    # block 1: 100,000 values all within 1 sigma; block 2: 10,000 values all outside.
    # The truth: 100,000 / 110,000 within. A cap per block (the old sample) said 0.5.
    full, sparse = np.full((10, 100, 100), 0.5), np.full((10, 100, 100), np.nan)
    sparse[:1] = 3.0
    sample = CalibrationSample.for_size(2 * full.size, most=20_000)
    assert sample.every == 10
    for errors in (full, sparse):
        sample.add(errors, np.ones_like(errors), np.full(errors.shape, 3.0),
                   np.full(errors.shape, 1, np.uint8))
    cal = sample.calibration()["all"].overall
    assert cal.n == 11_000
    assert cal.within_1 == pytest.approx(100_000 / 110_000)
    # the stride carries across blocks: 7 + 7 values with every=5 keep 2 + 1 (not 2 + 2)
    small = CalibrationSample(every=5)
    for _ in range(2):
        small.add(np.zeros(7), np.ones(7), np.zeros(7), np.ones(7, np.uint8))
    assert small.calibration()["all"].overall.n == 3
    with pytest.raises(ValueError, match="every"):
        CalibrationSample(every=0)
