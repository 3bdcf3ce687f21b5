"""Training samples as arrays: regions in memory, (reference, target) pairs, random patches.

Nothing here reads a store: whoever assembles a :class:`RegionData` (from an input stack or
a simulated region, :mod:`lst_pipeline.training`) goes through :mod:`lst_pipeline.io`. A
sample is exactly what the fusion kernel gives the network in production: reference
Landsat, and the MODIS images of both dates upsampled bilinearly. With
``offset_timescale_days`` (``fusion.reference_offset_days``) the reference date's MODIS is
rebuilt from its Landsat as a run does (:mod:`lst_pipeline.fusion.reference_offset`), with
the target date left out of the averaged offsets, as leave-one-date-out leaves it out.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from lst_pipeline.fusion.gain import day_gains
from lst_pipeline.fusion.reference_offset import cell_means, smoothed_reference_modis
from lst_pipeline.resample import (
    coarse_cell_fraction,
    upsample_bilinear,
    upsample_bilinear_window,
)


@dataclass
class RegionData:
    """Landsat dates of one region with the MODIS images of the same dates, upsampled."""

    name: str
    fine: np.ndarray  # (R, H, W) K, NaN unusable
    coarse_up: np.ndarray  # (R, H, W) K, NaN gaps
    days: np.ndarray  # (R,) days since 1970-01-01
    clear: np.ndarray  # (R,) clear fraction
    coarse_factor: int
    #: (R, H, W) each date's pixel gain as a target (:func:`with_gains`), or None
    gain: np.ndarray | None = None
    #: (R, H/f, W/f) the MODIS of the dates at its own resolution; with
    #: ``offset_timescale_days`` > 0 a reference's MODIS is rebuilt from it
    coarse: np.ndarray | None = None
    offset_timescale_days: int = 0
    #: per target date, :meth:`reference_coarse`; and every date's Landsat cell means
    #: (neither is copied by ``dataclasses.replace``)
    _views: dict[int, np.ndarray] = dataclasses.field(default_factory=dict, init=False,
                                                      repr=False, compare=False)
    _cell_means: np.ndarray | None = dataclasses.field(default=None, init=False, repr=False,
                                                       compare=False)

    def select_dates(self, index: np.ndarray) -> RegionData:
        """The same region restricted to the Landsat dates at ``index`` (gains kept).

        Dates left out no longer enter the references' rebuilt MODIS.
        """
        return dataclasses.replace(self, fine=self.fine[index], coarse_up=self.coarse_up[index],
                                   days=self.days[index], clear=self.clear[index],
                                   gain=None if self.gain is None else self.gain[index],
                                   coarse=None if self.coarse is None else self.coarse[index])

    @property
    def rebuilds_references(self) -> bool:
        """Whether a reference's MODIS is rebuilt from its Landsat (else as observed)."""
        return bool(self.offset_timescale_days) and self.coarse is not None

    def reference_coarse(self, target: int) -> np.ndarray | None:
        """``(R, H/f, W/f)`` every date's MODIS as a reference of a run fusing ``target``.

        Rebuilt from the date's Landsat and the offsets averaged over the other dates but
        ``target`` (:func:`~lst_pipeline.fusion.reference_offset.smoothed_reference_modis`);
        None when the region rebuilds nothing (then :attr:`coarse_up` is the reference's).
        """
        if not self.offset_timescale_days or self.coarse is None:
            return None
        if self._cell_means is None:  # the same for every target
            self._cell_means = np.stack([cell_means(f, self.coarse_factor) for f in self.fine])
        if target not in self._views:
            keep = np.arange(len(self.days)) != target
            view = self.coarse.astype(np.float32)
            view[keep] = smoothed_reference_modis(self._cell_means[keep], self.coarse[keep],
                                                  self.days[keep], self.offset_timescale_days)
            self._views[target] = view
        return self._views[target]

    def reference_up(self, reference: int, target: int, ys: slice, xs: slice) -> np.ndarray:
        """The reference date's MODIS upsampled on the window ``ys, xs``, for ``target``."""
        view = self.reference_coarse(target)
        if view is None:
            return self.coarse_up[reference, ys, xs]
        return upsample_bilinear_window(view[reference], self.coarse_factor, ys, xs)


def with_gains(region: RegionData, *, max_gap_days: int, min_clear_fraction: float = 0.5,
               fit: np.ndarray | None = None) -> RegionData:
    """The region with the gain each date would get as a fused day.

    As :func:`~lst_pipeline.fusion.kernel.fuse_block` fits it: over the other dates within
    ``max_gap_days``, on pixels clear in a coarse cell at least ``min_clear_fraction`` clear
    (``fusion.min_clear_fraction``'s default) and seen by MODIS. The date itself never
    enters its own gain; with ``fit`` (indices), only those dates enter any gain, so that
    held-out dates stay out of what the network is trained on.
    """
    clear = np.isfinite(region.fine)
    usable = clear & (coarse_cell_fraction(clear, region.coarse_factor) >= min_clear_fraction)
    if fit is not None:
        keep = np.zeros(len(region.days), bool)
        keep[fit] = True
        usable &= keep[:, None, None]
        if region.coarse is not None:  # held-out dates out of the rebuilt MODIS too
            hidden = dataclasses.replace(region, coarse=np.where(
                keep[:, None, None], region.coarse, np.nan).astype(np.float32))
            return dataclasses.replace(region, gain=_gains(hidden, usable, max_gap_days))
    return dataclasses.replace(region, gain=_gains(region, usable, max_gap_days))


def _gains(region: RegionData, usable: np.ndarray, max_gap_days: int) -> np.ndarray:
    """Each date's gain over the other dates, with their MODIS as a run fusing it reads it."""
    if not region.rebuilds_references:
        return day_gains(region.fine, region.coarse_up, usable & np.isfinite(region.coarse_up),
                         region.days, region.days, max_gap_days, np.arange(len(region.days)))
    gains = np.empty(region.fine.shape, np.float32)
    for j in range(len(region.days)):
        view = region.reference_coarse(j)
        assert view is not None
        coarse_up = upsample_bilinear(view, region.coarse_factor)
        gains[j] = day_gains(region.fine, coarse_up, usable & np.isfinite(coarse_up),
                             region.days, region.days, max_gap_days, [j])[0]
    return gains


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


def region_patch(region: RegionData, patch: int, unit: int | None = None) -> int:
    """The patch edge used for a region: about ``patch``, a multiple of ``unit``, inside it.

    At least two coarse pixels, rounded up to a multiple of ``unit``: the network's
    alignment at the region's coarse factor (default: the factor itself).
    """
    f = region.coarse_factor
    unit = unit or f
    edge = f * max(2, round(patch / f))
    edge = unit * -(-edge // unit)
    return min(edge, unit * max(1, min(region.fine.shape[1:]) // unit))


def sample_region_batch(rng: np.random.Generator, regions: list[RegionData],
                        pairs: list[tuple[int, int, int]], batch_size: int, patch: int, *,
                        temperature_shift_k: float = 0.0, alignment=None
                        ) -> tuple[tuple[np.ndarray, ...], int]:
    """A batch from one region (one coarse factor per forward pass), and that factor.

    The region is that of a random pair; the batch's pairs are drawn from its pairs, its
    patch edge is :func:`region_patch` in units of ``alignment(coarse_factor)`` (the
    network's; default the factor).
    """
    k = pairs[rng.integers(len(pairs))][0]
    own = [p for p in pairs if p[0] == k]
    f = regions[k].coarse_factor
    edge = region_patch(regions[k], patch, alignment(f) if alignment else None)
    return (sample_patches(rng, regions, own, batch_size, edge,
                           temperature_shift_k=temperature_shift_k), regions[k].coarse_factor)


def sample_batch(rng: np.random.Generator, regions: list[RegionData],
                 pairs: list[tuple[int, int, int]], batch_size: int, patch: int
                 ) -> tuple[np.ndarray, ...]:
    """Random patches of random pairs of one region, randomly flipped/rotated.

    Patch origins fall on coarse pixel edges, as tiles do in production, so the network's
    coarse-context pooling sees whole MODIS pixels.

    Returns ``reference, reference_coarse, target_coarse, target, gain`` each
    ``(B, 1, P, P)`` (gain 1 for a region without :func:`with_gains`).
    """
    return sample_region_batch(rng, regions, pairs, batch_size, patch)[0]


def sample_patches(rng: np.random.Generator, regions: list[RegionData],
                   pairs: list[tuple[int, int, int]], batch_size: int, patch: int, *,
                   temperature_shift_k: float = 0.0) -> tuple[np.ndarray, ...]:
    """``batch_size`` random ``patch`` x ``patch`` samples of ``pairs`` (flipped, rotated).

    ``temperature_shift_k``: each sample is warmed or cooled as a whole by up to this much
    (all four images alike), so the network meets other climates than the regions' own.
    The fifth array is the target date's pixel gain (1 without :func:`with_gains`).
    """
    out = np.empty((5, batch_size, 1, patch, patch), dtype=np.float32)
    for b in range(batch_size):
        k, i, j = pairs[rng.integers(len(pairs))]
        r = regions[k]
        ny, nx = r.fine.shape[1:]
        f = r.coarse_factor
        y0 = f * rng.integers((ny - patch) // f + 1)
        x0 = f * rng.integers((nx - patch) // f + 1)
        ys, xs = slice(y0, y0 + patch), slice(x0, x0 + patch)
        gain = (np.ones((patch, patch), np.float32) if r.gain is None
                else r.gain[j, ys, xs])
        stack = np.stack([r.fine[i, ys, xs], r.reference_up(i, j, ys, xs),
                          r.coarse_up[j, ys, xs], r.fine[j, ys, xs], gain])
        stack = np.rot90(stack, int(rng.integers(4)), axes=(1, 2))
        if rng.random() < 0.5:
            stack = stack[:, :, ::-1]
        out[:, b, 0] = stack
        if temperature_shift_k:
            out[:4, b] += np.float32(rng.uniform(-temperature_shift_k, temperature_shift_k))
    return tuple(out)


def subset(rng: np.random.Generator, items: list, n: int) -> list:
    """At most ``n`` of ``items``, drawn without replacement and kept in order."""
    if len(items) <= n:
        return items
    return [items[i] for i in sorted(rng.choice(len(items), n, replace=False))]
