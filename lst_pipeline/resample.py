"""Moving between the fine and the coarse grid of a target grid (numpy, a leaf module).

The coarse grid is the fine grid coarsened by an integer factor, so these are exact, cheap
operations on arrays: nearest (block) upsampling, NaN-aware bilinear upsampling between
coarse pixel centres, block means and valid fractions.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from lst_pipeline.fusion.timing import timed


def upsample_nearest(coarse: np.ndarray, factor: int) -> np.ndarray:
    """Repeat every coarse pixel over its ``factor x factor`` fine pixels (last two axes)."""
    return np.repeat(np.repeat(coarse, factor, axis=-2), factor, axis=-1)


def _axis_weights(n_coarse: int, factor: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Neighbour indices and weight of the second neighbour for linear upsampling."""
    u = (np.arange(n_coarse * factor) + 0.5) / factor - 0.5  # fine centres in coarse px
    lo = np.floor(u)
    w_hi = (u - lo).astype(np.float32)
    i_lo = np.clip(lo, 0, n_coarse - 1).astype(np.intp)
    i_hi = np.clip(lo + 1, 0, n_coarse - 1).astype(np.intp)
    return i_lo, i_hi, w_hi


def _linear_upsample(a: np.ndarray, factor: int) -> np.ndarray:
    """Separable bilinear upsampling of the last two axes, edges clamped."""
    iy0, iy1, wy = _axis_weights(a.shape[-2], factor)
    ix0, ix1, wx = _axis_weights(a.shape[-1], factor)
    rows = a[..., iy0, :] * (1 - wy)[:, None] + a[..., iy1, :] * wy[:, None]
    return rows[..., ix0] * (1 - wx) + rows[..., ix1] * wx


def upsample_bilinear(coarse: np.ndarray, factor: int) -> np.ndarray:
    """Upsample coarse images onto the fine grid, NaN-aware.

    Bilinear interpolation between coarse pixel centres (edges clamped), where only valid
    neighbours contribute (weights renormalised). A fine pixel whose own coarse pixel is NaN
    stays NaN: gaps are never filled from neighbours.

    Parameters
    ----------
    coarse
        ``(..., yc, xc)`` float array, NaN for gaps.
    factor
        Fine pixels per coarse pixel.

    Returns
    -------
    numpy.ndarray
        ``(..., yc * factor, xc * factor)`` float32.

    Notes
    -----
    A fine pixel depends only on the coarse pixels around it (at most one coarse pixel
    away), so blocks upsampled with a halo of one coarse pixel equal the whole-scene result.
    """
    with timed("upsample"):
        coarse = np.asarray(coarse, dtype=np.float32)
        valid = np.isfinite(coarse)
        num = _linear_upsample(np.where(valid, coarse, 0.0).astype(np.float32), factor)
        den = _linear_upsample(valid.astype(np.float32), factor)
        own = upsample_nearest(valid, factor)
        with np.errstate(invalid="ignore", divide="ignore"):
            out = num / den
        return np.where(own, out, np.float32(np.nan)).astype(np.float32)


def upsample_bilinear_window(coarse: np.ndarray, factor: int, ys: slice, xs: slice
                             ) -> np.ndarray:
    """:func:`upsample_bilinear` of a 2-D coarse image, on the fine window ``ys, xs`` only.

    Upsamples the coarse pixels under the window with a halo of one, so the result equals
    the window of the whole image's upsampling.
    """
    cy, cx = coarse.shape
    y0, y1 = max(ys.start // factor - 1, 0), min(-(-ys.stop // factor) + 1, cy)
    x0, x1 = max(xs.start // factor - 1, 0), min(-(-xs.stop // factor) + 1, cx)
    up = upsample_bilinear(coarse[y0:y1, x0:x1], factor)
    return up[ys.start - y0 * factor:ys.stop - y0 * factor,
              xs.start - x0 * factor:xs.stop - x0 * factor]


def coarse_cell_fraction(valid: np.ndarray, factor: int) -> np.ndarray:
    """Fraction of valid fine pixels in each pixel's coarse cell, on the fine grid."""
    *lead, ny, nx = valid.shape
    cells = valid.reshape(*lead, ny // factor, factor, nx // factor, factor).mean(
        axis=(-3, -1), dtype=np.float32)
    return upsample_nearest(cells, factor)


def block_mean(fine: np.ndarray, factor: int, dtype: Any = np.float32
               ) -> tuple[np.ndarray, np.ndarray]:
    """NaN-aware mean (as ``dtype``) over ``factor x factor`` blocks, and each valid fraction."""
    ny, nx = fine.shape
    blocks = fine.reshape(ny // factor, factor, nx // factor, factor)
    valid = np.isfinite(blocks)
    count = valid.sum(axis=(1, 3))
    total = np.where(valid, blocks, 0).sum(axis=(1, 3), dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(count > 0, total / count, np.nan)
    return mean.astype(dtype), (count / factor**2).astype(np.float32)
