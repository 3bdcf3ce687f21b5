"""Adapting DLSTFM to the user's region: ``lst-pipeline adapt CONFIG``.

The shipped checkpoint was trained on simulated worlds. A region's own stack holds pairs of
clear Landsat dates with the MODIS of the same dates: exactly the samples training uses.
:func:`adapt_checkpoint` fine-tunes the starting checkpoint on them, with validation dates
held out in blocks of time (never a reference nor a target in training, so a neighbouring
date cannot leak the answer), keeps the state that does best on them, and scores the
adapted model, the starting model, ``reference_change`` and ``starfm`` on the held-out
dates, each predicted from its nearest training date.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lst_pipeline.errors import InputError
from lst_pipeline.model.data import (
    RegionData,
    make_pairs,
    region_patch,
    sample_patches,
    with_gains,
)
from lst_pipeline.model.optim import l1_step, seeded, warmup_cosine

#: Held-out blocks: the dates are cut into blocks of this many days, every third is held out.
BLOCK_DAYS = 24
HOLD_OUT_EVERY = 3
#: Largest square (px) scored per validation date (a centred window on large grids).
VALIDATION_WINDOW = 1024


@dataclass
class AdaptResult:
    """What :func:`adapt_checkpoint` wrote and measured."""

    checkpoint: Path
    table: dict[str, dict[str, float]]
    record: dict[str, Any]

    def describe(self) -> str:
        """The validation table and how to use the checkpoint."""
        lines = [f"validation on {self.record['validation_pairs']} held-out Landsat date(s), "
                 f"{self.record['validation_pixels']:,} clear pixels:",
                 "| model | MAE (K) | RMSE (K) |", "|---|---|---|"]
        for name, s in self.table.items():
            lines.append(f"| {name} | {s['mae_k']:.3f} | {s['rmse_k']:.3f} |")
        lines.append(f"best state at step {self.record['best_step']} of "
                     f"{self.record['steps']}")
        if self.record["best_step"] == 0:
            lines.append("adaptation did not improve on the held-out dates: the checkpoint "
                         "written is the starting model")
        else:
            lines.append("the best state was chosen on these same few dates, so the adapted "
                         "row is optimistic: on the independent test world the fused days "
                         "gained 0-4 % where this table showed 6-17 % (benchmarks/README.md)")
        lines.append(f"checkpoint: {self.checkpoint}")
        lines.append(f"to use it, set in the pipeline: fusion: {{checkpoint: {self.checkpoint}}}")
        return "\n".join(lines)


def time_block_split(days: np.ndarray, usable: np.ndarray, *, block_days: int = BLOCK_DAYS,
                     every: int = HOLD_OUT_EVERY) -> tuple[np.ndarray, np.ndarray]:
    """Indices of training and validation dates: every ``every``-th block of time held out.

    Blocks of ``block_days`` start at the first usable date; the held-out blocks are the 2nd,
    5th, 8th ... (so validation dates have training dates on both sides). With fewer than
    three usable dates nothing is held out.
    """
    days = np.asarray(days, np.int64)
    index = np.flatnonzero(usable)
    if len(index) < 3:
        return index, index[:0]
    block = (days[index] - days[index].min()) // block_days
    held = block % every == 1
    if not held.any():  # a short record: hold out its middle date
        held = np.arange(len(index)) == len(index) // 2
    if held.all():
        held[0] = False
    return index[~held], index[held]


def _window(shape: tuple[int, int], unit: int) -> tuple[slice, slice]:
    """A centred window of at most :data:`VALIDATION_WINDOW` px, in multiples of ``unit``.

    ``unit`` is the network's alignment (a multiple of the coarse factor), so the window
    starts on coarse pixel edges and the network accepts it as a tile.
    """

    def span(n: int) -> slice:
        size = unit * max(1, min(n, VALIDATION_WINDOW) // unit)
        start = unit * (((n - size) // 2) // unit)
        return slice(start, start + size)

    ny, nx = shape
    return span(ny), span(nx)


def _validation_scores(models: dict[str, Any], region, pairs: list[tuple[int, int, int]],
                       device: str, starfm_params: dict | None) -> tuple[dict, int]:
    """MAE and RMSE of each model on the same clear pixels of the held-out dates.

    The classical methods are scored too unless ``starfm_params`` is None.
    """
    import torch

    from lst_pipeline.fusion.baselines import starfm

    f = region.coarse_factor
    ys, xs = _window(region.fine.shape[1:], next(iter(models.values())).alignment_at(f))
    classical = ("reference_change", "starfm") if starfm_params is not None else ()
    sums = {name: np.zeros(3) for name in (*models, *classical)}
    pixels = 0
    for _, i, j in pairs:
        f1, c2 = region.fine[i][ys, xs], region.coarse_up[j][ys, xs]
        c1 = region.reference_up(i, j, ys, xs)
        gain = None if region.gain is None else torch.from_numpy(
            np.ascontiguousarray(region.gain[j][ys, xs]))[None, None].to(device)
        target = region.fine[j][ys, xs]
        preds = ({"reference_change": f1 + c2 - c1,
                  "starfm": starfm(f1, c1, c2, **starfm_params)}
                 if starfm_params is not None else {})  # the classical methods too
        with torch.inference_mode():
            tensors = [torch.from_numpy(np.ascontiguousarray(a))[None, None].to(device)
                       for a in (f1, c1, c2)]
            for name, model in models.items():
                preds[name] = model(*tensors, coarse_factor=f, pixel_gain=gain
                                    )[0, 0].float().cpu().numpy()
        ok = np.isfinite(target)
        for p in preds.values():
            ok &= np.isfinite(p)
        pixels += int(ok.sum())
        for name, p in preds.items():
            e = (p - target)[ok].astype(np.float64)
            sums[name] += (e.size, np.abs(e).sum(), (e * e).sum())
    table = {name: {"mae_k": s[1] / max(s[0], 1), "rmse_k": math.sqrt(s[2] / max(s[0], 1)),
                    "pixels": int(s[0])} for name, s in sums.items()}
    return table, pixels


def _nearest_pairs(days: np.ndarray, train: np.ndarray, targets: np.ndarray,
                   max_gap: int) -> list[tuple[int, int, int]]:
    """Each target date with its nearest training date within ``max_gap`` (region 0)."""
    pairs = []
    for j in targets:
        gaps = np.abs(days[train] - days[j])
        k = int(np.argmin(gaps)) if len(train) else -1
        if k >= 0 and gaps[k] <= max_gap:
            pairs.append((0, int(train[k]), int(j)))
    return pairs


@dataclass
class _Split:
    """The region's Landsat dates cut for adaptation: a training subset and held-out pairs."""

    train_idx: np.ndarray
    sub: RegionData
    train_pairs: list[tuple[int, int, int]]
    val_pairs: list[tuple[int, int, int]]


def _split(region: RegionData, *, max_gap_days: int, min_clear_fraction: float) -> _Split:
    """Hold out blocks of time; refuse a region with too few clear dates for both."""
    usable = region.clear >= min_clear_fraction
    train_idx, val_idx = time_block_split(region.days, usable)
    sub = region.select_dates(train_idx)
    train_pairs, _ = make_pairs([sub], max_gap_days=max_gap_days, min_clear=min_clear_fraction,
                                validation_fraction=0.0)
    val_pairs = _nearest_pairs(region.days, train_idx, val_idx, max_gap_days)
    if not train_pairs or not val_pairs:
        raise InputError(
            f"{region.name}: {int(usable.sum())} Landsat date(s) at least "
            f"{min_clear_fraction:.0%} clear; adapt needs at least 3 within {max_gap_days} days "
            "of each other to train on some and validate on others (ingest more scenes, or "
            "lower --min-clear)")
    return _Split(train_idx, sub, train_pairs, val_pairs)


def _fine_tune(model, region: RegionData, split: _Split, *, device: str, steps: int,
               batch_size: int, patch: int, learning_rate: float, seed: int,
               evaluations: int, progress: bool, log) -> dict[str, Any]:
    """Optimise ``model`` in place on the training pairs; load its best held-out state.

    Returns the patch edge used, the best step and the validation history.
    """
    import torch
    from tqdm.auto import tqdm

    rng = seeded(seed, device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=0.0)
    schedule = warmup_cosine(optimizer, steps, warmup=20)
    f = region.coarse_factor
    edge = region_patch(split.sub, patch, model.alignment_at(f))
    margin = min(16, edge // 8)

    def validate() -> float:
        model.eval()
        table, _ = _validation_scores({"m": model}, region, split.val_pairs, device, None)
        return table["m"]["mae_k"]

    best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    best_mae, best_step = validate(), 0
    history = [{"step": 0, "validation_mae_k": best_mae}]
    every = max(1, steps // max(evaluations, 1))
    for step in tqdm(range(1, steps + 1), desc="adapt", unit="step", disable=not progress):
        model.train()
        ref, ref_c, tgt_c, tgt, gain = (
            torch.from_numpy(np.ascontiguousarray(a)).to(device)
            for a in sample_patches(rng, [split.sub], split.train_pairs, batch_size, edge))
        l1_step(model, optimizer, model(ref, ref_c, tgt_c, coarse_factor=f, pixel_gain=gain),
                tgt, margin)
        schedule.step()  # on every step, a batch without clear pixels included
        if step % every == 0 or step == steps:
            mae = validate()
            history.append({"step": step, "validation_mae_k": mae})
            log(f"step {step}: held-out MAE {mae:.3f} K (best {best_mae:.3f} K)")
            if mae < best_mae:
                best_mae, best_step = mae, step
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    model.load_state_dict(best_state)
    model.eval()
    return {"patch": edge, "best_step": best_step, "history": history}


def _date(day) -> str:
    return str(np.datetime64(int(day), "D"))


def adapt_checkpoint(region: RegionData, *, start: Path | str, out: Path | str,
                     max_gap_days: int, device: str = "auto",
                     starfm_params: dict | None = None, source: dict | None = None,
                     steps: int = 400, batch_size: int = 4, patch: int = 192,
                     learning_rate: float = 4e-4, seed: int = 0,
                     min_clear_fraction: float = 0.2, evaluations: int = 4,
                     progress: bool = True, log=print) -> AdaptResult:
    """Fine-tune the checkpoint ``start`` on ``region``; write it to ``out`` and score it.

    Parameters
    ----------
    region
        The user's Landsat dates and their MODIS (see
        :func:`lst_pipeline.training.load_region`).
    start, out
        Starting checkpoint; checkpoint to write.
    max_gap_days
        Largest reference-to-target gap of a training or validation pair.
    device
        Torch device (``auto`` picks CUDA when there is one).
    starfm_params
        STARFM parameters for the classical scores of the final table (defaults if None).
    source
        Provenance of the region recorded in the checkpoint (e.g. the stack and its content
        digest).
    steps, batch_size, patch, learning_rate, seed
        Optimisation (patch edge rounded to whole coarse pixels).
    min_clear_fraction
        Landsat dates less clear than this are not used.
    evaluations
        Validation passes during training (the best state is kept).
    progress, log
        Progress bar; where messages go.

    Raises
    ------
    InputError
        If the region has too few clear Landsat dates to train and validate on.
    """
    from lst_pipeline.devices import resolve_device
    from lst_pipeline.model.checkpoint import file_sha256, load_checkpoint, save_checkpoint

    start, out = Path(start), Path(out)
    device = resolve_device(device)
    split = _split(region, max_gap_days=max_gap_days, min_clear_fraction=min_clear_fraction)
    log(f"adapting {start.name} on {region.name}: {len(split.train_idx)} training dates "
        f"({len(split.train_pairs)} pairs), {len(split.val_pairs)} held-out dates in blocks of "
        f"{BLOCK_DAYS} days")
    start_model, meta = load_checkpoint(start, map_location=device)
    model, _ = load_checkpoint(start, map_location=device)
    if model.spec.architecture.pixel_gain:  # gains from the training dates only
        region = with_gains(region, max_gap_days=max_gap_days, fit=split.train_idx)
        split = dataclasses.replace(split, sub=region.select_dates(split.train_idx))
    started = time.perf_counter()
    tuned = _fine_tune(model, region, split, device=device, steps=steps, batch_size=batch_size,
                       patch=patch, learning_rate=learning_rate, seed=seed,
                       evaluations=evaluations, progress=progress, log=log)
    table, pixels = _validation_scores({"dlstfm adapted": model, "dlstfm start": start_model},
                                       region, split.val_pairs, device, starfm_params or {})
    base = meta.get("training", {}).get("name")
    record = {
        "name": f"{base or 'dlstfm'}-adapted", "adapted_from": str(start),
        "adapted_from_sha256": file_sha256(start), **(source or {}),
        "steps": steps, "best_step": tuned["best_step"], "learning_rate": learning_rate,
        "reference_offset_days": region.offset_timescale_days,
        "batch_size": batch_size, "patch": tuned["patch"], "seed": seed,
        "train_dates": [_date(d) for d in region.days[split.train_idx]],
        "validation_dates": [_date(region.days[j]) for _, _, j in split.val_pairs],
        "validation_pairs": len(split.val_pairs), "validation_pixels": pixels,
        "validation": table, "history": tuned["history"],
        "wall_seconds": time.perf_counter() - started, "base_training": base,
    }
    record = json.loads(json.dumps(record, default=float))  # plain data only (weights_only)
    save_checkpoint(out, model, training=record)
    return AdaptResult(out, record["validation"], record)
