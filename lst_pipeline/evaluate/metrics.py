"""Accuracy metrics: numpy kernels over one mask shared by every method.

:func:`scores` and :func:`metrics` (MAE, RMSE, bias, unbiased RMSE, Pearson r, R^2, SSIM,
PSNR); :func:`grouped_metrics` applies them per day, per land-cover class, at land-cover
edges / interior and overall.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

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
        """Scores from running sums (count, error, absolute and squared error)."""
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
        """The metrics as a plain dict."""
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


