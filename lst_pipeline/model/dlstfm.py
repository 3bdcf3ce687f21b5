"""DLSTFM: the dual-branch fusion network (after Jin, Li & Shen, Remote Sensing 2026).

Inputs per sample, all on the fine grid (the coarse images already upsampled by the
kernel): reference fine LST ``F1``, reference coarse ``C1``, target coarse ``C2`` in Kelvin,
with NaN for unusable pixels. Output: target fine LST ``F2`` in Kelvin, NaN where ``F1``, ``C1``
or ``C2`` is unusable. NaN never enters the network: masked pixels are filled and flagged by
mask channels.

- temporal branch: encodes the coarse change (``C1``, ``C2``, ``C2 - C1``, coarse mask);
- multi-source branch: encodes the fine reference and its relation to the coarse sensor
  (``F1``, ``C1``, ``F1 - C1``, local anomaly of ``F1``, fine mask);
- fusion: concatenation + 1x1 convolution, then ``blocks`` SAFM blocks;
- coarse context: the coarse change and target coarse image pooled over each MODIS pixel
  (the coarse factor is an input of the network), filtered by a 3x3 convolution on that
  grid and upsampled bilinearly: a view of the change over the neighbouring MODIS pixels,
  which lets the TCM tell the regional change from MODIS noise;
- TCM: per-pixel gain/offset/gate correction anchored on ``F1 + (C2 - C1)``, from the fine
  features, the coarse context, the reference temperature and its local anomaly. A network
  built with ``pixel_gain`` anchors on ``F1 + g (C2 - C1)`` instead, with ``g`` the pixel's
  gain over the stack's nearby Landsat dates (an input, :mod:`lst_pipeline.fusion.gain`).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from lst_pipeline.model.blocks import SAFMBlock, TemperatureCorrection
from lst_pipeline.model.spec import (
    ArchitectureConfig,
    ModelSpec,
    Normalisation,
    network_geometry,
)

__all__ = ["DLSTFM", "ArchitectureConfig", "ModelSpec", "Normalisation"]


class DLSTFM(nn.Module):
    """The dual-branch LST fusion network.

    Parameters
    ----------
    spec
        Architecture and normalisation.
    """

    def __init__(self, spec: ModelSpec | None = None) -> None:
        super().__init__()
        self.spec = spec or ModelSpec()
        a = self.spec.architecture
        half = a.width // 2
        self.temporal = nn.Sequential(nn.Conv2d(4, half, 3, padding=1), nn.GELU(),
                                      nn.Conv2d(half, half, 3, padding=1))
        self.source = nn.Sequential(nn.Conv2d(5, half, 3, padding=1), nn.GELU(),
                                    nn.Conv2d(half, half, 3, padding=1))
        self.fuse = nn.Conv2d(a.width, a.width, 1)
        self.body = nn.Sequential(*(SAFMBlock(a.width, a.scales, a.ffn_expansion, a.safm)
                                    for _ in range(a.blocks)))
        context = a.context_channels if a.context_scale else 0
        if context:
            self.context = nn.Sequential(nn.Conv2d(3, context, 3, padding=1), nn.GELU(),
                                         nn.Conv2d(context, context, 1))
        self.tcm = TemperatureCorrection(a.width + context, a.tcm_hidden)

    def _factor(self, coarse_factor: int | None) -> int:
        """The coarse factor the context branch pools over (0: no context branch)."""
        a = self.spec.architecture
        if not a.context_scale:
            return 0
        return int(coarse_factor or a.context_scale)

    @property
    def fine_alignment(self) -> int:
        """Tiles must start on multiples of this for the fine path (SAFM pooling grid)."""
        return network_geometry(self.spec.architecture, 1)[1]

    def alignment_at(self, coarse_factor: int | None = None) -> int:
        """Tiles must start on multiples of this at ``coarse_factor``.

        It aligns both the coarse grid and the SAFM pooling grid.
        """
        return network_geometry(self.spec.architecture, coarse_factor)[1]

    def receptive_radius_at(self, coarse_factor: int | None = None) -> int:
        """Fine pixels of context an output pixel depends on, on each side, at a factor."""
        return network_geometry(self.spec.architecture, coarse_factor)[0]

    @property
    def alignment(self) -> int:
        """:meth:`alignment_at` the training factor (``context_scale``)."""
        return self.alignment_at()

    @property
    def receptive_radius(self) -> int:
        """:meth:`receptive_radius_at` the training factor (``context_scale``)."""
        return self.receptive_radius_at()

    def _coarse_context(self, c1: torch.Tensor, c2: torch.Tensor, m_c: torch.Tensor,
                        s: int) -> torch.Tensor:
        """Coarse change and target temperature on the coarse grid (cells of ``s``), filtered."""
        n = self.spec.normalisation
        valid = F.avg_pool2d(m_c, s, stride=s)
        change = F.avg_pool2d((c2 - c1) * m_c, s, stride=s) / valid.clamp_min(1e-6)
        level = F.avg_pool2d((c2 - n.center_k) * m_c, s, stride=s) / valid.clamp_min(1e-6)
        x = torch.cat([change / n.difference_scale_k, level / n.scale_k, valid], 1)
        return F.interpolate(self.context(x), scale_factor=s, mode="bilinear",
                             align_corners=False)

    def _anomaly(self, fine: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """``F1`` minus its local mean over valid pixels (box of ``anomaly_radius``)."""
        r = self.spec.architecture.anomaly_radius
        if r == 0:
            return torch.zeros_like(fine)
        k = 2 * r + 1
        total = F.avg_pool2d(fine * valid, k, stride=1, padding=r, count_include_pad=True)
        count = F.avg_pool2d(valid, k, stride=1, padding=r, count_include_pad=True)
        mean = total / count.clamp_min(1e-6)
        return (fine - mean) * valid

    def forward(self, reference_k: torch.Tensor, reference_coarse_k: torch.Tensor,
                target_coarse_k: torch.Tensor, coarse_factor: int | None = None,
                pixel_gain: torch.Tensor | None = None) -> torch.Tensor:
        """Predict target fine LST.

        Parameters
        ----------
        reference_k, reference_coarse_k, target_coarse_k
            ``(N, 1, H, W)`` Kelvin on the fine grid, NaN where unusable. ``H`` and ``W``
            must be multiples of :meth:`alignment_at` the coarse factor.
        coarse_factor
            Fine pixels per MODIS pixel of these images (default: the training factor,
            ``context_scale``); the context branch pools over exactly one MODIS pixel.
        pixel_gain
            ``(N, 1, H, W)`` each pixel's gain over the nearby Landsat dates, used by a
            network built with ``pixel_gain`` (ignored otherwise; None there means 1).

        Returns
        -------
        torch.Tensor
            ``(N, 1, H, W)`` Kelvin, NaN where any input is unusable.
        """
        h, w = reference_k.shape[-2:]
        align = self.alignment_at(coarse_factor)
        if h % align or w % align:
            raise ValueError(f"tile {h}x{w} is not a multiple of the alignment {align}")
        n = self.spec.normalisation
        fine_ok = torch.isfinite(reference_k)
        coarse_ok = torch.isfinite(reference_coarse_k) & torch.isfinite(target_coarse_k)
        m_f, m_c = fine_ok.to(reference_k.dtype), coarse_ok.to(reference_k.dtype)
        c1 = torch.where(coarse_ok, reference_coarse_k, n.center_k)
        c2 = torch.where(coarse_ok, target_coarse_k, c1)
        f1 = torch.where(fine_ok, reference_k, c1)  # filled, flagged by m_f
        c1n, c2n, f1n = ((t - n.center_k) / n.scale_k for t in (c1, c2, f1))
        d = n.difference_scale_k
        anomaly = self._anomaly(f1 / d, m_f)
        temporal = self.temporal(torch.cat([c1n, c2n, (c2 - c1) / d, m_c], 1))
        source = self.source(torch.cat([f1n, c1n, (f1 - c1) / d * m_f, anomaly, m_f], 1))
        features = self.body(self.fuse(torch.cat([temporal, source], 1)))
        if self.spec.architecture.context_scale:
            context = self._coarse_context(c1, c2, m_c, self._factor(coarse_factor))
            features = torch.cat([features, context], 1)
        gain = pixel_gain if self.spec.architecture.pixel_gain else None
        if gain is not None:
            gain = torch.where(torch.isfinite(gain), gain, torch.ones_like(gain))
        out = self.tcm(features, f1n, anomaly, f1, c1, c2, gain)
        return torch.where(fine_ok & coarse_ok, out, torch.full_like(out, math.nan))
