"""Choosing a method by leave-one-date-out MAE, and how sure the choice is."""

import numpy as np
import pytest

from lst_pipeline.fusion.selection import choose, compare, per_date_mae

CANDIDATES = ("dlstfm", "starfm", "reference_change")


def test_per_date_mae_pools_a_dates_windows_and_skips_empty_dates():
    d1, d2, d3 = np.array(["2020-01-01", "2020-01-17", "2020-02-02"], "datetime64[D]")
    errors = np.array([[[1.0, -3.0]], [[2.0, np.nan]], [[5.0, 5.0]], [[-4.0, 0.0]]])
    mask = np.isfinite(errors)
    mask[2] = False  # d2's only row saw nothing
    dates, mae = per_date_mae(errors, mask, np.array([d1, d1, d2, d3]))
    assert list(dates) == [d1, d3]
    np.testing.assert_allclose(mae, [(1 + 3 + 2) / 3, 2.0])


def test_a_consistent_gain_is_beyond_the_spread_and_a_noisy_one_is_not():
    other = np.array([2.0, 2.5, 1.8, 3.0, 2.2, 2.7, 1.9, 2.4])
    consistent = other - np.array([0.10, 0.12, 0.08, 0.11, 0.09, 0.13, 0.10, 0.07])
    # the same mean gain (0.1 K), but the dates disagree on the sign
    noisy = other - np.array([0.9, -0.7, 0.8, -0.6, 0.7, -0.8, 0.5, 0.0])
    good, bad = compare(consistent, other), compare(noisy, other)
    assert good.better and good.mean_difference_k == pytest.approx(-0.1)
    assert not bad.better and bad.mean_difference_k == pytest.approx(-0.1)
    assert bad.standard_error_k > good.standard_error_k > 0
    # by hand: t = 0.1 / (sd / sqrt(8)) against t(7, 0.95) = 1.895
    d = noisy - other
    assert bad.standard_error_k == pytest.approx(d.std(ddof=1) / np.sqrt(8))
    assert 0.1 / bad.standard_error_k < 1.895 < 0.1 / good.standard_error_k
    assert not compare(other + 0.1, other).better  # worse is never better


def test_one_date_tells_nothing():
    c = compare(np.array([1.0]), np.array([3.0]))
    assert not c.better and c.dates == 1 and np.isnan(c.standard_error_k)
    assert c.as_attrs()["standard_error_k"] is None


def test_choose_takes_the_lowest_mae_and_the_earlier_on_a_tie():
    per_date = {"dlstfm": np.array([2.0, 2.6, 2.4]), "starfm": np.array([2.2, 2.3, 2.4]),
                "reference_change": np.array([2.1, 2.2, 2.3])}
    best, against = choose(CANDIDATES, {"dlstfm": 2.5, "starfm": 2.3,
                                        "reference_change": 2.2}, per_date)
    assert best == "reference_change" and set(against) == {"dlstfm", "starfm"}
    # how sure: reference_change against each other, by the per-date MAE
    assert against["starfm"] == compare(per_date["reference_change"], per_date["starfm"])
    assert against["starfm"].mean_difference_k == pytest.approx(-0.1)
    assert against["starfm"].standard_error_k == pytest.approx(0.0, abs=1e-12)
    best, _ = choose(CANDIDATES, {"dlstfm": 2.3, "starfm": 2.3, "reference_change": 2.4},
                     per_date)
    assert best == "dlstfm"
