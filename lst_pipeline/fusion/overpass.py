"""Bringing each day's MODIS to the Landsat overpass time (the view-time correction).

Terra's daytime view of a place moves between about 10:00 and 11:30 local solar time with
the orbit (the swath edges see it earlier or later; the real h11v05 tile of 2021-08-15 in
``data/real`` spans 10.2-11.5 h), while Landsat 8 and 9 pass at about 10:10. In mid-morning
the land warms by several kelvin per hour, so a MODIS image taken half an hour after
Landsat is warmer by one or two kelvin: an offset that changes from day to day with the
orbit, and that every fusion method otherwise takes for a change of the surface (both in
the target day's MODIS and in the reference date's).

A run measures the warming rate on its own stack (:func:`fit_overpass`): on each clear
Landsat date, the median over fully clear coarse cells of MODIS minus the mean of the cell's
Landsat pixels (:func:`date_offsets`), against the date's MODIS view time. The slope is
fitted by Theil-Sen (one date with a contaminated MODIS image does not tip it) and shrunk
towards zero by its own uncertainty (positive-part James-Stein), so a stack that does not
show the effect is left nearly as it is (:func:`fit_heating_rate`). Every MODIS image the
run reads is then ``M(d) - rate * (view_time(d) - landsat_hour)``
(:meth:`OverpassCorrection.offsets_k`). Stacks without view times (the simulator's, MODIS
ingested from files without ``Day_view_time``) or whose view time barely varies are not
corrected.

Layers: :func:`date_offsets` and :func:`fit_heating_rate` are numpy kernels;
:func:`fit_overpass` reads the stack (planning, once per run).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from lst_pipeline.config.locations import StorePath
from lst_pipeline.errors import InputError
from lst_pipeline.fusion.reference_offset import cell_means

#: Fewest Landsat dates with a measured offset and a MODIS view time to fit a rate.
MIN_DATES = 5
#: Least spread (hours, max - min) of the view times of those dates.
MIN_SPREAD_H = 0.25
#: Fewest such cells for a date's offset.
MIN_CELLS = 4
#: Landsat dates with less clear sky are not read.
MIN_DATE_CLEAR = 0.2
#: The fitted rate is held to this magnitude (K per hour); mid-morning land warms by
#: 1-8 K/h.
MAX_RATE_K_PER_H = 10.0
#: At most this many windows of at most this size (px) are read per Landsat date.
FIT_WINDOWS = 9
FIT_WINDOW_PX = 1024


@dataclass(frozen=True)
class OverpassCorrection:
    """The MODIS view-time correction of one run.

    Attributes
    ----------
    rate_k_per_h
        Warming rate applied (K per hour of view time after ``hour``): the measured rate
        shrunk by its uncertainty.
    hour
        Local solar time MODIS is brought to: Landsat's (median over the stack's dates), or
        the median view time of the Landsat dates when their acquisition time is unknown.
    measured_k_per_h, standard_error_k_per_h
        The Theil-Sen slope and its standard error (from its 95 % interval).
    n_dates
        Landsat dates it was measured on.
    days, view_time_h, offset_k
        Those dates (days since 1970-01-01), their MODIS view times and MODIS-minus-Landsat
        offsets, so that leave-one-date-out refits the rate without the date it hides
        (:meth:`without`).
    """

    rate_k_per_h: float
    hour: float
    measured_k_per_h: float
    standard_error_k_per_h: float
    n_dates: int
    days: tuple[int, ...] = ()
    view_time_h: tuple[float, ...] = ()
    offset_k: tuple[float, ...] = ()

    @classmethod
    def fitted(cls, hour: float, days: np.ndarray, view_time_h: np.ndarray,
               offset_k: np.ndarray) -> OverpassCorrection | None:
        """The correction fitted on the dates with both a view time and an offset.

        None with too few dates or too little spread (:func:`fit_heating_rate`).
        """
        ok = np.isfinite(view_time_h) & np.isfinite(offset_k)
        fit = fit_heating_rate(view_time_h[ok], offset_k[ok])
        if fit is None:
            return None
        rate, measured, se = fit
        return cls(rate_k_per_h=rate, hour=hour, measured_k_per_h=measured,
                   standard_error_k_per_h=se, n_dates=int(ok.sum()),
                   days=tuple(int(d) for d in days[ok]),
                   view_time_h=tuple(float(v) for v in view_time_h[ok]),
                   offset_k=tuple(float(o) for o in offset_k[ok]))

    def without(self, day: int) -> OverpassCorrection | None:
        """The correction refitted without Landsat date ``day`` (itself if it was not used).

        Leave-one-date-out hides a date from the references; its MODIS offset must not have
        set the rate either, or the held-out residuals look better than fused days' errors.
        """
        if day not in self.days:
            return self
        keep = np.array([d != day for d in self.days])
        return OverpassCorrection.fitted(self.hour, np.array(self.days)[keep],
                                         np.array(self.view_time_h)[keep],
                                         np.array(self.offset_k)[keep])

    def offsets_k(self, view_time_h: np.ndarray) -> np.ndarray:
        """What to subtract from each date's MODIS LST (K); 0 where the view time is unknown."""
        vt = np.asarray(view_time_h, np.float64)
        return np.where(np.isfinite(vt), self.rate_k_per_h * (vt - self.hour), 0.0)

    def describe(self) -> str:
        """One line for the plan."""
        return (f"overpass: MODIS brought to {self.hour:.2f} h local solar time at "
                f"{self.rate_k_per_h:.2f} K/h (measured {self.measured_k_per_h:.2f} +- "
                f"{self.standard_error_k_per_h:.2f} K/h on {self.n_dates} Landsat dates; "
                "fusion.overpass_correction: off to leave MODIS as observed)")

    def as_attrs(self) -> dict[str, Any]:
        """JSON-able record for the cube's attributes."""
        return asdict(self)

    @classmethod
    def from_attrs(cls, attrs: dict[str, Any]) -> OverpassCorrection:
        """The correction recorded by :meth:`as_attrs`."""
        values: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v  # JSON lists
                                  for k, v in attrs.items() if k in cls.__dataclass_fields__}
        return cls(**values)


def date_offsets(landsat_lst: np.ndarray, modis_lst: np.ndarray, factor: int) -> np.ndarray:
    """Each date's median over clear coarse cells of MODIS minus the cell's Landsat mean.

    Parameters
    ----------
    landsat_lst
        ``(n, ny, nx)`` Landsat LST (K, NaN unusable), ``ny`` and ``nx`` multiples of
        ``factor``.
    modis_lst
        ``(n, ny // factor, nx // factor)`` MODIS LST of the same dates (K, NaN gap).
    factor
        Coarse factor.

    Returns
    -------
    ``(n,)`` offsets in K; NaN for a date with fewer than :data:`MIN_CELLS` cells at least
    :data:`~lst_pipeline.fusion.reference_offset.MIN_CELL_CLEAR` clear (partly cloudy cells
    carry cloud edges, and MODIS sees the whole cell) with a MODIS value.
    """
    out = np.full(len(landsat_lst), np.nan)
    for i, (landsat, modis) in enumerate(zip(landsat_lst, modis_lst)):
        offset = modis - cell_means(landsat, factor, np.float64)
        use = np.isfinite(offset)
        if use.sum() >= MIN_CELLS:
            out[i] = float(np.median(offset[use]))
    return out


def fit_heating_rate(view_time_h: np.ndarray, offset_k: np.ndarray
                     ) -> tuple[float, float, float] | None:
    """The warming rate of MODIS-minus-Landsat offsets with view time.

    Returns
    -------
    (shrunk, measured, standard_error) in K per hour, or None with fewer than
    :data:`MIN_DATES` dates or a view-time spread under :data:`MIN_SPREAD_H`.
    The measured rate is the Theil-Sen slope, its standard error a quarter of its 95 %
    interval; the applied rate is ``measured * max(0, 1 - se**2 / measured**2)``, held to
    +- :data:`MAX_RATE_K_PER_H`.
    """
    from scipy.stats import theilslopes

    x, y = np.asarray(view_time_h, np.float64), np.asarray(offset_k, np.float64)
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    if len(x) < MIN_DATES or x.max() - x.min() < MIN_SPREAD_H:
        return None
    fit = theilslopes(y, x, alpha=0.95)
    measured = float(fit.slope)
    se = float(fit.high_slope - fit.low_slope) / (2 * 1.96)
    shrink = max(0.0, 1.0 - se**2 / measured**2) if measured else 0.0
    rate = float(np.clip(measured * shrink, -MAX_RATE_K_PER_H, MAX_RATE_K_PER_H))
    return rate, measured, se


def _centre_longitude(reader: Any) -> float:
    return float(reader.grid.fine.extent.centroid.to_crs("epsg:4326").coords[0][0])


def fit_overpass(stack: StorePath) -> OverpassCorrection | str:
    """Measure the run's MODIS view-time correction on its stack (cached per stack content).

    Returns
    -------
    The correction, or a sentence saying why there is none (no view times, too few clear
    Landsat dates, view times that barely vary).

    Raises
    ------
    InputError
        Naming the stack, if its Landsat or MODIS arrays cannot be read.
    """
    from lst_pipeline.io.stack import StackReader

    reader = StackReader(stack)
    if reader.content is None:  # no digests to know the stack unchanged: measure again
        return _measure(reader)
    return _measured(stack, repr(reader.content))


@lru_cache(maxsize=8)
def _measured(stack: StorePath, content: str) -> OverpassCorrection | str:
    """:func:`_measure` once per stack and content (every method of ``auto`` plans a run)."""
    from lst_pipeline.io.stack import StackReader

    return _measure(StackReader(stack))


def _measure(reader: Any) -> OverpassCorrection | str:
    from lst_pipeline.grid import spread_windows

    stack = reader.path
    ldays = reader.landsat_dates
    view = reader.modis_view_time_on(ldays)
    chosen = np.flatnonzero(np.isfinite(view)
                            & (reader.landsat_clear_fraction >= MIN_DATE_CLEAR))
    if len(chosen) < MIN_DATES:
        return (f"not corrected for MODIS view time: {len(chosen)} clear Landsat date(s) with "
                f"a MODIS view time in {stack} (at least {MIN_DATES} needed)")
    grid = reader.grid
    f = grid.coarse_factor
    windows = spread_windows(grid.shape, f, size=FIT_WINDOW_PX, most=FIT_WINDOWS)
    offsets = np.full(len(chosen), np.nan)
    try:
        per_window = []
        for w in windows:
            landsat = reader.read_landsat(chosen, w)
            modis = reader.read_modis(ldays[chosen], w.coarse(f))
            per_window.append(date_offsets(landsat, modis, f))
        stacked = np.stack(per_window)
        has = np.isfinite(stacked).any(axis=0)
        offsets[has] = np.nanmedian(stacked[:, has], axis=0)
    except Exception as exc:  # a corrupt chunk file, an I/O error ...
        raise InputError(f"{stack}: cannot read the Landsat and MODIS of its Landsat dates to "
                         f"measure the MODIS view-time offset ({type(exc).__name__}: {exc}); "
                         "check or rebuild the input stack, or set "
                         "fusion.overpass_correction: off") from exc
    local = np.mod(reader.landsat_hour_utc[chosen] + _centre_longitude(reader) / 15.0, 24.0)
    hour = float(np.nanmedian(local)) if np.isfinite(local).any() \
        else float(np.median(view[chosen]))
    fitted = OverpassCorrection.fitted(round(hour, 4), ldays[chosen].astype(np.int64),
                                       view[chosen], offsets)
    if fitted is None:
        return (f"not corrected for MODIS view time: {int(np.isfinite(offsets).sum())} "
                f"Landsat date(s) measured, view times spread {np.ptp(view[chosen]):.2f} h "
                f"(at least {MIN_DATES} dates and {MIN_SPREAD_H} h needed)")
    return fitted


def planned_overpass(stack: StorePath, mode: str) -> tuple[OverpassCorrection | None, list[str]]:
    """The run's correction for ``fusion.overpass_correction`` ``mode``, and the plan's note."""
    if mode != "auto":
        return None, []
    fitted = fit_overpass(stack)
    if isinstance(fitted, str):
        return None, [fitted]
    return fitted, [fitted.describe()]


def correct_modis(modis_lst: np.ndarray, view_time_h: np.ndarray,
                  correction: OverpassCorrection | None) -> np.ndarray:
    """``(n, ...)`` MODIS LST brought to the correction's hour (unchanged without one)."""
    if correction is None:
        return modis_lst
    shape = (-1,) + (1,) * (modis_lst.ndim - 1)
    return (modis_lst - correction.offsets_k(view_time_h).reshape(shape)).astype(
        modis_lst.dtype)
