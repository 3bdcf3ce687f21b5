"""A reference date's MODIS from its Landsat: each cell's MODIS offset averaged over dates.

Every fusion method moves a fine reference by the MODIS change of its coarse cell, ``C(t) -
C(r)``, so the fused cell mean is ``L(r) + C(t) - C(r)``: its error is the target day's
MODIS error minus the reference date's, ``o(t) - o(r)`` with ``o = C - mean Landsat of the
cell``. The reference date's offset ``o(r)`` is one noisy draw (MODIS noise, that day's
geolocation and atmosphere). Where the Landsat reference sees the cell clearly, its mean is
known much better than MODIS knows it, and what a method needs from MODIS on that date is
only the cell's usual offset. So the reference date's MODIS is replaced by

    C'(r) = mean Landsat of the cell on r + o_bar(r),

``o_bar(r)`` the cell's offsets on the stack's Landsat dates, weighted by
``exp(-|d - r| / timescale)`` within two timescales of ``r``. The error of a fused cell mean
then has the variance of one offset plus that of an average, not two offsets'; a cell
offset that drifts with the season is followed at the timescale. Cells less than
:data:`MIN_CELL_CLEAR` clear on ``r`` keep their MODIS as observed.

Chosen on the simulator's dev regions (seeds 201-203, 512 px x 120 days, never used for
training or for scoring): every method's MAE fell, `reference_change` by 7-12 %, `starfm`
5-9 %, `gain_change` 15-23 %, `dlstfm` 12-19 % at a 32-day timescale; 64 days was at most
1.7 % better and reads more dates (README, "A reference date's MODIS from its Landsat").

Layers: :func:`cell_means` and :func:`smoothed_reference_modis` are numpy kernels; the
block reader (:mod:`lst_pipeline.fusion.block`) reads the dates they need.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from lst_pipeline.resample import block_mean

#: A cell's Landsat mean counts on a date if at least this fraction of its pixels is clear.
MIN_CELL_CLEAR = 0.9
#: Dates further than this many timescales from a reference are not used for its offset.
HORIZON_TIMESCALES = 2


def horizon_days(timescale_days: int) -> int:
    """Furthest date (days) whose offset enters a reference's average (0 when off)."""
    return HORIZON_TIMESCALES * int(timescale_days)


def describe(timescale_days: int) -> str:
    """What the run does to its reference dates' MODIS (a plan note)."""
    return ("reference MODIS: in cells a reference's Landsat sees clearly, its Landsat mean "
            "plus the cell's MODIS-minus-Landsat offset averaged over the Landsat dates "
            f"(weights exp(-days apart / {timescale_days}), within "
            f"{horizon_days(timescale_days)} days; fusion.reference_offset_days)")


def cell_means(landsat_lst: np.ndarray, factor: int, dtype: Any = np.float32) -> np.ndarray:
    """Each coarse cell's mean Landsat LST where it is clear enough, else NaN.

    Parameters
    ----------
    landsat_lst
        ``(ny, nx)`` Landsat LST of one date (K, NaN unusable); ``ny`` and ``nx`` multiples
        of ``factor``.
    factor
        Coarse factor.
    dtype
        Of the result (the sums are float64 either way).

    Returns
    -------
    ``(ny // factor, nx // factor)`` cell means; NaN where less than :data:`MIN_CELL_CLEAR`
    of the cell is clear.
    """
    mean, clear = block_mean(landsat_lst, factor, dtype)
    return np.where(clear >= MIN_CELL_CLEAR, mean, np.nan).astype(dtype)


def smoothed_reference_modis(landsat_cell_mean: np.ndarray, modis_lst: np.ndarray,
                             days: np.ndarray, timescale_days: float) -> np.ndarray:
    """MODIS of Landsat dates, rebuilt from each date's Landsat and the averaged cell offset.

    Parameters
    ----------
    landsat_cell_mean
        ``(n, cy, cx)`` cell means of the Landsat dates (:func:`cell_means`; NaN: cell not
        clear enough).
    modis_lst
        ``(n, cy, cx)`` MODIS LST of the same dates (K, NaN gap), at Landsat's hour.
    days
        ``(n,)`` the dates (days since 1970-01-01).
    timescale_days
        e-folding time of the weights; dates beyond :func:`horizon_days` are left out.

    Returns
    -------
    ``(n, cy, cx)`` float32: ``landsat_cell_mean + o_bar`` where both are finite (also where
    that date's MODIS is a gap and other dates give the offset), else ``modis_lst``.
    """
    offsets = (modis_lst - landsat_cell_mean).astype(np.float32)
    known = np.isfinite(offsets)
    filled = np.where(known, offsets, np.float32(0.0))
    gaps = np.abs(days[:, None].astype(np.float64) - days[None, :].astype(np.float64))
    weights = np.where(gaps <= horizon_days(int(timescale_days)),
                       np.exp(-gaps / float(timescale_days)), 0.0).astype(np.float32)
    total = np.tensordot(weights, filled, axes=1)
    norm = np.tensordot(weights, known.astype(np.float32), axes=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        average = np.where(norm > 0, total / norm, np.float32(np.nan))
    rebuilt = landsat_cell_mean + average
    return np.where(np.isfinite(rebuilt), rebuilt, modis_lst).astype(np.float32)
