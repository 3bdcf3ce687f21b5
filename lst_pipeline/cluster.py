"""Cluster profiles (YAML) -> a running ``distributed.Client``.

A profile is named (``local`` -> ``cluster/local.yaml`` shipped with the package) or given
as a path. ``--scheduler ADDRESS`` bypasses profiles and connects to a running scheduler.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from lst_pipeline.config import from_mapping
from lst_pipeline.errors import ConfigError

if TYPE_CHECKING:
    from distributed import Client

PROFILE_DIR = Path(__file__).parent / "cluster_profiles"


@dataclass(frozen=True)
class ClusterProfile:
    """How to start (or reach) a Dask cluster.

    Attributes
    ----------
    kind
        ``local``: a ``distributed.LocalCluster`` of worker processes on this machine.
    n_workers
        Worker processes.
    threads_per_worker
        Threads per worker (and torch threads per worker).
    memory_limit
        Per-worker memory limit (``"4GiB"``, or ``"auto"`` to share the machine's memory).
    """

    kind: Literal["local"] = "local"
    n_workers: int = 2
    threads_per_worker: int = 1
    memory_limit: str = "auto"

    def __post_init__(self) -> None:
        if self.n_workers < 1:
            raise ConfigError("cluster.n_workers: must be >= 1")
        if self.threads_per_worker < 1:
            raise ConfigError("cluster.threads_per_worker: must be >= 1")


def load_profile(name_or_path: str | Path) -> ClusterProfile:
    """Read a cluster profile by name (shipped profiles) or from a YAML path."""
    import yaml

    path = Path(name_or_path)
    if not path.suffix:
        path = PROFILE_DIR / f"{name_or_path}.yaml"
    if not path.is_file():
        shipped = sorted(p.stem for p in PROFILE_DIR.glob("*.yaml"))
        raise ConfigError(f"cluster profile {str(name_or_path)!r} not found "
                          f"(shipped profiles: {', '.join(shipped)}; or give a YAML path)")
    try:
        data = yaml.safe_load(path.read_text())
        return from_mapping(ClusterProfile, data, "cluster")
    except (yaml.YAMLError, ConfigError) as exc:
        raise ConfigError(f"{path}: {exc}") from None


@contextlib.contextmanager
def connect(profile: ClusterProfile | None = None, *, scheduler: str | None = None,
            quiet: bool = False) -> Iterator[Client]:
    """Start the cluster a profile describes (or connect to ``scheduler``) and yield a Client.

    The cluster is shut down on exit; an external scheduler is left running.
    """
    from distributed import Client, LocalCluster

    if scheduler:
        with Client(scheduler) as client:
            yield client
        return
    profile = profile or ClusterProfile()
    with LocalCluster(n_workers=profile.n_workers, threads_per_worker=profile.threads_per_worker,
                      processes=True, memory_limit=profile.memory_limit,
                      dashboard_address=":0", silence_logs=logging.ERROR) as cluster, \
            Client(cluster) as client:
        if not quiet:
            print(f"cluster: {profile.n_workers} worker processes x "
                  f"{profile.threads_per_worker} thread(s), dashboard {client.dashboard_link}")
        yield client
