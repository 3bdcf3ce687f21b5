"""Physically plausible synthetic regions with known daily truth.

A synthetic region is an agricultural landscape on the fine target grid with a daily
"true" land-surface temperature (LST, Kelvin) and what two sensors would have seen of it:
Landsat-like fine images every 8 or 16 days with clouds, shadows and Collection 2 QA_PIXEL
bits, and MODIS-like daily coarse images with clouds and MOD11A1 QC bits. Everything is
deterministic for a given seed and configuration, and does not depend on how many days are
generated at a time.

Layers
------
Kernels (pure numpy/scipy, no I/O) make the pieces: :func:`smooth_field`,
:func:`make_parcels`, :func:`make_land_cover`, :func:`make_scene`, :func:`seasonal_cycle`,
:func:`weather_series`, :func:`land_cover_on`, :func:`truth_batch`,
:func:`aggregate_radiance`, :func:`modis_bias`, :func:`simulate_modis_day`,
:func:`cloud_fractions`, :func:`landsat_cloud_masks`, :func:`encode_qa_pixel`,
:func:`simulate_landsat_date`, :func:`landsat_date_indices`. The driver
:func:`simulate_region` writes the input stack and the truth cube, one batch of days at a time.

Physics, in short
-----------------
Six land-cover classes (:data:`CLASS_NAMES`) each follow a seasonal cycle
``mean + amp * cos(2 pi (doy - peak) / 365.25)`` (southern-hemisphere summer), plus a regional
weather anomaly (a uniform part and two smooth spatial modes with AR(1) daily amplitudes)
scaled by a per-class gain (water responds to an exponentially smoothed anomaly), minus an
evaporative cooling of irrigated fields on hot days, plus per-parcel offsets and a static
fine texture. A few irrigated parcels are harvested in the middle of the series and are
bare soil from then on.

Truth store layout (Zarr v3, at ``simulation.truth``)
-----------------------------------------------------
``lst (time, y, x)``
    float32 Kelvin, the daily truth on the fine grid.
``land_cover (y, x)``
    uint8 class of each pixel on the *first* day (CF ``flag_values``/``flag_meanings``).
``harvest_day (y, x)``
    int16 index into ``time`` of the first day a harvested pixel is bare soil (class 3);
    -1 where the pixel never changes. The class on day ``t`` is
    ``land_cover_on(land_cover, harvest_day, t)``.
``parcel (y, x)``
    int32 agricultural parcel id (1, 2, ...), 0 outside parcels (water, trees, urban).

Coordinates ``time``, ``y``, ``x``, ``spatial_ref``; root attributes ``lst_pipeline:grid``,
``lst_pipeline:status`` (``complete`` once every day is written) and the simulation parameters.
"""

from __future__ import annotations

import dataclasses
import json
import time as _time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from lst_pipeline.config import PipelineConfig, SimulationConfig
from lst_pipeline.errors import ConfigError, StoreError
from lst_pipeline.io import landsat, modis
from lst_pipeline.io.stack import StackWriter, create_stack
from lst_pipeline.io.truth import TruthWriter, create_truth
from lst_pipeline.io.zarr_store import (
    LOCK_FILES,
    check_replaceable,
    discard_unborn,
    lock_store,
    remove_store,
)

#: The ``source`` attribute of simulated stacks (``simulate --overwrite`` replaces only those).
SIMULATE_SOURCE = "lst_pipeline.simulate"
#: Static layers of the truth store besides ``land_cover`` (see the module docstring).
TRUTH_LAYERS = {
    "harvest_day": ("i2", {"long_name": "index into time of the first day as bare soil after "
                                        "harvest; -1 never", "units": "1"}),
    "parcel": ("i4", {"long_name": "agricultural parcel id; 0 outside parcels", "units": "1"}),
}

__all__ = [
    "BARE",
    "CLASS_NAMES",
    "CLIMATES",
    "IRRIGATED",
    "PASTURE",
    "TREES",
    "URBAN",
    "WATER",
    "ClassClimate",
    "Scene",
    "SimulationSummary",
    "Weather",
    "aggregate_radiance",
    "cloud_fractions",
    "encode_qa_pixel",
    "land_cover_on",
    "landsat_cloud_masks",
    "landsat_date_indices",
    "make_land_cover",
    "make_parcels",
    "make_scene",
    "modis_bias",
    "seasonal_cycle",
    "simulate_landsat_date",
    "simulate_modis_day",
    "simulate_region",
    "smooth_field",
    "truth_batch",
    "weather_series",
]

# --------------------------------------------------------------------------------------
# Land-cover classes and their thermal behaviour.

WATER, IRRIGATED, PASTURE, BARE, TREES, URBAN = range(6)
#: Class names, indexed by class value (CF ``flag_meanings`` order).
CLASS_NAMES = ("water", "irrigated_crop", "dry_pasture", "bare_soil", "trees", "urban")


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
#: Standard deviations (K) of the uniform weather anomaly and of each spatial mode.
WEATHER_SD_K = (2.4, 1.3, 1.3)
WEATHER_PHI = 0.7
WEATHER_TAU_DAYS = 5.0
WEATHER_LENGTH_M = 20_000.0
PARCEL_OFFSET_SD_K = 1.2
PARCEL_MIN_SIDE_M = 200.0
PARCEL_MAX_SIDE_M = 1500.0
#: Shadow displacement (rows south, columns west) in metres: morning sun in the north-east.
SHADOW_SHIFT_M = (1000.0, -700.0)
DILATION_M = 90.0  # Collection 2 dilates clouds by 3 Landsat pixels
LANDSAT_CLOUD_LENGTH_M = 1200.0
MODIS_CLOUD_LENGTH_M = 5000.0
MODIS_BIAS_SEASONAL_K = 0.3

# Random streams: every component draws from its own generator, derived from
# (seed, stream[, index]), so that no result depends on the order or batching of work.
_S_PARCELS, _S_WATER, _S_URBAN, _S_TREES, _S_CLASSES, _S_OFFSETS = range(1, 7)
_S_TEXTURE, _S_MODES, _S_WEATHER, _S_HARVEST = range(7, 11)
_S_LANDSAT_PHASE, _S_LANDSAT_FRACTIONS, _S_MODIS_FRACTIONS = range(11, 14)
_S_LANDSAT_DATE, _S_MODIS_DAY, _S_SENSOR = 20, 21, 22


def _rng(seed: int, *keys: int) -> np.random.Generator:
    """Generator of stream ``keys`` of ``seed`` (any Python int, negative included)."""
    return np.random.default_rng([int(seed) % (1 << 64), *keys])


# --------------------------------------------------------------------------------------
# Smooth random fields.


def _upsample_axis(a: np.ndarray, axis: int, n: int, step: int) -> np.ndarray:
    """Linear interpolation of ``a`` along ``axis`` onto ``n`` points spaced ``1 / step``."""
    pos = np.arange(n, dtype=np.float64) / step + 1.0
    i0 = np.floor(pos).astype(np.intp)
    w = (pos - i0).astype(np.float32)
    shape = [1] * a.ndim
    shape[axis] = n
    w = w.reshape(shape)
    lo = np.take(a, i0, axis=axis)
    hi = np.take(a, i0 + 1, axis=axis)
    lo *= 1.0 - w
    hi *= w
    lo += hi
    return lo


def smooth_field(rng: np.random.Generator, shape: tuple[int, int],
                 length_px: float) -> np.ndarray:
    """Gaussian-filtered white noise, standardised to mean 0 and standard deviation 1.

    Long correlation lengths are made on a decimated grid and interpolated linearly, so the
    cost does not grow with ``length_px``.

    Parameters
    ----------
    rng
        Source of the noise.
    shape
        ``(ny, nx)`` of the field.
    length_px
        Correlation length (Gaussian sigma) in pixels; below 0.5 the field is white noise.

    Returns
    -------
    numpy.ndarray
        float32 array of ``shape``.
    """
    ny, nx = shape
    length_px = float(max(length_px, 0.0))
    if length_px < 0.5:
        field = rng.standard_normal(shape, dtype=np.float32)
    elif length_px <= 6.0:
        field = ndimage.gaussian_filter(rng.standard_normal(shape, dtype=np.float32),
                                        length_px, mode="reflect")
    else:
        step = int(length_px / 3.0)
        low = rng.standard_normal((ny // step + 3, nx // step + 3))
        low = ndimage.gaussian_filter(low, length_px / step, mode="reflect").astype(np.float32)
        field = _upsample_axis(_upsample_axis(low, 0, ny, step), 1, nx, step)
    field = field.astype(np.float32, copy=False)
    field -= np.float32(field.mean(dtype=np.float64))
    sd = float(field.std(dtype=np.float64))
    if sd > 0:
        field *= np.float32(1.0 / sd)
    return field


def _quantile(field: np.ndarray, q: float, max_samples: int = 1 << 18) -> float:
    """Quantile of a large field from a regular subsample (cheap at 4000 x 4000)."""
    step = max(1, int(np.sqrt(field.size / max_samples)))
    return float(np.quantile(field[::step, ::step], min(max(q, 0.0), 1.0)))


# --------------------------------------------------------------------------------------
# Land cover.


def make_parcels(rng: np.random.Generator, shape: tuple[int, int], resolution_m: float
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Cut the grid into rectangular agricultural parcels by recursive splitting.

    A rectangle is split across its longer side while that side exceeds a limit drawn per
    rectangle between about 400 m and :data:`PARCEL_MAX_SIDE_M`; cuts fall between 30 % and
    70 % of the side and never leave a side shorter than :data:`PARCEL_MIN_SIDE_M`.

    Parameters
    ----------
    rng
        Source of randomness.
    shape
        ``(ny, nx)`` of the grid.
    resolution_m
        Pixel size in metres.

    Returns
    -------
    parcel : numpy.ndarray
        int32 ``(ny, nx)`` parcel ids 1..n.
    boxes : numpy.ndarray
        int64 ``(n, 4)`` rows ``(y0, y1, x0, x1)`` of parcel ``i + 1``.
    """
    min_side = max(1, round(PARCEL_MIN_SIDE_M / resolution_m))
    max_side = max(2 * min_side, round(PARCEL_MAX_SIDE_M / resolution_m))
    low_limit = min(max_side, max(2 * min_side, round(400.0 / resolution_m)))
    boxes: list[tuple[int, int, int, int]] = []
    todo = [(0, shape[0], 0, shape[1])]
    while todo:
        y0, y1, x0, x1 = todo.pop()
        h, w = y1 - y0, x1 - x0
        limit = rng.integers(low_limit, max_side + 1)
        side = max(h, w)
        if side <= limit or side < 2 * min_side:
            boxes.append((y0, y1, x0, x1))
            continue
        cut = round(side * rng.uniform(0.3, 0.7))
        cut = min(max(cut, min_side), side - min_side)
        if h >= w:
            todo += [(y0, y0 + cut, x0, x1), (y0 + cut, y1, x0, x1)]
        else:
            todo += [(y0, y1, x0, x0 + cut), (y0, y1, x0 + cut, x1)]
    parcel = np.empty(shape, dtype=np.int32)
    for i, (y0, y1, x0, x1) in enumerate(boxes, start=1):
        parcel[y0:y1, x0:x1] = i
    return parcel, np.asarray(boxes, dtype=np.int64).reshape(-1, 4)


def make_land_cover(seed: int, shape: tuple[int, int], resolution_m: float
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Draw a land-cover map: parcels, a river and a lake, a town, tree belts and patches.

    Target fractions: water 4-8 %, urban 3-6 %, trees 7-12 %, the rest agricultural parcels
    of which about 35 % (by area) irrigated crop, 43 % dry pasture and 22 % bare soil,
    assigned parcel by parcel so that the area fractions are met up to one parcel.

    Parameters
    ----------
    seed
        Scene seed.
    shape
        ``(ny, nx)`` of the grid.
    resolution_m
        Pixel size in metres (sizes are given in metres and converted).

    Returns
    -------
    land_cover : numpy.ndarray
        uint8 ``(ny, nx)`` classes (see :data:`CLASS_NAMES`).
    parcel : numpy.ndarray
        int32 ``(ny, nx)`` parcel ids, 0 outside agricultural parcels.
    """
    ny, nx = shape
    px = 1.0 / resolution_m  # pixels per metre
    parcel, boxes = make_parcels(_rng(seed, _S_PARCELS), shape, resolution_m)

    # Water: a meandering river along a zero crossing of a smooth field, and a lake.
    rng = _rng(seed, _S_WATER)
    water_fraction = rng.uniform(0.04, 0.08)
    river_share = rng.uniform(0.3, 0.7)
    river = np.abs(smooth_field(rng, shape, 3000.0 * px))
    water = river <= _quantile(river, water_fraction * river_share)
    del river
    lake = smooth_field(rng, shape, 800.0 * px)
    water |= lake >= _quantile(lake, 1.0 - water_fraction * (1.0 - river_share))
    del lake

    # Urban: one compact, ragged blob away from the edges.
    rng = _rng(seed, _S_URBAN)
    urban_fraction = rng.uniform(0.03, 0.06)
    cy, cx = rng.uniform(0.2, 0.8) * ny, rng.uniform(0.2, 0.8) * nx
    radius = np.sqrt(urban_fraction * ny * nx / np.pi)
    yy = (np.arange(ny, dtype=np.float32)[:, None] - np.float32(cy)) ** 2
    xx = (np.arange(nx, dtype=np.float32)[None, :] - np.float32(cx)) ** 2
    score = np.sqrt(yy + xx) / np.float32(radius)
    score += np.float32(0.4) * smooth_field(rng, shape, 300.0 * px)
    score[water] = np.inf
    urban = score <= _quantile(score, urban_fraction)
    del score

    # Trees: windbreaks along one side of some parcels, and patches.
    rng = _rng(seed, _S_TREES)
    tree_fraction = rng.uniform(0.07, 0.12)
    belt = max(1, round(30.0 * px))
    trees = np.zeros(shape, dtype=bool)
    for (y0, y1, x0, x1), has_belt, side in zip(
        boxes, rng.random(len(boxes)) < 0.15, rng.integers(0, 4, len(boxes))
    ):
        if has_belt:
            ys, xs = [slice(y0, y1), slice(x0, x1)]
            if side == 0:
                ys = slice(y0, min(y0 + belt, y1))
            elif side == 1:
                ys = slice(max(y1 - belt, y0), y1)
            elif side == 2:
                xs = slice(x0, min(x0 + belt, x1))
            else:
                xs = slice(max(x1 - belt, x0), x1)
            trees[ys, xs] = True
    taken = water | urban
    trees &= ~taken
    remaining = max(tree_fraction - trees.mean(), 0.0)
    patches = smooth_field(rng, shape, 400.0 * px)
    patches[taken | trees] = -np.inf
    if remaining > 0:
        trees |= patches >= _quantile(patches, 1.0 - remaining)
    del patches

    # Agricultural classes, parcel by parcel, to area targets.
    overlay = water | urban | trees
    rng = _rng(seed, _S_CLASSES)
    n = len(boxes)
    area = np.bincount(parcel[~overlay], minlength=n + 1)[1:].astype(np.float64)
    order = rng.permutation(n)
    cum = np.cumsum(area[order])
    mid = (cum - area[order] / 2.0) / max(cum[-1] if n else 0.0, 1.0)
    shares = np.cumsum([0.35, 0.43])
    classes = np.empty(n, dtype=np.uint8)
    classes[order] = np.where(mid < shares[0], IRRIGATED, np.where(mid < shares[1], PASTURE, BARE))
    land_cover = np.concatenate([[0], classes]).astype(np.uint8)[parcel]
    land_cover[trees] = TREES
    land_cover[urban] = URBAN
    land_cover[water] = WATER
    parcel[overlay] = 0
    return land_cover, parcel


def land_cover_on(land_cover: np.ndarray, harvest_day: np.ndarray, day_index: int
                  ) -> np.ndarray:
    """The class map on day ``day_index``: harvested pixels are bare soil from their day on.

    Parameters
    ----------
    land_cover
        uint8 classes on the first day.
    harvest_day
        int16 first day index as bare soil, -1 for never.
    day_index
        Index of the day in the simulated series.
    """
    harvested = (harvest_day >= 0) & (harvest_day <= day_index)
    if not harvested.any():
        return land_cover
    return np.where(harvested, np.uint8(BARE), land_cover)


# --------------------------------------------------------------------------------------
# Static scene and weather.


@dataclass(frozen=True)
class Scene:
    """Static per-pixel fields of a synthetic region.

    Attributes
    ----------
    land_cover
        uint8 ``(ny, nx)`` classes on the first day.
    parcel
        int32 ``(ny, nx)`` parcel ids, 0 outside parcels.
    harvest_day
        int16 ``(ny, nx)`` first day index as bare soil after harvest, -1 for never.
    offset_k
        float32 ``(ny, nx)`` static offset: per-parcel offset, or a smooth offset elsewhere.
    texture
        float32 ``(ny, nx)`` unit fine-scale texture, scaled per class.
    modes
        float32 ``(2, ny, nx)`` smooth spatial modes of the weather anomaly.
    """

    land_cover: np.ndarray
    parcel: np.ndarray
    harvest_day: np.ndarray
    offset_k: np.ndarray
    texture: np.ndarray
    modes: np.ndarray

    @property
    def shape(self) -> tuple[int, int]:
        """Fine grid shape ``(ny, nx)``."""
        return self.land_cover.shape


def make_scene(seed: int, shape: tuple[int, int], resolution_m: float, n_days: int) -> Scene:
    """Draw the static fields of a region: land cover, harvests, offsets, texture, modes.

    Parameters
    ----------
    seed
        Scene seed.
    shape
        ``(ny, nx)`` of the fine grid.
    resolution_m
        Fine pixel size in metres.
    n_days
        Length of the series; harvests fall between its first and last quarter. With at
        least 60 days and one irrigated parcel, at least one parcel is harvested.

    Returns
    -------
    Scene
    """
    if n_days >= np.iinfo(np.int16).max:
        raise ConfigError(f"dates: {n_days} days is too long a simulation (max 32766)")
    px = 1.0 / resolution_m
    land_cover, parcel = make_land_cover(seed, shape, resolution_m)
    n_parcels = int(parcel.max())

    rng = _rng(seed, _S_HARVEST)
    harvest_lut = np.full(n_parcels + 1, -1, dtype=np.int16)
    irrigated = np.unique(parcel[(land_cover == IRRIGATED) & (parcel > 0)])
    if n_days >= 60 and len(irrigated):
        n_harvest = max(1, round(0.2 * len(irrigated)))
        chosen = rng.choice(irrigated, size=n_harvest, replace=False)
        harvest_lut[chosen] = rng.integers(n_days // 4, 3 * n_days // 4 + 1, size=n_harvest)
    harvest_day = harvest_lut[parcel]
    harvest_day[parcel == 0] = -1

    rng = _rng(seed, _S_OFFSETS)
    parcel_offsets = np.concatenate(
        [[0.0], rng.normal(0.0, PARCEL_OFFSET_SD_K, n_parcels)]).astype(np.float32)
    offset = parcel_offsets[parcel]
    other = parcel == 0
    offset[other] = np.float32(0.6) * smooth_field(rng, shape, 200.0 * px)[other]

    texture = smooth_field(_rng(seed, _S_TEXTURE), shape, 40.0 * px)

    rng = _rng(seed, _S_MODES)
    length = min(WEATHER_LENGTH_M * px, 0.5 * max(shape))
    modes = np.stack([smooth_field(rng, shape, length) for _ in WEATHER_SD_K[1:]])
    return Scene(land_cover, parcel, harvest_day, offset, texture, modes)


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
    rng = _rng(seed, _S_WEATHER)
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


def _day_of_year(dates: np.ndarray) -> np.ndarray:
    dates = np.asarray(dates, dtype="datetime64[D]")
    return (dates - dates.astype("datetime64[Y]")).astype(np.int64) + 1


def truth_batch(scene: Scene, weather: Weather, dates: np.ndarray,
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
    season = seasonal_cycle(_day_of_year(dates), shift_k=shift_k, amp_scale=amp_scale)
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


# --------------------------------------------------------------------------------------
# MODIS.


def aggregate_radiance(lst_k: np.ndarray, factor: int) -> np.ndarray:
    """Aggregate LST over ``factor x factor`` blocks in radiance space: mean(T^4)^(1/4).

    Parameters
    ----------
    lst_k
        ``(..., ny, nx)`` Kelvin; ``ny`` and ``nx`` multiples of ``factor``.
    factor
        Block edge in pixels.

    Returns
    -------
    numpy.ndarray
        float32 ``(..., ny / factor, nx / factor)``.
    """
    *lead, ny, nx = lst_k.shape
    blocks = lst_k.reshape(*lead, ny // factor, factor, nx // factor, factor)
    r = (blocks.astype(np.float32) / np.float32(300.0)) ** 2
    r *= r
    mean = r.mean(axis=(-3, -1), dtype=np.float64)
    return (300.0 * mean**0.25).astype(np.float32)


def modis_bias(dates: np.ndarray, offset_k: float) -> np.ndarray:
    """Systematic MODIS-minus-truth offset per date (K): ``offset_k`` + a +-0.3 K seasonal term.

    The seasonal term stands for overpass-time and emissivity differences.
    """
    doy = _day_of_year(dates)
    return offset_k + MODIS_BIAS_SEASONAL_K * np.sin(2.0 * np.pi * (doy - 15) / 365.25)


def cloud_fractions(rng: np.random.Generator, n: int, mean: float,
                    concentration: float = 1.5, clear_below: float = 0.02) -> np.ndarray:
    """Per-date cloud fractions, Beta distributed with the given mean, stratified.

    A small concentration makes the distribution U-shaped: many nearly clear dates (those
    below ``clear_below`` become fully clear) and some nearly overcast ones. The uniform
    variates are stratified so the mean over few dates is close to ``mean``.

    Parameters
    ----------
    rng
        Source of randomness.
    n
        Number of dates.
    mean
        Target mean cloud fraction in [0, 1).
    concentration
        ``a + b`` of the Beta distribution.
    clear_below
        Fractions below this become 0.
    """
    if n == 0 or mean <= 0.0:
        return np.zeros(n)
    from scipy.special import betaincinv  # the Beta quantile function

    u = (rng.permutation(n) + rng.random(n)) / n
    f = betaincinv(mean * concentration, (1.0 - mean) * concentration, u)
    return np.where(f < clear_below, 0.0, f)


def simulate_modis_day(truth_k: np.ndarray, factor: int, rng: np.random.Generator, *,
                       bias_k: float, noise_k: float, psf_sigma: float,
                       cloud_fraction: float, resolution_m: float,
                       fine_offset_k: np.ndarray | None = None,
                       shift_px: tuple[int, int] = (0, 0)
                       ) -> tuple[np.ndarray, np.ndarray]:
    """One MODIS-like day: radiance aggregation, PSF blur, bias, noise, clouds, QC.

    Parameters
    ----------
    truth_k
        ``(ny, nx)`` true LST.
    factor
        Coarse factor.
    rng
        The day's generator.
    bias_k
        Systematic offset added (K).
    noise_k
        Standard deviation of the Gaussian noise (K).
    psf_sigma
        Gaussian point-spread sigma in coarse pixels (``mode='nearest'``); 0 for none.
    cloud_fraction
        Fraction of coarse pixels that are cloudy (rounded to whole pixels).
    resolution_m
        Fine pixel size (sets the cloud correlation length in metres).
    fine_offset_k
        ``(ny, nx)`` offset added at fine resolution before aggregation (per-class errors).
    shift_px
        Geolocation error: the footprints sample the surface ``(rows, columns)`` fine pixels
        away (edges repeated).

    Returns
    -------
    qc : numpy.ndarray
        uint8 ``(nyc, nxc)`` QC_Day: mandatory 2 (cloud) or 0 with LST error class 0/1
        (class 1 on cloud edges and at random on 10 % of pixels).
    lst : numpy.ndarray
        float32 ``(nyc, nxc)`` Kelvin, NaN under clouds.
    """
    if fine_offset_k is not None:
        truth_k = truth_k + fine_offset_k
    if shift_px != (0, 0):
        dy, dx = shift_px
        padded = np.pad(truth_k, ((abs(dy), abs(dy)), (abs(dx), abs(dx))), mode="edge")
        ny, nx = truth_k.shape
        truth_k = padded[abs(dy) + dy:abs(dy) + dy + ny, abs(dx) + dx:abs(dx) + dx + nx]
    coarse = aggregate_radiance(truth_k, factor)
    if psf_sigma > 0:
        coarse = ndimage.gaussian_filter(coarse, psf_sigma, mode="nearest")
    lst = coarse + np.float32(bias_k)
    lst += np.float32(noise_k) * rng.standard_normal(lst.shape, dtype=np.float32)
    field = smooth_field(rng, lst.shape, MODIS_CLOUD_LENGTH_M / (resolution_m * factor))
    n_cloud = round(cloud_fraction * lst.size)
    cloud = np.zeros(lst.shape, dtype=bool)
    if n_cloud:
        cloud.flat[np.argsort(field, axis=None, kind="stable")[-n_cloud:]] = True
    edge = ndimage.binary_dilation(cloud) & ~cloud
    error_class = (edge | (rng.random(lst.shape) < 0.1)).astype(np.uint8)
    mandatory = np.where(cloud, modis.MANDATORY_CLOUD, modis.MANDATORY_GOOD)
    qc = modis.make_qc(mandatory, lst_error=np.where(cloud, 0, error_class))
    lst[cloud] = np.nan
    return qc, lst


# --------------------------------------------------------------------------------------
# Landsat.


def landsat_date_indices(n_days: int, revisit_days: int, seed: int) -> np.ndarray:
    """Day indices of the Landsat acquisitions: every ``revisit_days`` from a seeded phase."""
    phase = int(_rng(seed, _S_LANDSAT_PHASE).integers(revisit_days))
    return np.arange(phase, n_days, revisit_days, dtype=np.int64)


def _shift(mask: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """``mask`` moved ``dy`` rows down and ``dx`` columns right, False where nothing moved in."""
    out = np.zeros_like(mask)
    ny, nx = mask.shape
    if abs(dy) >= ny or abs(dx) >= nx:
        return out
    src_y = slice(max(-dy, 0), ny - max(dy, 0))
    dst_y = slice(max(dy, 0), ny - max(-dy, 0))
    src_x = slice(max(-dx, 0), nx - max(dx, 0))
    dst_x = slice(max(dx, 0), nx - max(-dx, 0))
    out[dst_y, dst_x] = mask[src_y, src_x]
    return out


def landsat_cloud_masks(field: np.ndarray, fraction: float, *, dilate_px: int,
                        shadow_shift_px: tuple[int, int]
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cloud, dilated-cloud and shadow masks covering about ``fraction`` of the scene.

    Clouds are where ``field`` exceeds a threshold; the dilated ring is the cloud grown by
    ``dilate_px`` (square) minus cloud and shadow; shadows are the cloud moved by
    ``shadow_shift_px`` minus cloud. The threshold is adjusted (a few fixed-point steps)
    so that the union of the three masks covers ``fraction`` of the pixels.

    Returns
    -------
    cloud, dilated, shadow : numpy.ndarray
        Disjoint boolean masks.
    """
    none = np.zeros(field.shape, dtype=bool)
    if fraction <= 0.0:
        return none, none.copy(), none.copy()
    core = fraction
    for attempt in range(5):
        cloud = field > _quantile(field, 1.0 - core)
        shadow = _shift(cloud, *shadow_shift_px) & ~cloud
        grown = ndimage.maximum_filter(cloud.view(np.uint8), size=2 * dilate_px + 1) > 0
        dilated = grown & ~cloud & ~shadow
        covered = float(cloud.mean() + shadow.mean() + dilated.mean())
        if abs(covered - fraction) < 0.005 or attempt == 4:
            break
        core = min(max(core * fraction / max(covered, 1e-6), 1e-5), 1.0)
    return cloud, dilated, shadow


def encode_qa_pixel(cloud: np.ndarray, dilated: np.ndarray, shadow: np.ndarray,
                    water: np.ndarray) -> np.ndarray:
    """Collection 2 QA_PIXEL values from masks (cloud wins over shadow over dilated).

    Clear pixels get :data:`landsat.QA_VALUE_CLEAR_LAND` or ``QA_VALUE_CLEAR_WATER``; dilated
    cloud :data:`landsat.QA_VALUE_DILATED_CLOUD` with the water bit (7) set over water only.

    Returns
    -------
    numpy.ndarray
        uint16, same shape.
    """
    water_bit = np.uint16(1 << landsat.QA_WATER)
    qa = np.where(water, np.uint16(landsat.QA_VALUE_CLEAR_WATER),
                  np.uint16(landsat.QA_VALUE_CLEAR_LAND)).astype(np.uint16)
    dilated_land = np.uint16(landsat.QA_VALUE_DILATED_CLOUD) & ~water_bit
    qa[dilated] = dilated_land
    qa[dilated & water] = dilated_land | water_bit
    qa[shadow] = landsat.QA_VALUE_CLOUD_SHADOW
    qa[cloud] = landsat.QA_VALUE_CLOUD_HIGH
    return qa


def simulate_landsat_date(truth_k: np.ndarray, water: np.ndarray, rng: np.random.Generator,
                          *, noise_k: float, cloud_fraction: float, resolution_m: float,
                          offset_k: float = 0.0, psf_sigma_px: float = 0.0
                          ) -> tuple[np.ndarray, np.ndarray]:
    """One Landsat-like acquisition: truth plus noise, clouds, shadows and QA_PIXEL bits.

    Parameters
    ----------
    truth_k
        ``(ny, nx)`` true LST.
    water
        Boolean water mask of the date (sets the clear-water QA value).
    rng
        The date's generator.
    noise_k
        Standard deviation of the Gaussian noise (K).
    cloud_fraction
        Fraction of the scene covered by cloud, dilated cloud and shadow.
    resolution_m
        Fine pixel size; cloud sizes, dilation and shadow offsets are set in metres.
    offset_k
        Calibration offset of the date.
    psf_sigma_px
        Gaussian thermal footprint (fine pixels), 0 for none.

    Returns
    -------
    qa_pixel : numpy.ndarray
        uint16 ``(ny, nx)``.
    lst : numpy.ndarray
        float32 ``(ny, nx)`` Kelvin, not masked (the stack writer masks from the QA bits).
    """
    px = 1.0 / resolution_m
    seen = ndimage.gaussian_filter(truth_k, psf_sigma_px, mode="nearest") \
        if psf_sigma_px > 0 else truth_k
    lst = seen + np.float32(noise_k) * rng.standard_normal(truth_k.shape, dtype=np.float32)
    lst += np.float32(offset_k)
    field = smooth_field(rng, truth_k.shape, LANDSAT_CLOUD_LENGTH_M * px)
    field += np.float32(0.35) * smooth_field(rng, truth_k.shape, 250.0 * px)
    cloud, dilated, shadow = landsat_cloud_masks(
        field, cloud_fraction, dilate_px=max(1, round(DILATION_M * px)),
        shadow_shift_px=(round(SHADOW_SHIFT_M[0] * px), round(SHADOW_SHIFT_M[1] * px)))
    return encode_qa_pixel(cloud, dilated, shadow, water), lst


# --------------------------------------------------------------------------------------
# Driver.


@dataclass(frozen=True)
class SensorDraws:
    """Per-date sensor errors of a region (all zero with the default configuration)."""

    date_offset_k: np.ndarray
    class_offset_k: np.ndarray
    view: np.ndarray
    shift_px: np.ndarray
    landsat_offset_k: np.ndarray


def _sensor_draws(seed: int, n_days: int, n_landsat: int, factor: int,
                  sim: SimulationConfig) -> SensorDraws:
    """Draw the per-date MODIS and Landsat errors of ``sim`` (own random stream)."""
    rng = _rng(seed, _S_SENSOR)
    date = rng.normal(0.0, 1.0, n_days) * sim.modis_date_offset_sd_k
    classes = (rng.normal(0.0, 1.0, len(CLASS_NAMES)) * sim.modis_class_offset_sd_k
               ).astype(np.float32)
    view = rng.uniform(0.3, 1.7, n_days)
    shift = np.round(rng.normal(0.0, 1.0, (n_days, 2)) * sim.modis_geolocation_sd_px * factor)
    landsat_offset = rng.normal(0.0, 1.0, n_landsat) * sim.landsat_offset_sd_k
    return SensorDraws(date, classes, view, shift.astype(np.int64), landsat_offset)


@dataclass(frozen=True)
class SimulationSummary:
    """What :func:`simulate_region` wrote."""

    n_days: int
    n_landsat_dates: int
    shape: tuple[int, int]
    landsat_clear_fraction: float
    modis_clear_fraction: float
    seconds: float
    stack: Path
    truth: Path
    notes: tuple[str, ...] = ()

    def __str__(self) -> str:
        ny, nx = self.shape
        return "\n".join([
            *(f"note: {n}" for n in self.notes),
            f"simulated {self.n_days} days on a {ny} x {nx} grid in {self.seconds:.1f} s",
            f"  Landsat: {self.n_landsat_dates} dates, "
            f"mean clear fraction {self.landsat_clear_fraction:.2f}",
            f"  MODIS:   {self.n_days} days, mean clear fraction {self.modis_clear_fraction:.2f}",
            f"  input stack: {self.stack}",
            f"  truth:       {self.truth}",
        ])


def _provenance(sim: SimulationConfig) -> dict[str, Any]:
    """Scene-defining simulation parameters (not paths, not the batch size)."""
    params = {f.name: getattr(sim, f.name) for f in dataclasses.fields(sim)
              if f.name not in ("truth", "day_batch")}
    return json.loads(json.dumps(params, default=str))


def simulate_region(config: PipelineConfig, *, overwrite: bool = False,
                    progress: bool = True) -> SimulationSummary:
    """Simulate a region and write its input stack and its truth cube.

    Days are generated ``config.simulation.day_batch`` at a time; only one batch of fine
    images is held in memory, besides the static per-pixel fields of the scene. The stack is
    marked complete last, so an interrupted simulation leaves a stack readers refuse.

    Parameters
    ----------
    config
        Pipeline configuration with a ``simulation`` section; the grid and dates define the
        region, ``inputs.stack`` and ``simulation.truth`` the stores written.
    overwrite
        Replace existing stores; otherwise an existing store is an error.
    progress
        Show a progress bar over days.

    Returns
    -------
    SimulationSummary

    Raises
    ------
    ConfigError
        If the configuration has no ``simulation`` section.
    StoreError
        If a store exists and ``overwrite`` is false, or a path is not a store this
        command may replace (a plain directory, an ingested stack, another kind of store).
    """
    sim = config.simulation
    if sim is None:
        raise ConfigError("simulation: section missing; add a `simulation:` section with at "
                          "least `truth: <path of the truth store>`")
    started = _time.perf_counter()
    stack_path, truth_path = Path(config.inputs.stack), Path(sim.truth)
    stores = ((stack_path, "stack", "inputs.stack", SIMULATE_SOURCE),
              (truth_path, "truth", "simulation.truth", None))
    for path, kind, field, source in stores:
        if check_replaceable(path, kind, field=field, source=source) and not overwrite:
            raise StoreError(f"{path}: store already exists; pass --overwrite to replace it")
    locks = []
    try:
        for path, kind, field, source in stores:
            lock, made = lock_store(path, kind, field=field,
                                    what="another simulation is writing this store")
            locks.append((lock, path, made))
            remove_store(path, kind, field=field, source=source, keep=LOCK_FILES)
        return _simulate(config, stack_path, truth_path, started, progress)
    finally:  # a failed simulation leaves stores marked `writing`, which readers refuse
        for lock, path, made in locks:
            lock.release()
            if made:
                discard_unborn(path)


def _simulate(config: PipelineConfig, stack_path: Path, truth_path: Path, started: float,
              progress: bool) -> SimulationSummary:
    """Write the region of ``config`` into the (locked, free) stack and truth paths."""
    from tqdm.auto import tqdm

    from lst_pipeline.grid import resolve_grid

    sim = config.simulation
    grid, notes = resolve_grid(config.grid)
    resolution = float(config.grid.resolution)
    factor = grid.coarse_factor
    start = np.datetime64(config.dates.start, "D")
    days = start + np.arange(config.dates.n_days)
    n_days = len(days)
    seed = sim.seed

    scene = make_scene(seed, grid.shape, resolution, n_days)
    weather = weather_series(seed, n_days)
    l_index = landsat_date_indices(n_days, sim.landsat_revisit_days, seed)
    l_fraction = cloud_fractions(_rng(seed, _S_LANDSAT_FRACTIONS), len(l_index),
                                 sim.landsat_cloud_fraction)
    m_fraction = cloud_fractions(_rng(seed, _S_MODIS_FRACTIONS), n_days,
                                 sim.modis_cloud_fraction)
    bias = modis_bias(days, sim.modis_offset_k)
    l_position = {int(t): i for i, t in enumerate(l_index)}
    sensor = _sensor_draws(seed, n_days, len(l_index), factor, sim)

    # No timestamps: the same seed and configuration give byte-identical stores.
    attrs = {"source": SIMULATE_SOURCE, "simulation_seed": seed,
             "simulation": _provenance(sim)}
    create_stack(stack_path, grid, days[l_index], days, attrs=attrs)
    create_truth(truth_path, grid, days, class_names=CLASS_NAMES, static=TRUTH_LAYERS,
                 day_chunk=sim.day_batch, attrs=attrs)
    truth_writer = TruthWriter(truth_path)
    truth_writer.write_static("land_cover", scene.land_cover)
    truth_writer.write_static("harvest_day", scene.harvest_day)
    truth_writer.write_static("parcel", scene.parcel)
    writer = StackWriter(stack_path)

    landsat_clear: list[float] = []
    modis_clear: list[float] = []
    with tqdm(total=n_days, unit="day", desc="simulate", disable=not progress) as bar:
        for t0 in range(0, n_days, sim.day_batch):
            t1 = min(t0 + sim.day_batch, n_days)
            truth = truth_batch(scene, weather, days[t0:t1], range(t0, t1),
                                shift_k=sim.climate_shift_k, amp_scale=sim.climate_amp_scale)
            truth_writer.write_days(t0, truth)
            qcs = np.empty((t1 - t0, *grid.coarse_shape), dtype=np.uint8)
            lsts = np.empty((t1 - t0, *grid.coarse_shape), dtype=np.float32)
            for k, t in enumerate(range(t0, t1)):
                cls_today = land_cover_on(scene.land_cover, scene.harvest_day, t)
                fine_offset = (sensor.class_offset_k[cls_today] * np.float32(sensor.view[t])
                               if sim.modis_class_offset_sd_k > 0 else None)
                qcs[k], lsts[k] = simulate_modis_day(
                    truth[k], factor, _rng(seed, _S_MODIS_DAY, t),
                    bias_k=float(bias[t] + sensor.date_offset_k[t]),
                    noise_k=sim.modis_noise_k, psf_sigma=sim.modis_psf_sigma,
                    cloud_fraction=float(m_fraction[t]), resolution_m=resolution,
                    fine_offset_k=fine_offset, shift_px=tuple(sensor.shift_px[t]))
                modis_clear.append(float(modis.usable_mask(qcs[k]).mean()))
                if t in l_position:
                    i = l_position[t]
                    water = land_cover_on(scene.land_cover, scene.harvest_day, t) == WATER
                    qa, lst = simulate_landsat_date(
                        truth[k], water, _rng(seed, _S_LANDSAT_DATE, t),
                        noise_k=sim.landsat_noise_k, cloud_fraction=float(l_fraction[i]),
                        resolution_m=resolution, offset_k=float(sensor.landsat_offset_k[i]),
                        psf_sigma_px=sim.landsat_psf_sigma_px)
                    landsat_clear.append(writer.write_landsat(i, qa, lst))
                    del qa, lst
            writer.write_modis(t0, qcs, lsts)
            del truth
            bar.update(t1 - t0)
    truth_writer.finish()
    writer.finish()
    return SimulationSummary(
        n_days=n_days,
        n_landsat_dates=len(l_index),
        shape=tuple(grid.shape),
        landsat_clear_fraction=float(np.mean(landsat_clear)) if landsat_clear else float("nan"),
        modis_clear_fraction=float(np.mean(modis_clear)) if modis_clear else float("nan"),
        seconds=_time.perf_counter() - started,
        stack=stack_path,
        truth=truth_path,
        notes=tuple(notes),
    )


def synthetic_pipeline(root: Path, *, seed: int, size: int, days: int = 365,
                       start: str = "2021-01-01", origin: tuple[float, float] = (400_000.0,
                                                                                 6_200_000.0),
                       resolution: float = 30.0, coarse_factor: int = 32,
                       chunk: int | None = None, fusion: dict[str, Any] | None = None,
                       **simulation: Any) -> PipelineConfig:
    """A pipeline over a square synthetic region whose stores all live under ``root``.

    For benchmarks and training data: ``size`` x ``size`` fine pixels from ``origin`` (left,
    bottom) in UTM zone 55S, ``days`` days from ``start``; extra keyword arguments go to the
    ``simulation`` section.
    """
    from lst_pipeline.config import load_pipeline

    root = Path(root)
    left, bottom = origin
    extent = size * resolution
    first = np.datetime64(start, "D")
    data: dict[str, Any] = {
        "name": f"synthetic-{seed}-{size}px",
        "grid": {"crs": "EPSG:32755", "resolution": resolution, "coarse_factor": coarse_factor,
                 "bounds": [left, bottom, left + extent, bottom + extent]},
        "dates": {"start": str(first), "end": str(first + days - 1)},
        "inputs": {"stack": str(root / "inputs.zarr")},
        "output": {"cube": str(root / "cube.zarr")},
        "simulation": {"truth": str(root / "truth.zarr"), "seed": seed, **simulation},
    }
    if chunk is not None:
        data["chunks"] = {"time": 32, "y": chunk, "x": chunk}
    if fusion is not None:
        data["fusion"] = fusion
    return load_pipeline(data)
