"""The ``lst-pipeline`` command line.

Commands
--------
``simulate CONFIG``   write a synthetic region's input stack and truth cube
``run CONFIG``        fuse the input stack into the daily output cube on a Dask cluster
``demo``              simulate + run + score the bundled demo region, with a quicklook PNG
``train CONFIG``      train DLSTFM on input stacks (simulated regions or real stacks)
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
from lst_pipeline.errors import LSTPipelineError


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
    p.add_argument("--no-progress", action="store_true", help="no progress bars")

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
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from lst_pipeline.config import load_pipeline
    from lst_pipeline.fusion.engine import execute, plan_run

    config = load_pipeline(args.config)
    plan = plan_run(config)
    print(plan.describe())
    if args.plan_only:
        return 0
    cluster, resources = _cluster(args, config.cluster)
    with cluster as client:
        summary = execute(plan, client, overwrite=args.overwrite, progress=not args.no_progress,
                          resources=resources)
    print(summary)
    return 0


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

    cube = open_cube(config.output.cube)
    fused_fraction = Flag.fused(cube["qa"]).mean(("y", "x")).values
    t = int(np.argmax(fused_fraction))
    day = cube.time.values[t]
    fused = cube["lst"].isel(time=t).values
    truth = xr.open_zarr(config.simulation.truth, consolidated=False)["lst"].sel(time=day).values
    stack = open_stack(config.inputs.stack)
    modis = stack["modis_lst"].sel(time_modis=day).values
    f = config.grid.coarse_factor
    modis_fine = np.repeat(np.repeat(modis, f, axis=0), f, axis=1)
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


COMMANDS = {"simulate": cmd_simulate, "run": cmd_run, "demo": cmd_demo, "train": cmd_train,
            "evaluate": cmd_evaluate}


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``lst-pipeline`` console script."""
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except LSTPipelineError as exc:
        print(f"lst-pipeline {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"lst-pipeline {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
