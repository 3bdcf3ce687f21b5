"""How much of each method's error on the independent test world is its coarse-cell mean.

Reads the cubes ``bench_worlds.py --workdir DIR`` left, the regions' truth and stacks, and per
region, over the days without Landsat and the pixel-days every given cube fused:

each cube's MAE and the MAE of its *cell-mean error* (the error averaged over each coarse
cell and day, given to every pixel of the cell). By Jensen's inequality a cube's MAE is at
least its cell-mean error's MAE, whatever it does inside the cells: a method can only go
below that by getting the cells' means right, which every method takes from the target
day's MODIS.

Prints only (analysis behind a note in ``benchmarks/README.md``; nothing is chosen by it).

Usage::

    .venv/bin/python benchmarks/worlds_cell_floor.py --workdir /tmp/worlds \\
        --cubes cube-dlstfm-238161c0.zarr cube-starfm.zarr cube-reference_change.zarr
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import numpy as np
import xarray as xr

from lst_pipeline.io.stack import StackReader


def _cells(a: np.ndarray, f: int) -> np.ndarray:
    """Mean over ``f x f`` cells of the last two axes (NaN-aware)."""
    *lead, ny, nx = a.shape
    with warnings.catch_warnings():  # a cell with no fused pixel is NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(a.reshape(*lead, ny // f, f, nx // f, f), axis=(-3, -1))


def cell_floor(root: Path, cubes: list[str]) -> dict:
    truth = xr.open_zarr(root / "truth.zarr")["lst"]
    reader = StackReader(root / "stack.zarr")
    f = reader.grid.coarse_factor
    ny, nx = reader.grid.shape
    landsat = set(reader.landsat_dates.astype("datetime64[D]"))
    days = truth.time.values.astype("datetime64[D]")
    keep = np.array([d not in landsat for d in days])
    lst = [xr.open_zarr(root / c)["lst"] for c in cubes]
    sums = np.zeros((len(cubes), 2))
    n = 0
    for i in np.nonzero(keep)[0]:
        t = truth[i].values[:ny, :nx].astype(np.float64)
        errors = [c[i].values[:ny, :nx] - t for c in lst]
        ok = np.logical_and.reduce([np.isfinite(e) for e in errors])
        if ok.sum() < 1000:
            continue
        n += int(ok.sum())
        for k, e in enumerate(errors):
            e = np.where(ok, e, np.nan)
            cell = np.repeat(np.repeat(_cells(e, f), f, 0), f, 1)
            sums[k] += [np.abs(e[ok]).sum(), np.abs(cell[ok]).sum()]
    return {"pixel_days": n, "mae": (sums[:, 0] / n).tolist(),
            "cell_mean_mae": (sums[:, 1] / n).tolist()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--cubes", nargs="+", required=True)
    args = parser.parse_args()
    for root in sorted(p.parent for p in args.workdir.glob("*/truth.zarr")):
        r = cell_floor(root, args.cubes)
        print(f"{root.name}: {r['pixel_days']:,} pixel-days; "
              + "; ".join(f"{c} MAE {m:.3f}, its cell mean's {cm:.3f} ({cm / m:.2f})"
                          for c, m, cm in zip(args.cubes, r["mae"], r["cell_mean_mae"])))


if __name__ == "__main__":
    main()
