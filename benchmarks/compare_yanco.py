"""Real Yanco sample: each method predicts 2016-02-18 from the 2016-02-05 pair; agreement
with the ubESTARFM authors' own fused result (not accuracy: no Landsat exists that day).

Inputs (yuyi13/ubESTARFM, MIT; see /work/shared/data/real/PROVENANCE.md): Landsat LST
2016-02-05 and MOD11A1 2016-02-05 / 2016-02-18, already on one 400 x 400 grid of 0.001 deg
(MODIS resampled to it by the authors, 10 x 10 blocks). The kernels run on these numpy
arrays directly, the MODIS treated as coarse images already on the fine grid. The authors
ran ubESTARFM with a second pair (2016-03-08) that is not in the sample; our ``ubestarfm``
gets the one pair twice (then both pair predictions coincide). Appends to
``results/yanco.jsonl`` and writes a figure to ``--out``.

Usage::

    .venv/bin/python benchmarks/compare_yanco.py --out /tmp/yanco [--data DIR]
"""

from __future__ import annotations

import argparse
import subprocess
import time
from pathlib import Path

import numpy as np
from _record import append_result

from lst_pipeline.evaluate import metrics
from lst_pipeline.fusion.baselines import starfm, ubestarfm

DATA = Path("/work/shared/data/real/yanco")


def read(path: Path) -> np.ndarray:
    import rasterio

    with rasterio.open(path) as src:
        a = src.read(1).astype(np.float32)
        nodata = src.nodata
    a[(a < 150) | (a > 400) | (a == nodata)] = np.nan  # nodata -3.4e38
    return a


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()
    fine = read(args.data / "Landsat_LST_cloudrm_20160205.tif")
    c1 = read(args.data / "MOD11A1_LST_cloudrm_20160205.tif")
    c0 = read(args.data / "MOD11A1_LST_cloudrm_20160218.tif")
    authors = read(args.data / "fused_result_ubESTARFM_pred20160218.tif")
    preds = {
        "modis_only": c0,
        "reference_change": fine + (c0 - c1),
        # window 51 px = 5.1 km as the authors' ubESTARFM (w = 25)
        "starfm": starfm(fine, c1, c0, window=51),
        "ubestarfm (unit)": ubestarfm(fine, c1, fine, c1, c0, window=51, conversion="unit"),
        "ubestarfm (regression)": ubestarfm(fine, c1, fine, c1, c0, window=51),
    }
    common = np.isfinite(authors)
    for p in preds.values():
        common &= np.isfinite(p)
    rows = {}
    print(f"agreement with the authors' ubESTARFM 2016-02-18 over {int(common.sum()):,} px")
    print(f"{'method':<24}{'MAD':>8}{'RMSD':>8}{'mean diff':>11}{'r':>8}{'SSIM':>8}")
    for name, p in preds.items():
        m = metrics(p, authors, common)
        rows[name] = m.as_dict()
        print(f"{name:<24}{m.mae_k:8.3f}{m.rmse_k:8.3f}{m.bias_k:+11.3f}{m.r:8.3f}{m.ssim:8.3f}")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    args.out.mkdir(parents=True, exist_ok=True)
    panels = {"Landsat 2016-02-05": fine, "MODIS 2016-02-18": c0,
              "authors' ubESTARFM": authors, **preds}
    lo, hi = np.nanpercentile(authors, [1, 99])
    fig, axes = plt.subplots(2, 4, figsize=(16, 8.4))
    for a, (name, img) in zip(axes.ravel(), panels.items()):
        im = a.imshow(img, vmin=lo, vmax=hi, cmap="inferno")
        a.set_title(name)
        a.set_xticks([])
        a.set_yticks([])
    fig.colorbar(im, ax=axes.ravel().tolist(), label="LST (K)", shrink=0.7)
    fig.savefig(args.out / "yanco_20160218.png", dpi=80, bbox_inches="tight")
    print(f"figure: {args.out / 'yanco_20160218.png'}")
    if not args.no_record:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True).stdout.strip()
        append_result("yanco", {"benchmark": "yanco_agreement", "commit": commit,
                                "date": time.strftime("%Y-%m-%d"), "pixels": int(common.sum()),
                                "against": "fused_result_ubESTARFM_pred20160218.tif",
                                "methods": rows})


if __name__ == "__main__":
    main()
