"""DLSTFM on a GPU: agreement with the CPU, forward speed, end-to-end throughput, training.

One script for a short lease of a GPU machine (everything in one call, each section
independent: a failing section is recorded and the next one runs):

``network``
    The shipped network on an LST-like 1024 x 1024 px scene: |GPU - CPU float64| in K for
    fp32 (cuDNN's TF32 allowed, torch's default, and not), and bf16 autocast; forward pixels/s
    by batch, fp32 and bf16, timed with CUDA events (median after warm-up); the same pixels
    computed in a tile and inside a larger tile (the seamless-tile property on this device).
``chunk``
    One 1024 x 1024 px x 32-day chunk through the production kernel (``fuse_block``), as
    ``bench_model_speed.py`` measures it on the CPU.
``engine``
    ``lst-pipeline bench``'s measurement (:func:`lst_pipeline.bench.run_bench`) of a simulated
    region on a ``local-gpu`` cluster: fp32, bf16, bf16 with several tasks sharing the GPU,
    and the machine's CPU cores as ``local`` workers for comparison.
``agreement``
    The same region's cube fused on the CPU and on the GPU (fp32, bf16, and whole-scene
    chunks on the GPU): differences of the stored ``lst`` and of ``qa``.
``training``
    Optimiser steps per second of ``lst-pipeline train`` (the shipped architecture and batch)
    on the GPU, fp32 and bf16.

Writes ``OUT/gpu.json`` and appends it to ``results/gpu.jsonl`` (``--no-record``: not).
``--device cpu --size 256 --days 32`` runs every section on the CPU to check the script.

Usage::

    python benchmarks/bench_gpu.py --out /tmp/gpu [--sections network engine ...]
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import os
import sys
import time
import traceback
from pathlib import Path

import numpy as np
import torch
from _record import append_result

from lst_pipeline.model.checkpoint import DEFAULT_CHECKPOINT, file_sha256, load_checkpoint

SECTIONS = ("network", "chunk", "engine", "agreement", "training")


# --------------------------------------------------------------------------------------
# The network alone.


def lst_scene(size: int, n: int = 1, factor: int = 32, seed: int = 0) -> list[torch.Tensor]:
    """LST-like ``(reference, reference_coarse, target_coarse)``: smooth fields and detail."""
    g = torch.Generator().manual_seed(seed)
    smooth = torch.nn.functional.avg_pool2d(torch.randn(n, 1, size, size, generator=g), 9, 1, 4)
    fine = 300 + 40 * smooth + torch.randn(n, 1, size, size, generator=g)
    coarse = torch.nn.functional.avg_pool2d(fine, factor)
    c1 = coarse.repeat_interleave(factor, 2).repeat_interleave(factor, 3)
    change = 3 + torch.randn(n, 1, size // factor, size // factor, generator=g)
    c2 = c1 + change.repeat_interleave(factor, 2).repeat_interleave(factor, 3)
    return [t.contiguous(memory_format=torch.channels_last) for t in (fine, c1, c2)]


def _differences(a: torch.Tensor, b: torch.Tensor) -> dict[str, float]:
    d = (a.double().cpu() - b.double().cpu()).abs()
    return {"mean_abs_k": float(d.mean()), "max_abs_k": float(d.max()),
            "finite": bool(torch.isfinite(a).all())}


def _median_seconds(fn, device: str, repeats: int = 10, warmup: int = 3) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        if device == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            torch.cuda.synchronize()
            times.append(start.elapsed_time(end) / 1e3)
        else:
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
    return float(np.median(times))


def network(device: str, size: int) -> dict:
    """Agreement with float64 on the CPU, the seamless-tile property, forward speed."""
    model, _ = load_checkpoint(DEFAULT_CHECKPOINT, map_location="cpu")
    model.eval()
    x = lst_scene(size)
    with torch.inference_mode():
        reference = copy.deepcopy(model).double()(*[t.double() for t in x])
    model = model.to(device).to(memory_format=torch.channels_last)
    xd = [t.to(device) for t in x]
    out: dict = {"scene_px": size}
    allow = torch.backends.cudnn.allow_tf32
    with torch.inference_mode():
        for name, tf32, amp in (("fp32_tf32_allowed", True, False), ("fp32_no_tf32", False, False),
                                ("bf16_autocast", True, True)):
            torch.backends.cudnn.allow_tf32 = tf32
            with torch.autocast(device_type="cuda", dtype=torch.bfloat16,
                                enabled=amp and device == "cuda"):
                y = model(*xd).float()
            out[f"vs_cpu_float64_{name}"] = _differences(y, reference)
        torch.backends.cudnn.allow_tf32 = allow
        # the same output pixels from a tile and from inside a larger one (crop at alignment)
        tile, a = size // 2, model.alignment_at(32)
        start = (size // 4) // a * a
        inner = model(*[t[..., start:start + tile, start:start + tile] for t in xd])
        r = model.receptive_radius_at(32)
        core = slice(r, tile - r)
        whole = model(*xd)[..., start:start + tile, start:start + tile]
        out["tile_vs_larger_tile"] = _differences(inner[..., core, core], whole[..., core, core])
        rates = {}
        for name, tf32, amp in (("fp32", False, False), ("fp32_tf32", True, False),
                                ("bf16", False, True)):
            torch.backends.cudnn.allow_tf32 = tf32
            for n in (1, 4, 16):
                batch = lst_scene(1024, n=n) if device == "cuda" else lst_scene(256, n=1)
                batch = [t.to(device) for t in batch]
                px = batch[0].numel()

                def forward(batch=batch, amp=amp):
                    with torch.autocast(device_type="cuda", dtype=torch.bfloat16,
                                        enabled=amp and device == "cuda"):
                        model(*batch)

                seconds = _median_seconds(forward, device)
                rates[f"{name}_{n}x{batch[0].shape[-1]}"] = px / seconds
                del batch
        torch.backends.cudnn.allow_tf32 = allow
        out["forward_pixels_per_second"] = rates
    if device == "cuda":
        out["peak_gpu_memory_mib"] = torch.cuda.max_memory_allocated() / 2**20
    return out


def chunk(device: str) -> dict:
    """``fuse_block`` on one 1024^2 x 32-day chunk, as bench_model_speed.py on the CPU."""
    from bench_model_speed import chunk_seconds

    from lst_pipeline.fusion.methods import DLSTFMMethod

    out = {}
    for amp in (False, True):
        method = DLSTFMMethod(None, device=device, mixed_precision=amp)
        chunk_seconds(method, size=256)  # warm-up: cuDNN plans, pinned buffers
        seconds = min(chunk_seconds(method) for _ in range(2))
        out["bf16" if amp else "fp32"] = {"seconds": seconds,
                                          "pixel_days_per_second": 1024 * 1024 * 32 / seconds}
    return out


# --------------------------------------------------------------------------------------
# The engine: simulated region, clusters, cubes.


def simulated_region(root: Path, size: int, days: int, chunk_px: int):
    from lst_pipeline.simulate import simulate_region, synthetic_pipeline

    config = synthetic_pipeline(root / "region", seed=11, size=size, days=days, chunk=chunk_px,
                                fusion={"method": "dlstfm"})
    if not (config.inputs.stack / "zarr.json").is_file():
        start = time.perf_counter()
        simulate_region(config, progress=False)
        print(f"simulated {size}^2 px x {days} days in {time.perf_counter() - start:.0f} s",
              flush=True)
    return config


def variant(config, cube: Path, *, device: str, amp: bool = False, uncertainty: bool = True,
            chunk_px: int | None = None):
    fusion = dataclasses.replace(config.fusion, device=device, mixed_precision=amp)
    output = dataclasses.replace(config.output, cube=cube, uncertainty=uncertainty)
    config = dataclasses.replace(config, fusion=fusion, output=output)
    if chunk_px:
        config = dataclasses.replace(config, chunks=dataclasses.replace(
            config.chunks, y=chunk_px, x=chunk_px))
    return config


def profiles() -> dict:
    from lst_pipeline.cluster import ClusterProfile, load_profile

    cores = os.cpu_count() or 2
    local_gpu = load_profile("local-gpu")
    return {
        "gpu_1task": local_gpu,
        "gpu_4tasks": dataclasses.replace(local_gpu, threads_per_worker=8, tasks_per_gpu=4),
        "gpu_8tasks": dataclasses.replace(local_gpu, threads_per_worker=16, tasks_per_gpu=8),
        "cpu_all_cores": ClusterProfile(kind="local", n_workers=max(1, cores // 2),
                                        threads_per_worker=2),
    }


#: engine runs: cluster profile, device, bf16
ENGINE_RUNS = {"gpu_fp32": ("gpu_1task", "cuda", False), "gpu_bf16": ("gpu_1task", "cuda", True),
               "gpu_fp32_4tasks": ("gpu_4tasks", "cuda", False),
               "gpu_bf16_4tasks": ("gpu_4tasks", "cuda", True),
               "gpu_fp32_8tasks": ("gpu_8tasks", "cuda", False),
               "cpu_all_cores": ("cpu_all_cores", "cpu", False)}


def engine(device: str, root: Path, size: int, days: int, chunk_px: int,
           runs: list[str]) -> dict:
    from lst_pipeline.bench import run_bench
    from lst_pipeline.cluster import connect

    config = simulated_region(root, size, days, chunk_px)
    out = {}
    for i, run in enumerate(runs):
        name = run if run not in out else f"{run}_{i}"  # a run repeated to see the noise
        profile_name, dev, amp = ENGINE_RUNS[run]
        dev = device if dev == "cuda" else dev
        profile = profiles()[profile_name]
        cfg = variant(config, root / f"bench_{name}.zarr", device=dev, amp=amp)
        try:
            with connect(profile, quiet=True) as client:
                record = run_bench(cfg, client, cluster=profile_name,
                                   resources=profile.task_resources)
        except Exception as exc:  # (one variant's failure is recorded)
            out[name] = {"error": f"{type(exc).__name__}: {exc}"}
            print(f"engine {name}: {out[name]['error']}", flush=True)
            continue
        keep = ("pixel_days", "chunks", "wall_seconds", "pixel_days_per_second",
                "end_to_end_pixel_days_per_second", "plan_seconds", "stage_seconds",
                "devices", "cluster", "peak_memory_mib_per_worker",
                "peak_gpu_memory_mib_per_worker")
        out[name] = {k: record[k] for k in keep if k in record}
        out[name]["config"] = {k: record["config"][k] for k in
                               ("chunks", "halo_px", "device", "mixed_precision", "uncertainty")}
        print(f"engine {name}: {record['pixel_days_per_second']:,.0f} pixel-days/s "
              f"(wall {record['wall_seconds']:.1f} s, planning {record['plan_seconds']:.1f} s)",
              flush=True)
    return out


def _fuse(config, profile) -> None:
    from lst_pipeline.cluster import connect
    from lst_pipeline.fusion.engine import execute, plan_run

    plan = plan_run(config, overwrite=True, log=lambda *_: None)
    with connect(profile, quiet=True) as client:
        execute(plan, client, overwrite=True, progress=False,
                resources=profile.task_resources, log=lambda *_: None)


def _cube_difference(a: Path, b: Path) -> dict:
    import xarray as xr

    with xr.open_zarr(a) as ca, xr.open_zarr(b) as cb:
        la, lb = ca["lst"].values, cb["lst"].values
        both = np.isfinite(la) & np.isfinite(lb)
        d = np.abs(la[both] - lb[both])
        return {"values_compared": int(both.sum()),
                "missing_in_one_only": int((np.isfinite(la) != np.isfinite(lb)).sum()),
                "mean_abs_k": float(d.mean()) if d.size else None,
                "max_abs_k": float(d.max()) if d.size else None,
                "fraction_identical": float((d == 0).mean()) if d.size else None,
                "qa_differs": int((ca["qa"].values != cb["qa"].values).sum()),
                "lst_differs_by_over_0.1_k": int((d > 0.1).sum())}


def agreement(device: str, root: Path, size: int, days: int, chunk_px: int,
              runs: list[str]) -> dict:
    config = simulated_region(root, size, days, chunk_px)
    end = np.datetime64(config.dates.start, "D") + np.timedelta64(31, "D")
    config = dataclasses.replace(config, dates=dataclasses.replace(config.dates, end=end.item()))
    p = profiles()
    cubes = {
        "cpu": (variant(config, root / "agree_cpu.zarr", device="cpu", uncertainty=False),
                p["cpu_all_cores"]),
        "gpu_fp32": (variant(config, root / "agree_gpu.zarr", device=device,
                             uncertainty=False), p["gpu_1task"]),
        "gpu_fp32_whole_scene": (variant(config, root / "agree_gpu_whole.zarr", device=device,
                                         uncertainty=False, chunk_px=size), p["gpu_1task"]),
        "gpu_bf16": (variant(config, root / "agree_gpu_bf16.zarr", device=device, amp=True,
                             uncertainty=False), p["gpu_1task"]),
    }
    cubes = {name: cubes[name] for name in runs}
    for cfg, profile in cubes.values():
        _fuse(cfg, profile)
    path = {name: cfg.output.cube for name, (cfg, _) in cubes.items()}
    pairs = {"gpu_fp32_vs_cpu": ("gpu_fp32", "cpu"), "gpu_bf16_vs_cpu": ("gpu_bf16", "cpu"),
             "gpu_chunked_vs_whole_scene": ("gpu_fp32", "gpu_fp32_whole_scene")}
    return {name: _cube_difference(path[a], path[b]) for name, (a, b) in pairs.items()
            if a in path and b in path}


def training(device: str, root: Path, size: int, days: int, chunk_px: int,
             steps: int) -> dict:
    import yaml

    from lst_pipeline.model.train import load_train_config
    from lst_pipeline.training import run_training

    config = simulated_region(root, size, days, chunk_px)
    recipe = yaml.safe_load((Path(__file__).parents[1] / "pipelines"
                             / "train_dlstfm.yaml").read_text())
    out = {}
    for amp in (False, True):
        name = "bf16" if amp else "fp32"
        seconds = {}
        for n in (10, steps + 10):  # the difference leaves loading and validation out
            train = load_train_config({
                "name": f"gpu-{name}", "workdir": str(root / f"train_{name}_{n}"),
                "checkpoint": str(root / f"train_{name}_{n}" / "model.pt"),
                "stacks": [str(config.inputs.stack)], "model": recipe["model"],
                "optim": {**recipe["optim"], "steps": n, "validate_every": n,
                          "validation_pairs": 4},
                "device": device, "mixed_precision": amp})
            start = time.perf_counter()
            record = run_training(train, progress=False, log=lambda *_: None)
            seconds[n] = time.perf_counter() - start
        rate = steps / (seconds[steps + 10] - seconds[10])
        out[name] = {"steps_per_second": rate, "batch": recipe["optim"]["batch_size"],
                     "patch": recipe["optim"]["patch"],
                     "seconds_10_steps": seconds[10],
                     f"seconds_{steps + 10}_steps": seconds[steps + 10],
                     "best_validation_mae_k": record["best_validation_mae_k"]}
        print(f"training {name}: {rate:.1f} steps/s (batch {recipe['optim']['batch_size']} x "
              f"{recipe['optim']['patch']}^2 px)", flush=True)
    return out


def environment(device: str) -> dict:
    from lst_pipeline.versions import package_versions

    env = {"python": sys.version.split()[0], "torch": torch.__version__,
           "cpu_count": os.cpu_count(), "versions": package_versions()}
    if device == "cuda":
        props = torch.cuda.get_device_properties(0)
        env.update(gpu=props.name, gpu_memory_gib=props.total_memory / 2**30,
                   multiprocessors=props.multi_processor_count, cuda=torch.version.cuda,
                   cudnn=torch.backends.cudnn.version())
    return env


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="directory for gpu.json")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/lst-bench-gpu"))
    parser.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    parser.add_argument("--sections", nargs="+", default=list(SECTIONS), choices=SECTIONS)
    parser.add_argument("--size", type=int, default=1024, help="simulated region edge (px)")
    parser.add_argument("--days", type=int, default=64)
    parser.add_argument("--chunk", type=int, default=512)
    parser.add_argument("--train-steps", type=int, default=200)
    parser.add_argument("--engine-runs", nargs="+", choices=list(ENGINE_RUNS),
                        default=["gpu_fp32", "gpu_bf16", "gpu_fp32_4tasks", "cpu_all_cores"])
    parser.add_argument("--agreement-runs", nargs="+",
                        choices=["cpu", "gpu_fp32", "gpu_fp32_whole_scene", "gpu_bf16"],
                        default=["cpu", "gpu_fp32", "gpu_fp32_whole_scene", "gpu_bf16"])
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("bench_gpu.py: torch sees no GPU; use --device cpu to check the script")
    if args.device == "cpu":  # local-gpu pins CUDA_VISIBLE_DEVICES; its workers then run on CPU
        os.environ.setdefault("CUDA_VISIBLE_DEVICES", "0")
    args.out.mkdir(parents=True, exist_ok=True)
    args.workdir.mkdir(parents=True, exist_ok=True)
    record = {"benchmark": "gpu", "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
              "device": args.device, "checkpoint_sha256": file_sha256(DEFAULT_CHECKPOINT),
              "environment": environment(args.device)}
    region = (args.workdir, args.size, args.days, args.chunk)
    runs = {"network": lambda: network(args.device, max(512, min(args.size, 1024))),
            "chunk": lambda: chunk(args.device),
            "engine": lambda: engine(args.device, *region, args.engine_runs),
            "agreement": lambda: agreement(args.device, *region, args.agreement_runs),
            "training": lambda: training(args.device, *region, args.train_steps)}
    for name in args.sections:
        start = time.perf_counter()
        try:
            record[name] = runs[name]()
        except Exception as exc:  # (a lease is short: record it, go on)
            record[name] = {"error": f"{type(exc).__name__}: {exc}",
                            "traceback": traceback.format_exc()}
            print(f"{name}: FAILED {type(exc).__name__}: {exc}", flush=True)
        record[name + "_seconds"] = time.perf_counter() - start
        (args.out / "gpu.json").write_text(json.dumps(record, indent=2, default=str) + "\n")
        print(f"== {name} done in {record[name + '_seconds']:.0f} s", flush=True)
    print(json.dumps({k: v for k, v in record.items() if k != "environment"}, indent=1,
                     default=str))
    if not args.no_record:
        append_result("gpu", record)


if __name__ == "__main__":
    main()
