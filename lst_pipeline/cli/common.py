"""Options and helpers shared by the commands: clusters, progress bars."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def path_arg(text: str) -> Path:
    """``argparse`` type of every path argument: local paths and ``file://`` URLs.

    Other URLs are refused at parse time with argparse's one-line usage error (exit 2).
    """
    from lst_pipeline.config.locations import local_path
    from lst_pipeline.errors import ConfigError

    try:
        return local_path(text, "argument")
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc).split(": ", 1)[1]) from None


def store_arg(text: str) -> Any:
    """``argparse`` type of a store argument: a local path or an object-store URL.

    URLs (``s3://bucket/cube.zarr`` ...) take their credentials and endpoint from the
    standard environment variables (``AWS_ACCESS_KEY_ID``, ``AWS_ENDPOINT_URL`` ...); a URL
    that cannot hold a store is argparse's one-line usage error (exit 2).
    """
    from lst_pipeline.config.locations import store_path
    from lst_pipeline.errors import ConfigError, MissingDependencyError

    try:
        return store_path(text, "argument")
    except (ConfigError, MissingDependencyError) as exc:
        raise argparse.ArgumentTypeError(str(exc).split(": ", 1)[1]) from None


def add_cluster_options(p: argparse.ArgumentParser) -> None:
    """``--cluster NAME|PATH`` and ``--scheduler ADDRESS``."""
    p.add_argument("--cluster", metavar="NAME|PATH",
                   help="cluster profile: a shipped name (local, local-gpu, slurm, slurm-gpu, "
                        "kubernetes, kubernetes-gpu) or a YAML path (default: the config's "
                        "`cluster`)")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="connect to a running Dask scheduler instead of starting a cluster")


def add_no_progress(p: argparse.ArgumentParser, what: str = "no progress bars") -> None:
    """``--no-progress``."""
    p.add_argument("--no-progress", action="store_true", help=what)


def cluster(args: argparse.Namespace, config_profile: str) -> tuple[Any, dict | None]:
    """The cluster context and the resources each fusion task needs on it."""
    from lst_pipeline.cluster import connect, load_profile

    if args.scheduler:
        return connect(scheduler=args.scheduler), None
    profile = load_profile(args.cluster or config_profile)
    return connect(profile), profile.task_resources


def profile_threads(args: argparse.Namespace, config_profile: str) -> int:
    """Worker threads the chosen cluster profile will start (what the plan is cut for)."""
    from lst_pipeline.cluster import load_profile

    profile = load_profile(args.cluster or config_profile)
    return max(1, profile.n_workers) * profile.threads_per_worker
