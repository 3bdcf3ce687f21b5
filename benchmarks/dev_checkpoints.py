"""DLSTFM checkpoints side by side on the simulator's dev regions (seeds 201-203).

The dev regions are used neither to train a network nor to score one in the accuracy
benchmarks: this is where a candidate network is compared with the shipped one before it
meets the independent world. Every checkpoint is scored on the pixel-days all of them fused,
with the run's defaults otherwise (``fusion.reference_offset_days`` 32). Prints MAE and RMSE
(K) per seed and checkpoint.

    .venv/bin/python benchmarks/dev_checkpoints.py --workdir DIR --checkpoints A.pt B.pt [--snow]

``--snow`` simulates the dev regions in a snowy winter (``_record.SNOWY_WINTER``).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from _record import SNOWY_WINTER
from dev_reference_offset import dev_region, errors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--checkpoints", type=Path, nargs="+", required=True)
    parser.add_argument("--seeds", type=int, nargs="+", default=[201, 202, 203])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--days", type=int, default=120)
    parser.add_argument("--timescale", type=int, default=32)
    parser.add_argument("--snow", action="store_true")
    args = parser.parse_args()
    for seed in args.seeds:
        config = dev_region(args.workdir, seed, args.size, args.days,
                            **(SNOWY_WINTER if args.snow else {}))
        start = time.perf_counter()
        errs = {c: errors(config, "dlstfm", args.timescale, c) for c in args.checkpoints}
        common = np.logical_and.reduce([np.isfinite(e) for e in errs.values()])
        for c, e in errs.items():
            print(f"seed {seed} {c.name:24s}: MAE {np.abs(e[common]).mean():.4f} K, RMSE "
                  f"{np.sqrt((e[common] ** 2).mean()):.4f} K over {common.sum():,} "
                  "pixel-days", flush=True)
        print(f"  ({time.perf_counter() - start:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
