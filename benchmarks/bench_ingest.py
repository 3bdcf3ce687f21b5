"""Ingest benchmark (issue: real inputs): one year of files onto a 2016 x 2016 px grid.

Writes, once, a year of real-format files over a 60 x 60 km region (30 m grid, 960 m
coarse cells): 23 Landsat C2 L2 scene directories (ST_B10, QA_PIXEL, ST_QA, MTL; the
scene 200 px wider than the region on every side, with clouds) and 365 MOD11A1 HDF4-EOS
tiles (1200 x 1200, deflate). The temperatures are smooth random fields: ingest speed does
not depend on them. Then, each in its own process so that peak memory is its own:

1. ingest of the first quarter (6 scenes, 91 days) into a new stack;
2. ingest of the whole year into a new stack;
3. ingest of the whole year on a LocalCluster of 1, then 2 worker processes (1 thread each;
   ``ingest --cluster``): the files are read and regridded on the workers. The cluster is
   started before the clock starts (its start is recorded apart).

Records wall time, MB of files read, MB/s, files/s and the peak resident memory of each,
the ratio of the two peaks (memory must not grow with the number of dates), and the speed-up
of 2 workers over 1. Appends a JSON line to ``results/ingest.jsonl``.

Usage::

    .venv/bin/python benchmarks/bench_ingest.py [--size 2000] [--days 365] [--keep DIR]
        [--workers 1,2]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _record import append_result, head_commit

from lst_pipeline.io import landsat, modis
from lst_pipeline.simulate import encode_qa_pixel, landsat_cloud_masks, smooth_field
from lst_pipeline.simulate_files import (
    granule_name,
    modis_tile,
    st_dn,
    tile_of,
    write_landsat_scene,
    write_mod11a1_hdf,
)

ORIGIN = (400000.0, 6150000.0)   # EPSG:32755, Riverina
START = dt.date(2021, 1, 1)


def grid_config(size: int) -> dict:
    x0, y0 = ORIGIN
    return {"crs": "EPSG:32755", "resolution": 30, "coarse_factor": 32,
            "bounds": [x0, y0, x0 + 30 * size, y0 + 30 * size]}


def write_files(root: Path, size: int, days: int, seed: int = 1) -> None:
    from affine import Affine
    from odc.geo.geobox import GeoBox

    from lst_pipeline.io.raster import overlap_roi

    rng = np.random.default_rng(seed)
    margin = 200
    x0, y0 = ORIGIN
    n = size + 2 * margin
    scene_box = GeoBox((n, n), Affine(30, 0, x0 - 30 * margin, 0, -30, y0 + 30 * (size + margin)),
                       "EPSG:32755")
    for k, day in enumerate(range(5, days, 16)):
        date = START + dt.timedelta(days=day)
        base = 300 + 8 * smooth_field(rng, (n, n), 40.0)
        cloud_field = smooth_field(rng, (n, n), 60.0)
        cloud, dilated, shadow = landsat_cloud_masks(cloud_field, 0.3 * (k % 3) / 2,
                                                     dilate_px=3, shadow_shift_px=(8, 12))
        qa = encode_qa_pixel(cloud, dilated, shadow, np.zeros((n, n), bool))
        kelvin = np.where(cloud, base - 25, base)
        dn = st_dn(kelvin)
        dn[:, :50] = 0
        qa[:, :50] = landsat.QA_VALUE_FILL
        pid = f"LC08_L2SP_093084_{date:%Y%m%d}_{date + dt.timedelta(days=9):%Y%m%d}_02_T1"
        write_landsat_scene(root / "landsat", pid,
                            dt.datetime.combine(date, dt.time(0, 5), dt.UTC), scene_box, dn,
                            qa, np.full((n, n), 120, np.int16))
    region = GeoBox((size, size), Affine(30, 0, x0, 0, -30, y0 + 30 * size), "EPSG:32755")
    h, v = tile_of(region)
    tile = modis_tile(h, v)
    ys, xs = overlap_roi(tile, region, padding=4)
    shape = (ys.stop - ys.start, xs.stop - xs.start)
    for day in range(days):
        date = START + dt.timedelta(days=day)
        lst = np.zeros(tile.shape, np.uint16)
        qc = np.full(tile.shape, modis.make_qc(modis.MANDATORY_NOT_PRODUCED), np.uint8)
        view = np.full(tile.shape, 255, np.uint8)
        kelvin = 300 + 8 * smooth_field(rng, shape, 4.0)
        cloudy = smooth_field(rng, shape, 6.0) > 0.8
        lst[ys, xs] = np.where(cloudy, 0, np.round(kelvin / modis.LST_SCALE_K))
        qc[ys, xs] = np.where(cloudy, modis.make_qc(modis.MANDATORY_CLOUD),
                              modis.make_qc(modis.MANDATORY_GOOD))
        view[ys, xs] = 105
        write_mod11a1_hdf(root / "modis" / granule_name("MOD11A1", date, h, v), tile, lst,
                          qc, view)


def ingest_once(root: Path, size: int, days: int, stack: Path, workers: int = 0) -> dict:
    """Run in a child process: ingest ``days`` days, report time, bytes and peak RSS.

    ``workers`` > 0: on a LocalCluster of that many worker processes (peak RSS is then the
    client's own).
    """
    import contextlib
    import resource

    from lst_pipeline.config import load_pipeline
    from lst_pipeline.ingest import execute_ingest, plan_ingest

    end = START + dt.timedelta(days=days - 1)
    config = load_pipeline({
        "name": "bench-ingest", "grid": grid_config(size),
        "dates": {"start": str(START), "end": str(end)},
        "inputs": {"stack": str(stack)}, "output": {"cube": str(stack.with_suffix(".cube"))},
        "chunks": {"time": 32, "y": 512, "x": 512},
        "fusion": {"max_reference_gap_days": 0},
        "ingest": {"landsat": {"paths": [str(root / "landsat" / "*")]},
                   "modis": {"paths": [str(root / "modis" / "*.hdf")]}},
    })
    import warnings

    from lst_pipeline.cluster import ClusterProfile, connect

    cluster_start = time.perf_counter()
    with warnings.catch_warnings(), (connect(ClusterProfile(n_workers=workers), quiet=True)
                                     if workers else contextlib.nullcontext()) as client:
        warnings.simplefilter("ignore")
        if client is not None:
            client.wait_for_workers(workers)
        cluster_seconds = time.perf_counter() - cluster_start
        started = time.perf_counter()
        plan = plan_ingest(config)
        summary = execute_ingest(plan, progress=False, client=client)
        seconds = time.perf_counter() - started
    return {"days": days, "workers": workers, "cluster_start_seconds":
            cluster_seconds if workers else None, "landsat_dates": summary.landsat_dates,
            "modis_dates": summary.modis_dates, "files": summary.files,
            "seconds": seconds, "mb_read": summary.bytes_read / 1e6,
            "mb_per_s": summary.bytes_read / 1e6 / seconds,
            "files_per_s": summary.files / seconds,
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=2016,
                        help="grid edge in 30 m pixels (a multiple of 32)")
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--keep", type=Path, help="write the files here and keep them")
    parser.add_argument("--workers", default="1,2",
                        help="worker counts of the cluster runs of the whole period")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        root, days, stack, workers = args.child
        print(json.dumps(ingest_once(Path(root), args.size, int(days), Path(stack),
                                     int(workers))))
        return
    with tempfile.TemporaryDirectory() as tmp:
        root = args.keep or Path(tmp)
        started = time.perf_counter()
        if not (root / "modis").is_dir():
            write_files(root, args.size, args.days)
        print(f"files written in {time.perf_counter() - started:.0f} s")
        runs = []
        cases = [(args.days // 4, 0), (args.days, 0),
                 *((args.days, int(n)) for n in args.workers.split(",") if n)]
        for days, workers in cases:
            out = subprocess.run(
                [sys.executable, __file__, "--size", str(args.size), "--child", str(root),
                 str(days), str(Path(tmp) / f"stack_{days}_{workers}.zarr"), str(workers)],
                capture_output=True, text=True, check=True, cwd=Path(__file__).parent)
            runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(runs[-1])
    quarter, year, *on_cluster = runs
    by_workers = {r["workers"]: r for r in on_cluster}
    record = {
        "benchmark": "ingest", "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "commit": head_commit(),
        "machine": f"{platform.machine()} {os.cpu_count()} cores",
        "size": args.size, "quarter": quarter, "year": year,
        "peak_rss_ratio_year_vs_quarter": year["peak_rss_mib"] / quarter["peak_rss_mib"],
        "cluster": on_cluster,
        "speedup_2_vs_1_workers": (by_workers[1]["seconds"] / by_workers[2]["seconds"]
                                   if {1, 2} <= set(by_workers) else None),
    }
    print(f"year: {year['seconds']:.1f} s, {year['mb_read']:.0f} MB read at "
          f"{year['mb_per_s']:.0f} MB/s, {year['files_per_s']:.1f} files/s; peak RSS "
          f"{year['peak_rss_mib']:.0f} MiB (quarter {quarter['peak_rss_mib']:.0f} MiB, ratio "
          f"{record['peak_rss_ratio_year_vs_quarter']:.2f})")
    for run in on_cluster:
        print(f"year on {run['workers']} worker(s): {run['seconds']:.1f} s "
              f"({run['files_per_s']:.1f} files/s; cluster started in "
              f"{run['cluster_start_seconds']:.1f} s before)")
    if record["speedup_2_vs_1_workers"]:
        print(f"2 workers / 1 worker: {record['speedup_2_vs_1_workers']:.2f}x")
    print(f"recorded in {append_result('ingest', record)}")


if __name__ == "__main__":
    main()
