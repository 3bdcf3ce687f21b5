"""What the simulator's sensors see: MODIS-like days and Landsat-like dates (numpy only)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from scipy import ndimage

from lst_pipeline.io import landsat, modis
from lst_pipeline.simulate.climate import day_of_year
from lst_pipeline.simulate.landscape import (
    _S_LANDSAT_PHASE,
    _S_SENSOR,
    CLASS_NAMES,
    DILATION_M,
    LANDSAT_CLOUD_LENGTH_M,
    MODIS_BIAS_SEASONAL_K,
    MODIS_CLOUD_LENGTH_M,
    SHADOW_SHIFT_M,
    _quantile,
    smooth_field,
    stream_rng,
)

if TYPE_CHECKING:
    from lst_pipeline.config import SimulationConfig

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
    doy = day_of_year(dates)
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
    phase = int(stream_rng(seed, _S_LANDSAT_PHASE).integers(revisit_days))
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
                    water: np.ndarray, snow: np.ndarray | None = None) -> np.ndarray:
    """Collection 2 QA_PIXEL values from masks (cloud wins over shadow over dilated).

    Clear pixels get :data:`landsat.QA_VALUE_CLEAR_LAND` or ``QA_VALUE_CLEAR_WATER``, or
    ``QA_VALUE_CLEAR_SNOW`` where ``snow``; dilated cloud
    :data:`landsat.QA_VALUE_DILATED_CLOUD` with the water bit (7) set over water only.

    Returns
    -------
    numpy.ndarray
        uint16, same shape.
    """
    water_bit = np.uint16(1 << landsat.QA_WATER)
    qa = np.where(water, np.uint16(landsat.QA_VALUE_CLEAR_WATER),
                  np.uint16(landsat.QA_VALUE_CLEAR_LAND)).astype(np.uint16)
    if snow is not None:
        qa[snow & ~water] = landsat.QA_VALUE_CLEAR_SNOW
    dilated_land = np.uint16(landsat.QA_VALUE_DILATED_CLOUD) & ~water_bit
    qa[dilated] = dilated_land
    qa[dilated & water] = dilated_land | water_bit
    qa[shadow] = landsat.QA_VALUE_CLOUD_SHADOW
    qa[cloud] = landsat.QA_VALUE_CLOUD_HIGH
    return qa


def simulate_landsat_date(truth_k: np.ndarray, water: np.ndarray, rng: np.random.Generator,
                          *, noise_k: float, cloud_fraction: float, resolution_m: float,
                          offset_k: float = 0.0, psf_sigma_px: float = 0.0,
                          snow: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
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
    snow
        Boolean snow mask of the date (sets the snow QA value where clear), or None.

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
    return encode_qa_pixel(cloud, dilated, shadow, water, snow), lst




@dataclass(frozen=True)
class SensorDraws:
    """Per-date sensor errors of a region (all zero with the default configuration)."""

    date_offset_k: np.ndarray
    class_offset_k: np.ndarray
    view: np.ndarray
    shift_px: np.ndarray
    landsat_offset_k: np.ndarray


def sensor_draws(seed: int, n_days: int, n_landsat: int, factor: int,
                  sim: SimulationConfig) -> SensorDraws:
    """Draw the per-date MODIS and Landsat errors of ``sim`` (own random stream)."""
    rng = stream_rng(seed, _S_SENSOR)
    date = rng.normal(0.0, 1.0, n_days) * sim.modis_date_offset_sd_k
    classes = (rng.normal(0.0, 1.0, len(CLASS_NAMES)) * sim.modis_class_offset_sd_k
               ).astype(np.float32)
    view = rng.uniform(0.3, 1.7, n_days)
    shift = np.round(rng.normal(0.0, 1.0, (n_days, 2)) * sim.modis_geolocation_sd_px * factor)
    landsat_offset = rng.normal(0.0, 1.0, n_landsat) * sim.landsat_offset_sd_k
    return SensorDraws(date, classes, view, shift.astype(np.int64), landsat_offset)
