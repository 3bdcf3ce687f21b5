"""The shape of a DLSTFM network and its temperature normalisation (no torch needed).

Kept apart from the network so configurations (training YAML, checkpoints) can be read and
validated without importing torch.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Literal

from lst_pipeline.errors import ConfigError


@dataclass(frozen=True)
class ArchitectureConfig:
    """Every shape of the network (nothing is hard-coded elsewhere).

    Attributes
    ----------
    width
        Feature channels after the fusion of the two branches.
    blocks
        Number of SAFM blocks.
    scales
        SAFM pooling windows; ``width`` must be divisible by their number.
    ffn_expansion
        Hidden/width ratio of the convolutional feed-forward layers.
    anomaly_radius
        Radius (pixels) of the box mean used for the local anomaly of ``F1``.
    tcm_hidden
        Hidden channels of the TCM head.
    context_scale
        The coarse factor the model is trained at (32 for 30 m / 960 m); 0 disables the
        coarse-context branch. At run time the branch pools over the grid's actual coarse
        factor (one MODIS pixel), which the network takes as an input.
    context_channels
        Channels of the coarse-context branch.
    safm
        ``atrous`` (default): SAFM's coarse scales computed at every offset (dilated
        filters), so the network is equivariant to any shift and tiles need only follow the
        coarse grid; ``strided``: SAFMN's own pooling grid (checkpoints before this option),
        tiles on multiples of the largest scale too.
    pixel_gain
        Anchor the TCM on ``F1 + g * (C2 - C1)`` with ``g`` each pixel's gain of fine on
        coarse LST over the stack's nearby Landsat dates
        (:mod:`lst_pipeline.fusion.gain`), an input computed from the user's own stack;
        the network's own gain then corrects it. False: ``g = 1`` (checkpoints before the
        option).
    """

    width: int = 16
    blocks: int = 3
    scales: tuple[int, ...] = (1, 2, 4, 8)
    ffn_expansion: float = 1.0
    anomaly_radius: int = 4
    tcm_hidden: int = 16
    context_scale: int = 32
    context_channels: int = 8
    safm: Literal["strided", "atrous"] = "atrous"
    pixel_gain: bool = False

    def __post_init__(self) -> None:
        if self.width < len(self.scales) or self.width % len(self.scales):
            raise ConfigError(f"model.width: {self.width} must be a multiple of "
                              f"{len(self.scales)} (the number of scales)")
        if self.width % 2:
            raise ConfigError(f"model.width: {self.width} must be even (two branches)")
        if self.blocks < 0 or self.anomaly_radius < 0 or min(self.scales) < 1:
            raise ConfigError("model.blocks/anomaly_radius/scales: blocks and anomaly_radius must "
                              "be >= 0, scales >= 1")
        if self.safm not in ("strided", "atrous"):
            raise ConfigError(f"model.safm: {self.safm!r} is not strided or atrous")
        if self.context_scale < 0 or (self.context_scale and self.context_channels < 1):
            raise ConfigError("model.context_scale/context_channels: context_scale must be >= 0 "
                              "and context_channels >= 1")


def safm_alignment(scales: tuple[int, ...], mode: str) -> int:
    """Tiles must start on multiples of this for SAFM blocks (1: any shift)."""
    return max(scales) if mode == "strided" else 1


def safm_radius(scales: tuple[int, ...], mode: str) -> int:
    """Pixels of context on each side one SAFM layer's output depends on."""
    if mode == "strided":
        return 2 * max(scales) - 1
    return max(s + s // 2 if s > 1 else 1 for s in scales)


def network_geometry(arch: ArchitectureConfig, coarse_factor: int | None = None
                     ) -> tuple[int, int]:
    """``(receptive radius, alignment)`` of a DLSTFM at a coarse factor, from its shape alone.

    The network's own properties use this, so planning a run (halo, alignment) needs the
    checkpoint's metadata only, never the network.

    Parameters
    ----------
    arch
        The architecture.
    coarse_factor
        Fine pixels per MODIS pixel (default: the training factor ``context_scale``).
    """
    factor = 0 if not arch.context_scale else int(coarse_factor or arch.context_scale)
    stems = max(2, arch.anomaly_radius + 2)
    # a SAFM block: SAFM, then a 3x3 depthwise convolution in its feed-forward layer
    fine = stems + arch.blocks * (safm_radius(arch.scales, arch.safm) + 1)
    # context: own pooled cell, one cell of 3x3 convolution, one of bilinear upsampling
    radius = max(fine, 3 * factor - 1 if factor else 0)
    align = safm_alignment(arch.scales, arch.safm) if arch.blocks else 1
    return radius, math.lcm(align, factor or 1)


@dataclass(frozen=True)
class Normalisation:
    """Explicit temperature normalisation (saved with the checkpoint).

    ``(T - center_k) / scale_k`` for temperatures, ``dT / difference_scale_k`` for differences.
    """

    center_k: float = 300.0
    scale_k: float = 15.0
    difference_scale_k: float = 5.0


@dataclass(frozen=True)
class ModelSpec:
    """Architecture and normalisation: everything needed to rebuild the network."""

    architecture: ArchitectureConfig = field(default_factory=ArchitectureConfig)
    normalisation: Normalisation = field(default_factory=Normalisation)

    def to_dict(self) -> dict:
        """The spec as plain data (stored in checkpoints)."""
        return {"architecture": {**asdict(self.architecture),
                                 "scales": list(self.architecture.scales)},
                "normalisation": asdict(self.normalisation)}

    @classmethod
    def from_dict(cls, data: dict) -> ModelSpec:
        """A spec from :meth:`to_dict` data, older checkpoints included."""
        arch = dict(data["architecture"])
        arch["scales"] = tuple(arch["scales"])
        arch.setdefault("safm", "strided")  # checkpoints from before the option
        return cls(ArchitectureConfig(**arch), Normalisation(**data["normalisation"]))
