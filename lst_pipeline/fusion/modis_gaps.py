"""Filling MODIS cloud gaps of target days by interpolation in time (numpy, no I/O).

Used by :func:`lst_pipeline.fusion.block.read_block_inputs` with ``fusion.modis_gaps:
interpolate``; fused values over filled MODIS are flagged ``MODIS_GAP_FILLED``.
"""

from __future__ import annotations

import numpy as np


def interpolate_modis_gaps(modis: np.ndarray, days: np.ndarray, target_days: np.ndarray,
                           max_days: int) -> tuple[np.ndarray, np.ndarray]:
    """Fill MODIS gaps of target days by linear interpolation in time, per coarse pixel.

    A gap is filled only between a valid day before and a valid day after, each at most
    ``max_days`` away (interpolation, never extrapolation).

    Parameters
    ----------
    modis
        ``(D, yc, xc)`` MODIS LST (K, NaN gaps) on ``days`` (consecutive days).
    days
        ``(D,)`` days since 1970-01-01, consecutive.
    target_days
        ``(T,)`` days to return, a subset of ``days``.
    max_days
        Furthest day used on each side.

    Returns
    -------
    filled : numpy.ndarray
        ``(T, yc, xc)`` MODIS with interpolated gaps.
    was_filled : numpy.ndarray
        ``(T, yc, xc)`` bool, True where a value was interpolated.
    """
    days = np.asarray(days, dtype=np.int64)
    index = np.searchsorted(days, target_days)
    filled = modis[index].copy()
    was_filled = np.zeros(filled.shape, dtype=bool)
    for k, i in enumerate(index):
        gap = np.isnan(filled[k])
        if not gap.any():
            continue
        sides = []
        for step in (-1, 1):
            value = np.full(gap.shape, np.nan, dtype=np.float32)
            dist = np.zeros(gap.shape, dtype=np.float32)
            for d in range(1, max_days + 1):
                j = i + step * d
                if not 0 <= j < len(days):
                    break
                take = np.isnan(value) & np.isfinite(modis[j])
                value[take], dist[take] = modis[j][take], d
            sides.append((value, dist))
        (before, d_before), (after, d_after) = sides
        ok = gap & np.isfinite(before) & np.isfinite(after)
        with np.errstate(invalid="ignore"):
            interp = before + (after - before) * d_before / (d_before + d_after)
        filled[k][ok] = interp[ok]
        was_filled[k] = ok
    return filled, was_filled
