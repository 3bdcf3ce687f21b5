"""Commands that write or describe stores: ``simulate``, ``ingest``, ``inspect``, ``rechunk``."""

from __future__ import annotations

import argparse

from lst_pipeline.cli.common import add_cluster_options, add_no_progress, path_arg, store_arg


def add_parsers(sub) -> None:
    """Register the commands on the ``lst-pipeline`` subparsers."""
    p = sub.add_parser("simulate", help="write a synthetic region (input stack + truth)",
                       description="Simulate the region described by CONFIG's `simulation` "
                                   "section: writes the input stack (inputs.stack) and the "
                                   "daily truth cube (simulation.truth).")
    p.add_argument("config", type=path_arg, help="pipeline YAML")
    p.add_argument("--overwrite", action="store_true", help="replace existing stores")
    p.add_argument("--write-files", type=path_arg, metavar="DIR",
                   help="also write the region as real-format files under DIR: Landsat C2 "
                        "L2 scene directories (DIR/landsat) and MOD11A1 tiles (DIR/modis), "
                        "to try `ingest` on data whose answer is known")
    p.add_argument("--modis-format", choices=("hdf", "geotiff"), default="hdf",
                   help="MOD11A1 files as HDF4-EOS tiles (default) or AppEEARS-like GeoTIFFs")
    add_no_progress(p)
    p.set_defaults(func=cmd_simulate)

    p = sub.add_parser("ingest", help="read real Landsat/MODIS inputs into the input stack",
                       description="Read the sources named in CONFIG's `ingest` section "
                                   "(Landsat C2 L2 scenes, MOD11A1/MYD11A1 HDF or GeoTIFF, STAC "
                                   "items, pre-gridded series) onto the target grid and write "
                                   "them into inputs.stack: new dates are inserted, dates "
                                   "already present are replaced. The stack is left unchanged "
                                   "if any input fails.")
    p.add_argument("config", type=path_arg, help="pipeline YAML with an `ingest` section")
    p.add_argument("--plan-only", action="store_true",
                   help="check every input and print what would be ingested, write nothing")
    p.add_argument("--cluster", metavar="NAME|PATH",
                   help="read and regrid the files on this cluster profile's workers (local, "
                        "slurm, kubernetes ... or a YAML path); default: in this process")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="read the files on the workers of a running Dask scheduler")
    add_no_progress(p, "no progress bar")
    p.set_defaults(func=cmd_ingest)

    p = sub.add_parser("inspect", help="print what an input stack or output cube holds",
                       description="Describe a store written by lst_pipeline: grid, dates per "
                                   "sensor, clear fractions and gaps in the record (input "
                                   "stack), or days, method and provenance (output cube).")
    p.add_argument("store", type=store_arg,
                   help="input stack or output cube (a .zarr directory or an s3:// ... URL)")
    p.add_argument("--dates", action="store_true",
                   help="also list every date with its clear fraction and sources")
    p.set_defaults(func=cmd_inspect)

    p = sub.add_parser("rechunk", help="write a time-series-friendly copy of a cube",
                       description="Copy CUBE to OUT chunked along time (all days of a small "
                                   "square per chunk, by default), with dask's own rechunking "
                                   "(method p2p on a distributed cluster). Values, CF "
                                   "encoding, attributes and spatial_ref are kept exactly; "
                                   "CUBE is never written.")
    p.add_argument("cube", type=store_arg, help="a complete output cube (path or URL)")
    p.add_argument("out", type=store_arg, help="the copy to write (not CUBE; path or URL)")
    p.add_argument("--chunks", metavar="T,Y,X", default=None,
                   help="target chunks (-1: whole dimension); default: all days x a square "
                        "of about --target-mib MiB of lst per chunk")
    p.add_argument("--target-mib", type=float, default=32.0,
                   help="uncompressed MiB of one lst chunk for the default chunks (32)")
    p.add_argument("--method", choices=("p2p", "tasks"), default="p2p",
                   help="dask rechunk method (default p2p)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing OUT")
    add_no_progress(p, "no progress bar")
    add_cluster_options(p)
    p.set_defaults(func=cmd_rechunk)


def cmd_simulate(args: argparse.Namespace) -> int:
    """Simulate a region; optionally write it as real-format files."""
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
    """Plan the ingest, print it, then stage and commit it."""
    import warnings

    from lst_pipeline.config import load_pipeline
    from lst_pipeline.errors import InputWarning
    from lst_pipeline.ingest import execute_ingest, plan_ingest
    from lst_pipeline.ingest.execute import STACK_WRITER
    from lst_pipeline.io.lock import refuse_if_locked

    config = load_pipeline(args.config)
    if not args.plan_only:  # before reading every file's header and starting a cluster
        refuse_if_locked(config.inputs.stack, STACK_WRITER)
    plan = plan_ingest(config)
    print(plan.describe())
    if args.plan_only:
        for reason in plan.skipped:
            print(f"  skipped: {reason}")
        return 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InputWarning)  # listed in the summary instead
        if args.cluster or args.scheduler:
            from lst_pipeline.cluster import connect, load_profile

            context = (connect(scheduler=args.scheduler) if args.scheduler
                       else connect(load_profile(args.cluster)))
            with context as client:
                summary = execute_ingest(plan, progress=not args.no_progress, client=client)
        else:
            summary = execute_ingest(plan, progress=not args.no_progress)
    print(summary)
    for reason in summary.skipped:
        print(f"  skipped: {reason}")
    return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    """Describe a stack or a cube."""
    from lst_pipeline.io.describe import describe_store

    print(describe_store(args.store, dates=args.dates))
    return 0


def cmd_rechunk(args: argparse.Namespace) -> int:
    """Plan the copy, print it, then rechunk on a cluster."""
    from lst_pipeline.cluster import connect, load_profile
    from lst_pipeline.config.locations import is_remote
    from lst_pipeline.io.rechunk import execute_rechunk, parse_chunks, plan_rechunk

    plan = plan_rechunk(args.cube, args.out, chunks=parse_chunks(args.chunks),
                        target_mib=args.target_mib, method=args.method,
                        overwrite=args.overwrite)
    print(plan.describe())
    if args.scheduler:
        cluster = connect(scheduler=args.scheduler)
    else:
        cluster = connect(load_profile(args.cluster or "local"))
    with cluster as client:
        seconds = execute_rechunk(plan, client, progress=not args.no_progress)
    print(f"wrote {plan.target if is_remote(plan.target) else plan.target.resolve()} in "
          f"{seconds:.1f} s")
    return 0
