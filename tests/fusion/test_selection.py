"""Choosing a method by per-date leave-one-date-out MAE: the default unless beaten."""

import numpy as np
import pytest

from lst_pipeline.fusion.selection import choose, compare_to_default, per_date_mae

CANDIDATES = ("dlstfm", "starfm", "reference_change")


def test_per_date_mae_pools_a_dates_windows_and_skips_empty_dates():
    d1, d2, d3 = np.array(["2020-01-01", "2020-01-17", "2020-02-02"], "datetime64[D]")
    errors = np.array([[[1.0, -3.0]], [[2.0, np.nan]], [[5.0, 5.0]], [[-4.0, 0.0]]])
    mask = np.isfinite(errors)
    mask[2] = False  # d2's only row saw nothing
    dates, mae = per_date_mae(errors, mask, np.array([d1, d1, d2, d3]))
    assert list(dates) == [d1, d3]
    np.testing.assert_allclose(mae, [(1 + 3 + 2) / 3, 2.0])


def test_a_consistent_gain_replaces_the_default_and_a_noisy_one_does_not():
    default = np.array([2.0, 2.5, 1.8, 3.0, 2.2, 2.7, 1.9, 2.4])
    consistent = default - np.array([0.10, 0.12, 0.08, 0.11, 0.09, 0.13, 0.10, 0.07])
    # the same mean gain (0.1 K), but the dates disagree on the sign
    noisy = default - np.array([0.9, -0.7, 0.8, -0.6, 0.7, -0.8, 0.5, 0.0])
    good = compare_to_default(default, consistent)
    bad = compare_to_default(default, noisy)
    assert good.better and good.mean_difference_k == pytest.approx(-0.1)
    assert not bad.better and bad.mean_difference_k == pytest.approx(-0.1)
    assert bad.standard_error_k > good.standard_error_k > 0
    # a worse candidate is never better, however consistent
    assert not compare_to_default(default, default + 0.1).better


def test_one_date_keeps_the_default():
    c = compare_to_default(np.array([3.0]), np.array([1.0]))
    assert not c.better and c.dates == 1 and np.isnan(c.standard_error_k)
    assert c.as_attrs()["standard_error_k"] is None


def test_choose_keeps_the_default_unless_beaten_then_takes_the_best_that_beat_it():
    default = np.linspace(2.0, 3.0, 6)
    mae = {"dlstfm": 2.5, "starfm": 2.3, "reference_change": 2.2}
    comps = {"starfm": compare_to_default(default, default - 0.2),
             "reference_change": compare_to_default(default, default + [-1, 1] * 3)}
    assert comps["starfm"].better and not comps["reference_change"].better
    # reference_change has the lowest MAE but is not better beyond the spread
    assert choose(CANDIDATES, mae, comps) == "starfm"
    comps["starfm"] = compare_to_default(default, default + [-0.5, 0.4] * 3)
    assert choose(CANDIDATES, mae, comps) == "dlstfm"
    comps = {m: compare_to_default(default, default - 0.3) for m in CANDIDATES[1:]}
    assert choose(CANDIDATES, {**mae, "reference_change": 2.3}, comps) == "starfm"  # tie
