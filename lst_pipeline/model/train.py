"""Training DLSTFM: the configuration and the loop behind ``lst-pipeline train CONFIG``.

Samples are (reference date, target date) pairs with Landsat on both, cut into random
patches (:mod:`lst_pipeline.model.data`) of regions handed to :func:`train` as arrays;
:mod:`lst_pipeline.training` assembles them from input stacks (simulated on demand, or any
existing stack: the command does not care where a stack came from). The input of a sample is
exactly what the fusion kernel gives the network in production: reference Landsat, and the
MODIS images of both dates upsampled by :func:`~lst_pipeline.resample.upsample_bilinear`.
The loss is the L1 error against the target date's Landsat, over clear target pixels only.

Validation is split by date (the last part of every training region's series is never
trained on) and by region (held-out simulated regions). The best checkpoint by validation
MAE is kept; ``--resume`` continues from the last saved training state.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from lst_pipeline.config import load_yaml_config
from lst_pipeline.devices import resolve_device
from lst_pipeline.errors import ConfigError, InputError
from lst_pipeline.model.data import (
    RegionData,
    make_pairs,
    sample_region_batch,
    subset,
    with_gains,
)
from lst_pipeline.model.optim import l1_step, seeded, warmup_cosine
from lst_pipeline.model.spec import ArchitectureConfig


@dataclass(frozen=True)
class RegionSpec:
    """A simulated region used for training or validation (30 m grid, MODIS-like coarse).

    With ``randomise``, the region's coarse factor (8 to 40), size (about ``size``, whole
    coarse pixels), Landsat revisit, noise, clouds, offsets and footprint, MODIS noise,
    offsets (per date and per class), footprint and geolocation errors, and its climate
    (warmer or colder, a larger or smaller seasonal range) are drawn from the seed
    (:func:`realise`), so that training sees many worlds, not one. ``snow_events_per_year``
    and (not randomised) ``climate_shift_k`` go to the simulator as they are.
    """

    seed: int
    size: int = 512
    start: dt.date = dt.date(2021, 1, 1)
    end: dt.date = dt.date(2021, 12, 31)
    resolution: float = 30.0
    coarse_factor: int = 32
    landsat_cloud_fraction: float = 0.3
    modis_cloud_fraction: float = 0.25
    modis_noise_k: float = 0.7
    randomise: bool = False
    climate_shift_k: float = 0.0
    snow_events_per_year: float = 0.0

    def __post_init__(self) -> None:
        if self.randomise and self.climate_shift_k:  # it would be ignored
            raise ConfigError(f"regions: seed {self.seed}: climate_shift_k needs randomise off")
        if self.size % self.coarse_factor and not self.randomise:
            raise ConfigError(f"regions: size {self.size} is not a multiple of the coarse "
                              f"factor {self.coarse_factor}")


def realise(region: RegionSpec) -> tuple[RegionSpec, dict[str, Any]]:
    """The region as simulated: its spec and its ``simulation`` parameters.

    Factor and size are drawn if the region is randomised; the seed is the spec's.
    """
    base = {"landsat_cloud_fraction": region.landsat_cloud_fraction,
            "modis_cloud_fraction": region.modis_cloud_fraction,
            "modis_noise_k": region.modis_noise_k,
            "snow_events_per_year": region.snow_events_per_year}
    if not region.randomise:
        return region, {**base, "climate_shift_k": region.climate_shift_k}
    rng = np.random.default_rng([region.seed, 7717])
    factor = int(rng.integers(8, 41))
    size = factor * max(6, round(region.size / factor))
    start = dt.date(2021, 1, 1) + dt.timedelta(days=int(rng.integers(0, 365)))
    length = (region.end - region.start).days
    params = {
        "landsat_revisit_days": int(rng.choice([8, 16])),
        "landsat_noise_k": rng.uniform(0.2, 0.7),
        "landsat_cloud_fraction": rng.uniform(0.1, 0.5),
        "landsat_offset_sd_k": rng.uniform(0.0, 0.6),
        "landsat_psf_sigma_px": rng.uniform(0.0, 1.5),
        "modis_noise_k": rng.uniform(0.3, 1.2),
        "modis_offset_k": rng.uniform(-2.5, 1.5),
        "modis_cloud_fraction": rng.uniform(0.1, 0.45),
        "modis_psf_sigma": rng.uniform(0.2, 1.0),
        "modis_date_offset_sd_k": rng.uniform(0.0, 1.2),
        "modis_class_offset_sd_k": rng.uniform(0.0, 1.0),
        "modis_geolocation_sd_px": rng.uniform(0.0, 0.3),
        "climate_shift_k": rng.uniform(-12.0, 8.0),
        "climate_amp_scale": rng.uniform(0.5, 1.5),
        "snow_events_per_year": region.snow_events_per_year,
    }
    spec = dataclasses.replace(region, size=size, coarse_factor=factor, start=start,
                               end=start + dt.timedelta(days=length), randomise=False)
    return spec, {k: float(v) if not isinstance(v, int) else v for k, v in params.items()}


@dataclass(frozen=True)
class OptimConfig:
    """Optimisation and sampling."""

    steps: int = 3000
    batch_size: int = 8
    patch: int = 128
    loss_margin: int = 16
    learning_rate: float = 2e-3
    weight_decay: float = 1e-4
    seed: int = 0
    max_gap_days: int = 48
    min_clear_fraction: float = 0.2
    validate_every: int = 250
    validation_pairs: int = 24
    #: samples warmed or cooled as a whole by up to this much (K), see ``sample_patches``
    temperature_shift_k: float = 0.0


@dataclass(frozen=True)
class TrainConfig:
    """A training run.

    Attributes
    ----------
    name
        Name recorded in the checkpoint.
    workdir
        Where simulated stacks and the training state are written.
    checkpoint
        Best checkpoint (by validation MAE) is written here.
    regions
        Simulated training regions.
    validation_regions
        Simulated held-out regions (seeds never used for training).
    stacks
        Existing input stacks (real or simulated) added to the training regions.
    validation_date_fraction
        The last fraction of every training region's dates is kept for validation.
    device
        ``auto`` (GPU if present), ``cpu`` or ``cuda``.
    init_checkpoint
        Start from this checkpoint's weights instead of a random initialisation; its
        architecture must have the same tensors as ``model`` (``pixel_gain`` may differ,
        it adds none).
    reference_offset_days
        A reference date's MODIS is rebuilt from its Landsat as a run with this
        ``fusion.reference_offset_days`` rebuilds it, the target date left out (0: as
        observed, as the networks shipped before 2026-12-05 were trained).
    """

    name: str
    workdir: Path
    checkpoint: Path
    regions: tuple[RegionSpec, ...] = ()
    validation_regions: tuple[RegionSpec, ...] = ()
    stacks: tuple[Path, ...] = ()
    validation_date_fraction: float = 0.2
    model: ArchitectureConfig = field(default_factory=ArchitectureConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    mixed_precision: bool = False
    init_checkpoint: Path | None = None
    reference_offset_days: int = 0


def load_train_config(source: Path | str | dict) -> TrainConfig:
    """Read a training YAML (``yaml.safe_load``) into a validated :class:`TrainConfig`."""
    return load_yaml_config(source, TrainConfig, "training configuration", validate=_validated)


def _validated(config: TrainConfig) -> TrainConfig:
    if not config.regions and not config.stacks:
        raise ConfigError("regions: no training data (give regions or stacks)")
    if not 0.0 <= config.validation_date_fraction < 1.0:
        raise ConfigError("validation_date_fraction: must be in [0, 1)")
    if not 0 <= config.reference_offset_days <= 366:
        raise ConfigError("reference_offset_days: must be 0 (off) to 366 days, got "
                          f"{config.reference_offset_days}")
    return config


# --------------------------------------------------------------------------------------
# Data: whole regions in memory (a few tens of MB each), pairs, random patches.


# --------------------------------------------------------------------------------------
# Training loop.


def evaluate_pairs(model, regions: list[RegionData], pairs: list[tuple[int, int, int]],
                   device: str) -> dict[str, float]:
    """MAE of the network and of reference + coarse change on the same clear pixels.

    Each region is cropped to whole tiles of the network's alignment at its coarse factor
    (from its origin, which lies on a coarse pixel edge).
    """
    import torch

    err_model, err_base, n = 0.0, 0.0, 0
    model.eval()
    with torch.inference_mode():
        for k, i, j in pairs:
            r = regions[k]
            align = model.alignment_at(r.coarse_factor)
            ys, xs = (slice(0, align * max(1, e // align)) for e in r.fine.shape[1:])
            f1, c2, target = (a[ys, xs] for a in (r.fine[i], r.coarse_up[j], r.fine[j]))
            c1 = r.reference_up(i, j, ys, xs)
            gain = None if r.gain is None else torch.from_numpy(
                np.ascontiguousarray(r.gain[j][ys, xs]))[None, None].to(device)
            pred = model(*(torch.from_numpy(np.ascontiguousarray(a))[None, None].to(device)
                           for a in (f1, c1, c2)),
                         coarse_factor=r.coarse_factor, pixel_gain=gain
                         )[0, 0].float().cpu().numpy()
            base = f1 + c2 - c1
            ok = np.isfinite(pred) & np.isfinite(target) & np.isfinite(base)
            err_model += float(np.abs(pred[ok] - target[ok]).sum())
            err_base += float(np.abs(base[ok] - target[ok]).sum())
            n += int(ok.sum())
    return {"mae_k": err_model / max(n, 1), "reference_change_mae_k": err_base / max(n, 1),
            "pixels": n}


def _mae_text(scores: dict[str, float]) -> str:
    if not scores["pixels"]:
        return "none"
    return (f"{scores['mae_k']:.3f} K (reference+change "
            f"{scores['reference_change_mae_k']:.3f})")


def train(config: TrainConfig, regions: list[RegionData], held_out: list[RegionData], *,
          resume: bool = False, progress: bool = True, stop_at_step: int | None = None,
          log=print) -> dict[str, Any]:
    """Train DLSTFM on the regions handed to it; returns the record saved in the checkpoint.

    Parameters
    ----------
    config
        The training configuration (model, optimisation, where checkpoints go).
    regions
        Training regions (the last ``validation_date_fraction`` of each series validates).
    held_out
        Validation regions, never trained on.
    resume
        Continue from the training state last saved in ``config.workdir``.
    progress
        Show a progress bar.
    stop_at_step
        Save the state and return after this step (a time-boxed job resumes later with
        ``resume=True`` and ends exactly where an uninterrupted run would).
    log
        Where progress messages go.
    """
    from tqdm.auto import tqdm

    o = config.optim
    run = _TrainingRun(config, regions, held_out, log)
    if resume:
        run.resume()
    last = o.steps if stop_at_step is None else min(o.steps, stop_at_step)
    bar = tqdm(total=o.steps, initial=run.step, unit="step", desc="training",
               disable=not progress)
    while run.step < last:
        loss = run.optimise()
        if loss is None:
            continue
        bar.update()
        bar.set_postfix(loss=f"{loss:.3f}")
        if run.step % o.validate_every == 0 or run.step == last:
            run.validate_and_save(loss)
    bar.close()
    return {**run.record, "history": run.history, "best_validation_mae_k": run.best}


class _TrainingRun:
    """The state of one training run: model, optimiser, samples, history, checkpoints."""

    def __init__(self, config: TrainConfig, regions: list[RegionData],
                 held_out: list[RegionData], log) -> None:
        import torch

        from lst_pipeline.model.dlstfm import DLSTFM, ModelSpec
        from lst_pipeline.model.runtime import tune_allocator

        o = config.optim
        if config.model.pixel_gain:  # each target date's gain, as the kernel fits it
            regions = [with_gains(r, max_gap_days=o.max_gap_days) for r in regions]
            held_out = [with_gains(r, max_gap_days=o.max_gap_days) for r in held_out]
        self.config, self.regions, self.held_out, self.log = config, regions, held_out, log
        self.device = resolve_device(config.device)
        tune_allocator()
        self.rng = seeded(o.seed, self.device)
        self.train_pairs, val_dates = make_pairs(
            regions, max_gap_days=o.max_gap_days, min_clear=o.min_clear_fraction,
            validation_fraction=config.validation_date_fraction)
        _, val_regions = make_pairs(held_out, max_gap_days=o.max_gap_days,
                                    min_clear=o.min_clear_fraction, validation_fraction=0.0,
                                    all_validation=True)
        if not self.train_pairs:
            raise InputError("no training pairs: no two clear Landsat dates within "
                             f"{o.max_gap_days} days in the training regions")
        pick = np.random.default_rng(o.seed + 1)
        self.val_dates = subset(pick, val_dates, o.validation_pairs)
        self.val_regions = subset(pick, val_regions, o.validation_pairs)
        log(f"{len(self.train_pairs)} training pairs; validation: {len(self.val_dates)} pairs "
            f"by date, {len(self.val_regions)} pairs in held-out regions")
        # Module.to accepts memory_format at runtime; torch's overload stubs omit it
        self.model: DLSTFM = DLSTFM(ModelSpec(config.model)).to(  # type: ignore[call-overload]
            self.device, memory_format=torch.channels_last)
        if config.init_checkpoint is not None:
            self._initialise(config.init_checkpoint)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=o.learning_rate,
                                           weight_decay=o.weight_decay)
        self.schedule = warmup_cosine(self.optimizer, o.steps, warmup=100)
        self.state_path = Path(config.workdir) / f"{config.name}.state.pt"
        self.history: list[dict[str, Any]] = []
        self.best = math.inf
        self.step = 0
        self.record = training_record(config, self.device)
        self.started = time.perf_counter()

    def _initialise(self, path: Path) -> None:
        """Load the weights of checkpoint ``path`` (same tensors) into the new network."""
        from lst_pipeline.model.checkpoint import load_checkpoint

        start, _ = load_checkpoint(path, map_location=self.device)
        try:
            self.model.load_state_dict(start.state_dict())
        except RuntimeError as exc:
            raise ConfigError(f"init_checkpoint: {path} has other tensors than `model` "
                              f"describes ({exc}); set `model` to its architecture") from exc
        self.log(f"initialised from {path}")

    def resume(self) -> None:
        """Continue from the state saved by the last validation of an earlier run."""
        import torch

        from lst_pipeline.model.checkpoint import load_checkpoint

        if not self.state_path.is_file():
            raise InputError(f"{self.state_path}: no training state to resume from")
        state = torch.load(self.state_path, map_location=self.device, weights_only=True)
        last_model, _ = load_checkpoint(self.state_path.with_suffix(".last.pt"),
                                        map_location=self.device)
        self.model.load_state_dict(last_model.state_dict())
        self.optimizer.load_state_dict(state["optimizer"])
        self.schedule.load_state_dict(state["schedule"])
        torch.set_rng_state(state["torch_rng"])
        self.rng.bit_generator.state = json.loads(state["numpy_rng"])
        self.step, self.best = int(state["step"]), float(state["best"])
        self.history = json.loads(state["history"])
        self.log(f"resumed at step {self.step} (best validation MAE {self.best:.3f} K)")

    def optimise(self) -> float | None:
        """One optimiser step on a random batch; its L1 loss (None: no valid target pixel)."""
        import torch

        o = self.config.optim
        self.model.train()
        arrays, factor = sample_region_batch(self.rng, self.regions, self.train_pairs,
                                             o.batch_size, o.patch,
                                             temperature_shift_k=o.temperature_shift_k,
                                             alignment=self.model.alignment_at)
        ref, ref_c, tgt_c, tgt, gain = (
            torch.from_numpy(np.ascontiguousarray(a)).to(self.device)
            .contiguous(memory_format=torch.channels_last) for a in arrays)
        amp = self.device == "cuda" and self.config.mixed_precision
        with torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=amp):
            pred = self.model(ref, ref_c, tgt_c, coarse_factor=factor, pixel_gain=gain)
        loss = l1_step(self.model, self.optimizer, pred, tgt,
                       margin=min(o.loss_margin, ref.shape[-1] // 4))
        if loss is None:
            return None
        self.schedule.step()
        self.step += 1
        return loss

    def validate_and_save(self, loss: float) -> None:
        """Score both validations; keep the best checkpoint and the state to resume from."""
        import torch

        from lst_pipeline.model.checkpoint import save_checkpoint

        by_date = evaluate_pairs(self.model, self.regions, self.val_dates, self.device)
        by_region = evaluate_pairs(self.model, self.held_out, self.val_regions, self.device)
        metrics = {"step": self.step, "train_loss_k": loss,
                   "validation_dates": by_date, "validation_regions": by_region}
        self.history.append(metrics)
        self.log(f"step {self.step}: loss {loss:.3f} K, validation MAE by date "
                 f"{_mae_text(by_date)}, held-out regions {_mae_text(by_region)}")
        record_now = {**self.record, "history": self.history, "steps": self.step,
                      "wall_seconds": time.perf_counter() - self.started}
        score = _validation_score(metrics)
        if score < self.best:
            self.best = score
            save_checkpoint(self.config.checkpoint, self.model,
                            training={**record_now, "best": metrics})
        save_checkpoint(self.state_path.with_suffix(".last.pt"), self.model,
                        training=record_now)
        torch.save({"optimizer": self.optimizer.state_dict(),
                    "schedule": self.schedule.state_dict(),
                    "torch_rng": torch.get_rng_state(),
                    "numpy_rng": json.dumps(self.rng.bit_generator.state), "step": self.step,
                    "best": self.best, "history": json.dumps(self.history)}, self.state_path)


def training_record(config: TrainConfig, device: str) -> dict[str, Any]:
    """What a checkpoint records of its training: regions as realised, optimisation, device."""
    regions = []
    for r in config.regions:
        spec, simulation = realise(r)
        regions.append(dataclasses.asdict(spec) | {
            "start": str(spec.start), "end": str(spec.end), "simulation": simulation,
            "randomised": r.randomise})
    record: dict[str, Any] = {
        "name": config.name,
        "regions": regions,
        "validation_regions": [r.seed for r in config.validation_regions],
        "stacks": [str(s) for s in config.stacks],
        "optim": dataclasses.asdict(config.optim),
        "device": device,
        "reference_offset_days": config.reference_offset_days,
    }
    if config.init_checkpoint is not None:  # where the weights started
        from lst_pipeline.model.checkpoint import file_sha256

        record["init_checkpoint"] = str(config.init_checkpoint)
        record["init_checkpoint_sha256"] = file_sha256(config.init_checkpoint)
    return record


def _validation_score(metrics: dict[str, Any]) -> float:
    parts = [metrics[k]["mae_k"] for k in ("validation_dates", "validation_regions")
             if metrics[k]["pixels"] > 1]
    return float(np.mean(parts)) if parts else metrics["train_loss_k"]


