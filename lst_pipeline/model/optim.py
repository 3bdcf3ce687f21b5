"""The optimisation that training and adaptation share: seeding, schedule, the L1 step."""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def seeded(seed: int, device: str) -> np.random.Generator:
    """Seed torch (deterministic kernels on CPU) and return the sampling generator."""
    import torch

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    if device == "cpu":
        torch.use_deterministic_algorithms(True)
    return rng


def warmup_cosine(optimizer: Any, steps: int, warmup: int) -> Any:
    """Linear warm-up over ``warmup`` steps, then cosine decay to zero at ``steps``."""
    import torch

    return torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * s / steps)))


def l1_step(model: Any, optimizer: Any, pred: Any, target: Any, margin: int) -> float | None:
    """One step on the masked L1 error inside ``margin`` px of the patch edges.

    Pixels where the prediction or the target is not finite (clouds, fill) do not count.
    Gradients are clipped to norm 1. Returns the loss, or None (no step) when no pixel
    counts.
    """
    import torch

    pred = pred[..., margin:-margin, margin:-margin].float()
    target = target[..., margin:-margin, margin:-margin]
    ok = torch.isfinite(pred) & torch.isfinite(target)
    if not ok.any():
        return None
    loss = (pred[ok] - target[ok]).abs().mean()
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    return float(loss.item())
