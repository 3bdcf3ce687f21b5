"""Encode + write throughput of the output cube (the engine's last stage), one process.

Writes ``--blocks`` output blocks of 32 days x ``--size`` x ``--size`` px (``lst`` with NaN
gaps, ``qa``, ``reference_date``) through :class:`lst_pipeline.io.cube.CubeWriter`, exactly
as a chunk task does, for int16 (CF-packed) and float32 cubes, and reports pixel-days/s,
uncompressed and on-disk bytes per pixel-day.

Appends a JSON line to ``results/encode_write.jsonl``.

Usage::

    .venv/bin/python benchmarks/bench_encode_write.py [--size 1024] [--blocks 2]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from _record import append_result

from lst_pipeline.config import GridConfig
from lst_pipeline.grid import TargetGrid, Window
from lst_pipeline.io.cube import CubeWriter, create_cube
from lst_pipeline.io.read_cost import stored_bytes


def block(rng, days: int, size: int, t0: int):
    yy, xx = np.mgrid[0:size, 0:size]
    cover = 4 * np.sin(xx / 17.0) * np.cos(yy / 23.0)
    t = np.arange(t0, t0 + days)
    lst = (300 + 10 * np.sin(t / 58.0))[:, None, None] + cover + rng.normal(0, 0.8,
                                                                          (days, size, size))
    qa = rng.choice(np.array([0, 1, 2, 3], np.uint8), size=lst.shape, p=[0.2, 0.05, 0.5, 0.25])
    lst[qa == 0] = np.nan
    ref = np.where(qa == 0, -2147483648, 18600 + (t[:, None, None] // 16) * 16).astype(np.int32)
    return lst.astype(np.float32), qa, ref


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--blocks", type=int, default=2)
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()
    size, days = args.size, 32
    grid = TargetGrid.from_config(GridConfig("EPSG:32755", 30.0, (400000.0, 6200000.0,
                                             400000.0 + 30 * size, 6200000.0 + 30 * size), 32))
    rng = np.random.default_rng(0)
    blocks = [block(rng, days, size, 32 * i) for i in range(args.blocks)]
    record: dict = {"benchmark": "encode_write", "size": size, "days_per_block": days,
                    "blocks": args.blocks, "date": time.strftime("%Y-%m-%d")}
    for dtype in ("int16", "float32"):
        with tempfile.TemporaryDirectory(prefix="lst-write-") as tmp:
            cube = Path(tmp) / "cube.zarr"
            all_days = np.datetime64("2021-01-01") + np.arange(days * args.blocks)
            create_cube(cube, grid, all_days, (days, size, size), dtype=dtype)
            writer = CubeWriter(cube)
            start = time.perf_counter()
            for i, (lst, qa, ref) in enumerate(blocks):
                writer.write(i * days, Window(0, size, 0, size), lst, qa, ref)
            seconds = time.perf_counter() - start
            pixel_days = days * size * size * args.blocks
            on_disk = stored_bytes(cube)
            record[dtype] = {"seconds": seconds, "pixel_days_per_second": pixel_days / seconds,
                             "uncompressed_bytes_per_pixel_day": 7 if dtype == "int16" else 9,
                             "stored_bytes_per_pixel_day": on_disk / pixel_days}
            print(f"{dtype}: {pixel_days:,} pixel-days encoded + written in {seconds:.2f} s = "
                  f"{pixel_days / seconds / 1e6:.1f} M pixel-days/s; on disk "
                  f"{on_disk / pixel_days:.2f} B per pixel-day")
    if not args.no_record:
        append_result("encode_write", record)


if __name__ == "__main__":
    main()
