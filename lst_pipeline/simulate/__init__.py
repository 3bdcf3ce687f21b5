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
Optionally (``simulation.snow_events_per_year``), seasonal snow falls on cold ground,
covers, cools and melts (:mod:`lst_pipeline.simulate.snow`); Landsat flags it in QA_PIXEL.

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

from lst_pipeline.simulate.climate import (
    CLIMATES,
    ClassClimate,
    Weather,
    seasonal_cycle,
    truth_batch,
    weather_series,
)
from lst_pipeline.simulate.driver import (
    SIMULATE_SOURCE,
    TRUTH_LAYERS,
    SimulationSummary,
    simulate_region,
    simulated_as,
    synthetic_pipeline,
)
from lst_pipeline.simulate.landscape import (
    BARE,
    CLASS_NAMES,
    IRRIGATED,
    PASTURE,
    TREES,
    URBAN,
    WATER,
    SyntheticScene,
    land_cover_on,
    make_land_cover,
    make_parcels,
    make_scene,
    smooth_field,
)
from lst_pipeline.simulate.sensors import (
    SensorDraws,
    aggregate_radiance,
    cloud_fractions,
    encode_qa_pixel,
    landsat_cloud_masks,
    landsat_date_indices,
    modis_bias,
    simulate_landsat_date,
    simulate_modis_day,
)

__all__ = [
    "BARE",
    "CLASS_NAMES",
    "CLIMATES",
    "IRRIGATED",
    "PASTURE",
    "SIMULATE_SOURCE",
    "TREES",
    "TRUTH_LAYERS",
    "URBAN",
    "WATER",
    "ClassClimate",
    "SensorDraws",
    "SimulationSummary",
    "SyntheticScene",
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
    "simulated_as",
    "smooth_field",
    "synthetic_pipeline",
    "truth_batch",
    "weather_series",
]
