"""Each pixel's gain of fine on coarse LST over the nearby Landsat dates (numpy kernels).

Pixels of one MODIS cell do not warm and cool by the same amount: open water, irrigated
crops, dry soil, roofs and slopes facing the sun each follow the cell's change with their
own amplitude (thermal inertia, evaporation, illumination). The stack shows that amplitude
directly: on its clear Landsat dates, a pixel's Landsat LST plotted against its (upsampled)
MODIS LST lies on a line whose slope is the pixel's gain. :func:`pixel_gain` fits that slope
per pixel by least squares, shrunk towards 1 (``reference_change``'s assumption) where the
dates are few or the MODIS range they span is small:

    gain = (S_xy + prior) / (S_xx + prior)

with ``S_xy``, ``S_xx`` the centred sums of products of fine (``y``) and coarse (``x``) LST
over the dates clear at the pixel, and ``prior`` in K^2 (:data:`PRIOR_K2`: as if one more
date 2.2 K from the mean fell on the 1:1 line).

Which dates enter is decided per target day, never per block: the Landsat dates within
``max_gap_days`` of the day, the day itself excluded (:func:`gain_members`). A block reads
every Landsat date within ``max_gap_days`` of its days, so each day sees the same dates
whichever block it is fused in, and the result does not depend on the chunking. Excluding
the day itself keeps a held-out date out of its own prediction.
"""

from __future__ import annotations

import numpy as np

#: Shrinkage of the slope towards 1 (K^2). Chosen on simulator dev regions 201-204
#: (randomised worlds, never used for training or for the test world): 5 K^2 was best
#: of 0.5-400 K^2 there.
PRIOR_K2 = 5.0

#: Gains are clipped to this range (a pixel cannot swing the opposite way to its cell
#: for long; a slope far above 1 comes from too few dates).
GAIN_RANGE = (0.0, 3.0)


def gain_members(target_days: np.ndarray, landsat_days: np.ndarray, max_gap_days: int
                 ) -> tuple[np.ndarray, np.ndarray]:
    """The distinct sets of Landsat dates the target days fit their gain on.

    Parameters
    ----------
    target_days, landsat_days
        ``(T,)`` and ``(R,)`` integer days.
    max_gap_days
        A date enters a day's set when it is at most this far from the day (and not the
        day itself).

    Returns
    -------
    sets, index
        ``(S, R)`` bool, each distinct set once (in order of first use), and ``(T,)`` the
        set of each target day.
    """
    delta = (np.asarray(landsat_days, np.int64)[None, :]
             - np.asarray(target_days, np.int64)[:, None])
    members = (np.abs(delta) <= max_gap_days) & (delta != 0)
    if len(members) == 0:
        return np.zeros((0, len(landsat_days)), bool), np.zeros(0, np.int64)
    sets, first, index = np.unique(members, axis=0, return_index=True, return_inverse=True)
    order = np.argsort(first)  # sets in order of first use, so the output is stable
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    return sets[order], rank[np.asarray(index).reshape(-1)]


def pixel_gain(fine: np.ndarray, coarse_up: np.ndarray, usable: np.ndarray,
               members: np.ndarray, *, prior_k2: float = PRIOR_K2) -> np.ndarray:
    """Per-pixel slope of fine on coarse LST over the member dates, shrunk towards 1.

    Parameters
    ----------
    fine, coarse_up
        ``(R, Y, X)`` Landsat LST and the MODIS LST of the same dates upsampled to the fine
        grid (K).
    usable
        ``(R, Y, X)`` bool, where a date may enter the fit (clear fine pixel, MODIS seen).
    members
        ``(R,)`` bool, the dates of this set.
    prior_k2
        Shrinkage towards 1 (K^2); 0 is plain least squares (gain 1 where undetermined).

    Returns
    -------
    numpy.ndarray
        ``(Y, X)`` float32 gains in :data:`GAIN_RANGE`; 1 where no date is usable.
    """
    shape = fine.shape[1:]
    n = np.zeros(shape, np.float64)
    sx, sy, sxx, sxy = (np.zeros(shape, np.float64) for _ in range(4))
    for r in np.flatnonzero(members):
        ok = usable[r]
        # raw sums in float64: |x| ~ 300 K, so centring them afterwards loses nothing
        x = np.where(ok, coarse_up[r], 0.0).astype(np.float64)
        y = np.where(ok, fine[r], 0.0).astype(np.float64)
        n += ok
        sx += x
        sy += y
        sxx += x * x
        sxy += x * y
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_x = np.where(n > 0, sx / n, 0.0)
        mean_y = np.where(n > 0, sy / n, 0.0)
    cxx = np.maximum(sxx - n * mean_x * mean_x, 0.0)
    cxy = sxy - n * mean_x * mean_y
    gain = (cxy + prior_k2) / (cxx + prior_k2) if prior_k2 > 0 else np.where(
        cxx > 0, cxy / np.where(cxx > 0, cxx, 1.0), 1.0)
    return np.clip(gain, *GAIN_RANGE).astype(np.float32)


class DayGains:
    """The gains of a block's target days, each distinct set of dates fitted once.

    Both references of a day (before and after) use the same gain, so a block asks for
    the same days twice; the fits are kept (:func:`gain_members`, :func:`pixel_gain`).
    """

    def __init__(self, fine: np.ndarray, coarse_up: np.ndarray, usable: np.ndarray,
                 target_days: np.ndarray, landsat_days: np.ndarray, max_gap_days: int, *,
                 prior_k2: float = PRIOR_K2) -> None:
        self.fine, self.coarse_up, self.usable, self.prior_k2 = fine, coarse_up, usable, prior_k2
        self.sets, self.index = gain_members(target_days, landsat_days, max_gap_days)
        self.fitted: dict[int, np.ndarray] = {}

    def __call__(self, days: list[int] | np.ndarray) -> np.ndarray:
        """``(len(days), Y, X)`` the gain of each of ``days`` (indices of target days)."""
        out = np.empty((len(days), *self.fine.shape[1:]), np.float32)
        for k, t in enumerate(days):
            s = int(self.index[t])
            if s not in self.fitted:
                self.fitted[s] = pixel_gain(self.fine, self.coarse_up, self.usable,
                                            self.sets[s], prior_k2=self.prior_k2)
            out[k] = self.fitted[s]
        return out


def day_gains(fine: np.ndarray, coarse_up: np.ndarray, usable: np.ndarray,
              target_days: np.ndarray, landsat_days: np.ndarray, max_gap_days: int,
              days: list[int] | np.ndarray, *, prior_k2: float = PRIOR_K2) -> np.ndarray:
    """``(len(days), Y, X)`` the gain of each of ``days`` (indices into ``target_days``)."""
    return DayGains(fine, coarse_up, usable, target_days, landsat_days, max_gap_days,
                    prior_k2=prior_k2)(days)
