"""The surface of an independent-world region through time.

Daily forcing (air temperature with a lapse rate and synoptic weather, sky transmissivity,
wind, rain in moving frontal bands) drives a per-pixel soil-water bucket, crop phenology,
irrigation, snow and a lake that lags the air. The land-surface temperature at a given local
solar time comes from a one-layer energy balance::

    T_s = T_air(h) + (1 - albedo) * S(h) * (1 - EF) / G

with ``S`` the shortwave irradiance on the sloping pixel (solar incidence on slope and
aspect, plus diffuse light), ``EF`` the evaporative fraction (vegetation cover and soil
water), ``G`` the turbulent exchange (wind, roughness). Snow caps at 273.15 K, water
follows its own lagged temperature. Because ``S`` and ``T_air`` rise through the morning,
two sensors that look at different times of day see different temperatures, by a different
amount over each kind of surface.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lst_pipeline.worlds.landscape import (
    BURN,
    CROP,
    FOREST,
    GRASS,
    IRRIGATED,
    ROCK,
    URBAN,
    WATER,
    Landscape,
    power_law_field,
)

SOLAR_CONSTANT_W = 1361.0
FREEZING_K = 273.15


@dataclass(frozen=True)
class Climate:
    """The climate of a region.

    Attributes
    ----------
    latitude_deg
        Latitude of the region (solar geometry).
    air_mean_k, air_amp_k
        Annual mean and half range of the daily air temperature at ``base_m``.
    warmest_doy
        Day of year of the warmest days.
    lapse_k_per_m
        Change of air temperature with height.
    synoptic_sd_k
        Standard deviation of the day-to-day weather anomaly.
    rain_probability
        Chance of a rain front on a day.
    diurnal_k
        Air temperature rise from dawn to mid-afternoon.
    """

    latitude_deg: float
    air_mean_k: float
    air_amp_k: float
    warmest_doy: float = 200.0
    lapse_k_per_m: float = -0.0065
    synoptic_sd_k: float = 3.0
    rain_probability: float = 0.18
    diurnal_k: float = 9.0


@dataclass(frozen=True)
class Forcing:
    """Daily forcing, one value per day (fronts: direction, position, half width)."""

    doy: np.ndarray
    air_k: np.ndarray
    transmissivity: np.ndarray
    wind_m_s: np.ndarray
    rain_mm: np.ndarray
    front: np.ndarray


def make_forcing(rng: np.random.Generator, climate: Climate, start_doy: int,
                 n_days: int) -> Forcing:
    """Draw the daily weather of a region."""
    doy = (start_doy - 1 + np.arange(n_days)) % 365 + 1
    season = climate.air_mean_k + climate.air_amp_k * np.cos(
        2 * np.pi * (doy - climate.warmest_doy) / 365.25)
    anomaly = np.zeros(n_days)
    for t in range(1, n_days):
        anomaly[t] = 0.75 * anomaly[t - 1] + climate.synoptic_sd_k * np.sqrt(1 - 0.75**2) \
            * rng.standard_normal()
    rain_day = rng.random(n_days) < climate.rain_probability
    rain = np.where(rain_day, rng.gamma(1.5, 8.0, n_days), 0.0)
    front = np.column_stack([rng.uniform(0, 2 * np.pi, n_days), rng.uniform(-0.3, 0.3, n_days),
                             rng.uniform(0.2, 0.6, n_days)])
    # a rainy day is cooler and hazier
    air = season + anomaly - 2.0 * rain_day
    transmissivity = np.clip(0.76 - 0.25 * rain_day - 0.04 * rng.random(n_days), 0.35, 0.8)
    wind = rng.gamma(4.0, 0.8, n_days) + 1.0
    return Forcing(doy, air, transmissivity, wind, rain, front)


def solar_position(doy: float, hour: float, latitude_deg: float) -> tuple[float, float]:
    """Sun elevation and azimuth (radians, azimuth clockwise from north) at local solar time."""
    decl = np.radians(23.44) * np.sin(2 * np.pi * (284 + doy) / 365.0)
    lat = np.radians(latitude_deg)
    hour_angle = np.radians(15.0 * (hour - 12.0))
    sin_el = np.sin(lat) * np.sin(decl) + np.cos(lat) * np.cos(decl) * np.cos(hour_angle)
    elevation = float(np.arcsin(np.clip(sin_el, -1, 1)))
    cos_az = (np.sin(decl) - np.sin(elevation) * np.sin(lat)) / max(
        np.cos(elevation) * np.cos(lat), 1e-9)
    azimuth = float(np.arccos(np.clip(cos_az, -1, 1)))
    if hour_angle > 0:
        azimuth = 2 * np.pi - azimuth
    return elevation, azimuth


class Surface:
    """The evolving state of a region: soil water, snow, lake temperature, vegetation.

    Call :meth:`advance` once per day in order, then :meth:`temperature` for any hour of
    that day.
    """

    def __init__(self, land: Landscape, climate: Climate, forcing: Forcing,
                 rng: np.random.Generator, resolution_m: float) -> None:
        self.land, self.climate, self.forcing = land, climate, forcing
        ny, nx = land.shape
        self._yy, self._xx = np.mgrid[0:ny, 0:nx].astype(np.float32)
        self._yy /= max(ny, nx)
        self._xx /= max(ny, nx)
        self.theta = np.clip(0.22 + 0.05 * power_law_field(rng, land.shape, 3.0), 0.06, 0.45)
        self.swe_mm = np.zeros(land.shape, np.float32)
        self.lake_k = float(forcing.air_k[0] + 1.0)
        self.lake_pattern = 0.5 * power_law_field(rng, land.shape, 3.0)
        self.irrigation_phase = rng.integers(0, 9, int(land.field.max()) + 1)
        self.texture = 0.4 * power_law_field(rng, land.shape, 2.2, cutoff_px=2.0)
        self.day = -1

    def air_at(self, t: int, hour: float) -> np.ndarray:
        """Air temperature at local solar ``hour`` of day ``t`` (K), lapse rate applied."""
        diurnal = self.climate.diurnal_k * (np.sin(np.pi * (hour - 6.0) / 16.0) - 0.5)
        base = self.land.elevation_m.min()
        return (self.forcing.air_k[t] + diurnal
                + self.climate.lapse_k_per_m * (self.land.elevation_m - base)).astype(np.float32)

    def vegetation(self, t: int) -> np.ndarray:
        """Green vegetation fraction of every pixel on day ``t``."""
        land = self.land
        doy = self.forcing.doy[t]
        cover = land.cover
        fv = np.zeros(land.shape, np.float32)
        fv[cover == FOREST] = 0.7 + 0.15 * np.cos(2 * np.pi * (doy - 200) / 365.25)
        grass = (cover == GRASS) | ((cover == BURN) & (t < land.burn_day)
                                    & (land.pre_burn == GRASS))
        wet = np.clip((self.theta - 0.08) / 0.2, 0, 1)
        fv = np.where(grass, (0.3 + 0.35 * np.cos(2 * np.pi * (doy - 130) / 365.25)) * wet, fv)
        forest_before = (cover == BURN) & (t < land.burn_day) & (land.pre_burn == FOREST)
        fv = np.where(forest_before, 0.75, fv)
        since = t - land.burn_day
        fv = np.where((cover == BURN) & (since >= 0), np.clip(0.004 * since, 0, 0.3), fv)
        crops = (cover == CROP) | (cover == IRRIGATED)
        age = (t - land.sowing_day[land.field]) / np.maximum(land.season_days[land.field], 1)
        growth = np.where((age > 0) & (age < 1),
                          np.clip(np.sin(np.pi * np.clip(age, 0, 1)) * 1.3, 0, 0.9), 0.0)
        fv = np.where(crops, growth, fv)
        fv[cover == URBAN] *= 0.0
        park = (cover == URBAN)
        fv = np.where(park, 0.35 * (1 - land.impervious), fv)
        fv[(cover == ROCK) | (cover == WATER)] = 0.0
        return fv.astype(np.float32)

    def advance(self, t: int) -> None:
        """Move the state to day ``t``: rain fronts, drainage, irrigation, snow, the lake."""
        f, land = self.forcing, self.land
        if t != self.day + 1:
            raise ValueError(f"days must be advanced in order: at {self.day}, asked {t}")
        self.day = t
        tau = 6.0 + 10.0 * (1 - land.sand)
        self.theta = 0.06 + (self.theta - 0.06) * np.exp(-1.0 / tau)
        if f.rain_mm[t] > 0:
            angle, pos, half = f.front[t]
            along = np.cos(angle) * (self._xx - 0.5) + np.sin(angle) * (self._yy - 0.5)
            band = np.clip(1 - np.abs(along - pos) / half, 0, 1)
            air = self.air_at(t, 12.0)
            snow = air < FREEZING_K + 0.5
            self.swe_mm += np.where(snow, f.rain_mm[t] * band, 0).astype(np.float32)
            self.theta = np.minimum(self.theta + np.where(snow, 0, f.rain_mm[t] * band) / 120.0,
                                    0.45)
        irrigate = (land.cover == IRRIGATED) & (self.theta < 0.25) \
            & ((t + self.irrigation_phase[land.field]) % 8 == 0)
        self.theta = np.where(irrigate, 0.40, self.theta).astype(np.float32)
        melt = np.clip(self.air_at(t, 14.0) - FREEZING_K, 0, None) * 3.5
        self.swe_mm = np.maximum(self.swe_mm - melt, 0).astype(np.float32)
        self.lake_k += (f.air_k[t] + 1.5 - self.lake_k) / 18.0

    def temperature(self, t: int, hour: float) -> np.ndarray:
        """Land-surface temperature (K) of every pixel at local solar ``hour`` of day ``t``."""
        if t != self.day:
            raise ValueError(f"advance to day {t} first (state is at day {self.day})")
        land, f = self.land, self.forcing
        elevation, azimuth = solar_position(f.doy[t], hour, self.climate.latitude_deg)
        sun = max(np.sin(elevation), 0.0)
        cos_i = (np.cos(land.slope_rad) * sun + np.sin(land.slope_rad) * np.cos(elevation)
                 * np.cos(azimuth - land.aspect_rad))
        direct = SOLAR_CONSTANT_W * f.transmissivity[t] ** (1 / max(sun, 0.05)) \
            * np.clip(cos_i, 0, None)
        shortwave = direct + 0.12 * SOLAR_CONSTANT_W * f.transmissivity[t] * sun

        fv = self.vegetation(t)
        wet = np.clip((self.theta - 0.08) / (0.35 - 0.08), 0, 1)
        ef = fv * (0.35 + 0.6 * wet) + (1 - fv) * 0.45 * wet**1.5
        cover = land.cover
        ef = np.where(cover == ROCK, 0.05, ef)
        ef = ef * (1 - land.impervious)
        soil_albedo = 0.30 - 0.10 * wet + 0.08 * land.sand
        albedo = fv * 0.19 + (1 - fv) * soil_albedo
        albedo = land.impervious * 0.13 + (1 - land.impervious) * albedo
        albedo = np.where(cover == ROCK, 0.24, albedo)
        char = (cover == BURN) & (t >= land.burn_day)
        albedo = np.where(char, 0.06 + 0.0015 * np.clip(t - land.burn_day, 0, 60), albedo)
        roughness = np.where(cover == FOREST, 2.6, 1.0)
        roughness = np.where((cover == BURN) & (t < land.burn_day) & (land.pre_burn == FOREST),
                             2.6, roughness)
        roughness = np.where(cover == URBAN, 1.5, roughness)
        exchange = (12.0 + 1.2 * f.wind_m_s[t]) * roughness
        air = self.air_at(t, hour)
        ts = air + (1 - albedo) * shortwave * (1 - ef) / exchange + self.texture
        snow = self.swe_mm > 5.0
        ts = np.where(snow, np.minimum(air + 0.3 * shortwave / exchange / 4, FREEZING_K), ts)
        lake = self.lake_k + 0.8 * sun + self.lake_pattern
        ts = np.where(cover == WATER, lake, ts)
        return ts.astype(np.float32)

    def emissivity(self, t: int) -> np.ndarray:
        """Thermal emissivity of every pixel on day ``t`` (vegetation, bare soil, snow)."""
        from lst_pipeline.worlds.landscape import EMISSIVITY

        fv = self.vegetation(t)
        base = EMISSIVITY[self.land.cover]
        crops = (self.land.cover == CROP) | (self.land.cover == IRRIGATED)
        base = np.where(crops, 0.955 + 0.03 * fv, base)
        return np.where(self.swe_mm > 5.0, 0.99, base).astype(np.float32)
