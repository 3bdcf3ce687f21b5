"""Choosing a fusion method from leave-one-date-out errors, and how sure the choice is.

``fusion.method: auto`` scores each candidate on a handful of held-out Landsat dates and
takes the lowest MAE over their pixels (:func:`choose`). The pixels of one date share its
weather, its MODIS view and its reference, so the dates, not the pixels, are the
independent samples: :func:`compare` tells, by a one-sided paired t-test of the per-date
MAE differences at :data:`SIGNIFICANCE`, whether the chosen method is better than another
beyond the dates' spread, or whether the two cannot be told apart on these dates.

Keeping the default method (``dlstfm``) unless another passes that test was tried and not
kept: on the independent test world it chose the truth's first method more often, but with
an adapted network as ``dlstfm`` it kept a default 8 % worse than the best where the test
had too few dates to see it; the lowest MAE was never more than 2 % worse than the best
(``benchmarks/README.md``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

Method = TypeVar("Method", bound=str)

#: One-sided level of the paired test.
SIGNIFICANCE = 0.05


@dataclass(frozen=True)
class Comparison:
    """One method against another on the held-out dates, by per-date MAE.

    Attributes
    ----------
    mean_difference_k
        Mean over dates of the method's MAE minus the other's (K; negative: better).
    standard_error_k
        Its standard error from the spread over dates (K; NaN with fewer than 2 dates).
    dates
        Held-out dates both were scored on.
    better
        Whether the method is better beyond the spread (one-sided paired t-test at
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
                "dates": self.dates, "better_beyond_spread": self.better}


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


def compare(method_mae: np.ndarray, other_mae: np.ndarray,
            significance: float = SIGNIFICANCE) -> Comparison:
    """Whether a method beats another, by the per-date MAE ``(dates,)`` of each.

    A one-sided paired t-test: the method is better when the mean difference is below
    zero by more than the t quantile times its standard error. With fewer than 2 dates
    nothing can be told from the spread.
    """
    from scipy.stats import t as student_t

    d = np.asarray(method_mae, np.float64) - np.asarray(other_mae, np.float64)
    n = d.size
    mean = float(d.mean()) if n else float("nan")
    if n < 2:
        return Comparison(mean, float("nan"), n, False)
    se = float(d.std(ddof=1) / np.sqrt(n))
    bound = mean + float(student_t.ppf(1 - significance, n - 1)) * se
    return Comparison(mean, se, n, bool(bound < 0))


def choose(candidates: tuple[Method, ...], pooled_mae: Mapping[str, float],
           per_date: Mapping[str, np.ndarray]) -> tuple[Method, dict[str, Comparison]]:
    """The candidate with the lowest pooled MAE (ties: the earlier), and how sure that is.

    The chosen one against each other candidate: :func:`compare` of their per-date MAE
    (:func:`per_date_mae`).
    """
    best = min(candidates, key=lambda m: (pooled_mae[m], candidates.index(m)))
    return best, {m: compare(per_date[best], per_date[m]) for m in candidates if m != best}
