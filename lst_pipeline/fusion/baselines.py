"""Classical fusion baselines as numpy/numba kernels: STARFM and ubESTARFM.

Plain arrays in, plain arrays out; no Dask, no I/O (the engine wraps them through
:mod:`lst_pipeline.fusion.methods`). All inputs are on the fine grid: the coarse images are
already upsampled (bilinear) by the caller, and NaN marks unusable pixels.

Every output pixel depends only on the inputs inside its moving window, and every sum is
taken in a fixed order relative to the central pixel, so a block computed with a halo of
half a window equals the whole-scene result bit for bit.

References
----------
Gao, F., Masek, J., Schwaller, M., Hall, F. (2006). On the blending of the Landsat and MODIS
surface reflectance: predicting daily Landsat surface reflectance. IEEE TGRS 44(8), 2207-2218.

Zhu, X., Chen, J., Gao, F., Chen, X., Masek, J. G. (2010). An enhanced spatial and temporal
adaptive reflectance fusion model for complex heterogeneous regions. RSE 114(11), 2610-2623.

Yu, Y., Renzullo, L. J., McVicar, T. R., Van Niel, T. G., Cai, D., Tian, S., Ma, Y. (2023).
ubESTARFM: a local unbiased ESTARFM for LST fusion. Remote Sensing of Environment.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from lst_pipeline.errors import InputError, MissingDependencyError
from lst_pipeline.fusion.registry import StarfmParams, UbestarfmParams

#: The defaults of the kernels are the configuration's (one place: the registry).
_STARFM, _UBESTARFM = StarfmParams(), UbestarfmParams()


def _numba():
    try:
        import numba
    except ImportError as exc:  # pragma: no cover - numba is a dependency
        raise MissingDependencyError(
            "the STARFM/ubESTARFM kernels need numba; pip install numba") from exc
    return numba


_KERNELS: dict[str, Callable[..., Any]] = {}
#: fast-math without ``nnan``/``ninf``: NaN and inf keep their IEEE meaning in the kernels
_FAST = {"nsz", "arcp", "contract", "afn", "reassoc"}


def _kernels() -> dict[str, Callable[..., Any]]:
    """Compile (once per process, cached on disk) the numba loops."""
    if _KERNELS:
        return _KERNELS
    numba = _numba()
    njit, prange = numba.njit, numba.prange

    @njit(parallel=True, cache=True)
    def window_std(values, half):  # pragma: no cover - compiled
        """Std of the finite values in each pixel's (2 half + 1)^2 window (NaN if none).

        Column sums then row sums, each in a fixed order relative to the centre.
        """
        ny, nx = values.shape
        cols = np.zeros((3, ny, nx), dtype=np.float64)
        for y in prange(ny):
            for dy in range(-half, half + 1):
                yy = y + dy
                if yy < 0 or yy >= ny:
                    continue
                for x in range(nx):
                    v = values[yy, x]
                    if v == v:
                        cols[0, y, x] += 1.0
                        cols[1, y, x] += v
                        cols[2, y, x] += v * v
        out = np.full((ny, nx), np.nan, dtype=np.float32)
        for y in prange(ny):
            for x in range(nx):
                n = 0.0
                s = 0.0
                s2 = 0.0
                for dx in range(-half, half + 1):
                    xx = x + dx
                    if xx < 0 or xx >= nx:
                        continue
                    n += cols[0, y, xx]
                    s += cols[1, y, xx]
                    s2 += cols[2, y, xx]
                if n > 0:
                    mean = s / n
                    var = max(s2 / n - mean * mean, 0.0)
                    out[y, x] = math.sqrt(var)
        return out

    @njit(parallel=True, cache=True, fastmath=_FAST, error_model="numpy")
    def starfm_rows(fine, h, thr_s, thr_t, s_diff, t_diff, inv_c, value, base, inv_d,
                    half):  # pragma: no cover - compiled
        """Weighted sum over similar, filtered neighbours; row-parallel, x-vectorised.

        The innermost loop runs over contiguous slices (one per window offset) so that LLVM
        vectorises it; per pixel, terms are added in a fixed (pair, dy, dx) order.
        """
        n_pairs, ny, nx = fine.shape
        num = np.zeros((ny, nx), dtype=np.float32)
        den = np.zeros((ny, nx), dtype=np.float32)
        for y in prange(ny):
            acc_n = np.zeros(nx, dtype=np.float32)
            acc_d = np.zeros(nx, dtype=np.float32)
            for k in range(n_pairs):
                for dy in range(-half, half + 1):
                    yy = y + dy
                    if yy < 0 or yy >= ny:
                        continue
                    for dx in range(-half, half + 1):
                        wd = inv_d[dy + half, dx + half]
                        x0 = max(0, -dx)
                        x1 = min(nx, nx - dx)
                        fs = fine[k, yy, x0 + dx:x1 + dx]
                        ss = s_diff[k, yy, x0 + dx:x1 + dx]
                        ts = t_diff[k, yy, x0 + dx:x1 + dx]
                        cs = inv_c[k, yy, x0 + dx:x1 + dx]
                        vs = value[k, yy, x0 + dx:x1 + dx]
                        ce = fine[k, y, x0:x1]
                        hh = h[k, y, x0:x1]
                        ms = thr_s[y, x0:x1]
                        mt = thr_t[y, x0:x1]
                        bb = base[y, x0:x1]
                        an = acc_n[x0:x1]
                        ad = acc_d[x0:x1]
                        for i in range(x1 - x0):
                            d = fs[i] - ce[i]
                            ok = (d <= hh[i]) and (d >= -hh[i]) and (ss[i] <= ms[i]) \
                                and (ts[i] <= mt[i])
                            w = wd * cs[i] if ok else np.float32(0.0)
                            an[i] += w * (vs[i] - bb[i])
                            ad[i] += w
            num[y] = acc_n
            den[y] = acc_d
        return num, den

    @njit(parallel=True, cache=True, fastmath=_FAST, error_model="numpy")
    def ubestarfm_pixels(f1, f2, c1, c2, c0, th1, th2, inv_d, half, regression, min_k,
                         max_k):  # pragma: no cover - compiled
        """UbESTARFM per pixel (Yu et al. 2023, after the authors' R code), row-parallel."""
        ny, nx = f1.shape
        out = np.full((ny, nx), np.nan, dtype=np.float32)
        for y in prange(ny):
            y0 = max(0, y - half)
            y1 = min(ny, y + half + 1)
            for x in range(nx):
                if not (f1[y, x] == f1[y, x] and f2[y, x] == f2[y, x] and c1[y, x] == c1[y, x]
                        and c2[y, x] == c2[y, x] and c0[y, x] == c0[y, x]):
                    continue
                x0 = max(0, x - half)
                x1 = min(nx, x + half + 1)
                # pass 1: sums over valid and over similar pixels
                nv = 0.0
                v_f1 = v_f2 = v_c1 = v_c2 = v_d1 = v_d2 = 0.0
                ns = 0.0
                s_f1 = s_f2 = s_c1 = s_c2 = 0.0
                s_ff = s_cc = s_fc = 0.0
                cf1 = f1[y, x]
                cf2 = f2[y, x]
                h1 = th1[y, x]
                h2 = th2[y, x]
                for yy in range(y0, y1):
                    for xx in range(x0, x1):
                        a1 = f1[yy, xx]
                        a2 = f2[yy, xx]
                        b1 = c1[yy, xx]
                        b2 = c2[yy, xx]
                        b0 = c0[yy, xx]
                        if not (a1 == a1 and a2 == a2 and b1 == b1 and b2 == b2 and b0 == b0):
                            continue
                        nv += 1.0
                        v_f1 += a1
                        v_f2 += a2
                        v_c1 += b1
                        v_c2 += b2
                        v_d1 += b0 - b1
                        v_d2 += b0 - b2
                        if (abs(a1 - cf1) < h1) and (abs(a2 - cf2) < h2):
                            ns += 1.0
                            s_f1 += a1
                            s_f2 += a2
                            s_c1 += b1
                            s_c2 += b2
                            s_ff += a1 * a1 + a2 * a2
                            s_cc += b1 * b1 + b2 * b2
                            s_fc += a1 * b1 + a2 * b2
                d1 = v_d1 / nv + 1e-10
                d2 = v_d2 / nv + 1e-10
                t1 = (1.0 / abs(d1)) / (1.0 / abs(d1) + 1.0 / abs(d2))
                t2 = 1.0 - t1
                if ns <= 5.0:  # too few similar pixels: all valid pixels of the window
                    p1 = f1[y, x] - v_f1 / nv + v_c1 / nv + d1
                    p2 = f2[y, x] - v_f2 / nv + v_c2 / nv + d2
                    out[y, x] = t1 * p1 + t2 * p2
                    continue
                # local bias correction: similar fine pixels shifted onto the coarse mean
                o1 = s_c1 / ns - s_f1 / ns
                o2 = s_c2 / ns - s_f2 / ns
                # pass 2: weights, weighted coarse changes and the conversion coefficient
                sw = sw_d1 = sw_d2 = sw_f1 = sw_f2 = 0.0
                for yy in range(y0, y1):
                    for xx in range(x0, x1):
                        a1 = f1[yy, xx]
                        a2 = f2[yy, xx]
                        b1 = c1[yy, xx]
                        b2 = c2[yy, xx]
                        b0 = c0[yy, xx]
                        if not (a1 == a1 and a2 == a2 and b1 == b1 and b2 == b2 and b0 == b0):
                            continue
                        if not ((abs(a1 - cf1) < h1) and (abs(a2 - cf2) < h2)):
                            continue
                        g1 = a1 + o1
                        g2 = a2 + o2
                        r = 1.0 - 0.5 * (abs((g1 - b1) / (g1 + b1)) + abs((g2 - b2) / (g2 + b2)))
                        if r > 1.0 or r < -1.0:
                            r = 0.5
                        w = 1.0 / ((1.0 - r) * (1.0 / inv_d[yy - y + half, xx - x + half])
                                   + 1e-7)
                        sw += w
                        sw_d1 += w * (b0 - b1)
                        sw_d2 += w * (b0 - b2)
                        sw_f1 += w * g1
                        sw_f2 += w * g2
                v = 1.0
                # fine on coarse over the similar pixels of both dates, each date with its
                # bias removed (the shift by o1, o2 does not change the slope's inputs
                # beyond centring, so it is computed from the uncorrected sums)
                n2 = 2.0 * ns
                g_sum = s_f1 + s_f2 + ns * (o1 + o2)
                g_sq = s_ff + 2.0 * (o1 * s_f1 + o2 * s_f2) + ns * (o1 * o1 + o2 * o2)
                gc = s_fc + o1 * s_c1 + o2 * s_c2
                c_sum = s_c1 + s_c2
                cov = gc - g_sum * c_sum / n2
                var_c = s_cc - c_sum * c_sum / n2
                var_f = g_sq - g_sum * g_sum / n2
                if regression and var_c > 1e-6 and var_f > 1e-6:
                    slope = cov / var_c
                    if cov * cov >= 0.25 * var_c * var_f and 0.0 < slope < 3.0:
                        v = slope  # significant enough (|r| >= 0.5) and physical
                p1 = f1[y, x] + o1 + v * sw_d1 / sw
                p2 = f2[y, x] + o2 + v * sw_d2 / sw
                pred = t1 * p1 + t2 * p2
                if pred <= min_k or pred >= max_k:
                    pred = t1 * sw_f1 / sw + t2 * sw_f2 / sw
                out[y, x] = pred
        return out

    _KERNELS.update(window_std=window_std, starfm_rows=starfm_rows,
                    ubestarfm_pixels=ubestarfm_pixels)
    return _KERNELS


def distance_weights(half: int) -> np.ndarray:
    """Inverse relative distance ``1 / (1 + d / half)`` over a ``(2 half + 1)^2`` window.

    ``d`` is the Euclidean distance to the centre in pixels (Gao et al. 2006, eq. 8, with
    the window half-width as the distance scale, as ESTARFM and ubESTARFM use).
    """
    d = np.hypot(*np.mgrid[-half:half + 1, -half:half + 1])
    return (1.0 / (1.0 + d / max(half, 1))).astype(np.float32)


def _as_pairs(a: np.ndarray, name: str) -> np.ndarray:
    a = np.asarray(a, dtype=np.float32)
    if a.ndim == 2:
        a = a[None]
    if a.ndim != 3:
        raise InputError(f"{name}: expected (pairs, y, x) or (y, x), got shape {a.shape}")
    return np.ascontiguousarray(a)


def starfm(fine_ref: np.ndarray, coarse_ref: np.ndarray, coarse_target: np.ndarray, *,
           window: int = _STARFM.window, classes: int = _STARFM.classes,
           landsat_uncertainty_k: float = _STARFM.landsat_uncertainty_k,
           modis_uncertainty_k: float = _STARFM.modis_uncertainty_k) -> np.ndarray:
    """Predict fine LST with STARFM (Gao et al. 2006) from one or more reference pairs.

    For each central pixel and each pair ``k``, neighbours in the window are candidates when
    (1) they are spectrally similar to the centre on the fine reference,
    ``|L_k(n) - L_k(c)| <= max(2 sigma_k(c) / classes, landsat_uncertainty_k)`` with
    ``sigma_k(c)`` the standard deviation of ``L_k`` over the window's usable pixels (fine,
    reference coarse and target coarse present), and (2) they pass the
    sample filter of Gao's eq. 9-10: spectral difference ``S = |L_k - M_k|`` and temporal
    difference ``T = |M_target - M_k|`` no larger than the centre's (maximum over pairs)
    plus their uncertainties ``sigma_LM = sqrt(u_L^2 + u_M^2)`` and ``sigma_MM = sqrt(2) u_M``.
    Each candidate predicts ``M_target(n) + L_k(n) - M_k(n)`` with weight
    ``1 / ((S + sigma_LM) (T + sigma_MM) D)``, ``D = 1 + d / half`` (the uncertainties keep
    the weights finite where ``S`` or ``T`` is zero).

    Parameters
    ----------
    fine_ref
        ``(K, Y, X)`` (or ``(Y, X)``) reference fine LST (K), NaN unusable.
    coarse_ref
        ``(K, Y, X)`` reference coarse LST upsampled onto the fine grid.
    coarse_target
        ``(Y, X)`` target-day coarse LST upsampled onto the fine grid.
    window
        Odd moving-window width in fine pixels.
    classes
        Number of classes ``m`` of the similarity threshold ``2 sigma / m``.
    landsat_uncertainty_k, modis_uncertainty_k
        Uncertainties of the fine and coarse LST (K), both > 0.

    Returns
    -------
    numpy.ndarray
        ``(Y, X)`` float32 predicted fine LST; NaN where the target coarse value or every
        reference of the centre is missing.
    """
    fine = _as_pairs(fine_ref, "fine_ref")
    coarse = _as_pairs(coarse_ref, "coarse_ref")
    target = np.asarray(coarse_target, dtype=np.float32)
    if coarse.shape != fine.shape or target.shape != fine.shape[1:]:
        raise InputError(f"starfm: shapes differ: fine {fine.shape}, coarse {coarse.shape}, "
                         f"target {target.shape}")
    if window < 1 or window % 2 == 0:
        raise InputError(f"starfm: window must be odd and >= 1, got {window}")
    half = window // 2
    k = _kernels()
    sigma_lm = np.float32(math.hypot(landsat_uncertainty_k, modis_uncertainty_k))
    sigma_mm = np.float32(math.sqrt(2.0) * modis_uncertainty_k)
    valid = np.isfinite(fine) & np.isfinite(coarse) & np.isfinite(target)
    fine = np.where(valid, fine, np.float32(np.nan))
    with np.errstate(invalid="ignore"):
        s_diff = np.where(valid, np.abs(fine - coarse), np.float32(np.inf)).astype(np.float32)
        t_diff = np.where(valid, np.abs(target - coarse), np.float32(np.inf)).astype(np.float32)
    any_valid = valid.any(axis=0)
    # the centre's own differences (maximum over its valid pairs) bound the candidates'
    thr_s = np.where(any_valid, np.where(valid, s_diff, -np.inf).max(axis=0) + sigma_lm,
                     -np.inf).astype(np.float32)
    thr_t = np.where(any_valid, np.where(valid, t_diff, -np.inf).max(axis=0) + sigma_mm,
                     -np.inf).astype(np.float32)
    h = np.empty_like(fine)
    for i in range(fine.shape[0]):
        h[i] = np.maximum(2.0 * k["window_std"](fine[i], half) / classes,
                          np.float32(landsat_uncertainty_k))
    h = np.where(np.isfinite(h), h, np.float32(-1.0)).astype(np.float32)
    inv_c = np.where(valid, 1.0 / ((s_diff + sigma_lm) * (t_diff + sigma_mm)),
                     0.0).astype(np.float32)
    with np.errstate(invalid="ignore"):
        value = np.where(valid, target + fine - coarse, 0.0).astype(np.float32)
    # sums of values relative to the centre's target coarse LST stay accurate in float32
    base = np.where(np.isfinite(target), target, 0.0).astype(np.float32)
    num, den = k["starfm_rows"](fine, h, thr_s, thr_t, s_diff, t_diff, inv_c, value, base,
                                distance_weights(half), half)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(any_valid & (den > 0), target + num / den, np.float32(np.nan))
    return out.astype(np.float32)


def ubestarfm(fine_before: np.ndarray, coarse_before: np.ndarray, fine_after: np.ndarray,
              coarse_after: np.ndarray, coarse_target: np.ndarray, *,
              window: int = _UBESTARFM.window, classes: int = _UBESTARFM.classes,
              conversion: str = _UBESTARFM.conversion, min_k: float = _UBESTARFM.min_k,
              max_k: float = _UBESTARFM.max_k) -> np.ndarray:
    """Predict fine LST with ubESTARFM from a reference pair before and one after the day.

    ESTARFM (Zhu et al., 2010) with the local bias correction of ubESTARFM (Yu et al.,
    2023), following the authors' published algorithm: for each central pixel, similar
    pixels are those within ``2 sigma / classes`` of the centre on both fine references
    (``sigma``: standard deviation of each fine reference in the window; the authors use
    the standard deviation of a 200 x 200 patch, which would make the result depend on the
    tiling). The fine references are shifted so that the similar pixels' mean equals the
    coarse mean (zero local bias); the similar pixels are weighted by
    ``1 / ((1 - R) D)`` with ``R`` ESTARFM's spectral agreement of fine and coarse and
    ``D = 1 + d / half``; each pair predicts centre + conversion coefficient x weighted
    coarse change, and the two predictions are blended by the inverse of the window's mean
    coarse change since each reference date. Fewer than 6 similar pixels: all valid pixels
    of the window, no weighting.

    Parameters
    ----------
    fine_before, coarse_before, fine_after, coarse_after
        ``(Y, X)`` fine LST and coarse LST upsampled onto the fine grid (K) of the two
        reference dates, NaN unusable.
    coarse_target
        ``(Y, X)`` target-day coarse LST on the fine grid.
    window, classes, conversion, min_k, max_k
        See :class:`~lst_pipeline.fusion.registry.UbestarfmParams`.

    Returns
    -------
    numpy.ndarray
        ``(Y, X)`` float32; NaN where any input of the centre is missing.
    """
    arrays = [np.ascontiguousarray(a, dtype=np.float32)
              for a in (fine_before, coarse_before, fine_after, coarse_after, coarse_target)]
    if any(a.ndim != 2 or a.shape != arrays[0].shape for a in arrays):
        raise InputError("ubestarfm: needs five (y, x) arrays of one shape (fine and coarse "
                         "before, fine and coarse after, target coarse); got "
                         f"{[a.shape for a in arrays]}")
    if window < 3 or window % 2 == 0:
        raise InputError(f"ubestarfm: window must be odd and >= 3, got {window}")
    if conversion not in ("regression", "unit"):
        raise InputError(f"ubestarfm: conversion must be regression or unit, got {conversion!r}")
    f1, c1, f2, c2, c0 = arrays
    half = window // 2
    k = _kernels()
    th1 = (2.0 * k["window_std"](f1, half) / classes).astype(np.float32)
    th2 = (2.0 * k["window_std"](f2, half) / classes).astype(np.float32)
    return k["ubestarfm_pixels"](f1, f2, c1, c2, c0, th1, th2, distance_weights(half), half,
                                 conversion == "regression", float(min_k), float(max_k))
