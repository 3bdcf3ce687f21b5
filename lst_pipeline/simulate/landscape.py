"""The simulator's static landscape: smooth fields, parcels, land cover, the scene.

Random streams: every component draws from its own generator, derived from
``(seed, stream[, index])`` (:func:`rng`), so that no result depends on the order or
batching of work.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from lst_pipeline.errors import ConfigError

#: Standard deviations (K) of the uniform weather anomaly and of each spatial mode, and the
#: modes' correlation length (the climate uses them too).
WEATHER_SD_K = (2.4, 1.3, 1.3)
WEATHER_LENGTH_M = 20_000.0

# --------------------------------------------------------------------------------------
# Land-cover classes and their thermal behaviour.

WATER, IRRIGATED, PASTURE, BARE, TREES, URBAN = range(6)
#: Class names, indexed by class value (CF ``flag_meanings`` order).
CLASS_NAMES = ("water", "irrigated_crop", "dry_pasture", "bare_soil", "trees", "urban")


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


def stream_rng(seed: int, *keys: int) -> np.random.Generator:
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


def _water(rng: np.random.Generator, shape: tuple[int, int], px: float) -> np.ndarray:
    """A meandering river along a zero crossing of a smooth field, and a lake."""
    water_fraction = rng.uniform(0.04, 0.08)
    river_share = rng.uniform(0.3, 0.7)
    river = np.abs(smooth_field(rng, shape, 3000.0 * px))
    water = river <= _quantile(river, water_fraction * river_share)
    del river
    lake = smooth_field(rng, shape, 800.0 * px)
    water |= lake >= _quantile(lake, 1.0 - water_fraction * (1.0 - river_share))
    return water


def _urban(rng: np.random.Generator, shape: tuple[int, int], px: float,
           water: np.ndarray) -> np.ndarray:
    """One compact, ragged town away from the edges."""
    ny, nx = shape
    urban_fraction = rng.uniform(0.03, 0.06)
    cy, cx = rng.uniform(0.2, 0.8) * ny, rng.uniform(0.2, 0.8) * nx
    radius = np.sqrt(urban_fraction * ny * nx / np.pi)
    yy = (np.arange(ny, dtype=np.float32)[:, None] - np.float32(cy)) ** 2
    xx = (np.arange(nx, dtype=np.float32)[None, :] - np.float32(cx)) ** 2
    score = np.sqrt(yy + xx) / np.float32(radius)
    score += np.float32(0.4) * smooth_field(rng, shape, 300.0 * px)
    score[water] = np.inf
    return score <= _quantile(score, urban_fraction)


def _trees(rng: np.random.Generator, shape: tuple[int, int], px: float,
           boxes: np.ndarray, taken: np.ndarray) -> np.ndarray:
    """Windbreaks along one side of some parcels, and patches, off ``taken`` pixels."""
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
    trees &= ~taken
    remaining = max(tree_fraction - trees.mean(), 0.0)
    patches = smooth_field(rng, shape, 400.0 * px)
    patches[taken | trees] = -np.inf
    if remaining > 0:
        trees |= patches >= _quantile(patches, 1.0 - remaining)
    return trees


def _parcel_classes(rng: np.random.Generator, parcel: np.ndarray, overlay: np.ndarray,
                    n: int) -> np.ndarray:
    """Agricultural classes, parcel by parcel, to area targets (uint8 map)."""
    area = np.bincount(parcel[~overlay], minlength=n + 1)[1:].astype(np.float64)
    order = rng.permutation(n)
    cum = np.cumsum(area[order])
    mid = (cum - area[order] / 2.0) / max(cum[-1] if n else 0.0, 1.0)
    shares = np.cumsum([0.35, 0.43])
    classes = np.empty(n, dtype=np.uint8)
    classes[order] = np.where(mid < shares[0], IRRIGATED, np.where(mid < shares[1], PASTURE, BARE))
    return np.concatenate([[0], classes]).astype(np.uint8)[parcel]


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
    px = 1.0 / resolution_m  # pixels per metre
    parcel, boxes = make_parcels(stream_rng(seed, _S_PARCELS), shape, resolution_m)
    water = _water(stream_rng(seed, _S_WATER), shape, px)
    urban = _urban(stream_rng(seed, _S_URBAN), shape, px, water)
    trees = _trees(stream_rng(seed, _S_TREES), shape, px, boxes, water | urban)
    overlay = water | urban | trees
    land_cover = _parcel_classes(stream_rng(seed, _S_CLASSES), parcel, overlay, len(boxes))
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
class SyntheticScene:
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


def make_scene(seed: int, shape: tuple[int, int], resolution_m: float,
               n_days: int) -> SyntheticScene:
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
    SyntheticScene
    """
    if n_days >= np.iinfo(np.int16).max:
        raise ConfigError(f"dates: {n_days} days is too long a simulation (max 32766)")
    px = 1.0 / resolution_m
    land_cover, parcel = make_land_cover(seed, shape, resolution_m)
    n_parcels = int(parcel.max())

    rng = stream_rng(seed, _S_HARVEST)
    harvest_lut = np.full(n_parcels + 1, -1, dtype=np.int16)
    irrigated = np.unique(parcel[(land_cover == IRRIGATED) & (parcel > 0)])
    if n_days >= 60 and len(irrigated):
        n_harvest = max(1, round(0.2 * len(irrigated)))
        chosen = rng.choice(irrigated, size=n_harvest, replace=False)
        harvest_lut[chosen] = rng.integers(n_days // 4, 3 * n_days // 4 + 1, size=n_harvest)
    harvest_day = harvest_lut[parcel]
    harvest_day[parcel == 0] = -1

    rng = stream_rng(seed, _S_OFFSETS)
    parcel_offsets = np.concatenate(
        [[0.0], rng.normal(0.0, PARCEL_OFFSET_SD_K, n_parcels)]).astype(np.float32)
    offset = parcel_offsets[parcel]
    other = parcel == 0
    offset[other] = np.float32(0.6) * smooth_field(rng, shape, 200.0 * px)[other]

    texture = smooth_field(stream_rng(seed, _S_TEXTURE), shape, 40.0 * px)

    rng = stream_rng(seed, _S_MODES)
    length = min(WEATHER_LENGTH_M * px, 0.5 * max(shape))
    modes = np.stack([smooth_field(rng, shape, length) for _ in WEATHER_SD_K[1:]])
    return SyntheticScene(land_cover, parcel, harvest_day, offset, texture, modes)


