"""DLSTFM forward speed on this machine's CPU: parameters, FLOPs per pixel, throughput.

Measures, for the shipped checkpoint (or ``--checkpoint``):
- parameter count and FLOPs per output pixel (torch's FlopCounterMode);
- forward throughput in pixels/s with all threads (``--threads``, default 2) for several
  tile sizes and batches (days per forward pass);
- the time to fuse one 1024 x 1024 px x 32-day chunk through the production kernel
  (``fuse_block``: reference selection, upsampling, the network with its halo, flags).

Appends a JSON line to ``results/model_speed.jsonl``.

Usage::

    .venv/bin/python benchmarks/bench_model_speed.py
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from _record import append_result
from torch.utils.flop_counter import FlopCounterMode

from lst_pipeline.fusion.kernel import fuse_block
from lst_pipeline.fusion.methods import DLSTFMMethod
from lst_pipeline.grid import Window
from lst_pipeline.model.checkpoint import DEFAULT_CHECKPOINT, file_sha256


def forward_rate(model, n: int, size: int, repeats: int = 2) -> float:
    x = [(300 + torch.randn(n, 1, size, size)).contiguous(memory_format=torch.channels_last)
         for _ in range(3)]
    with torch.inference_mode():
        model(*x)
        best = min(_timed(model, x) for _ in range(repeats))
    return n * size * size / best


def _timed(model, x) -> float:
    t = time.perf_counter()
    model(*x)
    return time.perf_counter() - t


def bf16_effect(model) -> tuple[float, float]:
    """Mean |bf16 autocast - fp32| in Kelvin on LST-like inputs, and bf16 throughput."""
    g = torch.Generator().manual_seed(0)
    smooth = torch.nn.functional.avg_pool2d(torch.randn(1, 1, 512, 512, generator=g), 9, 1, 4)
    f1 = 300 + 40 * smooth + torch.randn(1, 1, 512, 512, generator=g)
    c1 = torch.nn.functional.avg_pool2d(f1, 32).repeat_interleave(32, 2).repeat_interleave(32, 3)
    c2 = c1 + 3.0
    x = [t.contiguous(memory_format=torch.channels_last) for t in (f1, c1, c2)]
    with torch.inference_mode():
        ref = model(*x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            model(*x)
            start = time.perf_counter()
            low = model(*x).float()
            elapsed = time.perf_counter() - start
    return float((low - ref).abs().mean()), 512 * 512 / elapsed


def chunk_seconds(method: DLSTFMMethod, size: int = 1024, days: int = 32, f: int = 32) -> float:
    """Wall time of fuse_block for one chunk with its halo, four Landsat references."""
    rng = np.random.default_rng(0)
    halo = -(-method.halo(f) // f) * f
    read = size + 2 * halo
    target_days = 18628 + np.arange(days)
    landsat_days = 18628 + np.array([-10, 6, 22, 38])
    landsat = (300 + 3 * rng.standard_normal((4, read, read))).astype(np.float32)
    landsat_modis = (300 + rng.standard_normal((4, read // f, read // f))).astype(np.float32)
    target_modis = (301 + rng.standard_normal((days, read // f, read // f))).astype(np.float32)
    start = time.perf_counter()
    fuse_block(landsat, landsat_days, landsat_modis, target_modis, target_days, method=method,
               coarse_factor=f, out_window=Window(halo, halo + size, halo, halo + size),
               max_gap_days=48, min_clear_fraction=0.5, max_references=4)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, default=DEFAULT_CHECKPOINT)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    method = DLSTFMMethod(str(args.checkpoint), device="cpu")
    model = method.model
    params = sum(p.numel() for p in model.parameters())
    x = [300 + torch.randn(1, 1, 256, 256) for _ in range(3)]
    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        model(*x)
    flops_per_pixel = counter.get_total_flops() / (256 * 256)
    print(f"parameters {params:,}; {flops_per_pixel / 1e3:.1f} kFLOP per pixel (convolutions "
          f"and matrix products); receptive radius {model.receptive_radius} px, alignment "
          f"{model.alignment}")

    rates = {}
    for size in (256, 512, 1024):
        for n in (1, 4, 8):
            if n * size * size > 8 * 512 * 512:
                continue
            rates[f"{n}x{size}"] = forward_rate(model, n, size)
            print(f"forward {n} x {size}^2: {rates[f'{n}x{size}'] / 1e6:.2f} Mpx/s")
    bf16_diff, bf16_rate = bf16_effect(model)
    print(f"bf16 autocast on CPU: mean |bf16 - fp32| {bf16_diff:.3f} K, "
          f"{bf16_rate / 1e6:.2f} Mpx/s (fp32 {rates['1x512'] / 1e6:.2f})")
    seconds = chunk_seconds(method)
    print(f"fuse_block 1024 x 1024 px x 32 days (halo included, 4 references): {seconds:.1f} s "
          f"= {1024 * 1024 * 32 / seconds / 1e6:.2f} M pixel-days/s")
    if not args.no_record:
        append_result("model_speed", {
            "benchmark": "model_speed", "checkpoint_sha256": file_sha256(args.checkpoint),
            "threads": args.threads, "parameters": params,
            "flops_per_pixel": flops_per_pixel, "forward_pixels_per_second": rates,
            "chunk_1024x1024x32_seconds": seconds,
            "bf16_cpu_mean_abs_difference_k": bf16_diff,
            "bf16_cpu_pixels_per_second": bf16_rate, "date": time.strftime("%Y-%m-%d"),
        })


if __name__ == "__main__":
    main()
