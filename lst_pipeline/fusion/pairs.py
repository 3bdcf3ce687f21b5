"""Reference selection: which Landsat dates may serve a target day, nearest first.

Pure functions on integer day numbers (days since 1970-01-01); no I/O.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

#: Which Landsat dates a target day may take: any, only earlier or only later ones.
Side = Literal["both", "before", "after"]

def candidate_references(
    target_days: np.ndarray,
    landsat_days: np.ndarray,
    *,
    max_gap_days: int,
    max_references: int,
    include_same_day: bool = False,
    side: Side = "both",
) -> np.ndarray:
    """Rank the Landsat dates each target day may use as reference.

    Parameters
    ----------
    target_days
        Target days, integer days since 1970-01-01, shape ``(T,)``.
    landsat_days
        Landsat acquisition days, same units, shape ``(R,)``.
    max_gap_days
        Dates further than this from the target day are never candidates.
    max_references
        At most this many candidates per day (``K``).
    include_same_day
        Whether a Landsat date equal to the target day is a candidate.
    side
        ``both``, or only dates ``before`` / ``after`` the target day.

    Returns
    -------
    numpy.ndarray
        ``(T, K)`` int indices into ``landsat_days``, nearest first (a tie between a date
        before and a date after goes to the earlier one), ``-1`` where no candidate remains.
    """
    target_days = np.asarray(target_days, dtype=np.int64)
    landsat_days = np.asarray(landsat_days, dtype=np.int64)
    out = np.full((len(target_days), max_references), -1, dtype=np.int64)
    if len(landsat_days) == 0 or len(target_days) == 0:
        return out
    delta = landsat_days[None, :] - target_days[:, None]  # (T, R), >0: after target
    allowed = np.abs(delta) <= max_gap_days
    if not include_same_day:
        allowed &= delta != 0
    if side == "before":
        allowed &= delta <= 0
    elif side == "after":
        allowed &= delta >= 0
    # Sort key: distance first, then earlier before later; disallowed last.
    key = np.abs(delta) * 2 + (delta > 0)
    key = np.where(allowed, key, np.iinfo(np.int64).max)
    order = np.argsort(key, axis=1, kind="stable")[:, :max_references]
    ranked_ok = np.take_along_axis(allowed, order, axis=1)
    k = order.shape[1]
    out[:, :k] = np.where(ranked_ok, order, -1)
    return out
