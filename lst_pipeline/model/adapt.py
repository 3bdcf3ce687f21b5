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
import hashlib
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lst_pipeline.errors import InputError

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


def _content_fingerprint(stack: Path) -> str | None:
    from lst_pipeline.io.stack import read_content

    content = read_content(stack)
    if content is None:
        return None
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()


def _window(shape: tuple[int, int], factor: int) -> tuple[slice, slice]:
    """A centred window of at most :data:`VALIDATION_WINDOW` px, on coarse pixel edges."""
    out = []
    for n in shape:
        size = min(n, factor * (VALIDATION_WINDOW // factor))
        start = factor * (((n - size) // 2) // factor)
        out.append(slice(start, start + size))
    return tuple(out)


def _validation_scores(models: dict[str, Any], region, pairs: list[tuple[int, int, int]],
                       device: str, starfm_params: dict | None) -> tuple[dict, int]:
    """MAE and RMSE of each model (and of the classical methods unless ``starfm_params`` is
    None) on the same clear pixels of the held-out dates."""
    import torch

    from lst_pipeline.fusion.baselines import starfm

    f = region.coarse_factor
    ys, xs = _window(region.fine.shape[1:], f)
    classical = ("reference_change", "starfm") if starfm_params is not None else ()
    sums = {name: np.zeros(3) for name in (*models, *classical)}
    pixels = 0
    for _, i, j in pairs:
        f1, c1, c2 = (a[ys, xs] for a in (region.fine[i], region.coarse_up[i],
                                         region.coarse_up[j]))
        target = region.fine[j][ys, xs]
        preds = {"reference_change": f1 + c2 - c1,
                 "starfm": starfm(f1, c1, c2, **starfm_params)} if classical else {}
        with torch.inference_mode():
            tensors = [torch.from_numpy(np.ascontiguousarray(a))[None, None].to(device)
                       for a in (f1, c1, c2)]
            for name, model in models.items():
                preds[name] = model(*tensors, coarse_factor=f)[0, 0].float().cpu().numpy()
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


def adapt_checkpoint(config, *, steps: int = 400, out: Path | str | None = None,
                     checkpoint: Path | str | None = None, batch_size: int = 4,
                     patch: int = 192, learning_rate: float = 4e-4, seed: int = 0,
                     min_clear_fraction: float = 0.2, evaluations: int = 4,
                     progress: bool = True, log=print) -> AdaptResult:
    """Fine-tune DLSTFM on the input stack of ``config``; write and score the result.

    Parameters
    ----------
    config
        A :class:`~lst_pipeline.config.PipelineConfig`; its ``inputs.stack`` supplies the
        samples, its ``fusion`` the starting checkpoint, the largest reference gap and the
        STARFM parameters.
    steps
        Optimiser steps.
    out
        Checkpoint to write (default: ``<stack>.adapted.pt`` beside the stack).
    checkpoint
        Starting checkpoint (default: ``fusion.checkpoint``, else the shipped one).
    batch_size, patch, learning_rate, seed
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
        If the stack has too few clear Landsat dates to train and validate on.
    """
    import torch
    from tqdm.auto import tqdm

    from lst_pipeline.devices import resolve_device
    from lst_pipeline.model.checkpoint import (
        DEFAULT_CHECKPOINT,
        file_sha256,
        load_checkpoint,
        save_checkpoint,
    )
    from lst_pipeline.model.train import load_region, make_pairs, region_patch, sample_patches

    stack = Path(config.inputs.stack)
    start_path = Path(checkpoint or config.fusion.checkpoint or DEFAULT_CHECKPOINT)
    out = Path(out) if out is not None else stack.with_name(stack.name + ".adapted.pt")
    device = resolve_device(config.fusion.device)
    region = load_region(stack, stack.name)
    usable = region.clear >= min_clear_fraction
    train_idx, val_idx = time_block_split(region.days, usable)
    gap = config.fusion.max_reference_gap_days
    sub = dataclasses.replace(region, fine=region.fine[train_idx],
                              coarse_up=region.coarse_up[train_idx], days=region.days[train_idx],
                              clear=region.clear[train_idx])
    train_pairs, _ = make_pairs([sub], max_gap_days=gap, min_clear=min_clear_fraction,
                                validation_fraction=0.0)
    val_pairs = _nearest_pairs(region.days, train_idx, val_idx, gap)
    if not train_pairs or not val_pairs:
        raise InputError(
            f"{stack}: {int(usable.sum())} Landsat date(s) at least {min_clear_fraction:.0%} "
            f"clear; adapt needs at least 3 within {gap} days of each other to train on some "
            "and validate on others (ingest more scenes, or lower --min-clear)")
    log(f"adapting {start_path.name} on {stack}: {len(train_idx)} training dates "
        f"({len(train_pairs)} pairs), {len(val_pairs)} held-out dates in blocks of "
        f"{BLOCK_DAYS} days")

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    if device == "cpu":
        torch.use_deterministic_algorithms(True)
    start_model, meta = load_checkpoint(start_path, map_location=device)
    model, _ = load_checkpoint(start_path, map_location=device)
    starfm_params = dict(config.fusion.method_params()) if config.fusion.method == "starfm" \
        else dataclasses.asdict(config.fusion.starfm)
    starfm_params.pop("pairs", None)
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1.0, (s + 1) / 20) * 0.5 * (1 + math.cos(math.pi * s / steps)))
    edge = region_patch(sub, patch)
    f = region.coarse_factor
    margin = min(16, edge // 8)

    def validate(current) -> float:
        current.eval()
        table, _ = _validation_scores({"m": current}, region, val_pairs, device, None)
        return table["m"]["mae_k"]

    best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    best_mae, best_step = validate(model), 0
    history = [{"step": 0, "validation_mae_k": best_mae}]
    every = max(1, steps // max(evaluations, 1))
    started = time.perf_counter()
    for step in tqdm(range(1, steps + 1), desc="adapt", unit="step", disable=not progress):
        model.train()
        ref, ref_c, tgt_c, tgt = (torch.from_numpy(np.ascontiguousarray(a)).to(device)
                                  for a in sample_patches(rng, [sub], train_pairs, batch_size,
                                                          edge))
        pred = model(ref, ref_c, tgt_c, coarse_factor=f)[..., margin:-margin, margin:-margin]
        tgt = tgt[..., margin:-margin, margin:-margin]
        ok = torch.isfinite(pred) & torch.isfinite(tgt)
        if ok.any():
            loss = (pred[ok] - tgt[ok]).abs().mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
        schedule.step()
        if step % every == 0 or step == steps:
            mae = validate(model)
            history.append({"step": step, "validation_mae_k": mae})
            log(f"step {step}: held-out MAE {mae:.3f} K (best {best_mae:.3f} K)")
            if mae < best_mae:
                best_mae, best_step = mae, step
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    model.load_state_dict(best_state)
    model.eval()
    table, pixels = _validation_scores({"dlstfm adapted": model, "dlstfm start": start_model},
                                       region, val_pairs, device, starfm_params)
    record = {
        "name": f"{meta.get('training', {}).get('name', 'dlstfm')}-adapted",
        "adapted_from": str(start_path), "adapted_from_sha256": file_sha256(start_path),
        "stack": str(stack), "stack_content_sha256": _content_fingerprint(stack),
        "steps": steps, "best_step": best_step, "learning_rate": learning_rate,
        "batch_size": batch_size, "patch": edge, "seed": seed,
        "train_dates": [str(np.datetime64(int(d), "D")) for d in region.days[train_idx]],
        "validation_dates": [str(np.datetime64(int(region.days[j]), "D"))
                             for _, _, j in val_pairs],
        "validation_pairs": len(val_pairs), "validation_pixels": pixels,
        "validation": table, "history": history,
        "wall_seconds": time.perf_counter() - started,
        "base_training": meta.get("training", {}).get("name"),
    }
    record = json.loads(json.dumps(record, default=float))  # plain data only (weights_only)
    save_checkpoint(out, model, training=record)
    return AdaptResult(out, record["validation"], record)
