"""Block kernels: numpy in, numpy out; no Dask, no I/O.

:func:`fuse_block` fuses every day of one block of the output cube from the Landsat
references and MODIS images read for it (its read window, i.e. the block plus halo). It
does the bookkeeping common to every method (reference ranking, per-pixel fallback to the
next reference, observed days, flags, cropping the halo) and calls the method for the
actual prediction of fine LST from (reference fine, reference coarse, target coarse).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from lst_pipeline.flags import REFERENCE_DATE_FILL, Flag
from lst_pipeline.fusion.error_model import ErrorInputs, departure, reference_cell_stats
from lst_pipeline.fusion.gain import DayGains
from lst_pipeline.fusion.pairs import Side, candidate_references
from lst_pipeline.resample import coarse_cell_fraction, upsample_bilinear, upsample_nearest

if TYPE_CHECKING:
    from lst_pipeline.fusion.error_model import ErrorModel
    from lst_pipeline.fusion.methods import FusionMethod
    from lst_pipeline.grid import Window


@dataclass(frozen=True)
class FusedBlock:
    """Result of :func:`fuse_block` over the output window.

    Attributes
    ----------
    lst_k
        ``(T, y, x)`` float32 Kelvin, NaN where no value.
    qa
        ``(T, y, x)`` uint8 :class:`~lst_pipeline.io.cube.Flag` values.
    reference_day
        ``(T, y, x)`` int32 day (since 1970-01-01) of the Landsat date used, fill if none.
    uncertainty_k
        ``(T, y, x)`` float32 1-sigma error (K) where ``lst_k`` has a value, else NaN; None
        without an error model.
    features
        ``(len(RAW), T, y, x)`` float32 raw error features of the fused values
        (:data:`~lst_pipeline.fusion.error_model.RAW`, NaN elsewhere), when asked for.
    """

    lst_k: np.ndarray
    qa: np.ndarray
    reference_day: np.ndarray
    uncertainty_k: np.ndarray | None = None
    features: np.ndarray | None = None


def fuse_block(landsat_lst: np.ndarray, landsat_days: np.ndarray, landsat_modis: np.ndarray,
               target_modis: np.ndarray, target_days: np.ndarray, *, method: FusionMethod,
               coarse_factor: int, out_window: Window, max_gap_days: int,
               min_clear_fraction: float, max_references: int, two_references: bool = False,
               max_disagreement_k: float = 3.0, keep_observations: bool = True,
               target_modis_filled: np.ndarray | None = None, alignment: int | None = None,
               error_model: ErrorModel | None = None, return_features: bool = False,
               error_inputs: ErrorInputs | None = None) -> FusedBlock:
    """Fuse every target day of one block.

    Parameters
    ----------
    landsat_lst
        ``(R, Y, X)`` candidate reference Landsat LST over the read window (K, NaN unusable).
    landsat_days
        ``(R,)`` their days since 1970-01-01.
    landsat_modis, target_modis
        ``(R, Y/f, X/f)`` MODIS LST on the reference dates, ``(T, Y/f, X/f)`` on the target
        days (K, NaN gaps).
    target_days
        ``(T,)`` target days since 1970-01-01.
    method
        The fusion method (see :mod:`lst_pipeline.fusion.methods`).
    coarse_factor
        Fine pixels per coarse pixel.
    out_window
        The output pixels inside the read window (relative coordinates).
    max_gap_days, min_clear_fraction, max_references
        Reference selection, see :class:`~lst_pipeline.config.FusionConfig`.
    two_references
        Predict from the nearest usable reference before and the one after the day and
        blend them by temporal distance where they agree within ``max_disagreement_k``,
        fading to the nearer one alone at twice that (flag ``FUSED_TWO`` where both
        count); elsewhere the nearer one is used.
    max_disagreement_k
        Largest difference between the two predictions that is still fully blended.
    keep_observations
        Keep a clear Landsat pixel of the target day as its value (flag ``OBSERVED``);
        otherwise fuse that day from the other dates like any day.
    target_modis_filled
        ``(T, Y/f, X/f)`` bool, coarse pixels of ``target_modis`` that were interpolated in
        time; fused values there are flagged ``MODIS_GAP_FILLED``.
    alignment
        The read window starts on a multiple of this (default: the coarse factor and the
        method's alignment); its far edges are padded to it (:func:`pad_to_alignment`).
    error_model, return_features
        Compute ``uncertainty_k`` with the error model; return the raw error features.
    error_inputs
        The MODIS QC and Landsat ST_QA of the block (:class:`ErrorInputs`).

    Returns
    -------
    FusedBlock
        Over ``out_window`` only.

    Notes
    -----
    A Landsat date is a usable reference for a pixel when the pixel is clear, its coarse
    cell is at least ``min_clear_fraction`` clear and MODIS saw the cell that day. Each pixel
    takes the nearest usable date (earlier wins a tie); a Landsat observation on the target
    day itself is kept as observed. Everything is decided per pixel or per coarse cell, never
    per block, so the result does not depend on how the cube is chunked.
    """
    block = _Block(landsat_lst, landsat_days, landsat_modis, target_modis, target_days,
                   method=method, coarse_factor=coarse_factor, out_window=out_window,
                   min_clear_fraction=min_clear_fraction, target_modis_filled=target_modis_filled,
                   alignment=alignment, features=error_model is not None or return_features)
    if keep_observations:
        block.observe()
    selection = (max_gap_days, max_references)
    if method.pairs == 2:  # both references at once; without one on each side: a gap
        block.fuse_pairs(*selection)
    elif not two_references:
        pred, ref, feat = block.chain("both", *selection)
        block.take(np.isfinite(pred), pred, Flag.FUSED, ref, feat)
    else:
        block.blend(block.chain("before", *selection), block.chain("after", *selection),
                    max_disagreement_k)
    return block.result(error_model, return_features, error_inputs or ErrorInputs())


class _Block:
    """The state of one :func:`fuse_block` call: inputs padded, outputs being filled."""

    def __init__(self, landsat_lst: np.ndarray, landsat_days: np.ndarray,
                 landsat_modis: np.ndarray, target_modis: np.ndarray, target_days: np.ndarray,
                 *, method: FusionMethod, coarse_factor: int, out_window: Window,
                 min_clear_fraction: float, target_modis_filled: np.ndarray | None,
                 alignment: int | None, features: bool = False) -> None:
        f = self.f = coarse_factor
        self.method = method
        align = alignment or _method_alignment(method, f)
        padded_lst, padded_modis, padded_target, self.filled = pad_to_alignment(
            align, f, landsat_lst, landsat_modis, target_modis, target_modis_filled)
        # pad_to_alignment returns None only for a None input
        assert padded_lst is not None and padded_modis is not None and padded_target is not None
        self.landsat_lst, self.target_modis = padded_lst, padded_target
        self.landsat_days = np.asarray(landsat_days, dtype=np.int64)
        self.target_days = np.asarray(target_days, dtype=np.int64)
        self.ys, self.xs = out_window.slices
        self.shape = (len(target_days), *out_window.shape)
        self.lst = np.full(self.shape, np.nan, dtype=np.float32)
        self.qa = np.full(self.shape, Flag.NO_DATA, dtype=np.uint8)
        self.ref_day = np.full(self.shape, REFERENCE_DATE_FILL, dtype=np.int32)
        self.clear = np.isfinite(self.landsat_lst)
        # usable reference pixels over the whole read window (the network needs the context)
        self.landsat_modis_up = upsample_bilinear(padded_modis, f)
        self.usable = (self.clear & (coarse_cell_fraction(self.clear, f) >= min_clear_fraction)
                       & np.isfinite(self.landsat_modis_up))
        self.target_seen = np.isfinite(self.target_modis).any(axis=(-2, -1))
        self.features = features
        self._gains: DayGains | None = None  # fitted on first use (gain methods)
        if features:  # modis change, sub-cell spread, cloud fraction; disagreement, departure
            self.feat = np.full((3, *self.shape), np.nan, dtype=np.float32)
            self.disagreement = np.full(self.shape, np.nan, dtype=np.float32)
            self.departure = np.full(self.shape, np.nan, dtype=np.float32)
            stats = reference_cell_stats(self.landsat_lst, self.clear, f)
            self.ref_stats = np.stack([s[:, self.ys, self.xs] for s in stats])
            self.target_up: np.ndarray | None = None

    def gains(self, max_gap_days: int) -> DayGains:
        """The per-pixel gains of the target days, fitted once per block."""
        if self._gains is None:
            self._gains = DayGains(self.landsat_lst, self.landsat_modis_up, self.usable,
                                   self.target_days, self.landsat_days, max_gap_days)
        return self._gains

    def observe(self) -> None:
        """Keep a usable Landsat pixel of the target day itself as observed."""
        ys, xs = self.ys, self.xs
        same_day = np.nonzero(self.target_days[:, None] == self.landsat_days[None, :])
        for t, r in zip(*same_day):
            obs = self.clear[r, ys, xs]
            self.lst[t][obs] = self.landsat_lst[r, ys, xs][obs]
            self.qa[t][obs] = Flag.OBSERVED
            self.ref_day[t][obs] = self.landsat_days[r]

    @property
    def pending(self) -> np.ndarray:
        """Pixel-days without a value yet (not observed)."""
        return np.isnan(self.lst)

    def composite(self, side: Side, max_gap_days: int, max_references: int
                  ) -> tuple[list[int], np.ndarray, np.ndarray, np.ndarray]:
        """Per pixel, the nearest usable reference on ``side``, one composite image per day.

        Where the nearest is unusable the next one is taken.
        """
        ranked = candidate_references(self.target_days, self.landsat_days,
                                      max_gap_days=max_gap_days, max_references=max_references,
                                      side=side)
        pending = self.pending
        days = [t for t in range(self.shape[0]) if ranked[t, 0] >= 0 and self.target_seen[t]
                and pending[t].any()]
        fine = np.full((len(days), *self.landsat_lst.shape[1:]), np.nan, dtype=np.float32)
        coarse_up = np.full_like(fine, np.nan)
        used = np.full(fine.shape, -1, dtype=np.int16)  # index of the reference (< 32768)
        for k, t in enumerate(days):
            for r in ranked[t]:
                if r < 0:
                    break
                take = (used[k] < 0) & self.usable[r]
                fine[k][take] = self.landsat_lst[r][take]
                coarse_up[k][take] = self.landsat_modis_up[r][take]
                used[k][take] = r
        return days, fine, coarse_up, used

    def chain(self, side: Side, max_gap_days: int, max_references: int
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Fuse every day from its composite reference on ``side`` in one pass.

        Returns the predictions, their reference days and (with features) their features.
        """
        days, fine, coarse_up, used = self.composite(side, max_gap_days, max_references)
        pred_out = np.full(self.shape, np.nan, dtype=np.float32)
        ref_out = np.full(self.shape, REFERENCE_DATE_FILL, dtype=np.int32)
        feat = self.composite_features(days, coarse_up, used)
        if not days:
            return pred_out, ref_out, feat
        ys, xs = self.ys, self.xs
        gain = self.gains(max_gap_days)(days) if self.method.uses_gain else None
        pred = self.method.predict(fine, coarse_up, self.target_modis[days],
                                   coarse_factor=self.f, gain=gain)
        pending = self.pending
        for k, t in enumerate(days):
            r = used[k][ys, xs]
            take = pending[t] & (r >= 0) & np.isfinite(pred[k][ys, xs])
            pred_out[t][take] = pred[k][ys, xs][take]
            ref_out[t][take] = self.landsat_days[r[take]]
        return pred_out, ref_out, feat

    def composite_features(self, days: list[int], coarse_up: np.ndarray, used: np.ndarray
                           ) -> np.ndarray | None:
        """``(3, T, y, x)`` signed MODIS change, sub-cell spread, cloud fraction of a composite."""
        if not self.features:
            return None
        out = np.full((3, *self.shape), np.nan, dtype=np.float32)
        if not days:
            return out
        ys, xs = self.ys, self.xs
        if self.target_up is None:  # the same for the references before and after
            self.target_up = upsample_bilinear(self.target_modis, self.f)[:, ys, xs]
        target_up = self.target_up[days]
        r = used[:, ys, xs]
        iy, ix = np.ogrid[:r.shape[1], :r.shape[2]]
        for k, t in enumerate(days):
            out[0, t] = target_up[k] - coarse_up[k][ys, xs]
            out[1:, t] = self.ref_stats[:, np.maximum(r[k], 0), iy, ix]
        return out

    def fuse_pairs(self, max_gap_days: int, max_references: int) -> None:
        """Predict each day from its references before and after at once (two-pair methods)."""
        days_b, fine_b, coarse_b, used_b = self.composite("before", max_gap_days, max_references)
        days_a, fine_a, coarse_a, used_a = self.composite("after", max_gap_days, max_references)
        common = sorted(set(days_b) & set(days_a))
        if not common:
            return
        feat_b = self.composite_features(days_b, coarse_b, used_b)
        feat_a = self.composite_features(days_a, coarse_a, used_a)
        ib = [days_b.index(t) for t in common]
        ia = [days_a.index(t) for t in common]
        pred = self.method.predict_pairs(
            np.stack([fine_b[ib], fine_a[ia]], axis=1),
            np.stack([coarse_b[ib], coarse_a[ia]], axis=1),
            self.target_modis[common], coarse_factor=self.f)
        ys, xs = self.ys, self.xs
        pending = self.pending
        for k, t in enumerate(common):
            rb, ra = used_b[ib[k]][ys, xs], used_a[ia[k]][ys, xs]
            take = pending[t] & (rb >= 0) & (ra >= 0) & np.isfinite(pred[k][ys, xs])
            day_b, day_a = self.landsat_days[rb[take]], self.landsat_days[ra[take]]
            self.lst[t][take] = pred[k][ys, xs][take]
            self.qa[t][take] = Flag.FUSED_TWO
            target = self.target_days[t]
            before = target - day_b <= day_a - target
            self.ref_day[t][take] = np.where(before, day_b, day_a)
            if feat_b is not None and feat_a is not None:
                self.feat[:, t][:, take] = np.where(before, feat_b[:, t][:, take],
                                                    feat_a[:, t][:, take])
                weight_before = (day_a - target) / np.maximum(day_a - day_b, 1)
                self.departure[t][take] = departure(
                    weight_before, feat_b[0, t][take], feat_a[0, t][take])

    def take(self, where: np.ndarray, values: np.ndarray, flag, reference: np.ndarray,
             feat: np.ndarray | None = None, disagreement: np.ndarray | None = None,
             departure_k: np.ndarray | None = None) -> None:
        """Set the outputs where ``where`` (flag may be an array), and their features."""
        self.lst[where] = values[where]
        self.qa[where] = flag[where] if isinstance(flag, np.ndarray) else flag
        self.ref_day[where] = reference[where]
        if feat is not None:
            np.copyto(self.feat, feat, where=where)
        if disagreement is not None:
            np.copyto(self.disagreement, disagreement, where=where)
        if departure_k is not None:
            np.copyto(self.departure, departure_k, where=where)

    def blend(self, before: tuple[np.ndarray, np.ndarray, np.ndarray | None],
              after: tuple[np.ndarray, np.ndarray, np.ndarray | None],
              max_disagreement_k: float) -> None:
        """Blend the predictions from before and after by temporal distance.

        Fully where they agree within ``max_disagreement_k``, fading linearly to the nearer
        one alone where they disagree by twice that (``FUSED_TWO`` wherever both count);
        elsewhere the nearer one is kept. The fade keeps every value continuous in its
        inputs: with a hard threshold a difference of 1e-4 K in a prediction (another
        machine's arithmetic) moved values by up to half the threshold.
        """
        (pred_b, ref_b, feat_b), (pred_a, ref_a, feat_a) = before, after
        day = self.target_days[:, None, None].astype(np.float32)
        gap_before, gap_after = np.abs(day - ref_b), np.abs(ref_a - day)
        has_before, has_after = np.isfinite(pred_b), np.isfinite(pred_a)
        use_before = has_before & (~has_after | (gap_before <= gap_after))
        nearest = np.where(use_before, pred_b, pred_a)
        with np.errstate(invalid="ignore"):
            agreement = np.clip(2 - np.abs(pred_b - pred_a) / max_disagreement_k, 0, 1)
            weight_before = gap_after / (gap_before + gap_after)  # the nearer weighs more
        both = has_before & has_after & (agreement > 0)
        weight_before = agreement * weight_before + (1 - agreement) * use_before
        blended = weight_before * pred_b + (1 - weight_before) * pred_a
        where = has_before | has_after
        away = None
        if feat_b is not None and feat_a is not None:
            away = departure(weight_before, feat_b[0], feat_a[0])
            away[~both] = np.nan
        self.take(where, np.where(both, blended, nearest),
                  np.where(both, Flag.FUSED_TWO, Flag.FUSED),
                  np.where(use_before, ref_b, ref_a), None,
                  np.abs(pred_b - pred_a) if self.features else None, away)
        if feat_b is not None and feat_a is not None:  # the nearer side's, in place
            from_before, from_after = where & use_before, where & ~use_before
            for out, b, a in zip(self.feat, feat_b, feat_a):
                np.copyto(out, b, where=from_before)
                np.copyto(out, a, where=from_after)

    def raw_features(self, qa: np.ndarray, reference_day: np.ndarray,
                     error_class: np.ndarray | None) -> list[np.ndarray]:
        """The ``len(RAW)`` raw error features ``(T, y, x)`` (age NaN where not fused).

        The MODIS departure of a value made from one reference is its MODIS change.
        """
        age = np.abs(self.target_days[:, None, None].astype(np.int32) - reference_day)
        age = np.where(Flag.fused(qa), age.astype(np.float32), np.float32(np.nan))
        qc = (np.zeros(self.shape, np.float32) if error_class is None
              else upsample_nearest(error_class, self.f)[:, self.ys, self.xs])
        change, spread, cloud = self.feat
        change = np.abs(change)
        away = self.departure  # in place: called once, by result()
        np.copyto(away, change, where=np.isnan(away))
        return [age, change, spread, cloud, self.disagreement, qc,
                qa == Flag.MODIS_GAP_FILLED, away]

    def uncertainty(self, raw: list[np.ndarray], qa: np.ndarray, model: ErrorModel,
                    observed_sigma: dict[int, np.ndarray]) -> np.ndarray:
        """Sigma (K) of every value: the model's for fused ones, ST_QA's for observed ones.

        Observed pixels without ST_QA take the model's ``observed_k``.
        """
        obs = np.full(self.shape, model.observed_k, np.float32)
        for t, day in enumerate(self.target_days):
            st_qa = observed_sigma.get(int(day))
            if st_qa is not None:
                st_qa = st_qa[self.ys, self.xs]
                obs[t] = np.where(np.isfinite(st_qa), st_qa, obs[t])
        sigma = np.where(qa == Flag.OBSERVED, obs, model.sigma(raw))
        return np.where(np.isfinite(self.lst), sigma, np.float32(np.nan)).astype(np.float32)

    def result(self, error_model: ErrorModel | None = None, return_features: bool = False,
               inputs: ErrorInputs | None = None) -> FusedBlock:
        """The outputs, fused values over interpolated MODIS flagged ``MODIS_GAP_FILLED``.

        With features: sigma from ``error_model``, and the raw features if asked for.
        """
        result = _flag_gap_filled(FusedBlock(lst_k=self.lst, qa=self.qa,
                                             reference_day=self.ref_day),
                                  self.filled, self.f, self.ys, self.xs)
        if not self.features:
            return result
        inputs = inputs or ErrorInputs()
        raw = self.raw_features(result.qa, result.reference_day, inputs.modis_error_class)
        sigma = None if error_model is None else self.uncertainty(raw, result.qa, error_model,
                                                                  inputs.observed_sigma)
        features = None
        if return_features:
            fused = np.isfinite(raw[0])
            features = np.stack([np.where(fused, r, np.float32(np.nan)) for r in raw]
                                ).astype(np.float32)
        return dataclasses.replace(result, uncertainty_k=sigma, features=features)


def _method_alignment(method: FusionMethod, coarse_factor: int) -> int:
    import math

    return math.lcm(coarse_factor, int(method.alignment))


def pad_to_alignment(alignment: int, coarse_factor: int, fine: np.ndarray,
                     *coarse: np.ndarray | None) -> tuple[np.ndarray | None, ...]:
    """Extend a read window at its far (bottom, right) edges to a multiple of ``alignment``.

    ``fine`` is ``(..., Y, X)`` on the fine grid, each of ``coarse`` ``(..., Y/f, X/f)`` on the
    coarse grid (or None). Padding is NaN (False for boolean arrays): unusable pixels, never
    a reference nor a prediction. A read window starts on a multiple of ``alignment``, so its
    padded far edge is the same whether the scene is fused whole or in chunks, and the
    cropped result does not depend on the chunking.

    Returns
    -------
    tuple
        ``fine`` and every array of ``coarse``, padded (unchanged when already aligned).
    """
    y, x = fine.shape[-2:]
    py, px = -y % alignment, -x % alignment
    if not (py or px):
        return (fine, *coarse)

    def pad(a: np.ndarray | None, by: int, bx: int) -> np.ndarray | None:
        if a is None:
            return None
        widths = [(0, 0)] * (a.ndim - 2) + [(0, by), (0, bx)]
        return np.pad(a, widths, constant_values=False if a.dtype == bool else np.nan)

    f = coarse_factor
    return (pad(fine, py, px), *(pad(c, py // f, px // f) for c in coarse))


def _flag_gap_filled(block: FusedBlock, filled: np.ndarray | None, f: int, ys: slice,
                     xs: slice) -> FusedBlock:
    """Flag fused values whose target MODIS was interpolated in time."""
    if filled is not None and filled.any():
        fine = upsample_nearest(filled, f)[:, ys, xs]
        block.qa[fine & Flag.fused(block.qa)] = Flag.MODIS_GAP_FILLED
    return block
