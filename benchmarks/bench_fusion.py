"""End-to-end fusion throughput on a simulated region, with 1 and 2 worker processes.

Simulates a region (not timed), then runs the full engine (read + fuse + encode + write) on a
LocalCluster of worker processes and reports pixel-days per second. Results are appended as
JSON lines to ``benchmarks/results/fusion.jsonl`` with the machine and commit.

Usage::

    .venv/bin/python benchmarks/bench_fusion.py --size 1024 --days 96 --workers 1 2 \
        [--method reference_change|dlstfm]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import tempfile
import time
from pathlib import Path

from _record import append_result, head_commit

from lst_pipeline.cluster import ClusterProfile, connect
from lst_pipeline.fusion.engine import execute, plan_run
from lst_pipeline.simulate import simulate_region, synthetic_pipeline


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1024, help="grid edge in fine pixels")
    parser.add_argument("--days", type=int, default=96)
    parser.add_argument("--chunk", type=int, default=512, help="spatial chunk edge")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--method", default="reference_change")
    parser.add_argument("--no-record", action="store_true", help="do not append results")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="lst-bench-") as tmp:
        config = synthetic_pipeline(Path(tmp), seed=1, size=args.size, days=args.days,
                                    chunk=args.chunk,
                                    fusion={"method": args.method, "device": "cpu"})
        t0 = time.perf_counter()
        simulate_region(config, progress=False)
        print(f"simulated {args.days} days x {args.size}^2 px in "
              f"{time.perf_counter() - t0:.1f} s (not part of the timing)")
        rates = {}
        for n in args.workers:
            cube = Path(tmp) / f"cube-{n}.zarr"
            cfg = dataclasses.replace(config, output=dataclasses.replace(config.output,
                                                                         cube=cube))
            plan = plan_run(cfg)
            with connect(ClusterProfile(n_workers=n, threads_per_worker=1), quiet=True) as c:
                summary = execute(plan, c, progress=False)
            rates[n] = summary.pixel_days_per_second
            print(f"{n} worker(s): {summary.wall_seconds:.1f} s, "
                  f"{summary.pixel_days_per_second:,.0f} pixel-days/s")
    record = {
        "benchmark": "fusion_end_to_end", "method": config.fusion.method,
        "size": args.size, "days": args.days, "chunk": [32, args.chunk, args.chunk],
        "pixel_days_per_second": {str(k): round(v) for k, v in rates.items()},
        "commit": head_commit(), "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "date": time.strftime("%Y-%m-%d"),
    }
    if 1 in rates and 2 in rates:
        record["speedup_2_vs_1"] = round(rates[2] / rates[1], 2)
        print(f"2 workers vs 1: {record['speedup_2_vs_1']}x")
    if not args.no_record:
        append_result("fusion", record)


if __name__ == "__main__":
    main()
