"""STARFM speed: pixels per second per predicted day, window 31, on a 2000 x 2000 scene.

Times :func:`lst_pipeline.fusion.baselines.starfm` (numba, all cores) on a textured
synthetic scene (fine reference with classes and noise, smooth coarse reference and target
on the fine grid), one pair and two pairs, after a warm-up call that compiles the kernels.
Target: >= 1 M px/s per predicted day on the 2 cores. Appends a JSON line to
``results/starfm.jsonl``.

Usage::

    .venv/bin/python benchmarks/bench_starfm.py [--size 2000] [--window 31] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
from _record import append_result, head_commit

from lst_pipeline.fusion.baselines import starfm


def scene(size: int, pairs: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    classes = ((yy // 37) * 7 + (xx // 23) * 3) % 5
    fine = 295 + 3.0 * classes + rng.normal(0, 0.8, (pairs, size, size))
    coarse = 296 + 0.002 * (xx + yy) + rng.normal(0, 0.3, (pairs, size, size))
    target = 302 + 0.003 * xx + rng.normal(0, 0.3, (size, size))
    fine[rng.random(fine.shape) < 0.02] = np.nan  # a few cloudy pixels
    return (fine.astype(np.float32), coarse.astype(np.float32), target.astype(np.float32))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=2000)
    parser.add_argument("--window", type=int, default=31)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()
    import numba

    small = scene(64, 1)
    starfm(*small, window=args.window)  # compile
    result = {}
    for pairs in (1, 2):
        fine, coarse, target = scene(args.size, pairs)
        times = []
        for _ in range(args.repeat):
            start = time.perf_counter()
            out = starfm(fine, coarse, target, window=args.window)
            times.append(time.perf_counter() - start)
        best = min(times)
        px_s = args.size**2 / best
        result[f"pairs_{pairs}"] = {"seconds": times, "px_per_s_best": px_s,
                                    "px_per_s_median": args.size**2 / float(np.median(times)),
                                    "predicted_fraction": float(np.isfinite(out).mean())}
        runs = ", ".join(f"{t:.2f}" for t in times)
        print(f"{pairs} pair(s): {args.size} x {args.size}, window {args.window}: best "
              f"{best:.2f} s = {px_s / 1e6:.2f} M px/s (runs {runs} s)")
    load = os.getloadavg()
    print(f"numba threads {numba.get_num_threads()}, load average {load[0]:.2f}")
    if not args.no_record:
        append_result("starfm", {"benchmark": "starfm", "size": args.size,
                                 "window": args.window, "threads": numba.get_num_threads(),
                                 "load_average_1min": load[0], "commit": head_commit(),
                                 "date": time.strftime("%Y-%m-%d"), **result})


if __name__ == "__main__":
    main()
