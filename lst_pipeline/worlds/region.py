"""The driver of the independent world: one region as downloaded files plus its truth.

:func:`generate_region` writes, under one directory:

- ``files/landsat/<product id>/``: Landsat 8 and 9 Collection 2 Level-2 scene directories
  (ST_B10, QA_PIXEL, ST_QA, MTL.txt) every 8 days, alternating the two satellites;
- ``files/modis/MOD11A1.A<yyyyddd>.h..v...061.<production>.hdf``: the daily tiles;
- ``truth.zarr``: the true LST at the Landsat overpass (10:15 local solar time) every day on
  the region's grid, as Landsat's 100 m thermal footprint sees the surface (what a fused
  30 m product can aim at), with the land cover and elevation;
- ``pipeline.yaml``: a pipeline that ingests the files and fuses the region (no
  ``simulation`` section: this world is not :mod:`lst_pipeline.simulate`).
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from odc.geo.geobox import GeoBox

from lst_pipeline.worlds.landscape import CLASS_NAMES, URBAN, WATER, make_landscape
from lst_pipeline.worlds.physics import Climate, Surface, make_forcing, solar_position
from lst_pipeline.worlds.sensors import (
    LandsatView,
    ModisView,
    landsat_date,
    modis_day,
    tirs_footprint,
)

#: Local solar time of the Landsat overpass and of the truth.
LANDSAT_HOUR = 10.25
#: Margin (working-grid pixels) around the region, so border MODIS footprints are whole.
MARGIN_PX = 160
#: MODIS (Terra) daytime view: 10:30 local solar time, +- this many hours with the orbit
#: (the swath edges see the region earlier or later), the zenith angle growing with it.
MODIS_HOUR_SPREAD = 0.6
#: Days of truth written at once (one chunk of the truth store).
TRUTH_BATCH = 16


@dataclass(frozen=True)
class WorldSpec:
    """One region of the independent world.

    Attributes
    ----------
    name, seed
        Identity; the seed drives every random draw.
    latitude, longitude
        Centre of the region (degrees); its UTM zone is the grid's CRS.
    size_px, resolution_m, coarse_factor
        The target grid (``coarse_factor`` is what the pipeline fuses with: the MODIS tiles
        are on their own 926.6 m sinusoidal grid whatever it is).
    start, days
        The series.
    climate
        The region's :class:`~lst_pipeline.worlds.physics.Climate`.
    relief_m, base_m, town_radius_m
        Terrain height range and base, town size.
    modis_noise_k, modis_offset_sd_k, modis_class_offset_sd_k, geolocation_sd_m,
    modis_cloud_fraction
        MODIS retrieval noise, per-date offset, per-class emissivity error, geolocation error
        and mean cloud cover.
    landsat_noise_k, landsat_offset_sd_k, landsat_cloud_fraction
        Landsat noise, per-date calibration offset, mean cloud cover.
    """

    name: str
    seed: int
    latitude: float
    longitude: float
    start: str
    days: int
    coarse_factor: int
    climate: Climate
    size_px: int = 600
    resolution_m: float = 30.0
    relief_m: float = 800.0
    base_m: float = 300.0
    town_radius_m: float = 1500.0
    modis_noise_k: float = 0.45
    modis_offset_sd_k: float = 0.8
    modis_class_offset_sd_k: float = 0.7
    geolocation_sd_m: float = 150.0
    modis_cloud_fraction: float = 0.3
    landsat_noise_k: float = 0.35
    landsat_offset_sd_k: float = 0.3
    landsat_cloud_fraction: float = 0.3
    extra: dict = field(default_factory=dict)


#: The regions scored by ``benchmarks/bench_worlds.py``: four climates, terrains and
#: coarse factors (30 m fine at factors 30-32, and 100 m fine at factor 10 as in the Yanco
#: sample), none of them the simulator's Riverina.
WORLD_REGIONS = (
    WorldSpec("alpine-foothills", 7101, 45.86, 8.42, "2021-04-01", 120, 31,
              Climate(45.86, 284.0, 9.5, warmest_doy=200, rain_probability=0.22),
              relief_m=1400.0, base_m=250.0, town_radius_m=1800.0),
    WorldSpec("iberian-plateau", 7202, 40.31, -3.74, "2021-06-10", 100, 30,
              Climate(40.31, 288.5, 10.5, warmest_doy=205, rain_probability=0.07,
                      diurnal_k=12.0),
              relief_m=450.0, base_m=620.0, town_radius_m=2200.0, modis_cloud_fraction=0.15,
              landsat_cloud_fraction=0.15),
    WorldSpec("front-range", 7303, 40.42, -105.18, "2021-02-20", 110, 32,
              Climate(40.42, 282.0, 12.5, warmest_doy=198, rain_probability=0.15,
                      synoptic_sd_k=4.5, diurnal_k=11.0),
              relief_m=1700.0, base_m=1500.0, town_radius_m=1500.0,
              modis_cloud_fraction=0.25),
    WorldSpec("murray-mallee", 7404, -34.90, 142.30, "2021-11-05", 90, 10,
              Climate(-34.90, 291.0, 8.0, warmest_doy=25, rain_probability=0.08,
                      diurnal_k=13.0),
              size_px=400, resolution_m=100.0, relief_m=120.0, base_m=60.0,
              town_radius_m=1200.0, modis_cloud_fraction=0.2, landsat_cloud_fraction=0.2),
)


def _cloud_cover(rng: np.random.Generator, mean: float, rainy: bool) -> float:
    """A day's cloud fraction: mostly overcast on rainy days, Beta distributed otherwise."""
    if rainy:
        return float(rng.uniform(0.75, 1.0))
    return float(np.clip(rng.beta(0.8, 2.0) * mean / 0.3, 0.0, 0.95))


def region_grid(spec: WorldSpec):
    """The target grid of a region: ``size_px`` square in its UTM zone, centred on it."""
    from odc.geo.crs import CRS
    from odc.geo.geom import point

    from lst_pipeline.config import GridConfig
    from lst_pipeline.grid import resolve_grid

    crs = CRS.utm(spec.longitude, spec.latitude)
    x, y = point(spec.longitude, spec.latitude, "EPSG:4326").to_crs(crs).coords[0]
    half = spec.size_px * spec.resolution_m / 2
    left = np.floor((x - half) / spec.resolution_m) * spec.resolution_m
    bottom = np.floor((y - half) / spec.resolution_m) * spec.resolution_m
    extent = spec.size_px * spec.resolution_m
    config = GridConfig(f"EPSG:{crs.epsg}", spec.resolution_m,
                        (left, bottom, left + extent, bottom + extent), spec.coarse_factor)
    return config, resolve_grid(config)[0]


def _tiles(box) -> list[tuple[int, int]]:
    """MODIS tiles (h, v) that overlap ``box``."""
    from lst_pipeline.simulate_files import modis_tile, tile_of

    h0, v0 = tile_of(box)
    found = []
    for h in (h0 - 1, h0, h0 + 1):
        for v in (v0 - 1, v0, v0 + 1):
            tile = modis_tile(h, v)
            if tile.extent.intersects(box.extent.to_crs(tile.crs)):
                found.append((h, v))
    return found


def _sample_positions(tile_crop, working) -> tuple[np.ndarray, np.ndarray]:
    """Fractional working-grid (row, col) of every MODIS pixel centre of a tile crop."""
    from pyproj import Transformer

    ys, xs = np.meshgrid(tile_crop.coords["y"].values, tile_crop.coords["x"].values,
                         indexing="ij")
    to_utm = Transformer.from_crs(tile_crop.crs.to_wkt(), working.crs.to_wkt(), always_xy=True)
    ux, uy = to_utm.transform(xs, ys)
    a = working.affine
    return (uy - a.f) / a.e - 0.5, (ux - a.c) / a.a - 0.5


def generate_region(spec: WorldSpec, out_dir: Path | str, *, progress: bool = False) -> Path:
    """Write a region's files, truth and pipeline YAML under ``out_dir``; return the YAML.

    Parameters
    ----------
    spec
        The region.
    out_dir
        A new or empty directory.
    progress
        Show a progress bar over days.
    """
    import yaml
    from tqdm.auto import tqdm

    from lst_pipeline.io.truth import TruthWriter, create_truth

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(spec.seed)
    grid_config, grid = region_grid(spec)
    working = grid.fine.pad(MARGIN_PX)
    m = MARGIN_PX
    inner = (slice(m, m + grid.shape[0]), slice(m, m + grid.shape[1]))
    start = dt.date.fromisoformat(spec.start)
    days = [start + dt.timedelta(days=t) for t in range(spec.days)]

    land = make_landscape(rng, tuple(working.shape), spec.resolution_m, spec.days,
                          relief_m=spec.relief_m, base_m=spec.base_m,
                          town_radius_m=spec.town_radius_m)
    forcing = make_forcing(rng, spec.climate, start.timetuple().tm_yday, spec.days)
    surface = Surface(land, spec.climate, forcing, rng, spec.resolution_m)
    class_bias = rng.normal(0.0, spec.modis_class_offset_sd_k, len(CLASS_NAMES))
    class_offset = class_bias[land.cover].astype(np.float32)
    water = land.cover == WATER

    tiles = _modis_tiles(working)
    landsat_phase = int(rng.integers(8))
    truth_path = out / "truth.zarr"
    create_truth(truth_path, grid, np.array(days, "datetime64[D]"), class_names=CLASS_NAMES,
                 day_chunk=TRUTH_BATCH,
                 static={"elevation_m": ("f4", {"long_name": "terrain elevation",
                                                "units": "m"})},
                 attrs={"source": "lst_pipeline.worlds", "world": spec.name,
                        "world_spec": json.loads(json.dumps(asdict(spec), default=str))})
    truth = TruthWriter(truth_path)
    truth.write_static("land_cover", land.cover[inner])
    truth.write_static("elevation_m", land.elevation_m[inner])
    landsat_dir, modis_dir = out / "files" / "landsat", out / "files" / "modis"
    batch: list[np.ndarray] = []
    for t in tqdm(range(spec.days), desc=f"world {spec.name}", disable=not progress):
        surface.advance(t)
        at_landsat = tirs_footprint(surface.temperature(t, LANDSAT_HOUR), spec.resolution_m)
        batch.append(at_landsat[inner])
        if len(batch) == TRUTH_BATCH or t == spec.days - 1:
            truth.write_days(t + 1 - len(batch), np.stack(batch))
            batch.clear()
        _write_modis_day(modis_dir, spec, surface, forcing, t, days[t], rng, tiles,
                         class_offset)
        if (t - landsat_phase) % 8 == 0:
            satellite = 8 if ((t - landsat_phase) // 8) % 2 == 0 else 9
            _write_landsat_date(landsat_dir, spec, surface, forcing, t, days[t], rng, working,
                                at_landsat, water, satellite)
    truth.finish()
    path = out / "pipeline.yaml"
    path.write_text(yaml.safe_dump(_pipeline(spec, grid_config, out, days[-1]),
                                   sort_keys=False))
    return path


def _modis_tiles(working: GeoBox) -> dict[tuple[int, int], tuple]:
    """The MODIS tiles over the working grid: tile, its overlapping window, sample positions."""
    from lst_pipeline.io.raster import overlap_roi
    from lst_pipeline.simulate_files import modis_tile

    tiles = {}
    for h, v in _tiles(working):
        tile = modis_tile(h, v)
        roi = overlap_roi(tile, working, padding=0)
        if roi is not None:
            tiles[(h, v)] = (tile, roi, _sample_positions(tile[roi], working))
    return tiles


def _write_modis_day(modis_dir: Path, spec: WorldSpec, surface: Surface, forcing: Any, t: int,
                     day: dt.date, rng: np.random.Generator, tiles: dict,
                     class_offset: np.ndarray) -> None:
    """Draw the day's MODIS overpass and write a MOD11A1 granule per tile."""
    from lst_pipeline.simulate_files import granule_name, write_mod11a1_hdf

    orbit = rng.uniform(-1.0, 1.0)
    view = ModisView(hour=10.5 + MODIS_HOUR_SPREAD * orbit, zenith_deg=48.0 * abs(orbit),
                     shift_m=tuple(rng.normal(0.0, spec.geolocation_sd_m, 2)),
                     offset_k=float(rng.normal(0.0, spec.modis_offset_sd_k)),
                     cloud_fraction=_cloud_cover(rng, spec.modis_cloud_fraction,
                                                 forcing.rain_mm[t] > 0))
    at_modis = surface.temperature(t, view.hour)
    emissivity = surface.emissivity(t)
    for (h, v), (tile, (ys, xs), (rows, cols)) in tiles.items():
        dn, qc = modis_day(at_modis, emissivity, class_offset, spec.resolution_m, rows,
                           cols, rng, view, noise_k=spec.modis_noise_k)
        full_dn = np.zeros(tile.shape, np.uint16)
        full_qc = np.full(tile.shape, 0b11, np.uint8)
        full_vt = np.full(tile.shape, 255, np.uint8)
        full_dn[ys, xs], full_qc[ys, xs] = dn, qc
        full_vt[ys, xs] = np.where(dn > 0, round(view.hour * 10), 255)
        write_mod11a1_hdf(modis_dir / granule_name("MOD11A1", day, h, v), tile, full_dn,
                          full_qc, full_vt)


def _write_landsat_date(landsat_dir: Path, spec: WorldSpec, surface: Surface, forcing: Any,
                        t: int, day: dt.date, rng: np.random.Generator, working: GeoBox,
                        at_landsat: np.ndarray, water: np.ndarray, satellite: int) -> None:
    """Draw the date's Landsat view (clouds, offset, swath edge) and write its scene."""
    from lst_pipeline.simulate_files import write_landsat_scene

    elevation, azimuth = solar_position(forcing.doy[t], LANDSAT_HOUR, spec.climate.latitude_deg)
    clouds = _cloud_cover(rng, spec.landsat_cloud_fraction, forcing.rain_mm[t] > 0)
    lview = LandsatView(elevation, azimuth, float(rng.normal(0, spec.landsat_offset_sd_k)),
                        clouds, float(rng.uniform(0.0, 0.15)),
                        float(rng.uniform(0.1, 0.45)) if rng.random() < 0.35 else None)
    dn, qa, st_qa = landsat_date(at_landsat, surface.air_at(t, LANDSAT_HOUR), water,
                                 surface.swe_mm > 5.0, spec.resolution_m, rng, lview,
                                 noise_k=spec.landsat_noise_k)
    utc = LANDSAT_HOUR - spec.longitude / 15.0
    acquired = dt.datetime.combine(day, dt.time(0), dt.UTC) + dt.timedelta(hours=utc)
    product = (f"LC0{satellite}_L2SP_{195 + spec.seed % 7:03d}{28 + spec.seed % 5:03d}_"
               f"{day:%Y%m%d}_{day + dt.timedelta(days=12):%Y%m%d}_02_T1")
    write_landsat_scene(landsat_dir, product, acquired, working, dn, qa, st_qa)


def _pipeline(spec: WorldSpec, grid_config: Any, out: Path, last_day: dt.date) -> dict:
    """The pipeline YAML a user would write for the region's files."""
    landsat_dir, modis_dir = out / "files" / "landsat", out / "files" / "modis"
    return {
        "name": f"world-{spec.name}",
        "grid": {"crs": grid_config.crs, "resolution": spec.resolution_m,
                 "bounds": [float(b) for b in grid_config.bounds],
                 "coarse_factor": spec.coarse_factor},
        "dates": {"start": spec.start, "end": str(last_day)},
        "inputs": {"stack": str(out / "stack.zarr")},
        "output": {"cube": str(out / "cube.zarr")},
        "ingest": {"landsat": {"paths": [str(landsat_dir / "*")]},
                   "modis": {"paths": [str(modis_dir / "*.hdf")]}},
    }


def urban_fraction(land_cover: np.ndarray) -> float:
    """Share of the region that is town (for the benchmark's description of a region)."""
    return float(np.mean(land_cover == URBAN))
