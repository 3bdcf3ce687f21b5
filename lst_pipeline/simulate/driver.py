"""The simulator's driver: a synthetic region written as an input stack and its truth.

:func:`simulate_region` draws the region once (:func:`_region_draws`), then writes the
truth and what the sensors saw of it one batch of days at a time; the same seed and
configuration give byte-identical stores. The physics and the store layout are described in
:mod:`lst_pipeline.simulate`; the truth store's schema is :mod:`lst_pipeline.io.truth`'s.
"""

from __future__ import annotations

import dataclasses
import json
import time as _time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lst_pipeline.config import PipelineConfig, SimulationConfig
from lst_pipeline.config.locations import StorePath
from lst_pipeline.errors import ConfigError, StoreError
from lst_pipeline.io import modis
from lst_pipeline.io.lock import (
    discard_unborn,
    lock_store,
)
from lst_pipeline.io.ownership import (
    LOCK_FILES,
    check_replaceable,
    remove_store,
)
from lst_pipeline.io.stack import create_stack
from lst_pipeline.io.stack_writer import StackWriter
from lst_pipeline.io.truth import TruthWriter, create_truth
from lst_pipeline.simulate.climate import truth_batch, weather_series
from lst_pipeline.simulate.landscape import (
    _S_LANDSAT_DATE,
    _S_LANDSAT_FRACTIONS,
    _S_MODIS_DAY,
    _S_MODIS_FRACTIONS,
    CLASS_NAMES,
    WATER,
    land_cover_on,
    make_scene,
    stream_rng,
)
from lst_pipeline.simulate.sensors import (
    cloud_fractions,
    landsat_date_indices,
    modis_bias,
    sensor_draws,
    simulate_landsat_date,
    simulate_modis_day,
)
from lst_pipeline.simulate.snow import SnowPack

#: The ``source`` attribute of simulated stacks (``simulate --overwrite`` replaces only those).
SIMULATE_SOURCE = "lst_pipeline.simulate"
#: Static layers of the truth store besides ``land_cover`` (see the module docstring).
TRUTH_LAYERS = {
    "harvest_day": ("i2", {"long_name": "index into time of the first day as bare soil after "
                                        "harvest; -1 never", "units": "1"}),
    "parcel": ("i4", {"long_name": "agricultural parcel id; 0 outside parcels", "units": "1"}),
}

# --------------------------------------------------------------------------------------
# Driver.


@dataclass(frozen=True)
class SimulationSummary:
    """What :func:`simulate_region` wrote."""

    n_days: int
    n_landsat_dates: int
    shape: tuple[int, int]
    landsat_clear_fraction: float
    modis_clear_fraction: float
    seconds: float
    stack: StorePath
    truth: StorePath
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


def simulated_as(config: PipelineConfig) -> bool:
    """Whether ``config``'s input stack is a complete simulation of ``config`` itself.

    The stack's recorded simulation parameters must equal the configuration's (a parameter
    added to :class:`SimulationConfig` after the stack was written counts as recorded with
    its default) and its days the configured dates. For callers that reuse a simulated
    region: a changed parameter must simulate it again, not reuse the old one.
    """
    from lst_pipeline.io.stack import StackReader
    from lst_pipeline.io.zarr_store import root_attrs, store_status

    sim = config.simulation
    stack = config.inputs.stack
    if sim is None or store_status(stack) != "complete":
        return False
    defaults = _provenance(dataclasses.replace(
        sim, **{f.name: f.default for f in dataclasses.fields(sim)
                if f.default is not dataclasses.MISSING}))
    recorded = {**defaults, **(root_attrs(stack) or {}).get("simulation", {})}
    days = np.asarray(StackReader(stack).modis_dates, "datetime64[D]")
    wanted = np.datetime64(config.dates.start, "D") + np.arange(config.dates.n_days)
    return recorded == _provenance(sim) and np.array_equal(days, wanted)


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
    stack_path, truth_path = config.inputs.stack, sim.truth
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
        return _simulate(config, sim, stack_path, truth_path, started, progress)
    finally:  # a failed simulation leaves stores marked `writing`, which readers refuse
        for lock, path, made in locks:
            lock.release()
            if made:
                discard_unborn(path)


@dataclass
class _RegionDraws:
    """Everything drawn once per simulated region, before its days are written."""

    scene: Any
    weather: Any
    landsat_index: np.ndarray
    landsat_fraction: np.ndarray
    modis_fraction: np.ndarray
    bias: np.ndarray
    sensor: Any
    snow: SnowPack | None = None

    @property
    def landsat_position(self) -> dict[int, int]:
        """Day index -> Landsat date index."""
        return {int(t): i for i, t in enumerate(self.landsat_index)}


def _region_draws(sim: Any, shape: tuple[int, int], resolution: float, factor: int,
                  days: np.ndarray) -> _RegionDraws:
    seed, n_days = sim.seed, len(days)
    l_index = landsat_date_indices(n_days, sim.landsat_revisit_days, seed)
    return _RegionDraws(
        scene=make_scene(seed, shape, resolution, n_days),
        weather=weather_series(seed, n_days),
        landsat_index=l_index,
        landsat_fraction=cloud_fractions(stream_rng(seed, _S_LANDSAT_FRACTIONS), len(l_index),
                                         sim.landsat_cloud_fraction),
        modis_fraction=cloud_fractions(stream_rng(seed, _S_MODIS_FRACTIONS), n_days,
                                       sim.modis_cloud_fraction),
        bias=modis_bias(days, sim.modis_offset_k),
        sensor=sensor_draws(seed, n_days, len(l_index), factor, sim),
        snow=SnowPack.draw(seed, shape, resolution, n_days, sim.snow_events_per_year)
        if sim.snow_events_per_year > 0 else None,
    )


def _simulate(config: PipelineConfig, sim: SimulationConfig, stack_path: StorePath,
              truth_path: StorePath, started: float, progress: bool) -> SimulationSummary:
    """Write the region of ``config`` into the (locked, free) stack and truth paths."""
    from tqdm.auto import tqdm

    from lst_pipeline.grid import resolve_grid

    grid, notes = resolve_grid(config.grid)
    resolution = float(config.grid.resolution)
    days = np.datetime64(config.dates.start, "D") + np.arange(config.dates.n_days)
    n_days = len(days)
    draws = _region_draws(sim, grid.shape, resolution, grid.coarse_factor, days)
    scene = draws.scene

    # No timestamps: the same seed and configuration give byte-identical stores.
    attrs = {"source": SIMULATE_SOURCE, "simulation_seed": sim.seed,
             "simulation": _provenance(sim)}
    create_stack(stack_path, grid, days[draws.landsat_index], days, attrs=attrs)
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
            truth = truth_batch(scene, draws.weather, days[t0:t1], range(t0, t1),
                                shift_k=sim.climate_shift_k, amp_scale=sim.climate_amp_scale)
            snow_cover = _snow(draws, truth, t0)
            truth_writer.write_days(t0, truth)
            qcs = np.empty((t1 - t0, *grid.coarse_shape), dtype=np.uint8)
            lsts = np.empty((t1 - t0, *grid.coarse_shape), dtype=np.float32)
            for k, t in enumerate(range(t0, t1)):
                qcs[k], lsts[k] = _sense_day(sim, draws, truth[k], t, grid.coarse_factor,
                                             resolution, writer, landsat_clear,
                                             None if snow_cover is None else snow_cover[k])
                modis_clear.append(float(modis.usable_mask(qcs[k]).mean()))
            writer.write_modis(t0, qcs, lsts)
            del truth
            bar.update(t1 - t0)
    truth_writer.finish()
    writer.finish()
    return SimulationSummary(
        n_days=n_days,
        n_landsat_dates=len(draws.landsat_index),
        shape=grid.shape,
        landsat_clear_fraction=float(np.mean(landsat_clear)) if landsat_clear else float("nan"),
        modis_clear_fraction=float(np.mean(modis_clear)) if modis_clear else float("nan"),
        seconds=_time.perf_counter() - started,
        stack=stack_path,
        truth=truth_path,
        notes=tuple(notes),
    )


def _snow(draws: _RegionDraws, truth: np.ndarray, t0: int) -> np.ndarray | None:
    """Put the region's snow into a batch of truth from day ``t0``, in place; its cover."""
    if draws.snow is None:
        return None
    scene = draws.scene
    cover = np.empty_like(truth)
    for k in range(len(truth)):
        cls = land_cover_on(scene.land_cover, scene.harvest_day, t0 + k)
        truth[k], cover[k] = draws.snow.advance(truth[k], cls, t0 + k)
    return cover


def _sense_day(sim: Any, draws: _RegionDraws, truth: np.ndarray, t: int, factor: int,
               resolution: float, writer: StackWriter, landsat_clear: list[float],
               snow_cover: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """MODIS of day ``t`` (returned), and the Landsat date of that day if any (written).

    Landsat flags a pixel as snow (QA_PIXEL bit 5) where at least half of it is covered.
    """
    scene, sensor, seed = draws.scene, draws.sensor, sim.seed
    cls_today = land_cover_on(scene.land_cover, scene.harvest_day, t)
    fine_offset = (sensor.class_offset_k[cls_today] * np.float32(sensor.view[t])
                   if sim.modis_class_offset_sd_k > 0 else None)
    qc, lst_coarse = simulate_modis_day(
        truth, factor, stream_rng(seed, _S_MODIS_DAY, t),
        bias_k=float(draws.bias[t] + sensor.date_offset_k[t]),
        noise_k=sim.modis_noise_k, psf_sigma=sim.modis_psf_sigma,
        cloud_fraction=float(draws.modis_fraction[t]), resolution_m=resolution,
        fine_offset_k=fine_offset, shift_px=tuple(sensor.shift_px[t]))
    i = draws.landsat_position.get(t)
    if i is not None:
        water = cls_today == WATER
        qa, lst = simulate_landsat_date(
            truth, water, stream_rng(seed, _S_LANDSAT_DATE, t),
            noise_k=sim.landsat_noise_k, cloud_fraction=float(draws.landsat_fraction[i]),
            resolution_m=resolution, offset_k=float(sensor.landsat_offset_k[i]),
            psf_sigma_px=sim.landsat_psf_sigma_px,
            snow=None if snow_cover is None else snow_cover >= 0.5)
        # the simulated sensor reports its noise as ST_QA does
        landsat_clear.append(writer.write_landsat(i, qa, lst,
                                                  st_uncertainty=sim.landsat_noise_k))
    return qc, lst_coarse


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
