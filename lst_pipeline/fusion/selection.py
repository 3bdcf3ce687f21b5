"""Choosing a fusion method from leave-one-date-out errors (numpy/scipy only, no I/O).

``fusion.method: auto`` scores each candidate on a handful of held-out Landsat dates. The
pixels of one date share its weather, its MODIS view and its reference, so the dates, not
the pixels, are the independent samples: two methods whose pooled MAE differs by 1 % can
swap places from one set of dates to another, and from held-out dates to the days a run
fuses. The first candidate (``dlstfm``, the default method) is therefore kept unless another
is better on the held-out dates beyond their date-to-date spread: a one-sided paired
t-test of the per-date MAE differences at :data:`SIGNIFICANCE` (:func:`compare_to_default`).
Among the candidates that pass, the one with the lowest pooled MAE is chosen.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

Method = TypeVar("Method", bound=str)

#: One-sided level of the paired test a candidate must pass to replace the default.
SIGNIFICANCE = 0.05


@dataclass(frozen=True)
class Comparison:
    """A candidate against the default method on the held-out dates.

    Attributes
    ----------
    mean_difference_k
        Mean over dates of the candidate's MAE minus the default's (K; negative: better).
    standard_error_k
        Its standard error from the spread over dates (K; NaN with fewer than 2 dates).
    dates
        Held-out dates both were scored on.
    better
        Whether the candidate is better beyond the spread (one-sided paired t-test at
        :data:`SIGNIFICANCE`).
    """

    mean_difference_k: float
    standard_error_k: float
    dates: int
    better: bool

    def as_attrs(self) -> dict:
        """Plain JSON data for the cube's provenance."""
        se = self.standard_error_k
        return {"mean_mae_difference_k": self.mean_difference_k,
                "standard_error_k": se if np.isfinite(se) else None,
                "dates": self.dates, "better_than_default": self.better}


def per_date_mae(errors: np.ndarray, mask: np.ndarray, row_dates: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray]:
    """MAE per held-out date of ``errors`` ``(rows, y, x)`` where ``mask``.

    Rows of one date (its windows) are pooled. Returns the dates with at least one pixel
    (sorted) and their MAE (K, float64).
    """
    dates = np.unique(row_dates)
    mae = np.full(len(dates), np.nan)
    for i, date in enumerate(dates):
        rows = row_dates == date
        e = errors[rows][mask[rows]]
        if e.size:
            mae[i] = float(np.abs(e.astype(np.float64)).mean())
    kept = np.isfinite(mae)
    return dates[kept], mae[kept]


def compare_to_default(default_mae: np.ndarray, candidate_mae: np.ndarray,
                       significance: float = SIGNIFICANCE) -> Comparison:
    """Whether a candidate beats the default, by per-date MAE ``(dates,)`` of each.

    A one-sided paired t-test: the candidate is better when the mean difference is below
    zero by more than the t quantile times its standard error. With fewer than 2 dates
    nothing can be told from the spread, and the default is kept.
    """
    from scipy.stats import t as student_t

    d = np.asarray(candidate_mae, np.float64) - np.asarray(default_mae, np.float64)
    n = d.size
    mean = float(d.mean()) if n else float("nan")
    if n < 2:
        return Comparison(mean, float("nan"), n, False)
    se = float(d.std(ddof=1) / np.sqrt(n))
    bound = mean + float(student_t.ppf(1 - significance, n - 1)) * se
    return Comparison(mean, se, n, bool(bound < 0))


def choose(candidates: tuple[Method, ...], pooled_mae: Mapping[str, float],
           comparisons: Mapping[str, Comparison]) -> Method:
    """The default (first candidate) unless others beat it; then the best of those.

    ``comparisons`` holds every candidate but the first; the lowest ``pooled_mae`` wins
    among those that are better, ties going to the earlier candidate.
    """
    better = [m for m in candidates[1:] if comparisons[m].better]
    if not better:
        return candidates[0]
    return min(better, key=lambda m: (pooled_mae[m], candidates.index(m)))
