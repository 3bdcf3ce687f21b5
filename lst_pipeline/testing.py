"""Helpers for tests of lst_pipeline and of code built on it (tiny models and inputs).

Imports torch; import it only where a model is needed.
"""

from __future__ import annotations

import torch

from lst_pipeline.model.dlstfm import DLSTFM, ArchitectureConfig, ModelSpec

#: A tiny DLSTFM for fast tests (alignment 16, receptive radius 47).
TINY_SPEC = ModelSpec(ArchitectureConfig(width=8, blocks=2, scales=(1, 2, 4, 8),
                                         ffn_expansion=1.0, anomaly_radius=2, tcm_hidden=8,
                                         context_scale=16, context_channels=4))


def random_lst_inputs(n: int = 2, h: int = 64, w: int = 96, seed: int = 0
                      ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Plausible ``(reference, reference_coarse, target_coarse)`` Kelvin tensors ``(n,1,h,w)``."""
    g = torch.Generator().manual_seed(seed)
    reference = 300 + 3 * torch.randn(n, 1, h, w, generator=g)
    reference_coarse = 300 + torch.randn(n, 1, h, w, generator=g)
    target_coarse = reference_coarse + 2 + torch.randn(n, 1, h, w, generator=g)
    return reference, reference_coarse, target_coarse


def randomised_model(spec: ModelSpec = TINY_SPEC, seed: int = 1) -> DLSTFM:
    """A DLSTFM whose weights (TCM output included) are perturbed from initialisation.

    Tests then see a network that departs from ``reference + coarse change``.
    """
    torch.manual_seed(seed)
    model = DLSTFM(spec)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=g))
    return model.eval()
