"""Ensemble weights from held-out residuals: least squares on the simplex."""

import itertools

import numpy as np
import pytest

from lst_pipeline.fusion.stacking import (
    WEIGHT_STEP,
    combine,
    cross_fitted_predictions,
    cross_fitted_weights,
    date_moments,
    simplex_weights,
)


def test_independent_errors_are_weighted_by_their_inverse_variance():
    # errors of variance 1 and 4, uncorrelated: w = (1/1, 1/4) / (5/4) = (0.8, 0.2)
    np.testing.assert_allclose(simplex_weights(np.diag([1.0, 4.0])), [0.8, 0.2])
    # the same, on sampled residuals: close to the theory, exactly on the rounding grid
    rng = np.random.default_rng(0)
    e = np.stack([rng.normal(0, 1, 200_000), rng.normal(0, 2, 200_000)])
    w = simplex_weights(e @ e.T / e.shape[1])
    np.testing.assert_allclose(w, [0.8, 0.2], atol=0.01)
    assert w.sum() == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_allclose(w / WEIGHT_STEP, np.round(w / WEIGHT_STEP), atol=1e-9)


def test_a_member_that_only_adds_noise_gets_no_weight():
    rng = np.random.default_rng(1)
    base = rng.normal(0, 1, 100_000)
    e = np.stack([base, base + rng.normal(0, 0.5, base.size)])
    np.testing.assert_array_equal(simplex_weights(e @ e.T / base.size), [1.0, 0.0])


@pytest.mark.parametrize("seed", [2, 3, 4])
def test_the_weights_are_the_best_point_of_the_simplex(seed):
    rng = np.random.default_rng(seed)
    mix = rng.normal(size=(3, 3)) + np.eye(3) * rng.uniform(0, 2, 3)
    e = mix @ rng.normal(size=(3, 5000))  # correlated errors, some weights on the boundary
    moment = e @ e.T / e.shape[1]
    w = simplex_weights(moment)
    assert (w >= 0).all() and w.sum() == pytest.approx(1.0)
    grid = [np.array([a, b, 1 - a - b]) for a, b in itertools.product(
        np.linspace(0, 1, 201), repeat=2) if a + b <= 1 + 1e-12]
    best = min(g @ moment @ g for g in grid)
    assert w @ moment @ w <= best * (1 + 1e-3)  # no grid point beats it (up to rounding)


def test_each_date_is_weighted_by_the_other_dates_only():
    rng = np.random.default_rng(5)
    truth = rng.normal(300, 5, (6, 16, 16)).astype(np.float32)
    preds = [truth + rng.normal(0, s, truth.shape).astype(np.float32) for s in (1.0, 2.0, 1.5)]
    mask = np.ones(truth.shape, bool)
    mask[:, 0] = False
    days = np.repeat(np.array(["2021-01-01", "2021-01-17", "2021-02-02"], "datetime64[D]"), 2)
    pred, weights = cross_fitted_predictions(preds, truth, mask, days)
    assert np.isnan(pred[~mask]).all() and np.isfinite(pred[mask]).all()
    errors = [p - truth for p in preds]
    _, moments, counts = date_moments(errors, mask, days)
    per_date = cross_fitted_weights(moments, counts)
    np.testing.assert_allclose(weights, simplex_weights(moments.sum(0) / counts.sum()))
    for d, day in enumerate(np.unique(days)):
        rows = days == day
        expected = sum(w * p[rows] for w, p in zip(per_date[d], preds))
        np.testing.assert_allclose(pred[rows][mask[rows]], expected[mask[rows]], atol=1e-4)
    # changing a date's own errors leaves its weights (fitted on the others) bit-identical
    changed = [p.copy() for p in preds]
    changed[0][days == days[0]] += 3.0
    _, m2, c2 = date_moments([p - truth for p in changed], mask, days)
    again = cross_fitted_weights(m2, c2)
    np.testing.assert_array_equal(again[0], per_date[0])
    assert not np.array_equal(again[1], per_date[1])


def test_one_date_gives_weights_but_no_honest_prediction():
    truth = np.full((1, 4, 4), 290.0, np.float32)
    preds = [truth + 1, truth - 2]
    pred, weights = cross_fitted_predictions(preds, truth, np.ones(truth.shape, bool),
                                             np.array(["2021-01-01"], "datetime64[D]"))
    assert np.isnan(pred).all()
    # errors +1 and -2 everywhere: 2/3 and 1/3 cancel them exactly
    np.testing.assert_allclose(weights, [0.667, 0.333])
    with pytest.raises(ValueError, match="two held-out dates"):
        cross_fitted_weights(np.zeros((1, 2, 2)), np.array([16]))


def test_combine_is_the_weighted_mean_and_skips_members_without_weight():
    a = np.array([300.0, np.nan, 290.0], np.float32)
    b = np.array([302.0, 280.0, np.nan], np.float32)
    np.testing.assert_allclose(combine([a, b], np.array([0.25, 0.75])),
                               [301.5, np.nan, np.nan])
    np.testing.assert_array_equal(combine([a, None], np.array([1.0, 0.0])), a)
    with pytest.raises(ValueError, match="at least one member"):
        combine([a, b], np.array([0.0, 0.0]))
