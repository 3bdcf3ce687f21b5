"""The ``lst-pipeline`` command line.

Commands
--------
``simulate CONFIG``   write a synthetic region's input stack and truth cube
``ingest CONFIG``     read real Landsat/MODIS files or STAC items into the input stack
``inspect STORE``     print what an input stack or output cube holds
``run CONFIG``        fuse the input stack into the daily output cube on a Dask cluster
``demo``              simulate + run + score the bundled demo region, with a quicklook PNG
``train CONFIG``      train DLSTFM on input stacks (simulated regions or real stacks)
``adapt CONFIG``      fine-tune DLSTFM on the region's own stack, scored on held-out dates
``quicklook CUBE``    PNG of a day, a point's time series, or a GIF of a date range
``rechunk CUBE OUT``  a time-series-friendly copy of a cube (dask p2p rechunk)
``bench [CONFIG]``    throughput benchmark with a JSON record
``evaluate CONFIG``   every fusion method on the same region and days, scored against truth

Every command has ``--help``. Errors from bad input print one line naming the file or field
and exit with status 2.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from lst_pipeline import __version__
from lst_pipeline.errors import LSTPipelineError, describe_os_error


def _add_cluster_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--cluster", metavar="NAME|PATH",
                   help="cluster profile: a shipped name (local, local-gpu, slurm, slurm-gpu, "
                        "kubernetes, kubernetes-gpu) or a YAML path (default: the config's "
                        "`cluster`)")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="connect to a running Dask scheduler instead of starting a cluster")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lst-pipeline",
        description="Daily high-resolution land-surface temperature from Landsat and MODIS.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("simulate", help="write a synthetic region (input stack + truth)",
                       description="Simulate the region described by CONFIG's `simulation` "
                                   "section: writes the input stack (inputs.stack) and the "
                                   "daily truth cube (simulation.truth).")
    p.add_argument("config", type=Path, help="pipeline YAML")
    p.add_argument("--overwrite", action="store_true", help="replace existing stores")
    p.add_argument("--write-files", type=Path, metavar="DIR",
                   help="also write the region as real-format files under DIR: Landsat C2 "
                        "L2 scene directories (DIR/landsat) and MOD11A1 tiles (DIR/modis), "
                        "to try `ingest` on data whose answer is known")
    p.add_argument("--modis-format", choices=("hdf", "geotiff"), default="hdf",
                   help="MOD11A1 files as HDF4-EOS tiles (default) or AppEEARS-like GeoTIFFs")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")

    p = sub.add_parser("ingest", help="read real Landsat/MODIS inputs into the input stack",
                       description="Read the sources named in CONFIG's `ingest` section "
                                   "(Landsat C2 L2 scenes, MOD11A1/MYD11A1 HDF or GeoTIFF, STAC "
                                   "items, pre-gridded series) onto the target grid and write "
                                   "them into inputs.stack: new dates are inserted, dates "
                                   "already present are replaced. The stack is left unchanged "
                                   "if any input fails.")
    p.add_argument("config", type=Path, help="pipeline YAML with an `ingest` section")
    p.add_argument("--plan-only", action="store_true",
                   help="check every input and print what would be ingested, write nothing")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")

    p = sub.add_parser("inspect", help="print what an input stack or output cube holds",
                       description="Describe a store written by lst_pipeline: grid, dates per "
                                   "sensor, clear fractions and gaps in the record (input "
                                   "stack), or days, method and provenance (output cube).")
    p.add_argument("store", type=Path, help="input stack or output cube (.zarr directory)")
    p.add_argument("--dates", action="store_true",
                   help="also list every date with its clear fraction and sources")

    p = sub.add_parser("run", help="fuse the input stack into the daily cube",
                       description="Plan the run described by CONFIG, then fuse every chunk "
                                   "of the output cube on a Dask cluster and write it to "
                                   "output.cube.")
    p.add_argument("config", type=Path, help="pipeline YAML")
    p.add_argument("--overwrite", action="store_true",
                   help="start over; by default an existing cube of the same run is resumed")
    p.add_argument("--plan-only", action="store_true", help="print the plan and stop")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    _add_cluster_options(p)

    p = sub.add_parser("demo", help="simulate, fuse and score the bundled demo region",
                       description="Run the whole pipeline on the bundled demo region "
                                   "(pipelines/demo.yaml): simulate, fuse on a local cluster of "
                                   "worker processes, print accuracy against the simulated "
                                   "truth and write a quicklook PNG.")
    p.add_argument("--workdir", type=Path, default=Path("demo_output"),
                   help="directory for the stores and the quicklook (default: ./demo_output)")
    p.add_argument("--config", type=Path, default=None,
                   help="use this pipeline YAML instead of the bundled demo")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    _add_cluster_options(p)

    p = sub.add_parser("train", help="train the DLSTFM network",
                       description="Train DLSTFM as described by a training YAML (see "
                                   "pipelines/train_dlstfm.yaml): simulate the training regions "
                                   "if needed, train with periodic validation, keep the best "
                                   "checkpoint.")
    p.add_argument("config", type=Path, help="training YAML")
    p.add_argument("--resume", action="store_true",
                   help="continue from the last saved training state in the workdir")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p = sub.add_parser("adapt", help="fine-tune DLSTFM on the region's own input stack",
                       description="Fine-tune the DLSTFM checkpoint (fusion.checkpoint, or "
                                   "the shipped one) on pairs of clear Landsat dates of "
                                   "CONFIG's input stack, with dates held out in blocks of "
                                   "time for validation; write the best checkpoint with its "
                                   "provenance and print validation MAE/RMSE of the adapted "
                                   "model, the starting model, reference_change and starfm.")
    p.add_argument("config", type=Path, help="pipeline YAML (its inputs.stack is used)")
    p.add_argument("--steps", type=int, default=400,
                   help="optimiser steps (default 400: about 5 minutes for 600 x 600 px on "
                        "2 CPU cores)")
    p.add_argument("--out", type=Path, default=None,
                   help="checkpoint to write (default: <stack>.adapted.pt beside the stack)")
    p.add_argument("--min-clear", type=float, default=0.2,
                   help="least clear fraction of a Landsat date to use (default 0.2)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")

    p = sub.add_parser("quicklook", help="PNG of a day's map or a point's series; GIF of days",
                       description="Draw from an output cube: the map of one day (--date) with "
                                   "its flags, the daily series at a point (--point lon,lat) "
                                   "with the input Landsat and MODIS overlaid, or an animated "
                                   "GIF of the days START..END (--animate). Reads only the "
                                   "chunks it needs.")
    p.add_argument("cube", type=Path, help="output cube (Zarr), e.g. demo_output/cube.zarr")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--date", metavar="YYYY-MM-DD", help="map of this day")
    what.add_argument("--point", metavar="LON,LAT", help="time series at this point (degrees)")
    what.add_argument("--animate", nargs=2, metavar=("START", "END"),
                      help="animated GIF of the daily maps START..END (YYYY-MM-DD, inclusive)")
    p.add_argument("-o", "--output", type=Path, default=None,
                   help="file to write (default: lst_<date>.png, lst_point_<lon>_<lat>.png or "
                        "lst_<start>_<end>.gif in the current directory)")
    p.add_argument("--inputs", type=Path, default=None,
                   help="input stack to overlay on --point (default: the one recorded in the "
                        "cube's attributes, if it exists)")
    p.add_argument("--fps", type=float, default=4.0, help="GIF frames per second (default 4)")

    p = sub.add_parser("rechunk", help="write a time-series-friendly copy of a cube",
                       description="Copy CUBE to OUT chunked along time (all days of a small "
                                   "square per chunk, by default), with dask's own rechunking "
                                   "(method p2p on a distributed cluster). Values, CF "
                                   "encoding, attributes and spatial_ref are kept exactly; "
                                   "CUBE is never written.")
    p.add_argument("cube", type=Path, help="a complete output cube")
    p.add_argument("out", type=Path, help="the copy to write (not CUBE)")
    p.add_argument("--chunks", metavar="T,Y,X", default=None,
                   help="target chunks (-1: whole dimension); default: all days x a square "
                        "of about --target-mib MiB of lst per chunk")
    p.add_argument("--target-mib", type=float, default=32.0,
                   help="uncompressed MiB of one lst chunk for the default chunks (32)")
    p.add_argument("--method", choices=("p2p", "tasks"), default="p2p",
                   help="dask rechunk method (default p2p)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing OUT")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    _add_cluster_options(p)

    p = sub.add_parser("bench", help="throughput benchmark: JSON record + short table",
                       description="Fuse a simulated region of --size x --size px over --days "
                                   "days (or CONFIG's own input stack) on the chosen cluster "
                                   "profile, into a scratch cube that is deleted afterwards, "
                                   "and write a JSON record: machine, devices, versions, "
                                   "config, pixel-days, wall time, pixel-days/s per worker "
                                   "and per device, per-stage seconds, peak memory per worker.")
    p.add_argument("config", type=Path, nargs="?", default=None,
                   help="pipeline YAML whose input stack to use (e.g. pipelines/demo.yaml "
                        "after `lst-pipeline demo`); default: a simulated region")
    p.add_argument("--size", type=int, default=256,
                   help="simulated region edge in px, a multiple of 32 (default 256)")
    p.add_argument("--days", type=int, default=None,
                   help="days to fuse (simulated: default 64; CONFIG: its first DAYS days)")
    p.add_argument("--chunk", type=int, default=256,
                   help="simulated region: chunk edge in px, 32 days per chunk (default 256)")
    p.add_argument("--method", default="dlstfm",
                   help="simulated region: fusion method (default dlstfm)")
    p.add_argument("--device", default="auto", help="simulated region: auto, cpu or cuda")
    p.add_argument("-o", "--output", type=Path, default=None,
                   help="JSON record (default: lst-bench-<date>-<time>.json here)")
    p.add_argument("--performance-report", type=Path, metavar="HTML", default=None,
                   help="also write dask's HTML performance report of the run")
    p.add_argument("--workdir", type=Path, default=None,
                   help="scratch directory (default: a temporary one, removed at the end)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    _add_cluster_options(p)

    p = sub.add_parser("evaluate", help="compare fusion methods against the simulated truth",
                       description="Fuse CONFIG's region with each method (same reference "
                                   "selection, days and masks), score every method on the "
                                   "pixel-days all of them fused, and write a report directory "
                                   "(report.md, report.html with embedded figures).")
    p.add_argument("config", type=Path, help="pipeline YAML with a `simulation:` section "
                                             "(simulated with `lst-pipeline simulate`)")
    p.add_argument("--out", type=Path, required=True, help="report directory to write")
    p.add_argument("--methods", nargs="+", default=None, metavar="METHOD",
                   help="methods to compare (default: dlstfm reference_change starfm "
                        "ubestarfm modis_only)")
    p.add_argument("--against", choices=("auto", "truth", "holdout"), default="auto",
                   help="truth: the simulated truth store; holdout: leave-one-date-out "
                        "against the stack's own Landsat dates (any real stack); auto: truth "
                        "when the config has an existing simulation.truth, else holdout")
    p.add_argument("--min-clear", type=float, default=0.3,
                   help="holdout: least clear fraction of a Landsat date to hold it out")
    p.add_argument("--max-dates", type=int, default=None,
                   help="holdout: at most this many dates, spread over the series")
    p.add_argument("--time-block", type=int, default=32, help="truth: days fused at once")
    return parser


def _cluster(args: argparse.Namespace, config_profile: str):
    """The cluster context and the resources each fusion task needs on it."""
    from lst_pipeline.cluster import connect, load_profile

    if args.scheduler:
        return connect(scheduler=args.scheduler), None
    profile = load_profile(args.cluster or config_profile)
    return connect(profile), profile.task_resources


def cmd_simulate(args: argparse.Namespace) -> int:
    from lst_pipeline.config import load_pipeline
    from lst_pipeline.simulate import simulate_region

    config = load_pipeline(args.config)
    summary = simulate_region(config, overwrite=args.overwrite, progress=not args.no_progress)
    print(summary)
    if args.write_files:
        from lst_pipeline.simulate_files import write_scene_files

        written = write_scene_files(config, args.write_files, modis_format=args.modis_format,
                                    progress=not args.no_progress)
        print(f"wrote {len(written['landsat'])} Landsat scene directories and "
              f"{len(written['modis'])} MOD11A1 files under {args.write_files}")
    return 0


def cmd_ingest(args: argparse.Namespace) -> int:
    import warnings

    from lst_pipeline.config import load_pipeline
    from lst_pipeline.errors import InputWarning
    from lst_pipeline.ingest import execute_ingest, plan_ingest

    config = load_pipeline(args.config)
    plan = plan_ingest(config)
    print(plan.describe())
    if args.plan_only:
        for reason in plan.skipped:
            print(f"  skipped: {reason}")
        return 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InputWarning)  # listed in the summary instead
        summary = execute_ingest(plan, progress=not args.no_progress)
    print(summary)
    for reason in summary.skipped:
        print(f"  skipped: {reason}")
    return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    from lst_pipeline.inspect import describe_store

    print(describe_store(args.store, dates=args.dates))
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from lst_pipeline.config import load_pipeline
    from lst_pipeline.fusion.engine import execute, plan_run

    config = load_pipeline(args.config)
    if args.scheduler:  # the cluster exists: plan for its threads
        cluster, resources = _cluster(args, config.cluster)
        with cluster as client:
            plan = plan_run(config, n_workers=sum(client.nthreads().values()) or 1)
            print(plan.describe())
            if args.plan_only:
                return 0
            summary = execute(plan, client, overwrite=args.overwrite,
                              progress=not args.no_progress, resources=resources)
        print(summary)
        return 0
    plan = plan_run(config, n_workers=_profile_threads(args, config.cluster))
    print(plan.describe())
    if args.plan_only:
        return 0
    cluster, resources = _cluster(args, config.cluster)
    with cluster as client:
        summary = execute(plan, client, overwrite=args.overwrite, progress=not args.no_progress,
                          resources=resources)
    print(summary)
    return 0


def _profile_threads(args: argparse.Namespace, config_profile: str) -> int:
    """Worker threads the chosen cluster profile will start (what the plan is cut for)."""
    from lst_pipeline.cluster import load_profile

    profile = load_profile(args.cluster or config_profile)
    return max(1, profile.n_workers) * profile.threads_per_worker


def cmd_demo(args: argparse.Namespace) -> int:
    from lst_pipeline.config import bundled_pipeline, load_pipeline, replace_paths
    from lst_pipeline.evaluate import compare_with_truth
    from lst_pipeline.fusion.engine import execute, plan_run
    from lst_pipeline.simulate import simulate_region

    t_start = time.perf_counter()
    source = args.config or bundled_pipeline("demo")
    config = replace_paths(load_pipeline(source), args.workdir.resolve())
    args.workdir.mkdir(parents=True, exist_ok=True)
    print(f"[1/4] simulating the demo region ({source})")
    print(simulate_region(config, overwrite=True, progress=not args.no_progress))
    plan = plan_run(config)
    print(f"[2/4] {plan.describe()}")
    cluster, resources = _cluster(args, config.cluster)
    with cluster as client:
        run = execute(plan, client, overwrite=True, progress=not args.no_progress,
                      resources=resources)
    print("[3/4] scoring against the simulated truth")
    scores = compare_with_truth(config.output.cube, config.simulation.truth)
    print("[4/4] quicklook")
    png = demo_quicklook(config, args.workdir.resolve() / "quicklook.png")
    ny, nx = run.shape
    print("\n=== lst_pipeline demo summary ===")
    print(f"days              {run.days} ({config.dates.start} .. {config.dates.end})")
    print(f"pixels            {ny} x {nx} = {ny * nx:,} at {config.grid.resolution:g} m "
          f"(MODIS-like {config.grid.resolution * config.grid.coarse_factor:g} m)")
    print(f"pixel-days        {run.pixel_days:,}")
    print(f"fusion            {run.wall_seconds:.1f} s, "
          f"{run.pixel_days_per_second:,.0f} pixel-days/s (method {plan.task.method})")
    print(f"coverage          observed {100 * run.observed / run.pixel_days:.1f} %, "
          f"fused {100 * run.fused / run.pixel_days:.1f} % "
          f"({100 * run.fused_two / run.pixel_days:.1f} % from two references), "
          f"no data {100 * run.no_data / run.pixel_days:.1f} %")
    for name in ("fused", "observed", "all"):
        print(f"vs truth {name:<9}{scores[name]}")
    print(f"cube              {config.output.cube}")
    print(f"quicklook         {png}")
    print(f"total             {time.perf_counter() - t_start:.1f} s")
    return 0


def demo_quicklook(config, path: Path) -> Path:
    """Truth, MODIS, fused and error maps of the demo day with the most fused pixels."""
    import numpy as np
    import xarray as xr

    from lst_pipeline.io.cube import Flag, open_cube
    from lst_pipeline.io.stack import open_stack
    from lst_pipeline.quicklook import comparison_png
    from lst_pipeline.resample import upsample_nearest

    cube = open_cube(config.output.cube)
    fused_fraction = Flag.fused(cube["qa"]).mean(("y", "x")).values
    t = int(np.argmax(fused_fraction))
    day = cube.time.values[t]
    fused = cube["lst"].isel(time=t).values
    truth = xr.open_zarr(config.simulation.truth, consolidated=False)["lst"].sel(time=day).values
    stack = open_stack(config.inputs.stack)
    modis = stack["modis_lst"].sel(time_modis=day).values
    f = config.grid.coarse_factor
    modis_fine = upsample_nearest(modis, f)
    date = str(np.datetime64(day, "D"))
    return comparison_png(path, date, {"truth": truth, "MODIS (coarse)": modis_fine,
                                       "fused": fused}, error=fused - truth)


def cmd_train(args: argparse.Namespace) -> int:
    from lst_pipeline.model.train import load_train_config, train

    config = load_train_config(args.config)
    record = train(config, resume=args.resume, progress=not args.no_progress)
    print(f"best validation MAE {record['best_validation_mae_k']:.3f} K; "
          f"checkpoint: {config.checkpoint}")
    return 0


def cmd_adapt(args: argparse.Namespace) -> int:
    from lst_pipeline.config import load_pipeline
    from lst_pipeline.errors import ConfigError
    from lst_pipeline.model.adapt import adapt_checkpoint

    if args.steps < 1:
        raise ConfigError(f"--steps: must be >= 1, got {args.steps}")
    config = load_pipeline(args.config)
    result = adapt_checkpoint(config, steps=args.steps, out=args.out,
                              min_clear_fraction=args.min_clear, progress=not args.no_progress)
    print(result.describe())
    return 0


def _extent(cube) -> tuple[float, float, float, float]:
    from lst_pipeline.explore import _edges

    x0, x1 = _edges(cube["x"])
    y0, y1 = _edges(cube["y"])
    return x0, x1, y0, y1


#: Most frames ``quicklook --animate`` draws (each frame is one day's map in memory).
MAX_FRAMES = 400


def cmd_quicklook(args: argparse.Namespace) -> int:
    import numpy as np

    from lst_pipeline import explore, quicklook
    from lst_pipeline.errors import SelectionError
    from lst_pipeline.io.cube import open_cube

    cube = open_cube(args.cube, flags=False)
    crs = cube.rio.crs
    crs_name = crs.to_string() if crs is not None else ""
    name = Path(args.cube).name
    if args.date:
        day = explore.parse_date(args.date)
        sel = explore.day_map(cube, day)[["lst", "qa"]].load()
        out = args.output or Path(f"lst_{day}.png")
        path = quicklook.map_png(out, sel["lst"].values, sel["qa"].values,
                                 title=f"{name}  {day}", extent=_extent(cube),
                                 crs_name=crs_name)
    elif args.point:
        lon, lat = explore.parse_lonlat(args.point)
        point = explore.lonlat_to_cube(cube, lon, lat)
        series = explore.point_series(cube, point)[["lst", "qa"]].load()
        landsat = modis = None
        stack_path = args.inputs or cube.attrs.get("lst_pipeline:input_stack")
        if stack_path and (Path(stack_path) / "zarr.json").is_file():
            from lst_pipeline.io.stack import open_stack

            ls, md = explore.inputs_at_point(open_stack(stack_path), point)
            ls, md = ls.load(), md.load()
            landsat = (ls["time_landsat"].values, ls.values)
            modis = (md["time_modis"].values, md.values)
        elif args.inputs:
            from lst_pipeline.errors import InputError

            raise InputError(f"{args.inputs}: no input stack here (--inputs)")
        else:
            print("no input stack found to overlay (pass --inputs STACK)")
        out = args.output or Path(f"lst_point_{lon:.4f}_{lat:.4f}.png")
        path = quicklook.series_png(
            out, series["time"].values, series["lst"].values, series["qa"].values,
            title=f"{name}  {point.label()}  (x {float(series.x):.0f}, y {float(series.y):.0f}"
                  f" {crs_name})", landsat=landsat, modis=modis)
    else:
        start, end = (explore.parse_date(d, option="--animate") for d in args.animate)
        if end < start:
            raise SelectionError(f"--animate: END {end} is before START {start}")
        explore.check_day(cube, start, option="--animate")
        explore.check_day(cube, end, option="--animate")
        days = np.arange(start, end + 1)
        if len(days) > MAX_FRAMES:
            raise SelectionError(f"--animate: {len(days)} days asked; at most {MAX_FRAMES} "
                                 "frames, choose a shorter range")
        lst = cube["lst"].sel(time=slice(str(start), str(end))).load()
        frames = [(str(t.astype("datetime64[D]")), lst.sel(time=t).values)
                  for t in lst["time"].values]
        out = args.output or Path(f"lst_{start}_{end}.gif")
        path = quicklook.animation_gif(out, frames, extent=_extent(cube), title=f"{name}  ",
                                       fps=args.fps)
    print(f"wrote {path.resolve()}")
    return 0


def cmd_rechunk(args: argparse.Namespace) -> int:
    from lst_pipeline.cluster import connect, load_profile
    from lst_pipeline.errors import ConfigError
    from lst_pipeline.rechunk import execute_rechunk, plan_rechunk

    chunks = None
    if args.chunks:
        try:
            chunks = tuple(int(v) for v in args.chunks.split(","))
        except ValueError:
            raise ConfigError(f"--chunks: {args.chunks!r} is not T,Y,X integers") from None
    plan = plan_rechunk(args.cube, args.out, chunks=chunks, target_mib=args.target_mib,
                        method=args.method, overwrite=args.overwrite)
    print(plan.describe())
    if args.scheduler:
        cluster = connect(scheduler=args.scheduler)
    else:
        cluster = connect(load_profile(args.cluster or "local"))
    with cluster as client:
        seconds = execute_rechunk(plan, client, progress=not args.no_progress)
    print(f"wrote {plan.target.resolve()} in {seconds:.1f} s")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    import tempfile

    from lst_pipeline.bench import (
        SyntheticRegion,
        bench_pipeline,
        format_table,
        run_bench,
        write_record,
    )
    from lst_pipeline.config import load_pipeline

    output = args.output or Path(time.strftime("lst-bench-%Y%m%d-%H%M%S.json"))
    config = load_pipeline(args.config) if args.config else None
    region = None if config else SyntheticRegion(
        size=args.size, days=args.days or 64, chunk=args.chunk, method=args.method,
        device=args.device)
    with tempfile.TemporaryDirectory(prefix="lst-bench-", dir=args.workdir) as scratch:
        bench_config, simulate_seconds = bench_pipeline(
            Path(scratch), config=config, region=region, days=args.days,
            progress=not args.no_progress)
        if simulate_seconds:
            print(f"simulated the region in {simulate_seconds:.1f} s (not benchmarked)")
        cluster, resources = _cluster(args, bench_config.cluster)
        with cluster as client:
            record = run_bench(bench_config, client,
                               cluster=args.scheduler or args.cluster or bench_config.cluster,
                               performance_report=args.performance_report,
                               progress=not args.no_progress, resources=resources)
    record["source"] = str(args.config) if args.config else "simulated"
    print(format_table(record))
    print(f"record            {write_record(record, output).resolve()}")
    if args.performance_report:
        print(f"performance report {args.performance_report.resolve()}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from lst_pipeline.config import load_pipeline
    from lst_pipeline.errors import ConfigError
    from lst_pipeline.evaluate import (
        ALL_METHODS,
        compare_methods,
        compare_methods_holdout,
        comparison_table,
        write_report,
    )

    config = load_pipeline(args.config)
    methods = tuple(args.methods or ALL_METHODS)
    unknown = [m for m in methods if m not in ALL_METHODS]
    if unknown:
        raise ConfigError(f"--methods: unknown method {unknown[0]!r}; available: "
                          f"{', '.join(ALL_METHODS)}")
    against = args.against
    if against == "auto":
        has_truth = config.simulation is not None and Path(config.simulation.truth).exists()
        against = "truth" if has_truth else "holdout"
    if against == "truth":
        comparison = compare_methods(config, methods, time_block=args.time_block, log=print)
    else:
        comparison = compare_methods_holdout(config, methods, min_clear_fraction=args.min_clear,
                                             max_dates=args.max_dates, log=print)
    out = write_report(comparison, args.out)
    print(comparison_table(comparison.groups))
    print(f"report: {(out / 'report.html').resolve()}")
    return 0


COMMANDS = {"simulate": cmd_simulate, "ingest": cmd_ingest, "inspect": cmd_inspect,
            "run": cmd_run, "demo": cmd_demo, "train": cmd_train, "adapt": cmd_adapt,
            "evaluate": cmd_evaluate,
            "quicklook": cmd_quicklook, "rechunk": cmd_rechunk, "bench": cmd_bench}


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``lst-pipeline`` console script.

    Returns the exit status: 0 on success; 2 for every error the user can cause (bad
    configuration or input, a store that is not ours, a full disk or a read-only directory),
    reported as one line naming the file or field; 1 for an internal error (a bug), reported
    with its traceback; 130 when interrupted.
    """
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except LSTPipelineError as exc:
        print(f"lst-pipeline {args.command}: error: {_one_line(str(exc))}", file=sys.stderr)
        return 2
    except OSError as exc:  # permission denied, disk full, file too large, read-only FS ...
        print(f"lst-pipeline {args.command}: error: {describe_os_error(exc)}",
              file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"lst-pipeline {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception:
        import traceback

        traceback.print_exc()
        print(f"lst-pipeline {args.command}: internal error (a bug in lst_pipeline, not in "
              "your input); the traceback above says where: please report it",
              file=sys.stderr)
        return 1


def _one_line(message: str) -> str:
    """Messages are one line; a library's multi-line text is folded into it."""
    return " ".join(part.strip() for part in message.splitlines() if part.strip())


if __name__ == "__main__":
    sys.exit(main())
