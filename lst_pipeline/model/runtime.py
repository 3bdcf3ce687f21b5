"""Process-level settings for running the network (CPU allocator, GPU float32 arithmetic)."""

from __future__ import annotations

import ctypes
import sys
from functools import cache

#: glibc mallopt parameters.
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3


@cache
def tune_allocator(threshold_bytes: int = 1 << 30) -> bool:
    """Stop glibc from returning every large feature map to the kernel after each layer.

    By default glibc serves allocations above 32 MiB with fresh ``mmap`` pages and unmaps
    them on ``free``; a forward pass over a 1024 x 1024 tile allocates and frees dozens of such
    tensors, and the page faults cost more than the convolutions (measured here: 0.65 vs
    1.65 M pixels/s). Raising the mmap and trim thresholds keeps that memory in the process
    (its resident size stays near its peak). Once per process; no-op off glibc.

    Returns
    -------
    bool
        Whether both settings were applied.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(_M_MMAP_THRESHOLD, threshold_bytes)
                    and libc.mallopt(_M_TRIM_THRESHOLD, threshold_bytes))
    except (OSError, AttributeError):
        return False


def trim_heap() -> None:
    """Give free heap memory back to the kernel (glibc ``malloc_trim``); no-op elsewhere.

    Long loops over large, differently sized arrays (one Landsat date after another)
    fragment the heap, so the resident size creeps up with the number of iterations;
    trimming after each keeps the peak that of one iteration.
    """
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL("libc.so.6").malloc_trim(0)
        except (OSError, AttributeError):
            pass


def exact_float32_on_gpu() -> None:
    """Make float32 convolutions and matrix products on a GPU really float32.

    torch lets cuDNN run float32 convolutions in TF32 (10-bit mantissa) by default. Measured
    on an H200 with the shipped network on a 1024 x 1024 px scene (``bench_gpu.py``): TF32
    differs from float64 by up to 0.010 K (mean 0.0004 K), true float32 by 0.0002 K, at the
    same speed (the network's 16-channel layers are bound by memory, not arithmetic). TF32
    also made a GPU cube differ from the CPU's in 4 % of stored values. bf16 stays available
    through ``fusion.mixed_precision``.
    """
    import torch

    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
