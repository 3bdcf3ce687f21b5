"""Production-engine benchmarks (issue: engine), one run each, reported as ratios.

1. End-to-end throughput (read + fuse + encode + write) / model-only throughput, on one
   worker process with one thread (tasks run one after another, torch on that thread): the
   model-only time is the time spent in the network's forward passes, host<->device copies
   included, on the very tensors of the run (measured inside the method).
2. 2 worker processes vs 1 on this machine's cores (1 thread each).
3. Peak resident memory per worker process, 365 days vs 30 days of the same area.
4. Time to build the plan of 10 years x 7000 x 7000 px (plan only, no compute).

Appends a JSON line to ``results/engine.jsonl``.

Usage::

    .venv/bin/python benchmarks/bench_engine.py [--method dlstfm] [--size 512]
"""

from __future__ import annotations

import argparse
import dataclasses
import resource
import tempfile
import time
from pathlib import Path

from _record import append_result

from lst_pipeline.chunks import plan_chunks
from lst_pipeline.cluster import ClusterProfile, connect
from lst_pipeline.config import GridConfig
from lst_pipeline.fusion.engine import execute, plan_run
from lst_pipeline.grid import TargetGrid
from lst_pipeline.simulate import simulate_region, synthetic_pipeline


def run(config, workers: int, threads: int, cube: Path):
    cfg = dataclasses.replace(config, output=dataclasses.replace(config.output, cube=cube))
    plan = plan_run(cfg)
    profile = ClusterProfile(n_workers=workers, threads_per_worker=threads)
    with connect(profile, quiet=True) as client:
        summary = execute(plan, client, progress=False, overwrite=True)
        peak = client.run(lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    return summary, max(peak.values())


def plan_seconds() -> float:
    start = time.perf_counter()
    grid = TargetGrid.from_config(GridConfig("EPSG:32755", 30.0,
                                             (300000.0, 6000000.0, 300000.0 + 30 * 7008,
                                              6000000.0 + 30 * 7008), 32))
    plan = plan_chunks(grid, 3653, (32, 1024, 1024), halo=128)
    n = sum(1 for _ in plan)
    elapsed = time.perf_counter() - start
    print(f"plan of 10 years x 7008 x 7008 px: {n:,} chunks in {elapsed:.3f} s")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", default="dlstfm")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--chunk", type=int, default=512)
    parser.add_argument("--days", type=int, default=64)
    parser.add_argument("--memory-size", type=int, default=256,
                        help="grid edge of the 30- vs 365-day memory runs")
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()

    record: dict = {"benchmark": "engine", "method": args.method, "size": args.size,
                    "chunk": args.chunk, "date": time.strftime("%Y-%m-%d")}
    record["plan_seconds_10y_7008px"] = plan_seconds()
    with tempfile.TemporaryDirectory(prefix="lst-engine-") as tmp:
        root = Path(tmp)
        fusion = {"method": args.method, "device": "cpu"}
        base = synthetic_pipeline(root / "base", seed=5, size=args.size, days=args.days,
                                  chunk=args.chunk, fusion=fusion)
        simulate_region(base, progress=False)
        configs = {}
        for days in (30, 365):
            configs[days] = synthetic_pipeline(root / f"m{days}", seed=5, size=args.memory_size,
                                               days=days, chunk=args.memory_size, fusion=fusion)
            simulate_region(configs[days], progress=False)

        w1, _ = run(base, 1, 1, root / "w1.zarr")
        model_rate = w1.pixel_days / w1.stage_seconds["model"]
        ratio = w1.pixel_days_per_second / model_rate
        print(f"1 worker x 1 thread: {w1.pixel_days_per_second:,.0f} pixel-days/s end to end; "
              f"model only {model_rate:,.0f}; ratio {ratio:.2f} (target >= 0.85); wall "
              f"{w1.wall_seconds:.1f} s, stages "
              + ", ".join(f"{k} {v:.1f} s" for k, v in w1.stage_seconds.items()))
        record["end_to_end_over_model"] = ratio
        record["stage_seconds_1x1"] = w1.stage_seconds

        w2, _ = run(base, 2, 1, root / "w2.zarr")
        speedup = w2.pixel_days_per_second / w1.pixel_days_per_second
        print(f"1 worker: {w1.pixel_days_per_second:,.0f}, 2 workers: "
              f"{w2.pixel_days_per_second:,.0f} pixel-days/s; speed-up {speedup:.2f}x "
              "(target >= 1.6x)")
        record["workers_2_over_1"] = speedup
        record["pixel_days_per_second"] = {"1x1": w1.pixel_days_per_second,
                                           "2x1": w2.pixel_days_per_second}

        _, peak30 = run(configs[30], 1, 1, root / "m30.zarr")
        _, peak365 = run(configs[365], 1, 1, root / "m365.zarr")
        print(f"peak worker memory ({args.memory_size}^2 px): 30 days {peak30 / 2**20:.0f} MiB, "
              f"365 days {peak365 / 2**20:.0f} MiB; ratio {peak365 / peak30:.2f} "
              "(target <= 1.25)")
        record["peak_memory_mib"] = {"30": peak30 / 2**20, "365": peak365 / 2**20}
        record["memory_365_over_30"] = peak365 / peak30
    if not args.no_record:
        append_result("engine", record)


if __name__ == "__main__":
    main()
