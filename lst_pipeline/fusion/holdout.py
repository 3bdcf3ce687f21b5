"""Leave-one-date-out on a stack's own Landsat dates, and choosing a method by it.

Each clear Landsat date in the run's days is hidden from the candidate references, the day
is fused from the remaining dates by every method through the production kernel (same
reference selection, no observations kept), and each prediction is compared with the
hidden observation on the pixels it saw and every method fused (the MODIS view-time rate is
refitted without the hidden date). No truth is needed, so it works on any real stack:
``lst-pipeline evaluate --against holdout`` reports it, and ``fusion.method: auto`` uses it
to pick a method per run (:func:`choose_method`).
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from lst_pipeline.errors import InputError
from lst_pipeline.fusion.registry import AUTO_CANDIDATES, ENSEMBLE, with_ensemble_weights
from lst_pipeline.fusion.selection import SIGNIFICANCE, Comparison, choose, per_date_mae
from lst_pipeline.fusion.stacking import cross_fitted_predictions
from lst_pipeline.grid import Window, spread_windows

if TYPE_CHECKING:
    from lst_pipeline.fusion.registry import FusionMethodName

#: ``auto`` scores at most this many held-out dates, on at most this many square windows
#: of at most :data:`AUTO_WINDOW` px (spread over the grid), so choosing stays cheap on a
#: whole Landsat scene.
AUTO_MAX_DATES = 8
AUTO_WINDOWS = 4
AUTO_WINDOW = 512
AUTO_MIN_CLEAR = 0.3


@dataclass
class HeldOut:
    """Predictions of held-out Landsat dates: one row per (date, window)."""

    days: np.ndarray
    truth: np.ndarray
    predictions: dict[str, np.ndarray]
    mask: np.ndarray
    reference_age: np.ndarray
    main_reference_day: np.ndarray
    seconds: dict[str, float]
    windows: list[Window]
    #: per method, a sample of the pixels it fused with their error features (with
    #: ``features=True``), for fitting error models
    samples: dict[str, Residuals] = dataclasses.field(default_factory=dict)
    #: an ensemble to be fitted: its weights on all dates (its predictions: cross-fitted)
    ensemble_weights: tuple[float, ...] = ()


@dataclass(frozen=True)
class Residuals:
    """Held-out residuals with what an error model needs of them.

    Attributes
    ----------
    raw
        ``(len(RAW), n)`` raw error features (:data:`~lst_pipeline.fusion.error_model.RAW`).
    errors
        ``(n,)`` prediction minus held-out observation (K).
    rows
        ``(n,)`` the :class:`HeldOut` row (date and window) of each.
    observation_sigma
        ``(n,)`` ST_QA uncertainty of the held-out observation (K, NaN where the stack has
        none): the part of each residual that is the observation's own error.
    """

    raw: np.ndarray
    errors: np.ndarray
    rows: np.ndarray
    observation_sigma: np.ndarray

    @property
    def observation_k(self) -> float:
        """The held-out observations' typical error: median ST_QA (K), 0 if unknown."""
        known = self.observation_sigma[np.isfinite(self.observation_sigma)]
        return float(np.median(known)) if known.size else 0.0

    def __len__(self) -> int:
        return len(self.errors)


def most_common_day(days: np.ndarray) -> int:
    """The most frequent value of ``days`` (the smallest on a tie); -1 when empty."""
    if not days.size:
        return -1
    found, counts = np.unique(days, return_counts=True)
    return int(found[np.argmax(counts)])


def _dates_to_hold_out(config: Any, reader: Any, days: np.ndarray, min_clear_fraction: float,
                       max_dates: int | None) -> np.ndarray:
    """Indices of the Landsat dates within ``days`` clear enough to hold out, spread out."""
    ldays = reader.landsat_dates.astype("datetime64[D]")
    in_range = (ldays >= days[0]) & (ldays <= days[-1])
    chosen = np.nonzero(in_range & (reader.landsat_clear_fraction >= min_clear_fraction))[0]
    if max_dates is not None and len(chosen) > max_dates:
        chosen = chosen[np.linspace(0, len(chosen) - 1, max_dates).round().astype(int)]
    if not len(chosen):
        raise InputError(f"{config.inputs.stack}: no Landsat date between {days[0]} and "
                         f"{days[-1]} is at least {min_clear_fraction:.0%} clear; "
                         "nothing to hold out (lower the clear fraction or widen dates)")
    return chosen


#: Residuals kept per held-out row (date and window) and method for error models.
SAMPLES_PER_ROW = 20_000


def _sample(raw: np.ndarray, errors: np.ndarray, keep: np.ndarray, row: int,
            observation_sigma: np.ndarray | None) -> Residuals:
    """Evenly spaced (deterministic) residuals where ``keep``, at most SAMPLES_PER_ROW."""
    index = np.flatnonzero(keep)
    if len(index) > SAMPLES_PER_ROW:
        index = index[np.linspace(0, len(index) - 1, SAMPLES_PER_ROW).astype(np.int64)]
    noise = (np.full(len(index), np.nan, np.float32) if observation_sigma is None
             else observation_sigma.ravel()[index])
    return Residuals(raw.reshape(len(raw), -1)[:, index], errors.ravel()[index],
                     np.full(len(index), row, np.int32), noise)


def _read_held_out(reader: Any, config: Any, index: int, window: Window,
                   uncertainty: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """The held-out Landsat date's LST over ``window``, and its ST_QA if asked and stored.

    Raises
    ------
    InputError
        Naming the stack, if a chunk file is corrupt or unreadable.
    """
    try:
        at = np.array([index])
        st_qa = reader.read_landsat_uncertainty(at, window) if uncertainty else None
        return reader.read_landsat(at, window)[0], None if st_qa is None else st_qa[0]
    except Exception as exc:  # a corrupt or truncated chunk file, an I/O error ...
        raise InputError(f"{config.inputs.stack}: cannot read Landsat date "
                         f"{reader.landsat_dates[index]} to hold it out ({type(exc).__name__}: "
                         f"{exc}); check or rebuild the input stack") from exc


def _inputs_hiding(task: Any, t: int, read: Window, day: int) -> Any:
    """The inputs of output day ``t`` over ``read`` with Landsat date ``day`` hidden.

    The date is no reference, no part of another reference's averaged MODIS offset, and the
    MODIS view-time rate is refitted without it; no day's MODIS is registered against it.
    """
    from lst_pipeline.fusion.block import read_block_inputs

    if task.overpass is not None:
        task = dataclasses.replace(task, overpass=task.overpass.without(day))
    if task.registration is not None:
        task = dataclasses.replace(task, registration=task.registration.without(day))
    return read_block_inputs(task, t, t + 1, read, hide_day=day)


def _joined(parts: list[Residuals]) -> Residuals:
    """The samples of every row as one."""
    return Residuals(np.concatenate([q.raw for q in parts], axis=-1),
                     *(np.concatenate([getattr(q, name) for q in parts])
                       for name in ("errors", "rows", "observation_sigma")))


def _held_out_plans(config: Any, methods: tuple[str, ...], features: bool) -> dict[str, Any]:
    """Each method's plan with Landsat days fused (and the MODIS QC read, with features)."""
    from lst_pipeline.fusion.plan import plan_run

    fusion = dataclasses.replace(config.fusion, landsat_days="fuse")
    plans = {m: plan_run(dataclasses.replace(config, fusion=dataclasses.replace(
        fusion, method=m))) for m in methods}
    return {m: dataclasses.replace(p, task=dataclasses.replace(p.task, uncertainty=features))
            for m, p in plans.items()}


def _reference_age(day: int, reference_day: np.ndarray, fused: np.ndarray
                   ) -> tuple[np.ndarray, int]:
    """Days from each fused pixel's reference to ``day``, and the most used reference."""
    return (np.where(fused, np.abs(day - reference_day), np.nan),
            most_common_day(reference_day[fused]))


def predict_held_out(config: Any, methods: tuple[str, ...], *,
                     min_clear_fraction: float = 0.3, max_dates: int | None = None,
                     windows: list[Window] | None = None, features: bool = False,
                     log=print) -> HeldOut:
    """Hide each clear Landsat date of the run's days and predict it with every method.

    Parameters
    ----------
    config
        A pipeline configuration (its stack, days, fusion parameters).
    methods
        Fusion methods to run (never ``auto``); an ``ensemble`` to be fitted is scored from
        its members, each date with weights fitted on the others (then on all: its weights).
    min_clear_fraction
        Least clear fraction of a date to hold it out.
    max_dates
        At most this many dates, spread over the series.
    windows
        Parts of the grid to predict (default: the whole grid); each is read with the
        largest halo of the methods.
    features
        Also keep a sample of each method's residuals with their error features
        (:attr:`HeldOut.samples`).
    log
        Where progress goes.

    Raises
    ------
    InputError
        If no Landsat date qualifies.
    """
    from lst_pipeline.fusion.block import fuse_inputs
    from lst_pipeline.io.cube import Flag
    from lst_pipeline.io.stack import StackReader

    asked, fitted = methods, ENSEMBLE in methods and not config.fusion.ensemble.weights
    methods = _with_members(methods, config.fusion.ensemble.members) if fitted else methods
    plans = _held_out_plans(config, methods, features)
    first = next(iter(plans.values()))
    parts: dict[str, list] = {m: [] for m in methods}
    reader = StackReader(config.inputs.stack)
    ldays = reader.landsat_dates.astype("datetime64[D]")
    chosen = _dates_to_hold_out(config, reader, first.days, min_clear_fraction, max_dates)
    ny, nx = first.grid.shape
    windows = windows or [Window(0, ny, 0, nx)]
    align = math.lcm(*(p.chunks.alignment for p in plans.values()))
    halo = -(-max(p.chunks.halo_aligned for p in plans.values()) // align) * align
    rows = len(chosen) * len(windows)
    shape = (rows, max(w.shape[0] for w in windows), max(w.shape[1] for w in windows))
    truth = np.full(shape, np.nan, np.float32)
    preds = {m: np.full(shape, np.nan, np.float32) for m in methods}
    age = np.full(shape, np.nan, np.float32)
    main_ref = np.full(rows, -1, np.int64)
    seconds = dict.fromkeys(methods, 0.0)
    for i, index in enumerate(chosen):
        t = int((ldays[index] - first.days[0]).astype(int))
        for k, w in enumerate(windows):
            row, (hy, hx) = i * len(windows) + k, w.shape
            read = Window(max(w.y0 - halo, 0), min(w.y1 + halo, ny),
                          max(w.x0 - halo, 0), min(w.x1 + halo, nx))
            truth[row, :hy, :hx], st_qa = _read_held_out(reader, config, index, w, features)
            hidden = _inputs_hiding(first.task, t, read, int(ldays[index].astype(np.int64)))
            for m, plan in plans.items():
                start = time.perf_counter()
                block = fuse_inputs(plan.task, hidden, w, read, return_features=features)
                seconds[m] += time.perf_counter() - start
                fused = Flag.fused(block.qa[0])
                preds[m][row, :hy, :hx] = np.where(fused, block.lst_k[0], np.nan)
                if block.features is not None:
                    err = block.lst_k[0] - truth[row, :hy, :hx]
                    parts[m].append(_sample(block.features[:, 0], err,
                                            fused & np.isfinite(err), row, st_qa))
                if m == methods[0]:
                    age[row, :hy, :hx], main_ref[row] = _reference_age(
                        plan.task.first_day + t, block.reference_day[0], fused)
        log(f"held out {ldays[index]} ({i + 1}/{len(chosen)})")
    mask = np.isfinite(truth) & np.logical_and.reduce([np.isfinite(p) for p in preds.values()])
    held = HeldOut(np.repeat(ldays[chosen], len(windows)), truth, preds, mask, age, main_ref,
                   seconds, windows, {m: _joined(p) for m, p in parts.items() if p})
    return _with_fitted_ensemble(held, config, asked, log) if fitted else held


def _with_members(methods: tuple[str, ...], members: tuple[str, ...]) -> tuple[str, ...]:
    """``methods`` without ``ensemble`` and with each of its members, once."""
    return tuple(dict.fromkeys([m for m in methods if m != ENSEMBLE] + list(members)))


def _with_fitted_ensemble(held: HeldOut, config: Any, asked: tuple[str, ...], log) -> HeldOut:
    """``held`` with the ensemble's cross-fitted predictions and weights, only the methods asked.

    With a single held-out date the ensemble cannot be scored (no date is left to fit its
    weights on): its predictions are left out, with a log line; its weights are kept.
    """
    members = tuple(config.fusion.ensemble.members)
    pred, weights = cross_fitted_predictions([held.predictions[m] for m in members],
                                             held.truth, held.mask, held.days)
    scored = len(np.unique(held.days)) >= 2
    if not scored:
        log("ensemble not scored: its weights need two held-out dates or more")
    predictions = {m: pred if m == ENSEMBLE else held.predictions[m] for m in asked
                   if scored or m != ENSEMBLE}
    return dataclasses.replace(held, predictions=predictions,
                               mask=held.mask & np.isfinite(pred) if scored else held.mask,
                               ensemble_weights=tuple(float(w) for w in weights))


def predict_auto_held_out(config: Any, methods: tuple[str, ...]) -> HeldOut:
    """:func:`predict_held_out` on ``auto``'s dates and windows (:data:`AUTO_MAX_DATES`...).

    An ``ensemble`` among ``methods`` is fitted here (configured weights are ignored).
    """
    from lst_pipeline.grid import resolve_grid

    grid, _ = resolve_grid(config.grid)
    windows = spread_windows(grid.shape, grid.coarse_factor * 8, size=AUTO_WINDOW,
                             most=AUTO_WINDOWS)
    return predict_held_out(with_ensemble_weights(config, ()), methods,
                            min_clear_fraction=AUTO_MIN_CLEAR, max_dates=AUTO_MAX_DATES,
                            windows=windows, log=lambda _: None)


@dataclass(frozen=True)
class MethodChoice:
    """What ``fusion.method: auto`` chose and why."""

    method: FusionMethodName
    scores: dict[str, dict[str, float]]
    dates: list[str]
    windows: list[list[int]]
    #: the held-out predictions it was chosen by
    held: HeldOut | None = dataclasses.field(default=None, compare=False, repr=False)
    #: the chosen method against each other candidate, by per-date MAE
    comparisons: dict[str, Comparison] = dataclasses.field(default_factory=dict)
    #: ``ensemble``'s weights fitted on every held-out date (empty if not a candidate)
    ensemble_weights: tuple[float, ...] = ()

    def describe(self) -> str:
        """The choice, the ranking and how sure the choice is, in one line."""
        ranked = sorted(self.scores.items(), key=lambda kv: kv[1]["mae_k"])
        text = ", ".join(f"{m} {s['mae_k']:.3f} K" for m, s in ranked)
        line = (f"fusion.method auto: {self.method} (leave-one-date-out MAE on "
                f"{len(self.dates)} held-out Landsat date(s): {text})")
        tied = [f"{m} ({self.method} minus {m}: {c.mean_difference_k:+.3f} +- "
                f"{c.standard_error_k:.3f} K per date)"
                for m, c in self.comparisons.items() if not c.better]
        if tied:
            line += ("; within the held-out dates' spread of " + ", ".join(tied)
                     + ": these dates cannot tell them apart")
        return line

    def as_attrs(self) -> dict[str, Any]:
        """The choice as cube attributes (plain JSON data)."""
        return {"chosen": self.method, "scores": self.scores, "held_out_dates": self.dates,
                "windows": self.windows, "ensemble_weights": list(self.ensemble_weights),
                "chosen_against": {m: c.as_attrs() for m, c in self.comparisons.items()},
                "test": "one-sided paired t-test of per-date MAE differences at "
                        f"{SIGNIFICANCE}"}


def choose_method(config: Any, candidates: tuple[FusionMethodName, ...] = AUTO_CANDIDATES, *,
                  log=print) -> MethodChoice:
    """The candidate with the lowest leave-one-date-out MAE on the stack's clear dates.

    With it, how sure the choice is: the chosen method against each other candidate by a
    paired test of per-date MAE (:mod:`lst_pipeline.fusion.selection`).
    Deterministic: the same dates (spread over the run's days) and windows (spread over the
    grid) for the same stack and configuration. Ties go to the earlier candidate.
    ``ensemble`` is scored from its members' held-out predictions, each date with weights
    fitted on the other dates, and runs, if chosen, with the weights fitted on every date.

    Raises
    ------
    InputError
        If the stack has no Landsat date clear enough to hold out.
    """
    fusion = config.fusion
    if "starfm" in fusion.ensemble.members and fusion.starfm.pairs != 1:  # it would not run
        candidates = tuple(c for c in candidates if c != ENSEMBLE)
    held = predict_auto_held_out(config, candidates)
    candidates = tuple(c for c in candidates if c in held.predictions)
    if not held.mask.any():
        raise InputError(f"{config.inputs.stack}: no held-out pixel was fused by every "
                         f"candidate ({', '.join(candidates)}); fusion.method auto cannot "
                         "choose: name the method")
    scores: dict[str, dict[str, float]] = {}
    by_date: dict[str, np.ndarray] = {}
    for m in candidates:
        errors = held.predictions[m] - held.truth
        e = errors[held.mask].astype(np.float64)
        scores[m] = {"mae_k": float(np.abs(e).mean()),
                     "rmse_k": float(np.sqrt((e * e).mean())), "pixels": int(e.size)}
        _, by_date[m] = per_date_mae(errors, held.mask, held.days)
    best, comparisons = choose(candidates, {m: s["mae_k"] for m, s in scores.items()},
                               by_date)
    dates = sorted({str(d) for d in held.days})
    choice = MethodChoice(best, scores, dates,
                          [[w.y0, w.y1, w.x0, w.x1] for w in held.windows], held, comparisons,
                          held.ensemble_weights)
    log(choice.describe())
    return choice
