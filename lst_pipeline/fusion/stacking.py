"""Weights of an ensemble of fusion methods from held-out residuals (numpy only, no I/O).

An ensemble's value is ``sum_i w_i p_i`` over its members' predictions ``p_i``, with
``w_i >= 0`` and ``sum_i w_i = 1`` (stacked regression, Breiman 1996, "Stacked
regressions", Machine Learning 24:49-64: non-negative weights, here on the simplex so that
the ensemble stays a weighted mean of temperatures). The weights minimise the mean squared
error of the combination on residuals of held-out Landsat dates
(:mod:`lst_pipeline.fusion.holdout`); they depend on the residuals only through their
``k x k`` second-moment matrix, accumulated per held-out date, so a date can be left out of
the fit by subtracting its part (:func:`cross_fitted_weights`).

Why a mean of methods helps at all: the methods' errors are partly independent (on the
independent test world the network's and STARFM's errors correlate at 0.72-0.80), so a
weighted mean has a smaller error than either; where one method is much better (the
network in the simulator's world) the fit gives it all the weight.
"""

from __future__ import annotations

from itertools import combinations

import numpy as np

#: Weights are rounded to this step (a cube records them; refitting the same stack on
#: another machine must give the same numbers).
WEIGHT_STEP = 1e-3


def date_moments(errors: list[np.ndarray], mask: np.ndarray, row_dates: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per held-out date, the members' error second moments summed over its pixels.

    Parameters
    ----------
    errors
        One ``(rows, ...)`` array per member: prediction minus held-out observation (K).
    mask
        ``(rows, ...)`` the pixels every member predicted and the observation saw.
    row_dates
        ``(rows,)`` the held-out date of each row.

    Returns
    -------
    dates, moments, counts
        The dates ``(D,)``, ``(D, k, k)`` sums of ``e_i e_j`` and ``(D,)`` pixel counts.
    """
    dates = np.unique(row_dates)
    k = len(errors)
    moments = np.zeros((len(dates), k, k))
    counts = np.zeros(len(dates), dtype=np.int64)
    for d, date in enumerate(dates):
        rows = row_dates == date
        e = np.stack([x[rows][mask[rows]].astype(np.float64) for x in errors])
        moments[d] = e @ e.T
        counts[d] = e.shape[1]
    return dates, moments, counts


def simplex_weights(moment: np.ndarray) -> np.ndarray:
    """The weights on the simplex minimising ``w' M w`` for a second-moment matrix ``M``.

    Exact: on every subset of members the minimum with the weights summing to 1 solves the
    Lagrange (KKT) system ``[2 M_S, 1; 1', 0] [w; l] = [0; 1]`` (``M_S^-1 1 / (1' M_S^-1 1)``
    where ``M_S`` is invertible; also right where errors are exactly collinear); the best
    subset whose weights are all non-negative wins (fewer members on a tie). Rounded to
    :data:`WEIGHT_STEP`, still summing to 1.
    """
    moment = np.asarray(moment, dtype=np.float64)
    k = len(moment)
    best, best_value = np.eye(k)[0], np.inf
    scale = max(float(np.trace(moment)) / k, 1e-300)
    for size in range(1, k + 1):
        for subset in combinations(range(k), size):
            idx = list(subset)
            sub = moment[np.ix_(idx, idx)] / scale
            kkt = np.block([[2 * sub, np.ones((size, 1))], [np.ones((1, size)), np.zeros((1, 1))]])
            w = np.linalg.lstsq(kkt, np.r_[np.zeros(size), 1.0], rcond=None)[0][:size]
            if (w < -1e-12).any():
                continue
            value = float(w @ sub @ w)
            if value < best_value * (1 - 1e-9):
                best_value = value
                best = np.zeros(k)
                best[idx] = np.clip(w, 0, None)
    return _rounded(best)


def _rounded(weights: np.ndarray) -> np.ndarray:
    """Weights on the :data:`WEIGHT_STEP` grid that still sum to 1 (largest takes the rest)."""
    steps = np.round(weights / WEIGHT_STEP).astype(np.int64)
    steps[np.argmax(steps)] += round(1 / WEIGHT_STEP) - steps.sum()
    return steps / round(1 / WEIGHT_STEP)  # exact decimals: 0.565, not 0.5650000000000001


def cross_fitted_weights(moments: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """``(D, k)``: each date's weights fitted on the other dates' residuals only.

    Raises
    ------
    ValueError
        With fewer than two dates (nothing to fit on once one is left out).
    """
    if len(moments) < 2:
        raise ValueError("cross-fitting ensemble weights needs at least two held-out dates")
    total, n = moments.sum(axis=0), counts.sum()
    return np.stack([simplex_weights((total - m) / max(n - c, 1))
                     for m, c in zip(moments, counts)])


def cross_fitted_predictions(predictions: list[np.ndarray], truth: np.ndarray,
                             mask: np.ndarray, row_dates: np.ndarray
                             ) -> tuple[np.ndarray, np.ndarray]:
    """Held-out predictions of the ensemble, and its weights fitted on every date.

    Each held-out date's prediction uses weights fitted on the other dates only, so that
    its error is an honest estimate, as for a single method; the weights a run uses are
    fitted on all dates.

    Parameters
    ----------
    predictions
        One ``(rows, ...)`` array of held-out predictions per member (K).
    truth, mask, row_dates
        The held-out observations, the pixels every member predicted, each row's date.

    Returns
    -------
    predictions, weights
        ``(rows, ...)`` float32 (NaN outside ``mask``, and everywhere with a single
        date) and ``(k,)``.
    """
    errors = [p - truth for p in predictions]
    dates, moments, counts = date_moments(errors, mask, row_dates)
    weights = simplex_weights(moments.sum(axis=0) / max(counts.sum(), 1))
    out = np.full(truth.shape, np.nan, dtype=np.float32)
    if len(dates) < 2:  # no date can be predicted by weights fitted without it
        return out, weights
    for date, w in zip(dates, cross_fitted_weights(moments, counts)):
        rows = row_dates == date
        out[rows] = np.where(mask[rows], combine([p[rows] for p in predictions], w), np.nan)
    return out, weights


def combine(predictions: list[np.ndarray | None], weights: np.ndarray) -> np.ndarray:
    """``sum_i w_i p_i`` in float32; NaN where a member with weight > 0 has none."""
    out = None
    for p, w in zip(predictions, weights):
        if w > 0:
            term = np.float32(w) * np.asarray(p, dtype=np.float32)
            out = term if out is None else out + term
    if out is None:
        raise ValueError("an ensemble needs at least one member with a weight above 0")
    return out
