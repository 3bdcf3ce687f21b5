"""Commands that fuse: ``run``, ``demo``, ``evaluate`` and ``bench``."""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

from lst_pipeline.cli.common import (
    add_cluster_options,
    add_no_progress,
    cluster,
    path_arg,
    profile_threads,
)


def add_parsers(sub) -> None:
    """Register the commands on the ``lst-pipeline`` subparsers."""
    p = sub.add_parser("run", help="fuse the input stack into the daily cube",
                       description="Plan the run described by CONFIG, then fuse every chunk "
                                   "of the output cube on a Dask cluster and write it to "
                                   "output.cube.")
    p.add_argument("config", type=path_arg, help="pipeline YAML")
    p.add_argument("--overwrite", action="store_true",
                   help="start over; by default an existing cube of the same run is resumed")
    p.add_argument("--plan-only", action="store_true", help="print the plan and stop")
    add_no_progress(p)
    add_cluster_options(p)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("demo", help="simulate, fuse and score the bundled demo region",
                       description="Run the whole pipeline on the bundled demo region "
                                   "(pipelines/demo.yaml): simulate, fuse on a local cluster of "
                                   "worker processes, print accuracy against the simulated "
                                   "truth and write a quicklook PNG.")
    p.add_argument("--workdir", type=path_arg, default=Path("demo_output"),
                   help="directory for the stores and the quicklook (default: ./demo_output)")
    p.add_argument("--config", type=path_arg, default=None,
                   help="use this pipeline YAML instead of the bundled demo")
    add_no_progress(p)
    add_cluster_options(p)
    p.set_defaults(func=cmd_demo)

    _add_evaluate_parser(sub)
    _add_bench_parser(sub)


def _add_evaluate_parser(sub) -> None:
    from lst_pipeline.fusion.registry import METHODS

    p = sub.add_parser("evaluate", help="compare fusion methods against the simulated truth",
                       description="Fuse CONFIG's region with each method (same reference "
                                   "selection, days and masks), score every method on the "
                                   "pixel-days all of them fused, and write a report directory "
                                   "(report.md, report.html with embedded figures).")
    p.add_argument("config", type=path_arg, help="pipeline YAML with a `simulation:` section "
                                             "(simulated with `lst-pipeline simulate`)")
    p.add_argument("--out", type=path_arg, required=True, help="report directory to write")
    p.add_argument("--methods", nargs="+", default=None, metavar="METHOD",
                   help=f"methods to compare (default: {' '.join(METHODS)})")
    p.add_argument("--against", choices=("auto", "truth", "holdout"), default="auto",
                   help="truth: the simulated truth store; holdout: leave-one-date-out "
                        "against the stack's own Landsat dates (any real stack); auto: truth "
                        "when the config has an existing simulation.truth, else holdout")
    p.add_argument("--min-clear", type=float, default=0.3,
                   help="holdout: least clear fraction of a Landsat date to hold it out")
    p.add_argument("--max-dates", type=int, default=None,
                   help="holdout: at most this many dates, spread over the series")
    p.add_argument("--time-block", type=int, default=32, help="truth: days fused at once")
    p.set_defaults(func=cmd_evaluate)


def _add_bench_parser(sub) -> None:
    p = sub.add_parser("bench", help="throughput benchmark: JSON record + short table",
                       description="Fuse a simulated region of --size x --size px over --days "
                                   "days (or CONFIG's own input stack) on the chosen cluster "
                                   "profile, into a scratch cube that is deleted afterwards, "
                                   "and write a JSON record: machine, devices, versions, "
                                   "config, pixel-days, wall time, pixel-days/s per worker "
                                   "and per device, per-stage seconds, peak memory per worker.")
    p.add_argument("config", type=path_arg, nargs="?", default=None,
                   help="pipeline YAML whose input stack to use (e.g. pipelines/demo.yaml "
                        "after `lst-pipeline demo`); default: a simulated region")
    p.add_argument("--size", type=int, default=256,
                   help="simulated region edge in px, a multiple of 32 (default 256)")
    p.add_argument("--days", type=int, default=None,
                   help="days to fuse (simulated: default 64; CONFIG: its first DAYS days)")
    p.add_argument("--chunk", type=int, default=256,
                   help="simulated region: chunk edge in px, 32 days per chunk (default 256)")
    p.add_argument("--no-uncertainty", action="store_true",
                   help="leave lst_uncertainty out (to measure what it costs)")
    p.add_argument("--method", default="dlstfm",
                   help="simulated region: fusion method (default dlstfm)")
    p.add_argument("--device", default="auto", help="simulated region: auto, cpu or cuda")
    p.add_argument("--mixed-precision", action="store_true",
                   help="bf16 autocast of the network on GPU workers (fusion.mixed_precision; "
                        "no effect on CPU)")
    p.add_argument("--checkpoint", type=path_arg, default=None,
                   help="simulated region: DLSTFM checkpoint (default: the shipped one); "
                        "to compare two checkpoints, run once with each")
    p.add_argument("-o", "--output", type=path_arg, default=None,
                   help="JSON record (default: lst-bench-<date>-<time>.json here)")
    p.add_argument("--performance-report", type=path_arg, metavar="HTML", default=None,
                   help="also write dask's HTML performance report of the run")
    p.add_argument("--workdir", type=path_arg, default=None,
                   help="scratch directory (default: a temporary one, removed at the end)")
    add_no_progress(p)
    add_cluster_options(p)
    p.set_defaults(func=cmd_bench)


def cmd_run(args: argparse.Namespace) -> int:
    """Plan the run (for the cluster's threads), print it, then fuse every chunk left."""
    from lst_pipeline.config import load_pipeline
    from lst_pipeline.fusion.engine import execute, plan_run
    from lst_pipeline.fusion.executor import CUBE_WRITER
    from lst_pipeline.io.lock import refuse_if_locked

    config = load_pipeline(args.config)
    if not args.plan_only:  # before planning and before a cluster is started or queued
        refuse_if_locked(config.output.cube, CUBE_WRITER)
    if args.scheduler:  # the cluster exists: plan for its threads
        context, resources = cluster(args, config.cluster)
        with context as client:
            plan = plan_run(config, n_workers=sum(client.nthreads().values()) or 1,
                            overwrite=args.overwrite)
            print(plan.describe())
            if args.plan_only:
                return 0
            summary = execute(plan, client, overwrite=args.overwrite,
                              progress=not args.no_progress, resources=resources)
        print(summary)
        return 0
    plan = plan_run(config, n_workers=profile_threads(args, config.cluster),
                    overwrite=args.overwrite)
    print(plan.describe())
    if args.plan_only:
        return 0
    context, resources = cluster(args, config.cluster)
    with context as client:
        summary = execute(plan, client, overwrite=args.overwrite, progress=not args.no_progress,
                          resources=resources)
    print(summary)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Simulate, fuse, score and draw the bundled demo region."""
    from lst_pipeline.config import bundled_pipeline, load_pipeline, replace_paths
    from lst_pipeline.evaluate import compare_with_truth
    from lst_pipeline.fusion.engine import execute, plan_run
    from lst_pipeline.quicklook import truth_comparison_png
    from lst_pipeline.simulate import simulate_region

    t_start = time.perf_counter()
    source = args.config or bundled_pipeline("demo")
    config = replace_paths(load_pipeline(source), args.workdir.resolve())
    args.workdir.mkdir(parents=True, exist_ok=True)
    print(f"[1/4] simulating the demo region ({source})")
    print(simulate_region(config, overwrite=True, progress=not args.no_progress))
    assert config.simulation is not None  # simulate_region refuses a config without one
    plan = plan_run(config, overwrite=True)
    print(f"[2/4] {plan.describe()}")
    context, resources = cluster(args, config.cluster)
    with context as client:
        run = execute(plan, client, overwrite=True, progress=not args.no_progress,
                      resources=resources)
    print("[3/4] scoring against the simulated truth")
    scores = compare_with_truth(config.output.cube, config.simulation.truth)
    print("[4/4] quicklook")
    png = truth_comparison_png(config.output.cube, config.simulation.truth, config.inputs.stack,
                               config.grid.coarse_factor,
                               args.workdir.resolve() / "quicklook.png")
    print(_demo_summary(config, plan, run, scores))
    print(f"quicklook         {png}")
    print(f"total             {time.perf_counter() - t_start:.1f} s")
    return 0


def _demo_summary(config, plan, run, scores) -> str:
    ny, nx = run.shape
    n = run.pixel_days
    lines = [
        "\n=== lst_pipeline demo summary ===",
        f"days              {run.days} ({config.dates.start} .. {config.dates.end})",
        f"pixels            {ny} x {nx} = {ny * nx:,} at {config.grid.resolution:g} m "
        f"(MODIS-like {config.grid.resolution * config.grid.coarse_factor:g} m)",
        f"pixel-days        {n:,}",
        f"fusion            {run.wall_seconds:.1f} s, "
        f"{run.pixel_days_per_second:,.0f} pixel-days/s (method {plan.task.method})",
        f"coverage          observed {100 * run.observed / n:.1f} %, "
        f"fused {100 * run.fused / n:.1f} % "
        f"({100 * run.fused_two / n:.1f} % from two references), "
        f"no data {100 * run.no_data / n:.1f} %",
        *(f"vs truth {name:<9}{scores[name]}" for name in ("fused", "observed", "all")),
        f"cube              {config.output.cube}",
    ]
    return "\n".join(lines)


def cmd_evaluate(args: argparse.Namespace) -> int:
    """Score every method on one region; write the report."""
    from lst_pipeline.config import load_pipeline
    from lst_pipeline.evaluate import calibration_table, comparison_table, evaluate, write_report

    comparison = evaluate(load_pipeline(args.config), args.methods, against=args.against,
                          time_block=args.time_block, min_clear_fraction=args.min_clear,
                          max_dates=args.max_dates, log=print)
    out = write_report(comparison, args.out)
    print(comparison_table(comparison.groups))
    if comparison.calibration:
        print(f"\ncalibration of lst_uncertainty (against the {comparison.reference_name}; "
              "a calibrated sigma has 0.68 within 1 sigma, 0.95 within 2):")
        print(calibration_table(comparison.calibration))
    print(f"report: {(out / 'report.html').resolve()}")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    """Fuse a scratch region on the cluster and write the throughput record."""
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
        device=args.device, checkpoint=args.checkpoint)
    with tempfile.TemporaryDirectory(prefix="lst-bench-", dir=args.workdir) as scratch:
        bench_config, simulate_seconds = bench_pipeline(
            Path(scratch), config=config, region=region, days=args.days,
            progress=not args.no_progress)
        if simulate_seconds:
            print(f"simulated the region in {simulate_seconds:.1f} s (not benchmarked)")
        if args.no_uncertainty:
            bench_config = dataclasses.replace(bench_config, output=dataclasses.replace(
                bench_config.output, uncertainty=False))
        if args.mixed_precision:  # the simulated region's or CONFIG's
            bench_config = dataclasses.replace(bench_config, fusion=dataclasses.replace(
                bench_config.fusion, mixed_precision=True))
        context, resources = cluster(args, bench_config.cluster)
        with context as client:
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
