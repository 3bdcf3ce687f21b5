"""How much of the error on the independent test world two methods share.

Reads the cubes ``bench_worlds.py --workdir DIR`` left (``cube-<name>.zarr`` per region)
and, per region, over the days without Landsat and the pixel-days every given cube fused:
mean squared error of each, the correlation of the first two cubes' errors, and the share of
each one's mean squared error that is the day's spatial mean error. Prints only (analysis
behind a note in ``benchmarks/README.md``; nothing is chosen by it).

Usage::

    .venv/bin/python benchmarks/worlds_shared_error.py --workdir /tmp/worlds \\
        --cubes cube-dlstfm-238161c0.zarr cube-starfm.zarr cube-reference_change.zarr
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import xarray as xr

from lst_pipeline.io.stack import StackReader


def shared_error(root: Path, cubes: list[str]) -> dict[str, float]:
    truth = xr.open_zarr(root / "truth.zarr")["lst"]
    landsat = set(StackReader(root / "stack.zarr").landsat_dates.astype("datetime64[D]"))
    lst = [xr.open_zarr(root / name)["lst"] for name in cubes]
    n, sq, daily, cross = 0, np.zeros(len(cubes)), np.zeros(len(cubes)), 0.0
    for i, day in enumerate(truth.time.values.astype("datetime64[D]")):
        if day in landsat:
            continue
        t = truth[i].values
        errors = [c[i].values - t for c in lst]
        ok = np.isfinite(t) & np.logical_and.reduce([np.isfinite(e) for e in errors])
        if ok.sum() < 1000:
            continue
        e = [x[ok].astype(np.float64) for x in errors]
        n += e[0].size
        sq += [(x * x).sum() for x in e]
        daily += [x.size * x.mean() ** 2 for x in e]
        cross += (e[0] * e[1]).sum()
    return {"pixel_days": n, "mse": (sq / n).tolist(), "daily_mean_share": (daily / sq).tolist(),
            "correlation_first_two": cross / np.sqrt(sq[0] * sq[1])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--cubes", nargs="+", required=True, help="at least two cube names")
    args = parser.parse_args()
    for root in sorted(p.parent for p in args.workdir.glob("*/truth.zarr")):
        r = shared_error(root, args.cubes)
        print(f"{root.name}: {r['pixel_days']:,} pixel-days; MSE "
              + ", ".join(f"{c} {m:.2f}" for c, m in zip(args.cubes, r["mse"]))
              + f"; error correlation of the first two {r['correlation_first_two']:.2f}; "
              "daily-mean share of MSE "
              + ", ".join(f"{s:.2f}" for s in r["daily_mean_share"]))


if __name__ == "__main__":
    main()
