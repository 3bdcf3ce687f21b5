"""Shared fixtures: tiny pipeline configs and a real LocalCluster of worker processes."""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lst_pipeline.config import PipelineConfig, load_pipeline

#: A tiny region: 128 x 128 px at 30 m, coarse factor 16 (8 x 8 coarse pixels), 48 days.
TINY: dict[str, Any] = {
    "name": "tiny",
    "grid": {"crs": "EPSG:32755", "resolution": 30, "coarse_factor": 16,
             "bounds": [400000, 6200000, 400000 + 128 * 30, 6200000 + 128 * 30]},
    "dates": {"start": "2021-01-01", "end": "2021-02-17"},
    "inputs": {"stack": "inputs.zarr"},
    "output": {"cube": "cube.zarr", "dtype": "float32"},
    "chunks": {"time": 16, "y": 64, "x": 64},
    "fusion": {"method": "reference_change", "max_reference_gap_days": 32},
    "simulation": {"truth": "truth.zarr", "seed": 7, "day_batch": 8},
    "cluster": "local",
}


def config_dict(tmp_path: Path, **sections: dict[str, Any]) -> dict[str, Any]:
    """The tiny config with store paths under ``tmp_path`` and sections updated."""
    data = copy.deepcopy(TINY)
    data["inputs"]["stack"] = str(tmp_path / "inputs.zarr")
    data["output"]["cube"] = str(tmp_path / "cube.zarr")
    data["simulation"]["truth"] = str(tmp_path / "truth.zarr")
    for name, values in sections.items():
        if isinstance(values, dict) and isinstance(data.get(name), dict):
            data[name].update(values)
        else:
            data[name] = values
    return data


def tiny_config(tmp_path: Path, **sections: dict[str, Any]) -> PipelineConfig:
    return load_pipeline(config_dict(tmp_path, **sections))


@dataclass(frozen=True)
class TextureWorld:
    """A 40-day tiny stack whose truth is a static texture plus a uniform daily weather."""

    config: PipelineConfig
    truth: np.ndarray  # (40, 128, 128) K
    cells: np.ndarray  # (40, 8, 8) the truth's coarse-cell means
    days: np.ndarray  # datetime64[D], 40
    landsat_days: np.ndarray  # every 4th day, all clear
    rng: np.random.Generator  # for the MODIS errors the test adds

    def write(self, modis: np.ndarray, *, landsat_hour_utc: float = float("nan"),
              view_time_h: np.ndarray | None = None) -> None:
        """Write the stack: the truth on the Landsat days and ``modis`` (40, 8, 8) daily."""
        from lst_pipeline.grid import TargetGrid
        from lst_pipeline.io.stack import create_stack
        from lst_pipeline.io.stack_writer import StackWriter

        grid = TargetGrid.from_config(self.config.grid)
        path = self.config.inputs.stack
        create_stack(path, grid, self.landsat_days, self.days, spatial_chunk=64)
        writer = StackWriter(path)
        for i, d in enumerate(range(0, 40, 4)):
            writer.write_landsat(i, np.zeros(grid.shape, np.uint16), self.truth[d],
                                 masked=True, hour_utc=landsat_hour_utc)
        writer.write_modis(0, np.zeros((40, 8, 8), np.uint8), modis, masked=True,
                           view_time_h=view_time_h)
        writer.finish()


def texture_world(tmp_path: Path, seed: int, *, drift_k_per_day: float = 0.0,
                  **fusion: Any) -> TextureWorld:
    """128 x 128 px, factor 16, 40 days from 2021-01-01, a clear Landsat date every 4 days.

    ``reference_change`` with one reference recovers the truth exactly from a MODIS that is
    the cell means plus a static offset, so a test's MODIS errors are all its error.
    """
    config = tiny_config(tmp_path, dates={"start": "2021-01-01", "end": "2021-02-09"},
                         fusion={"method": "reference_change", "two_references": False,
                                 **fusion},
                         output={"uncertainty": False})
    rng = np.random.default_rng(seed)
    days = np.datetime64("2021-01-01") + np.arange(40)
    texture = rng.normal(0, 3.0, (128, 128))
    weather = 300 + 4 * np.sin(np.arange(40) / 5.0) + drift_k_per_day * np.arange(40)
    truth = weather[:, None, None] + texture[None]
    cells = truth.reshape(40, 8, 16, 8, 16).mean(axis=(2, 4))
    return TextureWorld(config, truth, cells, days, days[::4], rng)


@pytest.fixture(scope="session")
def simulated_tiny(tmp_path_factory) -> PipelineConfig:
    """The tiny region, simulated once per session (input stack + truth on disk)."""
    from lst_pipeline.simulate import simulate_region

    root = tmp_path_factory.mktemp("tiny")
    config = tiny_config(root)
    simulate_region(config, progress=False)
    return config


@pytest.fixture(scope="session")
def client():
    """A real distributed LocalCluster with 2 worker processes (1 thread each)."""
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=":0", silence_logs=logging.ERROR) as cluster, \
            Client(cluster) as c:
        yield c


@pytest.fixture(scope="session")
def simulated_256(tmp_path_factory) -> PipelineConfig:
    """A 256 x 256 px region over 32 days, large enough for real halos around 64 px chunks."""
    from lst_pipeline.simulate import simulate_region

    root = tmp_path_factory.mktemp("r256")
    config = tiny_config(root, grid={"bounds": [400000, 6200000, 400000 + 256 * 30,
                                                6200000 + 256 * 30]},
                         dates={"end": "2021-02-01"})
    simulate_region(config, progress=False)
    return config


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory):
    """A tiny DLSTFM with perturbed weights (it departs from reference + coarse change)."""
    from lst_pipeline.model.checkpoint import save_checkpoint
    from lst_pipeline.testing import randomised_model

    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    return save_checkpoint(path, randomised_model(), training={"name": "tiny-random"})


#: A 256 x 256 px region with MODIS-like 960 m coarse cells, for real-format files.
FILES_REGION: dict[str, Any] = {
    "grid": {"bounds": [400000, 6200000, 400000 + 256 * 30, 6200000 + 256 * 30],
             "coarse_factor": 32},
    "chunks": {"y": 128, "x": 128},
    "dates": {"end": "2021-02-10"},
}


@pytest.fixture(scope="session")
def real_format_region(tmp_path_factory):
    """A simulated region written as Landsat scene directories and MOD11A1 tiles.

    Returns ``(config, root)``: ``root/files/landsat/<scene>/``, ``root/files/modis/*.hdf``
    and ``root/files/modis_tif/*.tif`` (the same days as AppEEARS-like GeoTIFFs).
    """
    from lst_pipeline.simulate import simulate_region
    from lst_pipeline.simulate_files import write_scene_files

    root = tmp_path_factory.mktemp("files")
    config = tiny_config(root, **FILES_REGION)
    simulate_region(config, progress=False)
    write_scene_files(config, root / "files", modis_format="hdf", progress=False)
    write_scene_files(config, root / "tif", modis_format="geotiff", progress=False)
    (root / "tif" / "modis").rename(root / "files" / "modis_tif")
    return config, root


def ingest_config(root: Path, stack: str = "ingested.zarr", *,
                  storage_options: dict[str, Any] | None = None, **ingest: Any
                  ) -> PipelineConfig:
    """The files region's pipeline reading ``ingest`` sources into ``root/stack``.

    ``stack`` may be a URL, reached with ``storage_options``.
    """
    where = stack if "://" in stack else str(root / stack)
    data = config_dict(root, **FILES_REGION, inputs={"stack": where},
                       fusion={"landsat_days": "fuse"})
    data.pop("simulation")
    data["ingest"] = ingest
    if storage_options:
        data["storage_options"] = storage_options
    return load_pipeline(data)


def small_cube_config(root: Path) -> PipelineConfig:
    """64 x 64 px over 40 days, int16 cube in chunks of 16 days x 32 x 32 px (8 chunks).

    Landsat every 8 days (Landsat 8 and 9), so that the cube has ``lst_uncertainty``.
    """
    return tiny_config(root, grid={"bounds": [400000, 6200000, 400000 + 64 * 30,
                                              6200000 + 64 * 30]},
                       dates={"end": "2021-02-09"},
                       output={"dtype": "int16", "uncertainty": True},
                       chunks={"time": 16, "y": 32, "x": 32},
                       simulation={"landsat_revisit_days": 8})


@pytest.fixture(scope="session")
def small_cube(tmp_path_factory, client) -> PipelineConfig:
    """A fused int16 cube of the 64 x 64 px x 40-day region, with its input stack and truth."""
    from lst_pipeline.fusion.engine import execute, plan_run
    from lst_pipeline.simulate import simulate_region

    config = small_cube_config(tmp_path_factory.mktemp("small"))
    simulate_region(config, progress=False)
    execute(plan_run(config), client, progress=False)
    return config
