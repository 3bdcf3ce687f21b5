"""Fusion methods: predict fine LST of a target day from one reference pair.

A method is any object with a ``name``, a ``halo(coarse_factor)`` (fine pixels of context
it needs around each output pixel) and a vectorised ``predict``. The engine and
:func:`~lst_pipeline.fusion.kernel.fuse_block` do everything else, so a new method (DLSTFM,
STARFM ...) plugs in by implementing this protocol and registering in :data:`METHODS`.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from lst_pipeline.errors import ConfigError
from lst_pipeline.fusion.kernel import upsample_bilinear


class FusionMethod(Protocol):
    """What the engine needs from a fusion method."""

    name: str

    def halo(self, coarse_factor: int) -> int:
        """Fine pixels of context needed on each side of an output block."""

    def predict(self, reference_fine: np.ndarray, reference_coarse: np.ndarray,
                target_coarse: np.ndarray, *, coarse_factor: int) -> np.ndarray:
        """Predict ``(N, Y, X)`` fine LST (K) for ``N`` (reference, target) pairs.

        ``reference_fine`` is ``(N, Y, X)``, the coarse arrays ``(N, Y/f, X/f)``; NaN marks
        unusable pixels on input and pixels without a prediction on output.
        """


class ReferenceChange:
    """Reference Landsat plus the MODIS change since the reference date.

    ``F2 = F1 + up(C2 - C1)``, with ``up`` the NaN-aware bilinear upsampling of
    :func:`~lst_pipeline.fusion.kernel.upsample_bilinear`. The physically simplest method:
    it keeps the reference's spatial detail and assumes every pixel of a coarse cell warmed
    or cooled by the same amount.
    """

    name = "reference_change"

    def halo(self, coarse_factor: int) -> int:
        return coarse_factor  # bilinear upsampling reaches one coarse pixel away

    def predict(self, reference_fine: np.ndarray, reference_coarse: np.ndarray,
                target_coarse: np.ndarray, *, coarse_factor: int) -> np.ndarray:
        change = upsample_bilinear(target_coarse - reference_coarse, coarse_factor)
        return (reference_fine + change).astype(np.float32)


METHODS: dict[str, type] = {ReferenceChange.name: ReferenceChange}


def get_method(name: str) -> FusionMethod:
    """Instantiate the fusion method registered as ``name``."""
    try:
        return METHODS[name]()
    except KeyError:
        raise ConfigError(
            f"fusion.method: unknown method {name!r}; available: {', '.join(METHODS)}"
        ) from None
