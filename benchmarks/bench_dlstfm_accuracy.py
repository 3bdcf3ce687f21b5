"""Accuracy of DLSTFM vs reference + coarse change on held-out simulated regions.

Regions are simulated with seeds never used in training (901, 902, 903 by default), one
year each at 30 m / 960 m. Both methods run through the same kernel, reference selection
and masks; scores are computed against the simulated fine truth over the pixel-days both
methods fused (clear target MODIS, usable reference; one reference or two blended). Before
2026-12-04 only pixel-days fused from one reference by both methods were scored: a subset that
depended on the methods' own predictions (whether two references agreed) and left out about
half of the fused pixel-days. Reported per method: MAE, RMSE, bias,
SSIM (per day, mean over days with >= 90 % of pixels fused), and MAE on pixels next to a
land-cover edge vs interior pixels. Appends a JSON line to ``results/dlstfm_accuracy.jsonl``.

Usage::

    .venv/bin/python benchmarks/bench_dlstfm_accuracy.py [--seeds 901 902 903] [--size 512]
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

import numpy as np
import xarray as xr
from _record import append_result, held_out_region
from scipy import ndimage

from lst_pipeline.fusion.engine import plan_run, read_and_fuse
from lst_pipeline.grid import Window
from lst_pipeline.io.cube import Flag
from lst_pipeline.model.checkpoint import DEFAULT_CHECKPOINT, file_sha256

METHODS = ("reference_change", "dlstfm")
SSIM_RANGE_K = 50.0


def ssim(a: np.ndarray, b: np.ndarray, data_range: float) -> float:
    """Mean structural similarity (Gaussian window, sigma 1.5) of two finite 2-D arrays."""
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    f = lambda x: ndimage.gaussian_filter(x, 1.5)  # noqa: E731
    mu_a, mu_b = f(a), f(b)
    var_a, var_b = f(a * a) - mu_a**2, f(b * b) - mu_b**2
    cov = f(a * b) - mu_a * mu_b
    num = (2 * mu_a * mu_b + c1) * (2 * cov + c2)
    return float((num / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))).mean())


def edge_mask(land_cover: np.ndarray) -> np.ndarray:
    """Pixels with another land-cover class in their 3x3 neighbourhood."""
    hi = ndimage.maximum_filter(land_cover, 3)
    lo = ndimage.minimum_filter(land_cover, 3)
    return hi != lo


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[901, 902, 903])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--time-block", type=int, default=32)
    parser.add_argument("--checkpoint", type=Path, default=None,
                        help="DLSTFM checkpoint to score (default: the shipped one)")
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()

    sums = {m: {k: 0.0 for k in ("n", "abs", "sq", "err", "n_edge", "abs_edge", "n_in",
                                 "abs_in")} for m in METHODS}
    ssims: dict[str, list[float]] = {m: [] for m in METHODS}
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="lst-acc-") as tmp:
        for seed in args.seeds:
            config = held_out_region(Path(tmp), seed, args.size, args.days)
            truth_ds = xr.open_zarr(config.simulation.truth, consolidated=False)
            edges = edge_mask(truth_ds["land_cover"].values)
            plans = {m: plan_run(dataclasses.replace(config, fusion=dataclasses.replace(
                config.fusion, method=m, device="cpu", checkpoint=args.checkpoint)))
                for m in METHODS}
            whole = Window(0, args.size, 0, args.size)
            for t0 in range(0, args.days, args.time_block):
                t1 = min(t0 + args.time_block, args.days)
                truth = truth_ds["lst"].isel(time=slice(t0, t1)).values
                blocks = {m: read_and_fuse(plans[m].task, t0, t1, whole, whole) for m in METHODS}
                both = np.ones(truth.shape, bool)
                for b in blocks.values():  # fused from one or two references, by every method
                    both &= Flag.fused(b.qa)
                for m, b in blocks.items():
                    e = (b.lst_k - truth)[both].astype(np.float64)
                    s = sums[m]
                    s["n"] += e.size
                    s["abs"] += np.abs(e).sum()
                    s["sq"] += (e * e).sum()
                    s["err"] += e.sum()
                    edge_sel = both & edges[None]
                    inner_sel = both & ~edges[None]
                    s["n_edge"] += edge_sel.sum()
                    s["abs_edge"] += np.abs(b.lst_k - truth)[edge_sel].sum()
                    s["n_in"] += inner_sel.sum()
                    s["abs_in"] += np.abs(b.lst_k - truth)[inner_sel].sum()
                    for k in range(t1 - t0):
                        if both[k].mean() >= 0.9:
                            pred = np.where(both[k], b.lst_k[k], truth[k])
                            ssims[m].append(ssim(pred, truth[k], SSIM_RANGE_K))
            print(f"region seed {seed} done ({time.perf_counter() - start:.0f} s)")
    table = {}
    for m in METHODS:
        s = sums[m]
        table[m] = {
            "mae_k": s["abs"] / s["n"], "rmse_k": float(np.sqrt(s["sq"] / s["n"])),
            "bias_k": s["err"] / s["n"], "ssim": float(np.mean(ssims[m])),
            "mae_edge_k": s["abs_edge"] / s["n_edge"], "mae_interior_k": s["abs_in"] / s["n_in"],
            "pixel_days": int(s["n"]),
        }
    ratio = table["dlstfm"]["mae_k"] / table["reference_change"]["mae_k"]
    print(f"{'method':<18}{'MAE':>8}{'RMSE':>8}{'bias':>8}{'SSIM':>8}{'MAE edge':>10}"
          f"{'MAE int.':>10}")
    for m, row in table.items():
        print(f"{m:<18}{row['mae_k']:8.3f}{row['rmse_k']:8.3f}{row['bias_k']:+8.3f}"
              f"{row['ssim']:8.4f}{row['mae_edge_k']:10.3f}{row['mae_interior_k']:10.3f}")
    print(f"DLSTFM MAE / reference_change MAE = {ratio:.3f} (target <= 0.70) over "
          f"{table['dlstfm']['pixel_days']:,} pixel-days")
    if not args.no_record:
        append_result("dlstfm_accuracy", {
            "benchmark": "dlstfm_accuracy", "seeds": args.seeds, "size": args.size,
            "days": args.days,
            "checkpoint_sha256": file_sha256(args.checkpoint or DEFAULT_CHECKPOINT),
            "methods": table, "mae_ratio": ratio, "date": time.strftime("%Y-%m-%d"),
        })


if __name__ == "__main__":
    main()
