"""Seasonal snow for the simulator (numpy only, no I/O; off unless asked for).

Snow is what makes cold regions hard to fuse: a snow-covered pixel cannot warm above the
melting point while the snow-free ground of its MODIS cell warms with the weather, and a
pixel that melts out between the reference date and the target day changes by far more
than its cell. The simulator's other physics has none of it, so without this module a
snow-related choice (an error feature, a training mix) could only be made on the
independent test world, which must stay untouched. This is the simulator's own model,
written from the physics below and not from :mod:`lst_pipeline.worlds`.

Model, per fine pixel and day (applied after :func:`~lst_pipeline.simulate.truth_batch`,
which gives the snow-free LST ``T``):

- **Snowfall.** Events occur on a day with probability ``events_per_year / 365`` (a stream
  of their own). An event brings a water equivalent drawn from a gamma distribution
  (mean :data:`EVENT_MEAN_MM`), redistributed by the wind (a static smooth field, +-50 %),
  and it settles only where ``T`` is below :data:`SNOWFALL_MAX_K` (warmer ground melts it).
- **Cover.** The snow-covered fraction of a pixel follows a depletion curve,
  ``1 - exp(-swe / COVER_SCALE_MM)``; a tree canopy hides most of it
  (:data:`CANOPY_VISIBLE`), and open water does not hold snow.
- **Surface temperature.** Snow reflects most sunlight, so its surface is colder than
  snow-free ground by :data:`SNOW_COOLING_K`, and it cannot be warmer than 273.15 K. A
  pixel's LST is the cover-weighted mix of the snow and snow-free temperatures.
- **Melt.** Degree-day melt: each day removes ``MELT_MM_PER_K * max(0, T - 273.15)`` of
  water equivalent after the day has been seen, so a deep drift outlasts the thin snow
  around it and melt-out is patchy.

The pack is a state carried from day to day (:class:`SnowPack`), so a region is the same
whatever the simulator's batch size.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lst_pipeline.simulate.landscape import TREES, WATER, smooth_field, stream_rng

#: Melting point (K).
MELT_K = 273.15
#: Snow settles only where the snow-free surface is colder than this (K).
SNOWFALL_MAX_K = 278.0
#: Mean water equivalent of one snowfall event (mm).
EVENT_MEAN_MM = 12.0
#: Water equivalent at which 63 % of a pixel is snow-covered (mm).
COVER_SCALE_MM = 8.0
#: How much colder a snow surface is than snow-free ground under the same weather (K).
SNOW_COOLING_K = 9.0
#: Degree-day melt factor (mm per K above the melting point per day).
MELT_MM_PER_K = 1.2
#: Fraction of the snow on the ground that a sensor sees through a tree canopy.
CANOPY_VISIBLE = 0.35
#: Correlation length of the wind redistribution (m).
DRIFT_LENGTH_M = 600.0
#: The random streams of snow (distinct from the other simulator streams).
_S_SNOWFALL, _S_DRIFT = 30, 31


def snowfall_series(seed: int, n_days: int, events_per_year: float) -> np.ndarray:
    """Water equivalent (mm) of each day's snowfall event, 0 on days without one."""
    rng = stream_rng(seed, _S_SNOWFALL)
    occurs = rng.random(n_days) < events_per_year / 365.0
    amount = rng.gamma(2.0, EVENT_MEAN_MM / 2.0, n_days)
    return np.where(occurs, amount, 0.0)


@dataclass
class SnowPack:
    """The snow water equivalent of every pixel, carried from one day to the next.

    Attributes
    ----------
    swe_mm
        float32 ``(ny, nx)`` water equivalent on the ground (mm).
    drift
        float32 ``(ny, nx)`` multiplier of each event's snowfall (wind redistribution).
    snowfall_mm
        float64 ``(n_days,)`` each day's event (see :func:`snowfall_series`).
    """

    swe_mm: np.ndarray
    drift: np.ndarray
    snowfall_mm: np.ndarray

    @classmethod
    def draw(cls, seed: int, shape: tuple[int, int], resolution_m: float, n_days: int,
             events_per_year: float) -> SnowPack:
        """A region's snow before its first day: no snow on the ground."""
        field = smooth_field(stream_rng(seed, _S_DRIFT), shape, DRIFT_LENGTH_M / resolution_m)
        drift = np.clip(1.0 + 0.5 * field, 0.0, None).astype(np.float32)
        return cls(np.zeros(shape, np.float32), drift,
                   snowfall_series(seed, n_days, events_per_year))

    def advance(self, snow_free_k: np.ndarray, land_cover: np.ndarray, day_index: int
                ) -> tuple[np.ndarray, np.ndarray]:
        """Apply day ``day_index`` to its snow-free LST; update the pack for the next day.

        Parameters
        ----------
        snow_free_k
            float32 ``(ny, nx)`` the day's LST without snow (K).
        land_cover
            The day's classes.
        day_index
            Index of the day in the series (selects its snowfall).

        Returns
        -------
        lst : numpy.ndarray
            float32 ``(ny, nx)`` the day's LST with its snow (K).
        cover : numpy.ndarray
            float32 ``(ny, nx)`` the visible snow-covered fraction of each pixel.
        """
        water = land_cover == WATER
        fall = np.float32(self.snowfall_mm[day_index])
        if fall > 0:
            settles = (snow_free_k < np.float32(SNOWFALL_MAX_K)) & ~water
            self.swe_mm += np.where(settles, fall * self.drift, np.float32(0.0))
        cover = -np.expm1(-self.swe_mm / np.float32(COVER_SCALE_MM))
        cover *= np.where(land_cover == TREES, np.float32(CANOPY_VISIBLE), np.float32(1.0))
        snow_k = np.minimum(snow_free_k - np.float32(SNOW_COOLING_K), np.float32(MELT_K))
        lst = snow_free_k + cover * (snow_k - snow_free_k)
        melt = np.float32(MELT_MM_PER_K) * np.maximum(snow_free_k - np.float32(MELT_K), 0)
        np.maximum(self.swe_mm - melt, np.float32(0.0), out=self.swe_mm)
        return lst.astype(np.float32), cover.astype(np.float32)
