"""Assembling training data from stores, and the commands ``train`` and ``adapt``.

The model modules train on arrays (:class:`~lst_pipeline.model.data.RegionData`); this
module builds them from input stacks through :mod:`lst_pipeline.io`, simulating the
training regions on demand with :mod:`lst_pipeline.simulate`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from lst_pipeline.config.locations import StorePath, as_store_path, require_local
from lst_pipeline.model.data import RegionData

if TYPE_CHECKING:
    from lst_pipeline.config import PipelineConfig
    from lst_pipeline.fusion.overpass import OverpassCorrection
    from lst_pipeline.model.adapt import AdaptResult
    from lst_pipeline.model.train import RegionSpec, TrainConfig


def simulate_training_region(region: RegionSpec, workdir: Path | str) -> Path:
    """Simulate ``region`` under ``workdir`` and return its stack.

    Simulated once: a complete stack of the same parameters and dates is reused.
    """
    from lst_pipeline.model.train import realise
    from lst_pipeline.simulate import simulate_region, simulated_as, synthetic_pipeline

    random = region.randomise
    region, simulation = realise(region)
    root = Path(workdir) / (f"region-seed{region.seed}-{region.size}px"
                            + (f"-f{region.coarse_factor}-random" if random else ""))
    config = synthetic_pipeline(
        root, seed=region.seed, size=region.size, start=region.start.isoformat(),
        days=(region.end - region.start).days + 1,
        origin=(300_000.0 + 10_000.0 * (region.seed % 50), 6_100_000.0),
        resolution=region.resolution, coarse_factor=region.coarse_factor, **simulation)
    stack = require_local(config.inputs.stack, "training region")
    if simulated_as(config):  # a region whose parameters changed is simulated again
        return stack
    simulate_region(config, overwrite=True, progress=False)
    return stack


def _adapted_path(stack: StorePath, out: Path | str | None) -> Path:
    """Where ``adapt`` writes: ``out``, or ``<stack>.adapted.pt`` beside a local stack."""
    if out is not None:
        return Path(out)
    local = require_local(stack, "adapt --out is needed: the input stack")
    return local.with_name(local.name + ".adapted.pt")


def load_region(stack: StorePath | str, name: str | None = None, *,
                overpass: OverpassCorrection | None = None,
                reference_offset_days: int = 0) -> RegionData:
    """Read every Landsat date of a stack and the MODIS of those dates (upsampled).

    With ``overpass`` the MODIS is brought to the Landsat overpass time, as a run with that
    correction reads it; with ``reference_offset_days`` a reference's MODIS is rebuilt from
    its Landsat as such a run rebuilds it (``fusion.reference_offset_days``).
    """
    from lst_pipeline.fusion.overpass import correct_modis
    from lst_pipeline.grid import Window
    from lst_pipeline.io.stack import StackReader
    from lst_pipeline.resample import upsample_bilinear

    reader = StackReader(as_store_path(stack))
    ny, nx = reader.grid.shape
    whole = Window(0, ny, 0, nx)
    idx = np.arange(len(reader.landsat_dates))
    fine = reader.read_landsat(idx, whole)
    coarse = correct_modis(
        reader.read_modis(reader.landsat_dates, whole.coarse(reader.grid.coarse_factor)),
        reader.modis_view_time_on(reader.landsat_dates), overpass)
    return RegionData(
        name=name or str(stack), fine=fine,
        coarse_up=upsample_bilinear(coarse, reader.grid.coarse_factor),
        days=reader.landsat_dates.astype(np.int64), clear=reader.landsat_clear_fraction,
        coarse_factor=reader.grid.coarse_factor,
        coarse=coarse.astype(np.float32), offset_timescale_days=reference_offset_days,
    )


def training_regions(config: TrainConfig) -> tuple[list[RegionData], list[RegionData]]:
    """The training and held-out validation regions of ``config``, in memory."""
    days = config.reference_offset_days
    regions = [load_region(simulate_training_region(r, config.workdir), f"seed{r.seed}",
                           reference_offset_days=days) for r in config.regions]
    regions += [load_region(Path(s), reference_offset_days=days) for s in config.stacks]
    held_out = [load_region(simulate_training_region(r, config.workdir), f"seed{r.seed}",
                            reference_offset_days=days) for r in config.validation_regions]
    return regions, held_out


def run_training(config: TrainConfig, *, resume: bool = False, progress: bool = True,
                 stop_at_step: int | None = None, log=print) -> dict[str, Any]:
    """Assemble the regions and train (what ``lst-pipeline train CONFIG`` does).

    Parameters are those of :func:`lst_pipeline.model.train.train`; returns its record.
    """
    from lst_pipeline.model.train import train

    log(f"preparing {len(config.regions)} training and {len(config.validation_regions)} "
        f"validation regions under {config.workdir}")
    regions, held_out = training_regions(config)
    return train(config, regions, held_out, resume=resume, progress=progress,
                 stop_at_step=stop_at_step, log=log)


def run_adapt(config: PipelineConfig, *, out: Path | str | None = None,
              checkpoint: Path | str | None = None, **options: Any) -> AdaptResult:
    """Fine-tune DLSTFM on the input stack of ``config`` (``lst-pipeline adapt CONFIG``).

    Parameters
    ----------
    config
        Its ``inputs.stack`` supplies the samples, its ``fusion`` the starting checkpoint,
        the largest reference gap, the device and the STARFM parameters scored against.
    out
        Checkpoint to write (default: ``<stack>.adapted.pt`` beside the stack).
    checkpoint
        Starting checkpoint (default: ``fusion.checkpoint``, else the shipped one).
    **options
        Passed to :func:`lst_pipeline.model.adapt.adapt_checkpoint` (steps, batch_size,
        patch, learning_rate, seed, min_clear_fraction, evaluations, progress, log).
    """
    import dataclasses

    from lst_pipeline.fusion.overpass import planned_overpass
    from lst_pipeline.io.stack import content_fingerprint
    from lst_pipeline.model.adapt import adapt_checkpoint
    from lst_pipeline.model.checkpoint import DEFAULT_CHECKPOINT

    stack = config.inputs.stack
    fusion = config.fusion
    starfm_params = dict(fusion.method_params()) if fusion.method == "starfm" \
        else dataclasses.asdict(fusion.starfm)
    starfm_params.pop("pairs", None)
    # the network learns MODIS as `run` reads it: at Landsat's hour, references rebuilt
    overpass, notes = planned_overpass(stack, fusion.overpass_correction)
    for note in notes:
        options.get("log", print)(note)
    return adapt_checkpoint(
        load_region(stack, str(stack), overpass=overpass,
                    reference_offset_days=fusion.reference_offset_days),
        start=Path(checkpoint or fusion.checkpoint or DEFAULT_CHECKPOINT),
        out=_adapted_path(stack, out),
        max_gap_days=fusion.max_reference_gap_days, device=fusion.device,
        starfm_params=starfm_params,
        source={"stack": str(stack), "stack_content_sha256": content_fingerprint(stack)},
        **options)
