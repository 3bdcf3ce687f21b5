"""STARFM and ubESTARFM kernels against plain, slow per-pixel implementations."""

import math

import numpy as np
import pytest

from lst_pipeline.errors import InputError
from lst_pipeline.fusion.baselines import starfm, ubestarfm


def slow_starfm(fine, coarse, target, window, classes, u_l, u_m):
    """STARFM as written in the docstring, one pixel and one neighbour at a time."""
    fine, coarse = np.atleast_3d(fine.T).T.astype(float), np.atleast_3d(coarse.T).T.astype(float)
    target = target.astype(float)
    n_pairs, ny, nx = fine.shape
    half = window // 2
    s_lm, s_mm = math.hypot(u_l, u_m), math.sqrt(2) * u_m
    out = np.full((ny, nx), np.nan)

    def valid(k, y, x):
        return all(np.isfinite(v) for v in (fine[k, y, x], coarse[k, y, x], target[y, x]))

    def window_of(y, x):
        return [(yy, xx) for yy in range(max(0, y - half), min(ny, y + half + 1))
                for xx in range(max(0, x - half), min(nx, x + half + 1))]

    for y in range(ny):
        for x in range(nx):
            pairs = [k for k in range(n_pairs) if valid(k, y, x)]
            if not pairs:
                continue
            s_max = max(abs(fine[k, y, x] - coarse[k, y, x]) for k in pairs) + s_lm
            t_max = max(abs(target[y, x] - coarse[k, y, x]) for k in pairs) + s_mm
            num = den = 0.0
            for k in range(n_pairs):
                # usable: fine, reference coarse and target coarse all present
                vals = [fine[k, yy, xx] for yy, xx in window_of(y, x) if valid(k, yy, xx)]
                if not valid(k, y, x):
                    continue
                h = max(2 * np.std(vals) / classes, u_l)
                for yy, xx in window_of(y, x):
                    if not valid(k, yy, xx):
                        continue
                    s = abs(fine[k, yy, xx] - coarse[k, yy, xx])
                    t = abs(target[yy, xx] - coarse[k, yy, xx])
                    if abs(fine[k, yy, xx] - fine[k, y, x]) > h or s > s_max or t > t_max:
                        continue
                    d = 1 + math.hypot(yy - y, xx - x) / half
                    w = 1 / ((s + s_lm) * (t + s_mm) * d)
                    num += w * (target[yy, xx] + fine[k, yy, xx] - coarse[k, yy, xx])
                    den += w
            if den > 0:
                out[y, x] = num / den
    return out


def random_scene(rng, shape=(18, 21), n_pairs=1, holes=0.05):
    """A textured fine reference, a smooth coarse one and a warmer target day.

    Values are multiples of 1/8 K (exact in float32), so that no neighbour sits within
    float32 rounding of a selection threshold and both implementations select alike.
    """
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    classes = ((yy // 5 + xx // 4) % 3).astype(float)
    fine = 295 + 4 * classes + rng.normal(0, 1.0, (n_pairs, *shape))
    coarse = 294 + 0.3 * xx + rng.normal(0, 0.5, (n_pairs, *shape))
    target = 301 + 0.2 * yy + rng.normal(0, 0.5, shape)
    fine[rng.random(fine.shape) < holes] = np.nan
    coarse[rng.random(coarse.shape) < holes / 2] = np.nan
    target[rng.random(shape) < holes / 2] = np.nan
    return tuple((np.round(a * 8) / 8).astype(np.float32) for a in (fine, coarse, target))


@pytest.mark.parametrize("n_pairs,window,classes", [(1, 7, 4), (2, 5, 2), (1, 9, 1)])
def test_starfm_equals_slow_reference(n_pairs, window, classes):
    fine, coarse, target = random_scene(np.random.default_rng(n_pairs + window), n_pairs=n_pairs)
    fast = starfm(fine, coarse, target, window=window, classes=classes,
                  landsat_uncertainty_k=0.5, modis_uncertainty_k=1.0)
    slow = slow_starfm(fine, coarse, target, window, classes, 0.5, 1.0)
    np.testing.assert_array_equal(np.isnan(fast), np.isnan(slow))
    assert np.isfinite(fast).mean() > 0.8
    np.testing.assert_allclose(fast[np.isfinite(fast)], slow[np.isfinite(slow)], atol=2e-3)


def test_starfm_recovers_a_uniform_change_and_keeps_detail():
    rng = np.random.default_rng(3)
    fine = (300 + 5 * rng.random((40, 40))).astype(np.float32)
    coarse = np.full_like(fine, 301.0)
    out = starfm(fine, coarse, coarse + 4.0, window=11)
    # every neighbour predicts its own fine + 4 K; similar neighbours are within 2 sigma / 4
    assert np.abs(out - (fine + 4.0)).max() < 0.6
    assert np.corrcoef(out.ravel(), fine.ravel())[0, 1] > 0.97


def test_starfm_bad_input_is_a_clear_error():
    a = np.zeros((8, 8), np.float32)
    with pytest.raises(InputError, match="window must be odd"):
        starfm(a, a, a, window=4)
    with pytest.raises(InputError, match="shapes differ"):
        starfm(a, a, a[:4])


def slow_ubestarfm(f1, c1, f2, c2, c0, window, classes, regression, min_k=250.0,
                   max_k=350.0):
    """ubESTARFM one pixel at a time, after the authors' R code (local std threshold)."""
    f1, c1, f2, c2, c0 = (a.astype(float) for a in (f1, c1, f2, c2, c0))
    ny, nx = f1.shape
    half = window // 2
    ok = np.isfinite(f1) & np.isfinite(f2) & np.isfinite(c1) & np.isfinite(c2) & np.isfinite(c0)
    out = np.full((ny, nx), np.nan)
    for y in range(ny):
        for x in range(nx):
            if not ok[y, x]:
                continue
            win = (slice(max(0, y - half), y + half + 1), slice(max(0, x - half), x + half + 1))
            th1 = 2 * np.nanstd(f1[win]) / classes
            th2 = 2 * np.nanstd(f2[win]) / classes
            v = ok[win]
            sim = v & (np.abs(f1[win] - f1[y, x]) < th1) & (np.abs(f2[win] - f2[y, x]) < th2)
            d1 = np.mean(c0[win][v] - c1[win][v]) + 1e-10
            d2 = np.mean(c0[win][v] - c2[win][v]) + 1e-10
            t1 = (1 / abs(d1)) / (1 / abs(d1) + 1 / abs(d2))
            t2 = 1 - t1
            if sim.sum() <= 5:
                p1 = f1[y, x] - f1[win][v].mean() + c1[win][v].mean() + d1
                p2 = f2[y, x] - f2[win][v].mean() + c2[win][v].mean() + d2
                out[y, x] = t1 * p1 + t2 * p2
                continue
            o1 = c1[win][sim].mean() - f1[win][sim].mean()
            o2 = c2[win][sim].mean() - f2[win][sim].mean()
            g1, g2 = f1[win][sim] + o1, f2[win][sim] + o2
            b1, b2, b0 = c1[win][sim], c2[win][sim], c0[win][sim]
            r = 1 - 0.5 * (np.abs((g1 - b1) / (g1 + b1)) + np.abs((g2 - b2) / (g2 + b2)))
            r[(r > 1) | (r < -1)] = 0.5
            yy, xx = np.nonzero(sim)
            yy, xx = yy + win[0].start, xx + win[1].start
            dist = 1 + np.hypot(yy - y, xx - x) / half
            w = 1 / ((1 - r) * dist + 1e-7)
            w = w / w.sum()
            conv = 1.0
            if regression:
                g, b = np.concatenate([g1, g2]), np.concatenate([b1, b2])
                var_c, var_f = ((b - b.mean()) ** 2).sum(), ((g - g.mean()) ** 2).sum()
                cov = ((g - g.mean()) * (b - b.mean())).sum()
                if var_c > 1e-6 and var_f > 1e-6 and cov * cov >= 0.25 * var_c * var_f \
                        and 0 < cov / var_c < 3:
                    conv = cov / var_c
            p1 = f1[y, x] + o1 + conv * (w * (b0 - b1)).sum()
            p2 = f2[y, x] + o2 + conv * (w * (b0 - b2)).sum()
            pred = t1 * p1 + t2 * p2
            if pred <= min_k or pred >= max_k:
                pred = t1 * (w * g1).sum() + t2 * (w * g2).sum()
            out[y, x] = pred
    return out


@pytest.mark.parametrize("window,classes,conversion", [(5, 2, "regression"), (7, 2, "unit"),
                                                        (5, 8, "regression")])
def test_ubestarfm_equals_slow_reference(window, classes, conversion):
    rng = np.random.default_rng(window * classes)
    fine, coarse, target = random_scene(rng, shape=(14, 15), n_pairs=2)
    coarse[1] = coarse[1] + 2.0  # the pairs differ in time
    fine[1] = fine[1] + 1.5
    fast = ubestarfm(fine[0], coarse[0], fine[1], coarse[1], target, window=window,
                     classes=classes, conversion=conversion)
    slow = slow_ubestarfm(fine[0], coarse[0], fine[1], coarse[1], target, window, classes,
                          conversion == "regression")
    np.testing.assert_array_equal(np.isnan(fast), np.isnan(slow))
    assert np.isfinite(fast).mean() > 0.7
    np.testing.assert_allclose(fast[np.isfinite(fast)], slow[np.isfinite(slow)], atol=2e-3)


def test_ubestarfm_needs_two_pairs_of_one_shape():
    a = np.zeros((8, 8), np.float32)
    with pytest.raises(InputError, match="five"):
        ubestarfm(a, a, a, a[:4], a)
    with pytest.raises(InputError, match="conversion"):
        ubestarfm(a, a, a, a, a, conversion="magic")


def test_ubestarfm_on_real_yanco_agrees_with_the_authors_result():
    """Real data: 2016-02-18 predicted from the 2016-02-05 pair (given twice: the authors'
    second pair is not in the sample), compared with the authors' own ubESTARFM output."""
    from pathlib import Path

    import rasterio

    data = Path(__file__).parents[1] / "data" / "yanco"
    crop = (slice(100, 200), slice(100, 200))

    def read(name):
        with rasterio.open(data / name) as src:
            a = src.read(1)[crop].astype(np.float32)
            a[a == np.float32(src.nodata)] = np.nan
        return a

    fine = read("Landsat_LST_cloudrm_20160205.tif")
    c1 = read("MOD11A1_LST_cloudrm_20160205.tif")
    c0 = read("MOD11A1_LST_cloudrm_20160218.tif")
    authors = read("fused_result_ubESTARFM_pred20160218.tif")
    assert np.isfinite(fine).mean() > 0.99 and 290 < np.nanmean(fine) < 320
    ours = ubestarfm(fine, c1, fine, c1, c0, window=51, conversion="unit")
    both = np.isfinite(ours) & np.isfinite(authors)
    assert both.mean() > 0.99
    mad = np.abs(ours - authors)[both].mean()
    naive = np.abs(fine + c0 - c1 - authors)[both].mean()
    assert mad < 0.7  # K; the naive reference + coarse change is about 1.1 K away
    assert mad < naive - 0.3
    assert abs((ours - authors)[both].mean()) < 0.2  # both unbiased towards MODIS
