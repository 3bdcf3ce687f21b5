"""Training DLSTFM: ``lst-pipeline train CONFIG``.

Samples are (reference date, target date) pairs with Landsat on both, cut into random
patches from input stacks (simulated on demand, or any existing stack: the command does not
care where a stack came from). The input of a sample is exactly what the fusion kernel gives
the network in production: reference Landsat, and the MODIS images of both dates upsampled
by :func:`~lst_pipeline.resample.upsample_bilinear`. The loss is the L1 error against
the target date's Landsat, over clear target pixels only.

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

from lst_pipeline.config import from_mapping
from lst_pipeline.devices import resolve_device
from lst_pipeline.errors import ConfigError, InputError
from lst_pipeline.model.spec import ArchitectureConfig


@dataclass(frozen=True)
class RegionSpec:
    """A simulated region used for training or validation (30 m grid, MODIS-like coarse).

    With ``randomise``, the region's coarse factor (8 to 40), size (about ``size``, whole
    coarse pixels), Landsat revisit, noise, clouds, offsets and footprint, MODIS noise,
    offsets (per date and per class), footprint and geolocation errors, and its climate
    (warmer or colder, a larger or smaller seasonal range) are drawn from the seed
    (:func:`realise`), so that training sees many worlds, not one.
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

    def __post_init__(self) -> None:
        if self.size % self.coarse_factor and not self.randomise:
            raise ConfigError(f"regions: size {self.size} is not a multiple of the coarse "
                              f"factor {self.coarse_factor}")


def realise(region: RegionSpec) -> tuple[RegionSpec, dict[str, Any]]:
    """The region as simulated: its spec (factor and size drawn if randomised) and the
    ``simulation`` parameters besides the seed."""
    base = {"landsat_cloud_fraction": region.landsat_cloud_fraction,
            "modis_cloud_fraction": region.modis_cloud_fraction,
            "modis_noise_k": region.modis_noise_k}
    if not region.randomise:
        return region, base
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


def load_train_config(source: Path | str | dict) -> TrainConfig:
    """Read a training YAML (``yaml.safe_load``) into a validated :class:`TrainConfig`."""
    import yaml

    if isinstance(source, dict):
        return _validated(from_mapping(TrainConfig, source))
    path = Path(source)
    if not path.is_file():
        raise ConfigError(f"{path}: training configuration file not found")
    try:
        return _validated(from_mapping(TrainConfig, yaml.safe_load(path.read_text())))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def _validated(config: TrainConfig) -> TrainConfig:
    if not config.regions and not config.stacks:
        raise ConfigError("regions: no training data (give regions or stacks)")
    if not 0.0 <= config.validation_date_fraction < 1.0:
        raise ConfigError("validation_date_fraction: must be in [0, 1)")
    return config


# --------------------------------------------------------------------------------------
# Data: whole regions in memory (a few tens of MB each), pairs, random patches.


@dataclass
class RegionData:
    """Landsat dates of one region with the MODIS images of the same dates, upsampled."""

    name: str
    fine: np.ndarray  # (R, H, W) K, NaN unusable
    coarse_up: np.ndarray  # (R, H, W) K, NaN gaps
    days: np.ndarray  # (R,) days since 1970-01-01
    clear: np.ndarray  # (R,) clear fraction
    coarse_factor: int


def simulate_training_region(region: RegionSpec, workdir: Path) -> Path:
    """Simulate ``region`` under ``workdir`` (once; reused if complete) and return its stack."""
    from lst_pipeline.io.zarr_store import STATUS_ATTR, open_group
    from lst_pipeline.simulate import simulate_region, synthetic_pipeline

    random = region.randomise
    region, simulation = realise(region)
    root = Path(workdir) / (f"region-seed{region.seed}-{region.size}px"
                            + (f"-f{region.coarse_factor}-random" if random else ""))
    config = synthetic_pipeline(
        root, seed=region.seed, size=region.size, start=region.start.isoformat(),
        days=(region.end - region.start).days + 1,
        origin=(300_000.0 + 10_000.0 * (region.seed % 50), 6_100_000.0),
        resolution=region.resolution, coarse_factor=region.coarse_factor, **simulation)
    stack = config.inputs.stack
    if stack.exists() and open_group(stack).attrs.get(STATUS_ATTR) == "complete":
        return stack
    simulate_region(config, overwrite=True, progress=False)
    return stack


def load_region(stack: Path, name: str | None = None) -> RegionData:
    """Read every Landsat date of a stack and the MODIS of those dates (upsampled)."""
    from lst_pipeline.grid import Window
    from lst_pipeline.io.stack import StackReader
    from lst_pipeline.resample import upsample_bilinear

    reader = StackReader(stack)
    ny, nx = reader.grid.shape
    whole = Window(0, ny, 0, nx)
    idx = np.arange(len(reader.landsat_dates))
    fine = reader.read_landsat(idx, whole)
    coarse = reader.read_modis(reader.landsat_dates, whole.coarse(reader.grid.coarse_factor))
    return RegionData(
        name=name or str(stack), fine=fine,
        coarse_up=upsample_bilinear(coarse, reader.grid.coarse_factor),
        days=reader.landsat_dates.astype(np.int64), clear=reader.landsat_clear_fraction,
        coarse_factor=reader.grid.coarse_factor,
    )


def make_pairs(regions: list[RegionData], *, max_gap_days: int, min_clear: float,
               validation_fraction: float, all_validation: bool = False
               ) -> tuple[list[tuple[int, int, int]], list[tuple[int, int, int]]]:
    """(region, reference, target) index triples for training and validation.

    Dates in the last ``validation_fraction`` of a region's series are validation targets;
    training pairs touch none of them (neither as reference nor as target).
    """
    train, val = [], []
    for k, r in enumerate(regions):
        ok = r.clear >= min_clear
        cut = r.days.min() + (1 - validation_fraction) * (r.days.max() - r.days.min() + 1)
        for i in np.nonzero(ok)[0]:
            for j in np.nonzero(ok)[0]:
                if i == j or abs(int(r.days[i]) - int(r.days[j])) > max_gap_days:
                    continue
                if all_validation or r.days[j] >= cut:
                    val.append((k, int(i), int(j)))
                elif r.days[i] < cut:
                    train.append((k, int(i), int(j)))
    return train, val


def region_patch(region: RegionData, patch: int) -> int:
    """The patch edge used for a region: about ``patch``, whole coarse pixels, inside it."""
    f = region.coarse_factor
    edge = f * max(2, round(patch / f))
    return min(edge, f * (min(region.fine.shape[1:]) // f))


def sample_region_batch(rng: np.random.Generator, regions: list[RegionData],
                        pairs: list[tuple[int, int, int]], batch_size: int, patch: int, *,
                        temperature_shift_k: float = 0.0
                        ) -> tuple[tuple[np.ndarray, ...], int]:
    """A batch from one region (one coarse factor per forward pass), and that factor.

    The region is that of a random pair; the batch's pairs are drawn from its pairs, its
    patch edge is :func:`region_patch`.
    """
    k = pairs[rng.integers(len(pairs))][0]
    own = [p for p in pairs if p[0] == k]
    edge = region_patch(regions[k], patch)
    return (sample_patches(rng, regions, own, batch_size, edge,
                           temperature_shift_k=temperature_shift_k), regions[k].coarse_factor)


def sample_batch(rng: np.random.Generator, regions: list[RegionData],
                 pairs: list[tuple[int, int, int]], batch_size: int, patch: int
                 ) -> tuple[np.ndarray, ...]:
    """Random patches of random pairs of one region, randomly flipped/rotated.

    Patch origins fall on coarse pixel edges, as tiles do in production, so the network's
    coarse-context pooling sees whole MODIS pixels.

    Returns ``reference, reference_coarse, target_coarse, target`` each ``(B, 1, P, P)``.
    """
    return sample_region_batch(rng, regions, pairs, batch_size, patch)[0]


def sample_patches(rng: np.random.Generator, regions: list[RegionData],
                   pairs: list[tuple[int, int, int]], batch_size: int, patch: int, *,
                   temperature_shift_k: float = 0.0) -> tuple[np.ndarray, ...]:
    """``batch_size`` random ``patch`` x ``patch`` samples of ``pairs`` (flipped, rotated).

    ``temperature_shift_k``: each sample is warmed or cooled as a whole by up to this much
    (all four images alike), so the network meets other climates than the regions' own.
    """
    out = np.empty((4, batch_size, 1, patch, patch), dtype=np.float32)
    for b in range(batch_size):
        k, i, j = pairs[rng.integers(len(pairs))]
        r = regions[k]
        ny, nx = r.fine.shape[1:]
        f = r.coarse_factor
        y0 = f * rng.integers((ny - patch) // f + 1)
        x0 = f * rng.integers((nx - patch) // f + 1)
        ys, xs = slice(y0, y0 + patch), slice(x0, x0 + patch)
        stack = np.stack([r.fine[i, ys, xs], r.coarse_up[i, ys, xs], r.coarse_up[j, ys, xs],
                          r.fine[j, ys, xs]])
        stack = np.rot90(stack, rng.integers(4), axes=(1, 2))
        if rng.random() < 0.5:
            stack = stack[:, :, ::-1]
        out[:, b, 0] = stack
        if temperature_shift_k:
            out[:, b] += np.float32(rng.uniform(-temperature_shift_k, temperature_shift_k))
    return tuple(out)


# --------------------------------------------------------------------------------------
# Training loop.


def evaluate_pairs(model, regions: list[RegionData], pairs: list[tuple[int, int, int]],
                   device: str) -> dict[str, float]:
    """MAE of the network and of reference + coarse change on the same clear pixels."""
    import torch

    err_model, err_base, n = 0.0, 0.0, 0
    model.eval()
    with torch.inference_mode():
        for k, i, j in pairs:
            r = regions[k]
            f1, c1, c2 = (torch.from_numpy(a)[None, None].to(device)
                          for a in (r.fine[i], r.coarse_up[i], r.coarse_up[j]))
            pred = model(f1, c1, c2, coarse_factor=r.coarse_factor)[0, 0].float().cpu().numpy()
            base = r.fine[i] + r.coarse_up[j] - r.coarse_up[i]
            ok = np.isfinite(pred) & np.isfinite(r.fine[j]) & np.isfinite(base)
            err_model += float(np.abs(pred[ok] - r.fine[j][ok]).sum())
            err_base += float(np.abs(base[ok] - r.fine[j][ok]).sum())
            n += int(ok.sum())
    n = max(n, 1)
    return {"mae_k": err_model / n, "reference_change_mae_k": err_base / n, "pixels": n}


def train(config: TrainConfig, *, resume: bool = False, progress: bool = True,
          stop_at_step: int | None = None, log=print) -> dict[str, Any]:
    """Train DLSTFM as configured; returns the training record saved in the checkpoint.

    Parameters
    ----------
    config
        The training configuration.
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
    import torch
    from tqdm.auto import tqdm

    from lst_pipeline.model.checkpoint import load_checkpoint, save_checkpoint
    from lst_pipeline.model.dlstfm import DLSTFM, ModelSpec
    from lst_pipeline.model.runtime import tune_allocator

    o = config.optim
    device = resolve_device(config.device)
    tune_allocator()
    torch.manual_seed(o.seed)
    rng = np.random.default_rng(o.seed)
    if device == "cpu":
        torch.use_deterministic_algorithms(True)

    log(f"preparing {len(config.regions)} training and {len(config.validation_regions)} "
        f"validation regions under {config.workdir}")
    regions = [load_region(simulate_training_region(r, config.workdir), f"seed{r.seed}")
               for r in config.regions]
    regions += [load_region(Path(s)) for s in config.stacks]
    held_out = [load_region(simulate_training_region(r, config.workdir), f"seed{r.seed}")
                for r in config.validation_regions]
    train_pairs, val_dates = make_pairs(regions, max_gap_days=o.max_gap_days,
                                        min_clear=o.min_clear_fraction,
                                        validation_fraction=config.validation_date_fraction)
    _, val_regions = make_pairs(held_out, max_gap_days=o.max_gap_days,
                                min_clear=o.min_clear_fraction, validation_fraction=0.0,
                                all_validation=True)
    if not train_pairs:
        raise InputError("no training pairs: no two clear Landsat dates within "
                         f"{o.max_gap_days} days in the training regions")
    pick = np.random.default_rng(o.seed + 1)
    val_dates = _subset(pick, val_dates, o.validation_pairs)
    val_regions = _subset(pick, val_regions, o.validation_pairs)
    log(f"{len(train_pairs)} training pairs; validation: {len(val_dates)} pairs by date, "
        f"{len(val_regions)} pairs in held-out regions")

    spec = ModelSpec(config.model)
    model = DLSTFM(spec).to(device, memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(model.parameters(), lr=o.learning_rate,
                                  weight_decay=o.weight_decay)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1.0, (s + 1) / 100) * 0.5 * (1 + math.cos(math.pi * s / o.steps)))
    state_path = Path(config.workdir) / f"{config.name}.state.pt"
    history: list[dict[str, Any]] = []
    best = math.inf
    step = 0
    if resume:
        if not state_path.is_file():
            raise InputError(f"{state_path}: no training state to resume from")
        state = torch.load(state_path, map_location=device, weights_only=True)
        best_model, _ = load_checkpoint(state_path.with_suffix(".last.pt"), map_location=device)
        model.load_state_dict(best_model.state_dict())
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["schedule"])
        torch.set_rng_state(state["torch_rng"])
        rng.bit_generator.state = json.loads(state["numpy_rng"])
        step, best, history = int(state["step"]), float(state["best"]), json.loads(state["history"])
        log(f"resumed at step {step} (best validation MAE {best:.3f} K)")

    record = {
        "name": config.name,
        "regions": [dataclasses.asdict(realise(r)[0]) | {
            "start": str(realise(r)[0].start), "end": str(realise(r)[0].end),
            "simulation": realise(r)[1], "randomised": r.randomise} for r in config.regions],
        "validation_regions": [r.seed for r in config.validation_regions],
        "stacks": [str(s) for s in config.stacks],
        "optim": dataclasses.asdict(o),
        "device": device,
    }
    start = time.perf_counter()
    bar = tqdm(total=o.steps, initial=step, unit="step", desc="training", disable=not progress)
    amp = device == "cuda" and config.mixed_precision
    last = o.steps if stop_at_step is None else min(o.steps, stop_at_step)
    while step < last:
        model.train()
        arrays, factor = sample_region_batch(rng, regions, train_pairs, o.batch_size, o.patch,
                                             temperature_shift_k=o.temperature_shift_k)
        ref, ref_c, tgt_c, tgt = (
            torch.from_numpy(np.ascontiguousarray(a)).to(device)
            .contiguous(memory_format=torch.channels_last) for a in arrays)
        with torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=amp):
            pred = model(ref, ref_c, tgt_c, coarse_factor=factor)
        mgn = min(o.loss_margin, ref.shape[-1] // 4)
        pred, tgt = pred[..., mgn:-mgn, mgn:-mgn].float(), tgt[..., mgn:-mgn, mgn:-mgn]
        ok = torch.isfinite(pred) & torch.isfinite(tgt)
        if not ok.any():
            continue
        loss = (pred[ok] - tgt[ok]).abs().mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        step += 1
        bar.update()
        bar.set_postfix(loss=f"{loss.item():.3f}")
        if step % o.validate_every == 0 or step == last:
            metrics = {"step": step, "train_loss_k": float(loss.item()),
                       "validation_dates": evaluate_pairs(model, regions, val_dates, device),
                       "validation_regions": evaluate_pairs(model, held_out, val_regions, device)}
            history.append(metrics)
            score = _validation_score(metrics)
            log(f"step {step}: loss {loss.item():.3f} K, validation MAE by date "
                f"{metrics['validation_dates']['mae_k']:.3f} K "
                f"(reference+change {metrics['validation_dates']['reference_change_mae_k']:.3f}), "
                f"held-out regions {metrics['validation_regions']['mae_k']:.3f} K "
                f"(reference+change {metrics['validation_regions']['reference_change_mae_k']:.3f})")
            record_now = {**record, "history": history, "steps": step,
                          "wall_seconds": time.perf_counter() - start}
            if score < best:
                best = score
                save_checkpoint(config.checkpoint, model, training={**record_now, "best": metrics})
            save_checkpoint(state_path.with_suffix(".last.pt"), model, training=record_now)
            torch.save({"optimizer": optimizer.state_dict(), "schedule": schedule.state_dict(),
                        "torch_rng": torch.get_rng_state(),
                        "numpy_rng": json.dumps(rng.bit_generator.state), "step": step,
                        "best": best, "history": json.dumps(history)}, state_path)
    bar.close()
    return {**record, "history": history, "best_validation_mae_k": best}


def _validation_score(metrics: dict[str, Any]) -> float:
    parts = [metrics[k]["mae_k"] for k in ("validation_dates", "validation_regions")
             if metrics[k]["pixels"] > 1]
    return float(np.mean(parts)) if parts else metrics["train_loss_k"]


def _subset(rng: np.random.Generator, items: list, n: int) -> list:
    if len(items) <= n:
        return items
    return [items[i] for i in sorted(rng.choice(len(items), n, replace=False))]
