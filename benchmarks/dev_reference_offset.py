"""The dev check behind ``fusion.reference_offset_days``: simulator dev regions only.

Simulates the simulator's dev regions (seeds 201-203 by default, never used for training
or for scoring), fuses each whole scene in this process with each method and each
timescale, and prints the MAE and RMSE against the truth on the pixel-days every timescale
fused (days without Landsat and Landsat days alike are fused values; observations are
left out). Prints only; the figures are in the README ("A reference date's MODIS from its
Landsat").

Usage::

    .venv/bin/python benchmarks/dev_reference_offset.py --workdir /tmp/dev \\
        [--seeds 201 202 203] [--methods reference_change starfm gain_change dlstfm] \\
        [--timescales 0 32 64]
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import numpy as np
import xarray as xr

from lst_pipeline.fusion.block import fuse_scene
from lst_pipeline.fusion.engine import plan_run
from lst_pipeline.io.cube import Flag
from lst_pipeline.simulate import simulate_region, simulated_as, synthetic_pipeline


def dev_region(root: Path, seed: int, size: int, days: int, **simulation):
    """The dev region of ``seed`` (simulated under ``root`` unless it is there already).

    ``simulation`` goes to ``synthetic_pipeline``; a region simulated with other parameters
    (e.g. without ``--snow``) is simulated again.
    """
    config = synthetic_pipeline(root / f"seed{seed}", seed=seed, size=size, days=days,
                                origin=(700_000.0 + 20_000.0 * (seed % 10), 6_000_000.0),
                                **simulation)
    if not simulated_as(config):
        simulate_region(config, overwrite=True, progress=False)
    return config


def errors(config, method: str, timescale: int, checkpoint: Path | None = None) -> np.ndarray:
    """Fused minus truth (K) over the whole scene and period; NaN where not fused."""
    run = dataclasses.replace(
        config, fusion=dataclasses.replace(config.fusion, method=method, device="cpu",
                                           reference_offset_days=timescale,
                                           checkpoint=checkpoint),
        output=dataclasses.replace(config.output, uncertainty=False))
    plan = plan_run(run, overwrite=True, log=print)  # fits an ensemble's weights
    for note in plan.notes:
        if note.startswith("fusion.method ensemble"):
            print(f"  {note}")
    block = fuse_scene(plan)
    truth = xr.open_zarr(config.simulation.truth)["lst"]
    t = truth.sel(time=plan.days.astype("datetime64[ns]")).values
    return np.where(Flag.fused(block.qa), block.lst_k - t, np.nan)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--seeds", type=int, nargs="+", default=[201, 202, 203])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--days", type=int, default=120)
    parser.add_argument("--methods", nargs="+",
                        default=["reference_change", "starfm", "gain_change", "dlstfm"])
    parser.add_argument("--timescales", type=int, nargs="+", default=[0, 32, 64])
    args = parser.parse_args()
    for seed in args.seeds:
        config = dev_region(args.workdir, seed, args.size, args.days)
        for method in args.methods:
            start = time.perf_counter()
            errs = {ts: errors(config, method, ts) for ts in args.timescales}
            common = np.logical_and.reduce([np.isfinite(e) for e in errs.values()])
            for ts, e in errs.items():
                print(f"seed {seed} {method:17s} reference_offset_days {ts:3d}: MAE "
                      f"{np.abs(e[common]).mean():.4f} K, RMSE "
                      f"{np.sqrt((e[common] ** 2).mean()):.4f} K over {common.sum():,} "
                      f"pixel-days ({np.isfinite(e).sum():,} fused)", flush=True)
            print(f"  ({time.perf_counter() - start:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
