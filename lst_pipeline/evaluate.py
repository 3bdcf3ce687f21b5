"""Accuracy of fused LST against a reference (simulated truth or held-out Landsat).

:func:`scores` and :func:`metrics` are numpy kernels (MAE, RMSE, bias, unbiased RMSE,
Pearson r, R^2, SSIM, PSNR); :func:`grouped_metrics` applies them per day, per land-cover
class, at land-cover edges / interior and overall, over one mask shared by every method;
:func:`compare_with_truth` streams a whole cube and its truth through Dask chunk by chunk.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Scores:
    """Error statistics of predictions against a reference, in Kelvin.

    Attributes
    ----------
    n
        Pixels compared (both values finite).
    mae_k, rmse_k, bias_k
        Mean absolute error, root-mean-square error, mean(prediction - reference).
    """

    n: int
    mae_k: float
    rmse_k: float
    bias_k: float

    @classmethod
    def from_sums(cls, n: float, err: float, abs_err: float, sq_err: float) -> Scores:
        if n == 0:
            return cls(0, float("nan"), float("nan"), float("nan"))
        return cls(int(n), abs_err / n, float(np.sqrt(sq_err / n)), err / n)

    def __str__(self) -> str:
        return (f"MAE {self.mae_k:.2f} K, RMSE {self.rmse_k:.2f} K, bias {self.bias_k:+.2f} K "
                f"over {self.n:,} pixel-days")


def scores(prediction: np.ndarray, reference: np.ndarray,
           mask: np.ndarray | None = None) -> Scores:
    """Scores over pixels where both arrays are finite (and ``mask`` is true)."""
    err = np.asarray(prediction, dtype=np.float64) - np.asarray(reference, dtype=np.float64)
    ok = np.isfinite(err) if mask is None else np.isfinite(err) & mask
    e = err[ok]
    return Scores.from_sums(e.size, e.sum(), np.abs(e).sum(), (e * e).sum())


#: Data range (K) for SSIM and PSNR: the spread of LST over a scene and a season; a fixed
#: range (not the images' own min-max) makes scores comparable between days and methods.
LST_DATA_RANGE_K = 50.0


@dataclass(frozen=True)
class Metrics:
    """Agreement of a prediction with a reference over one set of pixels.

    Attributes
    ----------
    n
        Pixels compared.
    mae_k, rmse_k, bias_k
        Mean absolute error, root-mean-square error, mean(prediction - reference) (K).
    ubrmse_k
        Unbiased RMSE, ``sqrt(rmse^2 - bias^2)``: the error left once the mean offset is
        removed (the MODIS-Landsat offset of real scenes shows up in ``bias_k`` instead).
    r
        Pearson correlation.
    r2
        Coefficient of determination ``1 - SSE / SST`` (SST about the reference's mean).
    ssim
        Mean structural similarity (Gaussian window, sigma 1.5 px, Wang et al. 2004) over
        the compared pixels, with ``data_range_k``; NaN for non-image groups.
    psnr_db
        ``10 log10(data_range^2 / MSE)``.
    """

    n: int
    mae_k: float
    rmse_k: float
    bias_k: float
    ubrmse_k: float
    r: float
    r2: float
    ssim: float
    psnr_db: float

    def as_dict(self) -> dict[str, float]:
        return dataclasses.asdict(self)


METRIC_LABELS = {"n": "pixels", "mae_k": "MAE (K)", "rmse_k": "RMSE (K)", "bias_k": "bias (K)",
                 "ubrmse_k": "ubRMSE (K)", "r": "r", "r2": "R²", "ssim": "SSIM",
                 "psnr_db": "PSNR (dB)"}


def ssim_map(prediction: np.ndarray, reference: np.ndarray, mask: np.ndarray | None = None, *,
             data_range: float = LST_DATA_RANGE_K, sigma: float = 1.5) -> np.ndarray:
    """Local SSIM (Wang et al., 2004) of two 2-D images with a Gaussian window.

    Local means, variances and covariance are Gaussian-weighted averages over the valid
    pixels only (normalised convolution), so gaps do not leak into their neighbours.
    ``C1 = (0.01 L)^2``, ``C2 = (0.03 L)^2`` with ``L = data_range``; population
    (biased) moments. NaN outside ``mask`` / non-finite pixels.
    """
    from scipy import ndimage

    a = np.asarray(prediction, dtype=np.float64)
    b = np.asarray(reference, dtype=np.float64)
    ok = np.isfinite(a) & np.isfinite(b)
    if mask is not None:
        ok &= mask
    w = ok.astype(np.float64)
    a0, b0 = np.where(ok, a, 0.0), np.where(ok, b, 0.0)

    def g(x):
        return ndimage.gaussian_filter(x, sigma, mode="constant", truncate=3.5)

    norm = g(w)
    with np.errstate(invalid="ignore", divide="ignore"):
        mu_a, mu_b = g(a0) / norm, g(b0) / norm
        var_a = g(a0 * a0) / norm - mu_a**2
        var_b = g(b0 * b0) / norm - mu_b**2
        cov = g(a0 * b0) / norm - mu_a * mu_b
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    out = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)
           / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2)))
    return np.where(ok, out, np.nan)


def metrics(prediction: np.ndarray, reference: np.ndarray, mask: np.ndarray | None = None, *,
            data_range: float = LST_DATA_RANGE_K, spatial: bool = True) -> Metrics:
    """All metrics of ``prediction`` against ``reference`` where both are finite and ``mask``.

    Parameters
    ----------
    prediction, reference
        Arrays of one shape (K): ``(Y, X)`` or ``(T, Y, X)`` (SSIM per day, then averaged
        over days weighted by their pixel count).
    mask
        Pixels to compare; give every method the same mask.
    data_range
        Range (K) for SSIM and PSNR, :data:`LST_DATA_RANGE_K` by default.
    spatial
        Compute SSIM (needs the images' 2-D layout).
    """
    p = np.asarray(prediction, dtype=np.float64)
    t = np.asarray(reference, dtype=np.float64)
    ok = np.isfinite(p) & np.isfinite(t)
    if mask is not None:
        ok &= np.asarray(mask, dtype=bool)
    n = int(ok.sum())
    if n == 0:
        nan = float("nan")
        return Metrics(0, nan, nan, nan, nan, nan, nan, nan, nan)
    e = p[ok] - t[ok]
    mae, bias = float(np.abs(e).mean()), float(e.mean())
    mse = float((e * e).mean())
    rmse = float(np.sqrt(mse))
    ubrmse = float(np.sqrt(max(mse - bias * bias, 0.0)))
    pv, tv = p[ok] - p[ok].mean(), t[ok] - t[ok].mean()
    sst = float((tv * tv).sum())
    denom = float(np.sqrt((pv * pv).sum() * sst))
    r = float((pv * tv).sum() / denom) if denom > 0 else float("nan")
    r2 = 1.0 - float((e * e).sum()) / sst if sst > 0 else float("nan")
    psnr = 10 * np.log10(data_range**2 / mse) if mse > 0 else float("inf")
    ssim = float("nan")
    if spatial and p.ndim >= 2:
        images = p.reshape(-1, *p.shape[-2:]), t.reshape(-1, *t.shape[-2:])
        masks = ok.reshape(-1, *ok.shape[-2:])
        total = 0.0
        for a, b, m in zip(*images, masks):
            if m.any():
                total += float(np.nansum(ssim_map(a, b, m, data_range=data_range)))
        ssim = total / n
    return Metrics(n, mae, rmse, bias, ubrmse, r, r2, ssim, float(psnr))


def edge_mask(land_cover: np.ndarray) -> np.ndarray:
    """Pixels with another land-cover class in their 3 x 3 neighbourhood."""
    from scipy import ndimage

    lc = np.asarray(land_cover)
    return ndimage.maximum_filter(lc, 3) != ndimage.minimum_filter(lc, 3)


def grouped_metrics(prediction: np.ndarray, reference: np.ndarray, mask: np.ndarray, *,
                    land_cover: np.ndarray | None = None, class_names: dict | None = None,
                    data_range: float = LST_DATA_RANGE_K) -> dict[str, dict[str, Metrics]]:
    """Metrics overall, per day, per land-cover class and at edges / interior.

    Parameters
    ----------
    prediction, reference
        ``(T, Y, X)`` K.
    mask
        ``(T, Y, X)`` pixels to compare; the same for every method compared.
    land_cover
        ``(Y, X)`` class codes (or ``(T, Y, X)``); adds ``class`` and ``edge`` groups.
    class_names
        Code -> name for the ``class`` group keys.

    Returns
    -------
    dict
        ``{"overall": {"all": m}, "day": {i: m}, "class": {name: m},
        "edge": {"edge": m, "interior": m}}``.
    """
    p, t = np.asarray(prediction), np.asarray(reference)
    mask = np.asarray(mask, dtype=bool)
    out: dict[str, dict] = {
        "overall": {"all": metrics(p, t, mask, data_range=data_range)},
        "day": {i: metrics(p[i], t[i], mask[i], data_range=data_range)
                for i in range(p.shape[0])},
    }
    if land_cover is not None:
        lc = np.broadcast_to(np.asarray(land_cover), p.shape)
        names = class_names or {}
        out["class"] = {names.get(int(c), str(int(c))): metrics(
            p, t, mask & (lc == c), data_range=data_range, spatial=False)
            for c in np.unique(lc)}
        edges = np.stack([edge_mask(day) for day in lc]) if lc.ndim == 3 else edge_mask(lc)
        out["edge"] = {"edge": metrics(p, t, mask & edges, data_range=data_range,
                                       spatial=False),
                       "interior": metrics(p, t, mask & ~edges, data_range=data_range,
                                           spatial=False)}
    return out


def compare_with_truth(cube: Path | str, truth: Path | str) -> dict[str, Scores]:
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

ALL_METHODS = ("dlstfm", "reference_change", "starfm", "ubestarfm", "modis_only")


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

    import xarray as xr

    from lst_pipeline.errors import InputError
    from lst_pipeline.fusion.engine import plan_run, read_and_fuse
    from lst_pipeline.grid import Window
    from lst_pipeline.io.cube import Flag

    sim = config.simulation
    if sim is None or not Path(sim.truth).exists():
        where = "simulation.truth" if sim is None else str(sim.truth)
        raise InputError(f"{where}: evaluate needs the simulated truth store; run "
                         "`lst-pipeline simulate CONFIG` first (or give a config with a "
                         "`simulation:` section)")
    truth_ds = xr.open_zarr(sim.truth, consolidated=False)
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
    for t0 in range(0, n_days, time_block):
        t1 = min(t0 + time_block, n_days)
        for m, plan in plans.items():
            start = time.perf_counter()
            block = read_and_fuse(plan.task, t0, t1, whole, whole)
            seconds[m] += time.perf_counter() - start
            fused = Flag.fused(block.qa)
            preds[m][t0:t1] = np.where(fused, block.lst_k, np.nan)
            mask[t0:t1] &= fused
            if m == methods[0]:
                day = plan.task.first_day + np.arange(t0, t1)[:, None, None]
                age[t0:t1] = np.where(fused, np.abs(day - block.reference_day), np.nan)
                main_ref[t0:t1] = [_mode(r[f]) for r, f in zip(block.reference_day, fused)]
        log(f"days {t0}..{t1 - 1} fused by {len(methods)} methods")
    land_cover = truth_ds["land_cover"].values if "land_cover" in truth_ds else None
    if land_cover is not None and land_cover.ndim == 3:
        land_cover = land_cover[0]
    names = _class_names(truth_ds)
    groups = {m: grouped_metrics(preds[m], truth, mask, land_cover=land_cover,
                                 class_names=names) for m in methods}
    return Comparison(config=config, days=first.days, truth=truth, predictions=preds,
                      mask=mask, reference_age=age, land_cover=land_cover, groups=groups,
                      seconds=seconds, main_reference_day=main_ref)


def _mode(values: np.ndarray) -> int:
    if not values.size:
        return -1
    found, counts = np.unique(values, return_counts=True)
    return int(found[np.argmax(counts)])


def compare_methods_holdout(config: Any, methods: tuple[str, ...] = ALL_METHODS, *,
                            min_clear_fraction: float = 0.3, max_dates: int | None = None,
                            log=print) -> Comparison:
    """Leave-one-date-out: hide each clear Landsat date, predict it, compare with it.

    For every Landsat date inside the config's dates whose clear fraction is at least
    ``min_clear_fraction`` (at most ``max_dates`` of them, spread over the series), that
    date is removed from the candidate references, the day is fused from the remaining
    dates by every method (same reference selection as a run, observations not kept), and
    the predictions are compared with the hidden observation on the pixels it saw and
    every method fused (:func:`lst_pipeline.fusion.holdout.predict_held_out`). Works on any
    input stack: no truth needed.

    Raises
    ------
    InputError
        If no Landsat date qualifies.
    """
    from lst_pipeline.fusion.holdout import predict_held_out

    held = predict_held_out(config, methods, min_clear_fraction=min_clear_fraction,
                            max_dates=max_dates, log=log)
    groups = {m: grouped_metrics(held.predictions[m], held.truth, held.mask) for m in methods}
    return Comparison(config=config, days=held.days, truth=held.truth,
                      predictions=held.predictions, mask=held.mask,
                      reference_age=held.reference_age, land_cover=None, groups=groups,
                      seconds=held.seconds, reference_name="held-out Landsat",
                      main_reference_day=held.main_reference_day)


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


def write_report(comparison: Comparison, out_dir: Path | str, *, title: str = "") -> Path:
    """Write ``report.md``, ``report.html`` (images embedded) and the PNGs to ``out_dir``."""
    import base64
    import json
    import platform

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt


    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    c = comparison
    methods = list(c.predictions)
    counts = c.mask.sum(axis=(1, 2))
    t = int(np.argmax(counts))
    figures = {}

    # maps of the day with the most common pixels, shared colour scale and units: inputs
    # (main reference Landsat, target MODIS), each method, the truth; errors below
    inputs = _input_panels(c, t)
    truth_day = np.where(c.mask[t], c.truth[t], np.nan)
    lo, hi = np.nanpercentile(c.truth[t], [1, 99])
    err_lim = 5.0
    n_in = len(inputs)
    ncols = n_in + len(methods) + 1
    fig, axes = plt.subplots(2, ncols, figsize=(3.0 * ncols, 6.4), squeeze=False)
    for j, (name, img) in enumerate(inputs.items()):
        im = axes[0, j].imshow(img, vmin=lo, vmax=hi, cmap="inferno")
        axes[0, j].set_title(name, fontsize=9)
        axes[1, j].axis("off")
    if c.land_cover is not None and n_in:
        axes[1, 0].axis("on")
        axes[1, 0].imshow(c.land_cover, cmap="tab10", interpolation="nearest")
        axes[1, 0].set_title("land cover", fontsize=9)
    for i, m in enumerate(methods, start=n_in):
        p = np.where(c.mask[t], c.predictions[m][t], np.nan)
        im = axes[0, i].imshow(p, vmin=lo, vmax=hi, cmap="inferno")
        axes[0, i].set_title(m, fontsize=9)
        em = axes[1, i].imshow(p - truth_day, vmin=-err_lim, vmax=err_lim, cmap="RdBu_r")
        axes[1, i].set_title(f"{m} - {c.reference_name}", fontsize=9)
    axes[0, -1].imshow(truth_day, vmin=lo, vmax=hi, cmap="inferno")
    axes[0, -1].set_title(f"{c.reference_name} {np.datetime_as_string(c.days[t])}", fontsize=9)
    axes[1, -1].axis("off")
    for a in axes.ravel():
        a.set_xticks([])
        a.set_yticks([])
    fig.colorbar(im, ax=axes[0].tolist(), label="LST (K)", shrink=0.8)
    fig.colorbar(em, ax=axes[1].tolist(), label="error (K)", shrink=0.8)
    figures["maps"] = _save(fig, out / "maps.png")

    # density scatter per method
    fig, axes = plt.subplots(1, len(methods), figsize=(3.2 * len(methods), 3.2), squeeze=False)
    sel = c.mask
    tv = c.truth[sel]
    rng = np.random.default_rng(0)
    pick = rng.choice(tv.size, size=min(tv.size, 200_000), replace=False) if tv.size else []
    for a, m in zip(axes[0], methods):
        pv = c.predictions[m][sel]
        a.hexbin(tv[pick], pv[pick], gridsize=60, bins="log", cmap="viridis", mincnt=1)
        lim = [np.nanmin(tv), np.nanmax(tv)] if tv.size else [0, 1]
        a.plot(lim, lim, "k--", lw=0.8)
        a.set_title(m)
        a.set_xlabel(f"{c.reference_name} (K)")
        a.set_ylabel("predicted (K)")
    figures["scatter"] = _save(fig, out / "scatter.png")

    # error per day and error vs reference age
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(12, 3.6))
    for m in methods:
        mae = [c.groups[m]["day"][i].mae_k for i in range(len(c.days))]
        a1.plot(c.days, mae, ".-", ms=3, label=m)
        err = np.abs(c.predictions[m] - c.truth)
        ages = c.reference_age[sel]
        e = err[sel]
        bins = np.arange(0, np.nanmax(ages) + 2 if ages.size else 2, 2)
        idx = np.digitize(ages, bins)
        by_age = [(bins[i - 1], e[idx == i].mean()) for i in np.unique(idx) if (idx == i).sum()]
        if by_age:
            a2.plot(*zip(*by_age), ".-", label=m)
    a1.set_ylabel("MAE (K)")
    a1.tick_params(axis="x", labelrotation=30)
    a1.set_title("error per day (common mask)")
    a1.legend(fontsize=7)
    a2.set_xlabel("days to the nearest reference used")
    a2.set_ylabel("MAE (K)")
    a2.set_title("error vs reference age")
    figures["series"] = _save(fig, out / "error_series.png")

    cfg = c.config
    versions = _versions()
    group_lines = []
    for kind in ("class", "edge"):
        if kind in c.groups[methods[0]]:
            names = list(c.groups[methods[0]][kind])
            group_lines.append(f"\n### MAE (K) by {kind}\n")
            group_lines.append("| method | " + " | ".join(map(str, names)) + " |")
            group_lines.append("|---" * (len(names) + 1) + "|")
            for m in methods:
                cells = [f"{c.groups[m][kind][k].mae_k:.3f}" for k in names]
                group_lines.append(f"| `{m}` | " + " | ".join(cells) + " |")
    md = [f"# {title or 'Fusion methods compared: ' + cfg.name}", "",
          f"Region `{cfg.name}`: {c.truth.shape[1]} x {c.truth.shape[2]} px at "
          f"{cfg.grid.resolution:g} m (coarse x{cfg.grid.coarse_factor}), "
          f"{len(c.days)} days {c.days[0]} .. {c.days[-1]}, compared with the "
          f"{c.reference_name}" + (" (each date hidden from the references, predicted from "
                                   "the others: leave-one-date-out)"
                                   if c.reference_name != "truth" else "")
          + f". Every method scored on the same {int(c.mask.sum()):,} pixel-days (fused by "
          f"all methods, {c.reference_name} present). SSIM and PSNR with a "
          f"{LST_DATA_RANGE_K:g} K data range.", "",
          comparison_table(c.groups), *group_lines, "",
          "Fusion time (s, this process): " + ", ".join(
              f"{m} {s:.1f}" for m, s in c.seconds.items()), "",
          "![maps](maps.png)", "", "![scatter](scatter.png)", "",
          "![error per day and vs reference age](error_series.png)", "",
          "## Configuration and versions", "", "```json",
          json.dumps({"fusion": dataclasses.asdict(cfg.fusion), "grid":
                      dataclasses.asdict(cfg.grid), "versions": versions,
                      "python": platform.python_version()}, indent=1, default=str),
          "```", ""]
    text = "\n".join(md)
    (out / "report.md").write_text(text)
    html = text
    for path in figures.values():
        data = base64.b64encode(path.read_bytes()).decode()
        html = html.replace(f"({path.name})", f"(data:image/png;base64,{data})")
    (out / "report.html").write_text(_markdown_to_html(html))
    return out


def _input_panels(c: Comparison, t: int) -> dict[str, np.ndarray]:
    """The main reference Landsat and the target-day MODIS (coarse pixels) of day ``t``."""
    from lst_pipeline.errors import LSTPipelineError
    from lst_pipeline.grid import Window
    from lst_pipeline.io.stack import StackReader
    from lst_pipeline.resample import upsample_nearest

    try:
        reader = StackReader(c.config.inputs.stack)
    except LSTPipelineError:  # figures without the input panels are still a report
        return {}
    ny, nx = c.truth.shape[1:]
    f = c.config.grid.coarse_factor
    day = np.datetime64(c.days[t], "D")
    modis = reader.read_modis(np.array([day]), Window(0, ny // f, 0, nx // f))[0]
    panels = {}
    ref = -1 if c.main_reference_day is None else int(c.main_reference_day[t])
    ldays = reader.landsat_dates.astype("datetime64[D]").astype(np.int64)
    if ref >= 0 and ref in ldays:
        index = int(np.nonzero(ldays == ref)[0][0])
        date = np.datetime64(ref, "D")
        panels[f"reference Landsat {date}"] = reader.read_landsat(np.array([index]),
                                                                 Window(0, ny, 0, nx))[0]
    panels[f"target MODIS {day}"] = upsample_nearest(modis, f)
    return panels


def _save(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.savefig(path, dpi=90, bbox_inches="tight")
    plt.close(fig)
    return path


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("lst-pipeline", "numpy", "numba", "torch", "xarray", "dask", "zarr"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


def _markdown_to_html(md: str) -> str:
    """The small subset of Markdown the report uses, as standalone HTML."""
    import html as h
    import re

    body, in_table, in_code = [], False, False
    for line in md.splitlines():
        if line.startswith("```"):
            body.append("</pre>" if in_code else "<pre>")
            in_code = not in_code
            continue
        if in_code:
            body.append(h.escape(line))
            continue
        if line.startswith("|"):
            cells = [x.strip() for x in line.strip("|").split("|")]
            if set("".join(cells)) <= set("-"):
                continue
            tag = "th" if not in_table else "td"
            if not in_table:
                body.append("<table border=1 cellpadding=4>")
                in_table = True
            body.append("<tr>" + "".join(f"<{tag}>{h.escape(x).replace('`', '')}</{tag}>"
                                         for x in cells) + "</tr>")
            continue
        if in_table:
            body.append("</table>")
            in_table = False
        m = re.match(r"!\[(.*)\]\((.*)\)", line)
        if m:
            body.append(f'<p><img alt="{h.escape(m[1])}" src="{m[2]}"></p>')
        elif line.startswith("#"):
            level = len(line) - len(line.lstrip("#"))
            body.append(f"<h{level}>{h.escape(line.lstrip('# '))}</h{level}>")
        elif line:
            body.append(f"<p>{h.escape(line).replace('`', '')}</p>")
    if in_table:
        body.append("</table>")
    return ("<!doctype html><html><head><meta charset='utf-8'><title>lst_pipeline report"
            "</title></head><body style='font-family:sans-serif'>\n" + "\n".join(body)
            + "\n</body></html>\n")
