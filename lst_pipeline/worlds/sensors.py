"""What Landsat and MODIS see of an independent-world region.

MODIS (MOD11A1-like, one value per sinusoidal 926.6 m pixel):

- radiance aggregation: each pixel sees ``sum(w * eps * T^4) / sum(w * eps)`` over its
  footprint, then the product's temperature is the fourth root;
- the footprint is a Gaussian point-spread function that grows with the view zenith angle,
  far more across the scan (east-west) than along the track, as MODIS pixels do towards the
  swath edge;
- the whole day's image is displaced by a geolocation error of a fraction of a pixel;
- the view time differs from Landsat's every day (orbit position), which the physics turns
  into a per-date, per-surface offset; the retrieval adds a per-date atmospheric offset and a
  per-class emissivity error, and noise;
- clouds come from a large-scale field; the ring around them is partly undetected and
  carries cold, cloud-contaminated values flagged with a larger LST error (or not).

Landsat (Collection 2 Level-2 ST-like, 30 m grid): the 100 m TIRS footprint (Gaussian,
sigma 30 m, :func:`tirs_footprint`), a calibration
offset per date, noise, cumulus clouds with cold tops, shadows cast along the sun's azimuth
from the cloud height, a dilated-cloud ring, thin cirrus of which only part is detected,
swath edges, and ST_QA uncertainties that grow near clouds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from lst_pipeline.io import landsat, modis
from lst_pipeline.worlds.landscape import power_law_field

MODIS_PIXEL_M = 926.6254331391661


@dataclass(frozen=True)
class ModisView:
    """The viewing conditions of one MODIS day."""

    hour: float
    zenith_deg: float
    shift_m: tuple[float, float]
    offset_k: float
    cloud_fraction: float


def modis_day(temperature_k: np.ndarray, emissivity: np.ndarray, class_offset_k: np.ndarray,
              resolution_m: float, sample_rows: np.ndarray, sample_cols: np.ndarray,
              rng: np.random.Generator, view: ModisView, *, noise_k: float
              ) -> tuple[np.ndarray, np.ndarray]:
    """One MODIS day at the given sample positions of the working grid.

    Parameters
    ----------
    temperature_k, emissivity, class_offset_k
        The surface at the MODIS view time on the working grid, and the retrieval's
        emissivity error per pixel (K).
    resolution_m
        Working grid pixel size.
    sample_rows, sample_cols
        Fractional working-grid positions of the MODIS pixel centres (2-D arrays of the tile
        crop), before the day's geolocation error.
    rng
        The day's generator.
    view
        View time, zenith angle, geolocation shift, atmospheric offset, cloud fraction.
    noise_k
        Retrieval noise.

    Returns
    -------
    lst_dn, qc
        uint16 MOD11A1 LST DN (0 where not produced) and uint8 QC_Day on the crop.
    """
    cos_v = np.cos(np.radians(view.zenith_deg))
    sigma = 0.45 * MODIS_PIXEL_M / resolution_m
    sigma_scan, sigma_track = sigma * cos_v**-2.8, sigma * cos_v**-1.2
    weight = emissivity.astype(np.float64)
    radiance = weight * temperature_k.astype(np.float64) ** 4
    blur = dict(sigma=(sigma_track, sigma_scan), mode="nearest", truncate=3.0)
    radiance = ndimage.gaussian_filter(radiance, **blur)
    weight = ndimage.gaussian_filter(weight, **blur)
    offset = ndimage.gaussian_filter(class_offset_k.astype(np.float64), **blur)
    rows = sample_rows - view.shift_m[1] / resolution_m
    cols = sample_cols + view.shift_m[0] / resolution_m
    inside = (rows >= 0) & (rows <= temperature_k.shape[0] - 1) & (cols >= 0) \
        & (cols <= temperature_k.shape[1] - 1)
    coords = np.stack([rows.ravel(), cols.ravel()])
    r = ndimage.map_coordinates(radiance, coords, order=1, mode="nearest").reshape(rows.shape)
    w = ndimage.map_coordinates(weight, coords, order=1, mode="nearest").reshape(rows.shape)
    o = ndimage.map_coordinates(offset, coords, order=1, mode="nearest").reshape(rows.shape)
    lst = (r / w) ** 0.25 + o + view.offset_k + noise_k * rng.standard_normal(rows.shape)

    field = power_law_field(rng, rows.shape, 3.0, cutoff_px=1.0) if min(rows.shape) > 4 \
        else rng.standard_normal(rows.shape)
    cloud = field > np.quantile(field, 1 - view.cloud_fraction) if view.cloud_fraction > 0 \
        else np.zeros(rows.shape, bool)
    ring = ndimage.binary_dilation(cloud) & ~cloud
    missed = ring & (rng.random(rows.shape) < 0.5)
    lst = np.where(missed, lst - rng.uniform(1.0, 4.0, rows.shape), lst)
    error_class = np.where(view.zenith_deg > 40, 1, 0) * np.ones(rows.shape, np.uint8)
    error_class = np.where(rng.random(rows.shape) < 0.1, 1, error_class)
    error_class = np.where(missed, np.where(rng.random(rows.shape) < 0.6, 2, 1), error_class)
    other = rng.random(rows.shape) < 0.03
    mandatory = np.where(other, modis.MANDATORY_OTHER_QUALITY, modis.MANDATORY_GOOD)
    error_class = np.where(other, 2, error_class)
    detected = (cloud | (ring & ~missed))
    mandatory = np.where(detected, modis.MANDATORY_CLOUD, mandatory)
    mandatory = np.where(inside, mandatory, modis.MANDATORY_NOT_PRODUCED)
    produced = inside & ~detected
    qc = modis.make_qc(mandatory, lst_error=np.where(produced, error_class, 0))
    dn = np.where(produced, np.round(lst / modis.LST_SCALE_K), 0)
    return np.clip(dn, 0, 65535).astype(np.uint16), qc.astype(np.uint8)


#: Gaussian sigma (m) of the Landsat 8/9 TIRS footprint (about 100 m across) on 30 m pixels.
TIRS_SIGMA_M = 30.0


def tirs_footprint(temperature_k: np.ndarray, resolution_m: float) -> np.ndarray:
    """The surface as Landsat's 100 m thermal footprint sees it, on the 30 m grid."""
    return ndimage.gaussian_filter(temperature_k, TIRS_SIGMA_M / resolution_m,
                                   mode="nearest").astype(np.float32)


@dataclass(frozen=True)
class LandsatView:
    """The conditions of one Landsat acquisition."""

    sun_elevation: float
    sun_azimuth: float
    offset_k: float
    cloud_fraction: float
    cirrus_fraction: float
    swath_edge: float | None  # signed position of the scene edge across the grid, or None


def landsat_date(temperature_k: np.ndarray, air_k: np.ndarray, water: np.ndarray,
                 snow: np.ndarray, resolution_m: float, rng: np.random.Generator,
                 view: LandsatView, *, noise_k: float
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One Landsat acquisition on the working grid: ST_B10 DN, QA_PIXEL, ST_QA DN.

    Parameters
    ----------
    temperature_k
        The surface at the overpass time as the TIRS footprint sees it
        (:func:`tirs_footprint`).
    air_k
        Air temperature (cloud tops are colder).
    water, snow
        Masks for the QA bits.
    resolution_m
        Pixel size.
    rng
        The date's generator.
    view
        Sun geometry, calibration offset, cloud and cirrus fractions, swath edge.
    noise_k
        Sensor noise.
    """
    shape = temperature_k.shape
    px = 1.0 / resolution_m
    seen = temperature_k.astype(np.float64) + view.offset_k + noise_k * rng.standard_normal(shape)

    field = power_law_field(rng, shape, 2.4, cutoff_px=3.0)
    cloud = field > np.quantile(field, 1 - view.cloud_fraction) if view.cloud_fraction > 0 \
        else np.zeros(shape, bool)
    height = rng.uniform(800.0, 2500.0)
    reach = height / np.tan(max(view.sun_elevation, 0.15)) * px
    away = view.sun_azimuth + np.pi  # shadows fall away from the sun
    dy, dx = -reach * np.cos(away), reach * np.sin(away)  # rows run south
    shadow = ndimage.shift(cloud.astype(np.float32), (dy, dx), order=0, cval=0) > 0.5
    shadow &= ~cloud
    ring = ndimage.binary_dilation(cloud, iterations=3) & ~cloud & ~shadow
    cirrus_field = power_law_field(rng, shape, 3.6, cutoff_px=4.0)
    cirrus = cirrus_field > np.quantile(cirrus_field, 1 - view.cirrus_fraction) \
        if view.cirrus_fraction > 0 else np.zeros(shape, bool)
    cirrus &= ~cloud
    found_above = np.quantile(cirrus_field, 1 - 0.6 * view.cirrus_fraction)
    cirrus_found = cirrus & (cirrus_field > found_above)
    shadow_missed = shadow & (rng.random() < 0.1)

    seen = np.where(cirrus, seen - rng.uniform(1.0, 3.0), seen)
    seen = np.where(shadow, seen - rng.uniform(3.0, 7.0), seen)
    seen = np.where(cloud, air_k - rng.uniform(18.0, 35.0), seen)

    clear_bits = (1 << landsat.QA_CLEAR) | (1 << 8) | (1 << 10) | (1 << 12) | (1 << 14)
    qa = np.full(shape, clear_bits, np.uint16)
    qa[water] |= np.uint16(1 << landsat.QA_WATER)
    qa[snow] = np.uint16((1 << landsat.QA_SNOW) | (1 << 8) | (1 << 10) | (3 << 12) | (1 << 14))
    qa[cirrus_found] = np.uint16((1 << landsat.QA_CIRRUS) | (1 << 8) | (1 << 10) | (1 << 12)
                                 | (3 << 14))
    qa[ring] = landsat.QA_VALUE_DILATED_CLOUD
    qa[shadow & ~shadow_missed] = landsat.QA_VALUE_CLOUD_SHADOW
    qa[cloud] = landsat.QA_VALUE_CLOUD_HIGH

    near = ndimage.distance_transform_edt(~cloud) * resolution_m < 600.0 if cloud.any() \
        else np.zeros(shape, bool)
    st_qa = np.where(near, rng.uniform(150, 300, shape), rng.uniform(35, 80, shape))
    fill = np.zeros(shape, bool)
    if view.swath_edge is not None:
        yy, xx = np.mgrid[0:shape[0], 0:shape[1]] / max(shape)
        edge_dir = np.radians(-12.0)
        across = np.cos(edge_dir) * (xx - 0.5) + np.sin(edge_dir) * (yy - 0.5)
        fill = across > view.swath_edge
    from lst_pipeline.simulate_files import st_dn

    dn = st_dn(np.where(fill, np.nan, seen))
    qa[fill] = landsat.QA_VALUE_FILL
    st_qa = np.where(fill, landsat.ST_QA_FILL_DN, np.round(st_qa)).astype(np.int16)
    return dn, qa, st_qa
