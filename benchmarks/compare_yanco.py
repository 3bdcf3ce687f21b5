"""Real Yanco sample: each method predicts 2016-02-18 from the 2016-02-05 pair; agreement
with the ubESTARFM authors' own fused result (not accuracy: no Landsat exists that day).

Inputs (yuyi13/ubESTARFM, MIT; see /work/shared/data/real/PROVENANCE.md): Landsat LST
2016-02-05 and MOD11A1 2016-02-05 / 2016-02-18, already on one 400 x 400 grid of 0.001 deg
(MODIS resampled to it by the authors, 10 x 10 blocks). The kernels run on these numpy
arrays directly, the MODIS treated as coarse images already on the fine grid. The authors
ran ubESTARFM with a second pair (2016-03-08) that is not in the sample; our ``ubestarfm``
gets the one pair twice (then both pair predictions coincide). DLSTFM gets the MODIS as
10 x 10 coarse pixels (their block means) and is out of its training domain (simulated
30 m / 960 m scenes). Appends to
``results/yanco.jsonl`` and writes a figure to ``--out``.

Usage::

    .venv/bin/python benchmarks/compare_yanco.py --out /tmp/yanco [--data DIR]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from _record import append_result, head_commit

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


def dlstfm(fine: np.ndarray, c1: np.ndarray, c0: np.ndarray, factor: int = 10) -> np.ndarray:
    """The shipped DLSTFM on the block-resampled MODIS (coarse factor 10), edge-padded to the
    network's 32 px alignment and cropped back; gaps in the fine reference stay gaps."""
    from lst_pipeline.fusion.methods import get_method
    from lst_pipeline.resample import upsample_bilinear

    ny, nx = fine.shape
    coarse = [a.reshape(ny // factor, factor, nx // factor, factor).mean(axis=(1, 3))
              for a in (c1, c0)]
    pad = [(0, (-ny) % 32), (0, (-nx) % 32)]
    c1_up = upsample_bilinear(coarse[0][None], factor)[0]
    f = np.pad(np.where(np.isfinite(fine), fine, c1_up), pad, mode="edge")
    cpad = [(0, (-ny // factor) % (32 // 2)), (0, (-nx // factor) % (32 // 2))]
    coarse = [np.pad(c, cpad, mode="edge") for c in coarse]
    c1p = upsample_bilinear(coarse[0][None], factor)
    h, w = c1p.shape[1:]
    f = np.pad(f, [(0, h - f.shape[0]), (0, w - f.shape[1])], mode="edge")
    out = get_method("dlstfm", device="cpu").predict(f[None], c1p, coarse[1][None],
                                                     coarse_factor=factor)[0]
    return np.where(np.isfinite(fine), out[:ny, :nx], np.nan)


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
    # as the engine does: MODIS as 10 x 10 coarse pixels, upsampled bilinearly; ubESTARFM
    # gets the authors' own block-resampled MODIS, as they ran it
    from lst_pipeline.resample import upsample_bilinear

    ny, nx = fine.shape
    c1_up, c0_up = (upsample_bilinear(a.reshape(ny // 10, 10, nx // 10, 10).mean(axis=(1, 3)),
                                      10) for a in (c1, c0))
    preds = {
        "modis_only": c0_up,
        "reference_change": fine + (c0_up - c1_up),
        # window 51 px = 5.1 km as the authors' ubESTARFM (w = 25)
        "starfm": starfm(fine, c1_up, c0_up, window=51),
        "ubestarfm (unit)": ubestarfm(fine, c1, fine, c1, c0, window=51, conversion="unit"),
        "ubestarfm (regression)": ubestarfm(fine, c1, fine, c1, c0, window=51),
        # trained on simulated 30 m / 960 m scenes: out of its training domain here
        "dlstfm": dlstfm(fine, c1, c0),
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
    panels = {"Landsat 2016-02-05": fine, "MODIS 2016-02-18 (as given)": c0,
              "authors' ubESTARFM": authors, **preds}
    lo, hi = np.nanpercentile(authors, [1, 99])
    fig, axes = plt.subplots(2, 4, figsize=(16, 8.4))
    panels.pop("ubestarfm (regression)")
    for a, (name, img) in zip(axes.ravel(), panels.items()):
        im = a.imshow(img, vmin=lo, vmax=hi, cmap="inferno")
        a.set_title(name)
        a.set_xticks([])
        a.set_yticks([])
    fig.colorbar(im, ax=axes.ravel().tolist(), label="LST (K)", shrink=0.7)
    fig.savefig(args.out / "yanco_20160218.png", dpi=80, bbox_inches="tight")
    print(f"figure: {args.out / 'yanco_20160218.png'}")
    if not args.no_record:
        append_result("yanco", {"benchmark": "yanco_agreement", "commit": head_commit(),
                                "date": time.strftime("%Y-%m-%d"), "pixels": int(common.sum()),
                                "against": "fused_result_ubESTARFM_pred20160218.tif",
                                "methods": rows})


if __name__ == "__main__":
    main()
