"""Bytes read from a cube for one pixel's 10-year series and for one day's map.

Builds a 10-year (3653-day) ``lst`` cube over ``--size`` x ``--size`` px with the real
encoding (int16, 0.01 K, Blosc zstd bitshuffle) and realistic values (seasonal cycle, land
cover pattern, noise, 30 % no data), in the production layout (``--chunks``, default
32 days x 64 x 64 px), copies it with ``lst-pipeline rechunk``'s code (all days x 32 x 32 px,
p2p on a 2-worker local cluster) and counts, with a counting Zarr store
(``lst_pipeline.io.read_cost``), the bytes each question fetches in each layout. Only ``lst``
is written (``qa`` and ``reference_date`` would add the same pattern).

Appends a JSON line to ``results/cube_access.jsonl``.

Usage::

    .venv/bin/python benchmarks/bench_cube_access.py [--size 256]
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

import numpy as np
import zarr
from _record import append_result

from lst_pipeline.config import GridConfig
from lst_pipeline.grid import TargetGrid
from lst_pipeline.io.cube import encode_lst
from lst_pipeline.io.read_cost import measure_read, stored_bytes
from lst_pipeline.io.rechunk import execute_rechunk, plan_rechunk

DAYS = 3653


def build_cube(path: Path, size: int, chunks: tuple[int, int, int]) -> float:
    from lst_pipeline.io.cube import create_cube

    grid = TargetGrid.from_config(GridConfig("EPSG:32755", 30.0, (400000.0, 6200000.0,
                                             400000.0 + 30 * size, 6200000.0 + 30 * size), 32))
    days = np.datetime64("2015-01-01") + np.arange(DAYS)
    create_cube(path, grid, days, chunks, attrs={"lst_pipeline:status": "complete"})
    group = zarr.open_group(str(path), mode="r+")
    group.attrs["lst_pipeline:status"] = "complete"
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:size, 0:size]
    cover = 4 * np.sin(xx / 17.0) * np.cos(yy / 23.0) + 3 * ((xx // 40 + yy // 55) % 3)
    start = time.perf_counter()
    step = chunks[0]
    for t0 in range(0, DAYS, step):
        t = np.arange(t0, min(t0 + step, DAYS))
        season = 300 + 12 * np.sin(2 * np.pi * (t - 100) / 365.25)
        block = season[:, None, None] + cover[None] + rng.normal(0, 0.8, (len(t), size, size))
        block[rng.random(block.shape) < 0.3] = np.nan
        group["lst"][t0:t0 + len(t)] = encode_lst(block)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--chunks", default="32,64,64", help="production chunks T,Y,X")
    parser.add_argument("--series-chunks", default="-1,32,32", help="rechunked chunks T,Y,X")
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()
    chunks = tuple(int(v) for v in args.chunks.split(","))
    series_chunks = tuple(int(v) for v in args.series_chunks.split(","))

    from distributed import Client, LocalCluster

    record: dict = {"benchmark": "cube_access", "days": DAYS, "size": args.size,
                    "date": time.strftime("%Y-%m-%d")}
    with tempfile.TemporaryDirectory(prefix="lst-access-") as tmp:
        production = Path(tmp) / "cube.zarr"
        series = Path(tmp) / "cube_ts.zarr"
        record["write_seconds"] = build_cube(production, args.size, chunks)
        with LocalCluster(n_workers=2, threads_per_worker=1, silence_logs=logging.ERROR) as lc, \
                Client(lc) as client:
            plan = plan_rechunk(production, series, chunks=series_chunks)
            record["rechunk_seconds"] = execute_rechunk(plan, client, progress=False)
        mid = args.size // 2
        for name, path in (("production", production), ("rechunked", series)):
            point = measure_read(path, lambda c: c["lst"].isel(x=mid, y=mid))
            day = measure_read(path, lambda c: c["lst"].isel(time=DAYS // 2))
            whole = stored_bytes(path, ["lst"])
            layout = zarr.open_group(str(path), mode="r")["lst"].chunks
            record[name] = {
                "chunks": list(layout), "lst_stored_bytes": whole,
                "point_series": {"chunks": point.chunks, "bytes": point.chunk_bytes,
                                 "fraction_of_cube": point.chunk_bytes / whole},
                "day_map": {"chunks": day.chunks, "bytes": day.chunk_bytes,
                            "fraction_of_cube": day.chunk_bytes / whole},
                "open_bytes": point.open_bytes,
            }
            print(f"{name:<11} chunks {layout}: lst on disk {whole / 2**20:.1f} MiB; "
                  f"10-year pixel series {point.chunks} chunks, {point.chunk_bytes / 2**20:.2f} "
                  f"MiB ({100 * point.chunk_bytes / whole:.2f} %); day map {day.chunks} chunks, "
                  f"{day.chunk_bytes / 2**20:.2f} MiB ({100 * day.chunk_bytes / whole:.2f} %); "
                  f"opening {point.open_bytes / 1e3:.0f} kB")
    print(f"write {record['write_seconds']:.1f} s, rechunk (p2p, 2 workers) "
          f"{record['rechunk_seconds']:.1f} s")
    if not args.no_record:
        append_result("cube_access", record)


if __name__ == "__main__":
    main()
