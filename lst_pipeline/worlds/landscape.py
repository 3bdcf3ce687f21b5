"""Static fields of an independent-world region: terrain, water, town, fields, forest, fire.

Everything is drawn on a padded working grid (the region plus a margin, so that MODIS
footprints at the border see real surface) by spectral synthesis of power-law random
fields, not by the filtered noise of :mod:`lst_pipeline.simulate`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

#: Land-cover classes of this world (truth ``land_cover`` values index this tuple).
CLASS_NAMES = ("water", "forest", "grassland", "cropland", "irrigated_cropland", "urban",
               "rock", "burn_scar")
WATER, FOREST, GRASS, CROP, IRRIGATED, URBAN, ROCK, BURN = range(8)
#: Broadband thermal-infrared emissivity of each class (bare soil of crops before emergence
#: is handled by the physics).
EMISSIVITY = np.array([0.990, 0.985, 0.975, 0.970, 0.975, 0.945, 0.950, 0.960], np.float32)


def power_law_field(rng: np.random.Generator, shape: tuple[int, int], beta: float,
                    *, cutoff_px: float = 2.0) -> np.ndarray:
    """A Gaussian random field with power spectrum ``k**-beta``, standardised.

    Parameters
    ----------
    rng
        Source of the white noise.
    shape
        ``(ny, nx)``.
    beta
        Spectral slope (2: rough, 3.5: smooth hills).
    cutoff_px
        Wavelengths shorter than this are removed (no pixel-scale speckle).
    """
    ny, nx = shape
    ky = np.fft.fftfreq(ny)[:, None]
    kx = np.fft.rfftfreq(nx)[None, :]
    k = np.sqrt(ky**2 + kx**2)
    k[0, 0] = 1.0
    amplitude = k ** (-beta / 2.0)
    amplitude[k > 1.0 / cutoff_px] = 0.0
    amplitude[0, 0] = 0.0
    spectrum = (rng.standard_normal((ny, nx // 2 + 1))
                + 1j * rng.standard_normal((ny, nx // 2 + 1))) * amplitude
    field = np.fft.irfft2(spectrum, s=shape)
    field -= field.mean()
    return (field / max(field.std(), 1e-12)).astype(np.float32)


@dataclass(frozen=True)
class Landscape:
    """Static per-pixel fields on the working grid.

    Attributes
    ----------
    elevation_m, slope_rad, aspect_rad
        Terrain (aspect clockwise from north, the direction the slope faces).
    cover
        uint8 class (:data:`CLASS_NAMES`).
    field
        int32 field id (0 outside fields); fields carry their crop calendar.
    sowing_day, season_days
        Per field id: day index of emergence and length of the growing season (days).
    irrigated
        Per field id: irrigated or not.
    sand
        float32 0..1 soil texture (sand holds less water, is brighter when dry).
    impervious
        float32 0..1 sealed fraction (streets, roofs) in and around the town.
    burn_day
        Day index of the fire (the scar is ``cover == BURN``; before it burns it is forest or
        grassland, given by ``pre_burn``).
    pre_burn
        uint8 class of the scar's pixels before the fire.
    """

    elevation_m: np.ndarray
    slope_rad: np.ndarray
    aspect_rad: np.ndarray
    cover: np.ndarray
    field: np.ndarray
    sowing_day: np.ndarray
    season_days: np.ndarray
    irrigated: np.ndarray
    sand: np.ndarray
    impervious: np.ndarray
    burn_day: int
    pre_burn: np.ndarray

    @property
    def shape(self) -> tuple[int, int]:
        """``(ny, nx)`` of the working grid."""
        return self.cover.shape


def _river(rng: np.random.Generator, shape: tuple[int, int], width_px: float) -> np.ndarray:
    """A meandering channel across the grid (distance to a wandering centre line)."""
    ny, nx = shape
    x = np.arange(nx)
    wander = power_law_field(rng, (1, nx), 2.6, cutoff_px=20.0)[0]
    centre = ny * rng.uniform(0.25, 0.75) + 0.08 * ny * wander \
        + 0.05 * ny * np.sin(2 * np.pi * x / nx * rng.uniform(1.0, 2.5))
    dist = np.abs(np.arange(ny)[:, None] - centre[None, :])
    return dist <= width_px / 2.0


def make_landscape(rng: np.random.Generator, shape: tuple[int, int], resolution_m: float,
                   n_days: int, *, relief_m: float, base_m: float,
                   town_radius_m: float) -> Landscape:
    """Draw the static fields of a region on its working grid.

    Parameters
    ----------
    rng
        Source of randomness (one per region).
    shape
        ``(ny, nx)`` of the working grid.
    resolution_m
        Pixel size.
    n_days
        Length of the series (crop calendars and the fire fall inside it).
    relief_m, base_m
        Height range and base elevation of the terrain.
    town_radius_m
        Radius of the town.
    """
    ny, nx = shape
    px = 1.0 / resolution_m
    yy, xx = np.mgrid[0:ny, 0:nx].astype(np.float32)
    elevation, slope, aspect, water = _terrain(rng, yy, xx, resolution_m, relief_m=relief_m,
                                               base_m=base_m)
    town, impervious = _town(rng, yy, xx, resolution_m, slope, water, town_radius_m)
    farmland = (np.degrees(slope) < 7) & ~water & ~town \
        & (elevation < np.quantile(elevation, rng.uniform(0.55, 0.75)))
    field, irrigated, is_crop, sowing, season = _fields(rng, yy, xx, farmland, resolution_m,
                                                        n_days)
    rock = elevation >= np.quantile(elevation, rng.uniform(0.95, 0.985))
    forest_score = np.degrees(slope) / 10 + (elevation - elevation.mean()) / relief_m \
        + 0.6 * power_law_field(rng, shape, 2.8, cutoff_px=4.0)
    forest = (forest_score > np.quantile(forest_score, 0.55)) & ~farmland & ~town & ~water

    cover = np.full(shape, GRASS, np.uint8)
    cover[forest] = FOREST
    cover[farmland & is_crop[field]] = CROP
    cover[farmland & is_crop[field] & irrigated[field]] = IRRIGATED
    cover[rock & ~water] = ROCK
    cover[town] = URBAN
    cover[water] = WATER

    # a fire scar of 1-3 km2 in forest or grassland, burning inside the series
    wild = (cover == FOREST) | (cover == GRASS)
    burn_day = int(rng.integers(n_days // 5, max(n_days // 5 + 1, 3 * n_days // 5)))
    pre_burn = cover.copy()
    spots = np.argwhere(wild)
    if len(spots):
        by, bx = spots[rng.integers(len(spots))]
        radius = np.sqrt(rng.uniform(1e6, 3e6) / np.pi) * px
        blob = np.hypot(yy - by, xx - bx) * (1 + 0.3 * power_law_field(rng, shape, 2.4)) < radius
        cover[blob & wild] = BURN
    sand = np.clip(0.5 + 0.25 * power_law_field(rng, shape, 3.0, cutoff_px=6.0), 0, 1)
    return Landscape(elevation.astype(np.float32), slope, aspect, cover, field,
                     sowing.astype(np.int32), season.astype(np.int32),
                     irrigated & is_crop, sand.astype(np.float32), impervious, burn_day,
                     pre_burn)


def _terrain(rng: np.random.Generator, yy: np.ndarray, xx: np.ndarray, resolution_m: float,
             *, relief_m: float, base_m: float) -> tuple[np.ndarray, ...]:
    """Elevation, slope, aspect (radians) and water (a river and lakes in hollows)."""
    shape = yy.shape
    ny, nx = shape
    hills = power_law_field(rng, shape, 3.4, cutoff_px=10.0)  # no relief below ~300 m
    ridge_dir = rng.uniform(0, np.pi)
    tilt = (np.cos(ridge_dir) * xx + np.sin(ridge_dir) * yy) / max(ny, nx)
    elevation = base_m + relief_m * (0.6 * (hills - hills.min()) / np.ptp(hills) + 0.4 * tilt)
    river = _river(rng, shape, rng.uniform(60.0, 150.0) * (1.0 / resolution_m))
    elevation = np.where(river, elevation - 15.0, elevation)
    gy, gx = np.gradient(ndimage.gaussian_filter(elevation, 2.0), resolution_m)
    slope = np.arctan(np.hypot(gx, gy)).astype(np.float32)
    # the slope faces downhill: the gradient points uphill; rows run south
    aspect = np.mod(np.arctan2(-gx, gy), 2 * np.pi).astype(np.float32)
    low = elevation <= np.quantile(elevation, rng.uniform(0.015, 0.04))
    lake = ndimage.binary_opening(low, iterations=2)
    return elevation, slope, aspect, river | lake


def _town(rng: np.random.Generator, yy: np.ndarray, xx: np.ndarray, resolution_m: float,
          slope: np.ndarray, water: np.ndarray, town_radius_m: float
          ) -> tuple[np.ndarray, np.ndarray]:
    """A disc on gentle ground with streets every 150-250 m; the impervious fraction."""
    shape = yy.shape
    ny, nx = shape
    gentle = (np.degrees(slope) < 5) & ~water
    candidates = np.argwhere(gentle[ny // 5:4 * ny // 5, nx // 5:4 * nx // 5])
    cy, cx = candidates[rng.integers(len(candidates))] + (ny // 5, nx // 5) \
        if len(candidates) else (ny // 2, nx // 2)
    r = np.hypot(yy - cy, xx - cx) * resolution_m
    ragged = r * (1 + 0.25 * power_law_field(rng, shape, 2.5, cutoff_px=8.0))
    town = (ragged < town_radius_m) & ~water
    spacing = rng.uniform(150.0, 250.0) * (1.0 / resolution_m)
    streets = ((np.mod(yy, spacing) < 1.0) | (np.mod(xx, spacing) < 1.0)) & town
    impervious = np.clip(np.exp(-np.maximum(ragged - 0.6 * town_radius_m, 0) / 300.0)
                         * (0.55 + 0.25 * power_law_field(rng, shape, 2.0)), 0, 1)
    impervious = np.where(town, impervious, impervious * 0.15).astype(np.float32)
    impervious[streets] = 1.0
    return town, impervious


def _fields(rng: np.random.Generator, yy: np.ndarray, xx: np.ndarray, farmland: np.ndarray,
            resolution_m: float, n_days: int) -> tuple[np.ndarray, ...]:
    """Voronoi fields on the farmland: ids, irrigated and crop per id, crop calendars."""
    from scipy.spatial import cKDTree

    ny, nx = yy.shape
    n_fields = max(8, int(farmland.sum() * resolution_m**2 / rng.uniform(3e5, 1.2e6)))
    seeds = np.column_stack([rng.uniform(0, ny, n_fields), rng.uniform(0, nx, n_fields)])
    _, nearest = cKDTree(seeds).query(np.column_stack([yy.ravel(), xx.ravel()]))
    field = np.where(farmland, nearest.reshape(yy.shape) + 1, 0).astype(np.int32)
    kind = rng.random(n_fields + 1)
    irrigated = kind < 0.3
    is_crop = kind < 0.8  # the rest of the farmland is meadow
    sowing = rng.integers(-30, max(n_days // 2, 1), n_fields + 1)
    season = rng.integers(70, 130, n_fields + 1)
    return field, irrigated, is_crop, sowing, season
