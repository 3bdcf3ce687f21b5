"""Methods compared on one region: against a truth store, or leave-one-date-out.

:func:`compare_with_truth` streams a whole cube and its truth through Dask chunk by chunk;
:func:`compare_cubes_with_truth` scores several cubes on the pixel-days all of them fused;
:func:`compare_methods` fuses a simulated region with every method in this process;
:func:`compare_methods_holdout` does so for the stack's own held-out Landsat dates;
:func:`calibrate_cube_with_truth` scores a cube's ``lst_uncertainty`` against the truth.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lst_pipeline.config.locations import StorePath
from lst_pipeline.evaluate.calibration import Calibration, calibration, cross_validated_sigma
from lst_pipeline.evaluate.metrics import METRIC_LABELS, Scores, grouped_metrics
from lst_pipeline.fusion.registry import METHODS


def compare_with_truth(cube: StorePath | str, truth: StorePath | str) -> dict[str, Scores]:
    """Scores of a cube against a truth cube on the same grid and days.

    Returns scores for ``fused`` pixels, ``observed`` pixels and ``all`` valid pixels.
    """
    import dask
    import xarray as xr

    from lst_pipeline.io.cube import Flag, open_cube

    out = open_cube(cube)
    ref = xr.open_zarr(truth, consolidated=False)["lst"].sel(time=out.time)
    err = out["lst"].astype("f8") - ref.astype("f8").data
    valid = np.isfinite(err)
    classes = {"fused": Flag.fused(out["qa"]), "observed": out["qa"] == Flag.OBSERVED,
               "all": valid}
    sums = {}
    for name, sel in classes.items():
        e = err.where(valid & sel)
        sums[name] = (
            (valid & sel).sum(), e.sum(), abs(e).sum(), (e * e).sum(),
        )
    (computed,) = dask.compute(sums)
    return {name: Scores.from_sums(*(float(v) for v in vals)) for name, vals in computed.items()}


def calibrate_cube_with_truth(cube: Path | str, truth: Path | str, *, time_block: int = 32
                              ) -> dict[str, Calibration]:
    """Calibration of a cube's ``lst_uncertainty`` against a truth store on its grid.

    Every pixel-day with a value, a sigma and a truth enters (on large cubes an evenly
    spaced sample of them, the same share of every block, :class:`CalibrationSample`).

    Returns
    -------
    dict
        :class:`Calibration` of ``all``, ``fused`` and ``observed`` pixel-days.

    Raises
    ------
    InputError
        If the cube has no ``lst_uncertainty``.
    """
    import xarray as xr

    from lst_pipeline.errors import InputError
    from lst_pipeline.evaluate.calibration import CalibrationSample
    from lst_pipeline.io.cube import UNCERTAINTY, open_cube

    out = open_cube(cube, flags=False)
    if UNCERTAINTY not in out:
        raise InputError(f"{cube}: no {UNCERTAINTY} in this cube (it was made with "
                         "output.uncertainty: false, or by an older lst_pipeline)")
    ref = xr.open_zarr(truth, consolidated=False)["lst"].sel(time=out.time)
    days = out.time.values.astype("datetime64[D]").astype(np.int64)
    sample = CalibrationSample.for_size(out["lst"].size)
    for t0 in range(0, len(days), time_block):
        ts = slice(t0, t0 + time_block)
        lst, sigma = out["lst"][ts].values, out[UNCERTAINTY][ts].values
        qa, used = out["qa"][ts].values, out["reference_date"][ts].values
        used = used.astype("datetime64[D]").astype(np.int64) if used.dtype.kind == "M" else used
        sample.add(lst.astype(np.float64) - ref[ts].values, sigma,
                   np.abs(days[ts][:, None, None] - used).astype(np.float64), qa)
    return sample.calibration()


def compare_cubes_with_truth(cubes: dict[str, Path | str], truth: Path | str, *,
                             skip_days: np.ndarray | None = None, time_block: int = 16
                             ) -> dict[str, Scores]:
    """Scores of several cubes of one region on the pixel-days that *all* of them fused.

    Parameters
    ----------
    cubes
        ``{name: cube}``, cubes on the truth's grid and days (made by ``run``).
    truth
        The truth store.
    skip_days
        ``datetime64[D]`` days left out (the Landsat dates, where a cube keeps observations).
    time_block
        Days read at once.

    Returns
    -------
    dict
        :class:`Scores` per cube name.
    """
    from lst_pipeline.io.cube import Flag, open_cube
    from lst_pipeline.io.truth import open_truth

    opened = {name: open_cube(path, flags=False) for name, path in cubes.items()}
    ref = open_truth(truth)["lst"]
    days = next(iter(opened.values()))["time"].values.astype("datetime64[D]")
    keep = ~np.isin(days, np.asarray(skip_days if skip_days is not None else [],
                                     "datetime64[D]"))
    sums = {name: np.zeros(4) for name in opened}
    for t0 in range(0, len(days), time_block):
        index = np.flatnonzero(keep[t0:t0 + time_block]) + t0
        if not len(index):
            continue
        true = ref.sel(time=days[index].astype("datetime64[ns]")).values.astype(np.float64)
        values, mask = {}, np.isfinite(true)
        for name, cube in opened.items():
            block = cube.isel(time=index)[["lst", "qa"]].load()
            values[name] = block["lst"].values.astype(np.float64)
            mask &= Flag.fused(block["qa"].values) & np.isfinite(values[name])
        for name, v in values.items():
            e = (v - true)[mask]
            sums[name] += (e.size, e.sum(), np.abs(e).sum(), (e * e).sum())
    return {name: Scores.from_sums(*total) for name, total in sums.items()}


# --------------------------------------------------------------------------------------
# Method comparison against a simulated truth, and the report.

#: What ``evaluate`` compares by default: every registered method.
ALL_METHODS = tuple(METHODS)


@dataclass
class Comparison:
    """Every method fused over the same region and days, scored on one common mask."""

    config: Any
    days: np.ndarray
    truth: np.ndarray
    predictions: dict[str, np.ndarray]
    mask: np.ndarray
    reference_age: np.ndarray
    land_cover: np.ndarray | None
    groups: dict[str, dict]
    seconds: dict[str, float]
    reference_name: str = "truth"
    #: for the maps: the most used reference date of each day (days since 1970-01-01, -1)
    main_reference_day: np.ndarray | None = None
    #: per method, the calibration of its ``lst_uncertainty`` (empty when switched off)
    calibration: dict[str, Calibration] = dataclasses.field(default_factory=dict)


def compare_methods(config: Any, methods: tuple[str, ...] = ALL_METHODS, *,
                    time_block: int = 32, log=print) -> Comparison:
    """Fuse the region of ``config`` with each method and score against its simulated truth.

    Every method runs through the same kernel (reference selection, two references, masks)
    in this process, block by block in time. Scores use the pixel-days that every method
    fused and the truth has (the common mask).

    Raises
    ------
    InputError
        If the config has no ``simulation`` section or its truth store is missing.
    """
    import time

    from lst_pipeline.errors import InputError
    from lst_pipeline.fusion.engine import plan_run, read_and_fuse
    from lst_pipeline.fusion.holdout import most_common_day
    from lst_pipeline.grid import Window
    from lst_pipeline.io.cube import Flag
    from lst_pipeline.io.truth import open_truth

    sim = config.simulation
    if sim is None or not sim.truth.exists():
        where = "simulation.truth" if sim is None else str(sim.truth)
        raise InputError(f"{where}: evaluate needs the simulated truth store; run "
                         "`lst-pipeline simulate CONFIG` first (or give a config with a "
                         "`simulation:` section)")
    truth_ds = open_truth(sim.truth)
    plans = {m: plan_run(dataclasses.replace(config, fusion=dataclasses.replace(
        config.fusion, method=m))) for m in methods}
    first = next(iter(plans.values()))
    ny, nx = first.grid.shape
    whole = Window(0, ny, 0, nx)
    n_days = len(first.days)
    truth = truth_ds["lst"].sel(time=first.days.astype("datetime64[ns]")).values
    preds = {m: np.full(truth.shape, np.nan, np.float32) for m in methods}
    mask = np.isfinite(truth)
    age = np.full(truth.shape, np.nan, np.float32)
    main_ref = np.full(n_days, -1, np.int64)
    seconds = dict.fromkeys(methods, 0.0)
    modelled = [m for m, p in plans.items() if p.task.error_model is not None]
    sigma = {m: np.full(truth.shape, np.nan, np.float32) for m in modelled}
    ages = {m: np.full(truth.shape, np.nan, np.float32) for m in modelled}
    for t0 in range(0, n_days, time_block):
        t1 = min(t0 + time_block, n_days)
        for m, plan in plans.items():
            start = time.perf_counter()
            block = read_and_fuse(plan.task, t0, t1, whole, whole)
            seconds[m] += time.perf_counter() - start
            fused = Flag.fused(block.qa)
            preds[m][t0:t1] = np.where(fused, block.lst_k, np.nan)
            mask[t0:t1] &= fused
            day = plan.task.first_day + np.arange(t0, t1)[:, None, None]
            method_age = np.where(fused, np.abs(day - block.reference_day), np.nan)
            if block.uncertainty_k is not None:
                sigma[m][t0:t1] = np.where(fused, block.uncertainty_k, np.nan)
                ages[m][t0:t1] = method_age
            if m == methods[0]:
                age[t0:t1] = method_age
                main_ref[t0:t1] = [most_common_day(r[f])
                                   for r, f in zip(block.reference_day, fused)]
        log(f"days {t0}..{t1 - 1} fused by {len(methods)} methods")
    land_cover = truth_ds["land_cover"].values if "land_cover" in truth_ds else None
    if land_cover is not None and land_cover.ndim == 3:
        land_cover = land_cover[0]
    names = _class_names(truth_ds)
    groups = {m: grouped_metrics(preds[m], truth, mask, land_cover=land_cover,
                                 class_names=names) for m in methods}
    calibrations = {m: calibration(preds[m] - truth, sigma[m], ages[m]) for m in sigma}
    return Comparison(config=config, days=first.days, truth=truth, predictions=preds,
                      mask=mask, reference_age=age, land_cover=land_cover, groups=groups,
                      seconds=seconds, main_reference_day=main_ref, calibration=calibrations)


def compare_methods_holdout(config: Any, methods: tuple[str, ...] = ALL_METHODS, *,
                            min_clear_fraction: float = 0.3, max_dates: int | None = None,
                            log=print) -> Comparison:
    """Leave-one-date-out: hide each clear Landsat date, predict it, compare with it.

    For every Landsat date inside the config's dates whose clear fraction is at least
    ``min_clear_fraction`` (at most ``max_dates`` of them, spread over the series), that
    date is removed from the candidate references, the day is fused from the remaining
    dates by every method (same reference selection as a run, observations not kept), and
    the predictions are compared with the hidden observation on the pixels it saw and
    every method fused (:func:`lst_pipeline.fusion.holdout.predict_held_out`; ``ensemble``
    with each date's weights fitted on the other dates, left out with a single date). Works
    on any input stack: no truth needed. The calibration of ``lst_uncertainty`` is scored on the
    same residuals, each date's sigma from an error model fitted on the other dates only.

    Raises
    ------
    InputError
        If no Landsat date qualifies.
    """
    from lst_pipeline.fusion.holdout import predict_held_out

    held = predict_held_out(config, methods, min_clear_fraction=min_clear_fraction,
                            max_dates=max_dates,
                            features=config.output.uncertainty is not False, log=log)
    groups = {m: grouped_metrics(p, held.truth, held.mask) for m, p in held.predictions.items()}
    calibrations = {}
    for m, r in held.samples.items():
        if len(np.unique(held.days[r.rows])) >= 2:  # each date's sigma from the other dates
            sigma = cross_validated_sigma(r.raw, r.errors, held.days[r.rows], m,
                                          r.observation_k)
            calibrations[m] = calibration(r.errors, sigma, r.raw[0])
    return Comparison(config=config, days=held.days, truth=held.truth,
                      predictions=held.predictions, mask=held.mask,
                      reference_age=held.reference_age, land_cover=None, groups=groups,
                      seconds=held.seconds, reference_name="held-out Landsat",
                      main_reference_day=held.main_reference_day, calibration=calibrations)


def evaluate(config: Any, methods: tuple[str, ...] | None = None, *, against: str = "auto",
             time_block: int = 32, min_clear_fraction: float = 0.3,
             max_dates: int | None = None, log=print) -> Comparison:
    """What ``lst-pipeline evaluate`` does: every method scored on one region.

    Parameters
    ----------
    config
        The region (a :class:`~lst_pipeline.config.PipelineConfig`).
    methods
        Method names (default: every registered method).
    against
        ``truth`` (:func:`compare_methods`), ``holdout`` (:func:`compare_methods_holdout`),
        or ``auto``: truth when the config names an existing simulated truth store.
    time_block
        Truth: days fused at once.
    min_clear_fraction, max_dates
        Holdout: which Landsat dates to hold out.

    Raises
    ------
    ConfigError
        If a method is unknown.
    """
    from lst_pipeline.errors import ConfigError

    methods = tuple(methods or ALL_METHODS)
    unknown = [m for m in methods if m not in ALL_METHODS]
    if unknown:
        raise ConfigError(f"--methods: unknown method {unknown[0]!r}; available: "
                          f"{', '.join(ALL_METHODS)}")
    if against == "auto":
        has_truth = config.simulation is not None and config.simulation.truth.exists()
        against = "truth" if has_truth else "holdout"
    if against == "truth":
        return compare_methods(config, methods, time_block=time_block, log=log)
    return compare_methods_holdout(config, methods, min_clear_fraction=min_clear_fraction,
                                   max_dates=max_dates, log=log)


def _class_names(ds) -> dict[int, str]:
    attrs = ds["land_cover"].attrs if "land_cover" in ds else {}
    values, meanings = attrs.get("flag_values"), attrs.get("flag_meanings")
    if values is None or not meanings:
        return {}
    return dict(zip((int(v) for v in np.atleast_1d(values)), str(meanings).split()))


def comparison_table(groups: dict[str, dict], keys=("mae_k", "rmse_k", "bias_k", "ubrmse_k",
                                                    "r", "r2", "ssim", "psnr_db", "n")) -> str:
    """Markdown table, methods x metrics, of the ``overall`` group."""
    lines = ["| method | " + " | ".join(METRIC_LABELS[k] for k in keys) + " |",
             "|---" * (len(keys) + 1) + "|"]
    for method, g in groups.items():
        m = g["overall"]["all"].as_dict()
        cells = [f"{m[k]:,}" if k == "n" else f"{m[k]:.3f}" for k in keys]
        lines.append(f"| `{method}` | " + " | ".join(cells) + " |")
    return "\n".join(lines)


