"""Chunks chosen for the user (issue: any grid): the memory model and the default chunks.

1. Memory of one task: peak resident memory of a fresh process fusing one block (read
   window S x S px, T days) of a simulated 1024 x 1024 px region, minus the same process
   after loading the method, for ``dlstfm`` and ``starfm``. The per-pixel-day and
   per-pixel-reference bytes of :class:`lst_pipeline.chunks.TaskCost` are fitted to these
   (least squares), and the model's estimate is printed next to each measurement.
2. The demo region (512 x 512 px, 365 days, ``dlstfm``): the chunks the planner chooses
   when ``chunks`` is left out, against the demo's own 32 x 512 x 512: pixels computed per
   output pixel (the halo's recomputation) and end-to-end pixel-days/s, one run each on a
   local cluster of 2 worker processes.

Appends a JSON line to ``results/chunks.jsonl``.

Usage::

    .venv/bin/python benchmarks/bench_chunks.py [--skip-demo] [--skip-memory]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from _record import append_result

from lst_pipeline.config import ChunkConfig, bundled_pipeline, load_pipeline, replace_paths
from lst_pipeline.simulate import simulate_region, synthetic_pipeline

PROBE = r"""
import json, resource, sys, dataclasses
from lst_pipeline.config import load_pipeline
from lst_pipeline.fusion.engine import plan_run, read_and_fuse, read_block_inputs
from lst_pipeline.grid import Window
config = load_pipeline(json.loads(sys.argv[1]))
side, days = int(sys.argv[2]), int(sys.argv[3])
plan = plan_run(config)
task = plan.task
small = Window(0, 256, 0, 256)
read_and_fuse(task, 0, 1, small, small)  # load the method, compile kernels
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
window = Window(0, side, 0, side)
refs = len(read_block_inputs(task, 8, 8 + days, window).landsat_days)
read_and_fuse(task, 8, 8 + days, window, window)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"base": base, "peak": peak, "refs": refs}))
"""


def config_dict(config) -> dict:
    def plain(v):
        if dataclasses.is_dataclass(v):
            return {k: plain(x) for k, x in dataclasses.asdict(v).items() if x is not None}
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items() if x is not None}
        if isinstance(v, list | tuple):
            return [plain(x) for x in v]
        if isinstance(v, Path):
            return str(v)
        return v.isoformat() if hasattr(v, "isoformat") else v

    return plain(config)


#: ``fusion.batch_pixels`` default: the pixels of one DLSTFM forward pass (at least a day).
BATCH_PIXELS = 1 << 17


def fit_cost(rows: list[dict], *, forward_pixels: int) -> dict:
    """Non-negative least squares of :class:`lst_pipeline.chunks.TaskCost` on measured tasks."""
    from scipy.optimize import nnls

    px = np.array([r["side"] ** 2 for r in rows], float)
    a = np.stack([px * [r["days"] for r in rows], px * [r["refs"] for r in rows],
                  np.maximum(px, forward_pixels) if forward_pixels else 0 * px], axis=1)
    b = np.array([r["extra"] for r in rows], float)
    coef, _ = nnls(a, b)
    return {"per_pixel_day": coef[0], "per_pixel_reference": coef[1],
            "per_forward_pixel": coef[2], "forward_pixels": forward_pixels,
            "fixed": max(r["base"] for r in rows), "model": list(a @ coef)}


def measure_memory(root: Path) -> dict:
    config = synthetic_pipeline(root, seed=41, size=1024, days=96, landsat_revisit_days=8)
    simulate_region(config, progress=False)
    rows = []
    for method in ("dlstfm", "starfm"):
        for gap in (8, 40):
            cfg = dataclasses.replace(config, fusion=dataclasses.replace(
                config.fusion, method=method, max_reference_gap_days=gap))
            data = config_dict(cfg)
            for side, days in ((384, 4), (384, 16), (768, 4), (768, 12)):
                out = subprocess.run([sys.executable, "-c", PROBE, json.dumps(data),
                                      str(side), str(days)], capture_output=True, text=True,
                                     check=True)
                m = json.loads(out.stdout.strip().splitlines()[-1])
                rows.append({"method": method, "side": side, "days": days, "gap": gap, **m,
                             "extra": m["peak"] - m["base"]})
                print(f"{method:>8} {side:>5} px x {days:>2} days, {m['refs']:>2} refs: task "
                      f"{(m['peak'] - m['base']) / 2**20:7.0f} MiB above a process of "
                      f"{m['base'] / 2**20:.0f} MiB")
    fits = {}
    for method in ("dlstfm", "starfm"):
        sel = [r for r in rows if r["method"] == method]
        fits[method] = fit_cost(sel, forward_pixels=BATCH_PIXELS if method == "dlstfm" else 0)
        f = fits[method]
        print(f"{method}: {f['per_pixel_day']:.1f} B per pixel-day + "
              f"{f['per_pixel_reference']:.1f} B per pixel-reference + "
              f"{f['per_forward_pixel']:.1f} B per pixel of a forward pass, over a process of "
              f"{f['fixed'] / 2**20:.0f} MiB")
        for r in sel:
            print(f"   {r['side']} px x {r['days']} d x {r['refs']} refs: measured "
                  f"{r['extra'] / 2**20:.0f} MiB, model {f['model'][sel.index(r)] / 2**20:.0f} "
                  "MiB")
    return {"rows": rows, "fits": fits}


def demo_chunks(root: Path) -> dict:
    from lst_pipeline.cluster import ClusterProfile, connect
    from lst_pipeline.fusion.engine import execute, plan_run

    config = replace_paths(load_pipeline(bundled_pipeline("demo")), root)
    simulate_region(config, progress=False)
    out = {}
    with connect(ClusterProfile(n_workers=2, threads_per_worker=1), quiet=True) as client:
        for name, chunks in (("demo", config.chunks), ("default", ChunkConfig())):
            cube = root / f"cube-{name}.zarr"
            run = dataclasses.replace(config, chunks=chunks,
                                      output=dataclasses.replace(config.output, cube=cube))
            plan = plan_run(run, n_workers=2)
            summary = execute(plan, client, progress=False)
            out[name] = {"chunks": list(plan.chunks.chunks),
                         "computed_ratio": plan.chunks.computed_ratio,
                         "task_gib_estimate": plan.task_bytes / 2**30,
                         "pixel_days_per_second": summary.pixel_days_per_second,
                         "wall_seconds": summary.wall_seconds}
            print(f"{name:>8}: chunks {plan.chunks.chunks}, {plan.chunks.computed_ratio:.2f} "
                  f"px computed per output px, {summary.pixel_days_per_second:,.0f} "
                  f"pixel-days/s ({summary.wall_seconds:.0f} s)")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--skip-demo", action="store_true")
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()
    record = {}
    with tempfile.TemporaryDirectory(prefix="bench-chunks-") as tmp:
        if not args.skip_memory:
            record["memory"] = measure_memory(Path(tmp) / "memory")
        if not args.skip_demo:
            record["demo"] = demo_chunks(Path(tmp) / "demo")
    if not args.no_record:
        append_result("chunks", record)


if __name__ == "__main__":
    main()
