"""The simulator's climate: per-class seasonal cycles, regional weather, the daily truth."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from lst_pipeline.simulate.landscape import (
    _S_WEATHER,
    BARE,
    IRRIGATED,
    WEATHER_SD_K,
    SyntheticScene,
    land_cover_on,
    stream_rng,
)


@dataclass(frozen=True)
class ClassClimate:
    """Daytime LST behaviour of one land-cover class.

    Attributes
    ----------
    mean_k, amp_k
        Annual mean and half the annual range of the seasonal cycle (K).
    peak_doy
        Day of year of the seasonal maximum.
    gain
        Response to the regional weather anomaly (K per K).
    lagged
        Respond to the exponentially smoothed anomaly (thermal inertia of water).
    texture_k
        Standard deviation of the static fine-scale texture (K).
    """

    mean_k: float
    amp_k: float
    peak_doy: float
    gain: float
    lagged: bool
    texture_k: float


#: Per-class climates, indexed by class value.
CLIMATES: tuple[ClassClimate, ...] = (
    ClassClimate(291.0, 5.0, 45.0, 0.3, True, 0.15),  # water: later, damped peak
    ClassClimate(298.0, 8.0, 15.0, 0.6, False, 0.4),  # irrigated crop
    ClassClimate(301.0, 11.0, 15.0, 1.0, False, 0.5),  # dry pasture
    ClassClimate(304.0, 13.0, 15.0, 1.2, False, 0.9),  # bare soil
    ClassClimate(296.0, 7.0, 15.0, 0.5, False, 0.6),  # trees
    ClassClimate(302.0, 10.0, 15.0, 0.9, False, 0.8),  # urban
)

#: Irrigated fields lose ``IRRIGATION_COOLING * max(0, T_bare - IRRIGATION_THRESHOLD_K)``.
IRRIGATION_COOLING = 0.35
IRRIGATION_THRESHOLD_K = 302.0
WEATHER_PHI = 0.7
WEATHER_TAU_DAYS = 5.0
@dataclass(frozen=True)
class Weather:
    """Daily amplitudes of the regional weather anomaly.

    Attributes
    ----------
    amplitude_k
        float64 ``(n_days, 1 + n_modes)``: uniform part, then the amplitude of each mode.
    lagged_k
        The same, exponentially smoothed with time constant :data:`WEATHER_TAU_DAYS`.
    """

    amplitude_k: np.ndarray
    lagged_k: np.ndarray


def weather_series(seed: int, n_days: int) -> Weather:
    """AR(1) daily amplitudes (phi :data:`WEATHER_PHI`) of the weather components.

    Parameters
    ----------
    seed
        Scene seed.
    n_days
        Number of days.

    Returns
    -------
    Weather
    """
    rng = stream_rng(seed, _S_WEATHER)
    sd = np.asarray(WEATHER_SD_K)
    eps = rng.standard_normal((max(n_days, 1), len(sd)))
    amp = np.empty_like(eps)
    amp[0] = sd * eps[0]
    innovation = sd * np.sqrt(1.0 - WEATHER_PHI**2)
    for t in range(1, len(eps)):
        amp[t] = WEATHER_PHI * amp[t - 1] + innovation * eps[t]
    alpha = 1.0 - np.exp(-1.0 / WEATHER_TAU_DAYS)
    lag = np.empty_like(amp)
    lag[0] = amp[0]
    for t in range(1, len(amp)):
        lag[t] = lag[t - 1] + alpha * (amp[t] - lag[t - 1])
    return Weather(amp[:n_days], lag[:n_days])


def seasonal_cycle(day_of_year: np.ndarray | float, *, shift_k: float = 0.0,
                   amp_scale: float = 1.0) -> np.ndarray:
    """Seasonal LST of every class, ``(..., 6)`` Kelvin, for the given days of year.

    ``shift_k`` warms (or cools) every class, ``amp_scale`` scales the seasonal ranges.
    """
    doy = np.asarray(day_of_year, dtype=np.float64)[..., None]
    mean = np.array([c.mean_k for c in CLIMATES]) + shift_k
    amp = np.array([c.amp_k for c in CLIMATES]) * amp_scale
    peak = np.array([c.peak_doy for c in CLIMATES])
    return mean + amp * np.cos(2.0 * np.pi * (doy - peak) / 365.25)


def day_of_year(dates: np.ndarray) -> np.ndarray:
    """Day of year (1-366) of ``datetime64`` dates."""
    dates = np.asarray(dates, dtype="datetime64[D]")
    return (dates - dates.astype("datetime64[Y]")).astype(np.int64) + 1


def truth_batch(scene: SyntheticScene, weather: Weather, dates: np.ndarray,
                day_indices: Sequence[int], *, shift_k: float = 0.0,
                amp_scale: float = 1.0) -> np.ndarray:
    """The true daily LST on the fine grid for a batch of days.

    Parameters
    ----------
    scene
        Static fields from :func:`make_scene`.
    weather
        Daily anomaly amplitudes from :func:`weather_series` (whole series).
    dates
        ``datetime64[D]`` of the batch's days.
    day_indices
        Index of each of those days in the series (selects weather and harvests).
    shift_k, amp_scale
        See :func:`seasonal_cycle`.

    Returns
    -------
    numpy.ndarray
        float32 ``(n, ny, nx)`` Kelvin.
    """
    gain_now = np.array([0.0 if c.lagged else c.gain for c in CLIMATES], dtype=np.float32)
    gain_lag = np.array([c.gain if c.lagged else 0.0 for c in CLIMATES], dtype=np.float32)
    texture_k = np.array([c.texture_k for c in CLIMATES], dtype=np.float32)
    season = seasonal_cycle(day_of_year(dates), shift_k=shift_k, amp_scale=amp_scale)
    out = np.empty((len(day_indices), *scene.shape), dtype=np.float32)
    for k, t in enumerate(day_indices):
        cls = land_cover_on(scene.land_cover, scene.harvest_day, int(t))
        amp, lag = weather.amplitude_k[t], weather.lagged_k[t]
        anomaly = np.full(scene.shape, np.float32(amp[0]), dtype=np.float32)
        lagged = np.full(scene.shape, np.float32(lag[0]), dtype=np.float32)
        for m, mode in enumerate(scene.modes, start=1):
            anomaly += np.float32(amp[m]) * mode
            lagged += np.float32(lag[m]) * mode
        tk = out[k]
        # Lookups by class; mode="clip" avoids numpy's slow bounds-checked uint8 path.
        np.take(season[k].astype(np.float32), cls, out=tk, mode="clip")
        tk += np.take(gain_now, cls, mode="clip") * anomaly
        tk += np.take(gain_lag, cls, mode="clip") * lagged
        tk += scene.offset_k
        tk += np.take(texture_k, cls, mode="clip") * scene.texture
        # Evaporative cooling of irrigated fields, growing with the heat of bare soil.
        bare = np.float32(season[k, BARE]) + np.float32(CLIMATES[BARE].gain) * anomaly
        cooling = np.maximum(bare - np.float32(IRRIGATION_THRESHOLD_K), np.float32(0.0))
        cooling *= np.float32(IRRIGATION_COOLING)
        tk -= np.where(cls == IRRIGATED, cooling, np.float32(0.0))
    return out


