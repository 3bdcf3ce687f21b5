"""Cluster profiles (YAML) -> a running ``distributed.Client``.

A profile is named (``local`` -> ``cluster/local.yaml`` shipped with the package) or given as
a path; ``--scheduler ADDRESS`` bypasses profiles and connects to a running scheduler.

Kinds
-----
``local``
    ``distributed.LocalCluster`` of worker processes on this machine (CPU).
``local-gpu``
    One worker process per visible GPU, each pinned to its GPU through
    ``CUDA_VISIBLE_DEVICES`` (dask-cuda's ``LocalCUDACluster`` when installed, otherwise the
    same pinning done here) and advertising the resource ``GPU=1``.
``slurm``
    dask-jobqueue ``SLURMCluster``; with ``gpus_per_worker: 1`` every job is one worker with
    one GPU (``--gres=gpu:1``, so SLURM pins ``CUDA_VISIBLE_DEVICES``) and ``GPU=1``.
``kubernetes``
    dask-kubernetes operator ``KubeCluster``; with ``gpus_per_worker: 1`` every worker pod
    requests ``nvidia.com/gpu: 1`` (the scheduler pod none) and advertises ``GPU=1``.

Tasks that need a GPU are annotated with ``resources={"GPU": 1}`` by the engine when the
profile has GPUs, and a GPU worker advertises ``GPU=tasks_per_gpu`` (default 1), so each GPU
runs that many fusion tasks at a time: with more than one, the CPU work of one task (read,
upsampling, reference selection, blending, encoding) overlaps another's network pass.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shlex
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from lst_pipeline.config import load_yaml_config
from lst_pipeline.errors import ConfigError, MissingDependencyError

if TYPE_CHECKING:
    from distributed import Client

PROFILE_DIR = Path(__file__).parent / "cluster_profiles"


@dataclass(frozen=True)
class ClusterProfile:
    """How to start (or reach) a Dask cluster.

    Attributes
    ----------
    kind
        ``local``, ``local-gpu``, ``slurm`` or ``kubernetes``.
    n_workers
        Worker processes (``local-gpu``: at most one per visible GPU; 0 = all GPUs).
    threads_per_worker
        Threads per worker (and torch threads per worker).
    memory_limit
        Per-worker memory (``"4GiB"``, or ``"auto"`` to share the machine's memory).
    gpus_per_worker
        0 for CPU workers, 1 for GPU-pinned workers.
    tasks_per_gpu
        GPU workers: fusion tasks that may share the worker's GPU at once (the model is
        loaded once per process and shared). 1 keeps the GPU to one task at a time; more
        overlaps one task's CPU work with another's network pass, and needs at least as many
        ``threads_per_worker``.
    queue, account, walltime, job_directives, job_prologue
        SLURM job settings (``job_directives``: extra ``#SBATCH`` lines; ``job_prologue``:
        shell lines run before the worker, e.g. ``module load cuda``).
    image, namespace, name
        Kubernetes worker image (with lst_pipeline installed), namespace, cluster name.
    env
        Environment variables of every worker (and the Kubernetes scheduler), e.g.
        ``AWS_ENDPOINT_URL`` and ``AWS_REGION`` of the bucket the stores are in. Never put
        credentials here: they belong in a secret (``env_from_secret``).
    env_from_secret
        Kubernetes: the name of a ``Secret`` whose keys become the pods' environment
        (``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY`` ...), so credentials never
        appear in a profile, a task or a store.
    """

    kind: Literal["local", "local-gpu", "slurm", "kubernetes"] = "local"
    n_workers: int = 2
    threads_per_worker: int = 1
    memory_limit: str = "auto"
    gpus_per_worker: int = 0
    tasks_per_gpu: int = 1
    queue: str | None = None
    account: str | None = None
    walltime: str = "04:00:00"
    job_directives: tuple[str, ...] = ()
    job_prologue: tuple[str, ...] = ()
    image: str = "ghcr.io/dask/dask:latest"
    namespace: str | None = None
    name: str = "lst-pipeline"
    env: dict[str, str] = field(default_factory=dict)
    env_from_secret: str | None = None

    def __post_init__(self) -> None:
        if self.n_workers < 0 or (self.kind != "local-gpu" and self.n_workers < 1):
            raise ConfigError("cluster.n_workers: must be >= 1")
        if self.threads_per_worker < 1:
            raise ConfigError("cluster.threads_per_worker: must be >= 1")
        if self.gpus_per_worker not in (0, 1):
            raise ConfigError("cluster.gpus_per_worker: must be 0 (CPU) or 1 (one GPU per "
                              "worker process)")
        if self.tasks_per_gpu < 1:
            raise ConfigError("cluster.tasks_per_gpu: must be >= 1")
        if self.gpus_per_worker and self.tasks_per_gpu > self.threads_per_worker:
            raise ConfigError(f"cluster.tasks_per_gpu: {self.tasks_per_gpu} tasks per GPU need "
                              f"as many threads_per_worker (got {self.threads_per_worker})")
        if self.kind == "local-gpu" and self.gpus_per_worker != 1:
            raise ConfigError("cluster.gpus_per_worker: local-gpu profiles pin one GPU per "
                              "worker; set it to 1")

    @property
    def task_resources(self) -> dict[str, int] | None:
        """Resources every fusion task asks for (one GPU on GPU profiles)."""
        return {"GPU": 1} if self.gpus_per_worker else None

    @property
    def worker_resources(self) -> dict[str, int] | None:
        """Resources a worker advertises: its GPU as ``tasks_per_gpu`` task slots."""
        return {"GPU": self.tasks_per_gpu} if self.gpus_per_worker else None

    @property
    def memory_bytes_per_worker(self) -> str:
        """The memory limit of a worker as dask-jobqueue wants it."""
        return "16GB" if self.memory_limit == "auto" else self.memory_limit


def load_profile(name_or_path: str | Path) -> ClusterProfile:
    """Read a cluster profile by name (shipped profiles) or from a YAML path."""
    path = Path(name_or_path)
    if not path.suffix:
        path = PROFILE_DIR / f"{name_or_path}.yaml"
    if not path.is_file():
        shipped = sorted(p.stem for p in PROFILE_DIR.glob("*.yaml"))
        raise ConfigError(f"cluster profile {str(name_or_path)!r} not found "
                          f"(shipped profiles: {', '.join(shipped)}; or give a YAML path)")
    return load_yaml_config(path, ClusterProfile, "cluster profile", prefix="cluster")


def _thread_env(profile: ClusterProfile) -> dict[str, str]:
    n = str(profile.threads_per_worker)
    return {"OMP_NUM_THREADS": n, "MKL_NUM_THREADS": n, "OPENBLAS_NUM_THREADS": n}


def _profile_env(profile: ClusterProfile) -> dict[str, str]:
    return {str(k): str(v) for k, v in profile.env.items()}


# --------------------------------------------------------------------------------------
# SLURM and Kubernetes: rendering is separate from starting, so it can be checked anywhere.


def slurm_cluster_kwargs(profile: ClusterProfile) -> dict[str, Any]:
    """Keyword arguments of ``dask_jobqueue.SLURMCluster`` for a profile (one worker a job)."""
    directives = list(profile.job_directives)
    worker_args = []
    if profile.gpus_per_worker:
        directives.append("--gres=gpu:1")
        worker_args = ["--resources", f"GPU={profile.tasks_per_gpu}"]
    if profile.account:
        directives.append(f"--account={profile.account}")
    prologue = [f"export {k}={shlex.quote(v)}"
                for k, v in {**_thread_env(profile), **_profile_env(profile)}.items()]
    return {
        "cores": profile.threads_per_worker, "processes": 1,
        "memory": profile.memory_bytes_per_worker, "queue": profile.queue,
        "walltime": profile.walltime, "job_extra_directives": directives,
        "job_script_prologue": [*prologue, *profile.job_prologue],
        "worker_extra_args": worker_args, "job_name": profile.name,
    }


def slurm_job_script(profile: ClusterProfile) -> str:
    """The SLURM batch script each worker job runs (no SLURM needed to render it)."""
    try:
        from dask_jobqueue import SLURMCluster
    except ImportError as exc:
        raise MissingDependencyError("SLURM profiles need dask-jobqueue: "
                                     "pip install 'lst-pipeline[cluster]'") from exc
    cluster = SLURMCluster(**slurm_cluster_kwargs(profile))
    try:
        return cluster.job_script()
    finally:
        cluster.close()


def kubernetes_cluster_spec(profile: ClusterProfile) -> dict[str, Any]:
    """The ``DaskCluster`` resource of the dask-kubernetes operator for a profile."""
    try:
        from dask_kubernetes.operator import make_cluster_spec
    except ImportError as exc:
        raise MissingDependencyError("Kubernetes profiles need dask-kubernetes: "
                                     "pip install 'lst-pipeline[cluster]'") from exc
    spec = make_cluster_spec(name=profile.name, image=profile.image,
                             n_workers=profile.n_workers,
                             env={**_thread_env(profile), **_profile_env(profile)})
    worker = spec["spec"]["worker"]["spec"]["containers"][0]
    if profile.env_from_secret:
        for role in ("worker", "scheduler"):
            container = spec["spec"][role]["spec"]["containers"][0]
            container["envFrom"] = [{"secretRef": {"name": profile.env_from_secret}}]
    limits = {"cpu": str(profile.threads_per_worker),
              "memory": profile.memory_bytes_per_worker}
    if profile.gpus_per_worker:
        limits["nvidia.com/gpu"] = "1"
    worker["resources"] = {"limits": limits, "requests": dict(limits)}
    worker["args"] += ["--nthreads", str(profile.threads_per_worker)]
    if profile.gpus_per_worker:
        worker["args"] += ["--resources", f"GPU={profile.tasks_per_gpu}"]
    if profile.namespace:
        spec["metadata"]["namespace"] = profile.namespace
    return spec


# --------------------------------------------------------------------------------------
# Local GPU pinning.


def visible_gpus() -> list[str]:
    """GPU ids this process may use (``CUDA_VISIBLE_DEVICES`` or all that torch sees)."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [g for g in env.split(",") if g.strip() and g.strip() != "-1"]
    try:
        import torch
    except ImportError:
        return []
    return [str(i) for i in range(torch.cuda.device_count())]


def local_gpu_worker_specs(profile: ClusterProfile, gpus: list[str]) -> dict[str, dict]:
    """``SpecCluster`` worker specs: one Nanny per GPU, pinned with ``CUDA_VISIBLE_DEVICES``."""
    from distributed import Nanny

    if not gpus:
        raise ConfigError("cluster: the local-gpu profile found no GPU "
                          "(CUDA_VISIBLE_DEVICES is empty and torch sees none); use `local`")
    n = len(gpus) if profile.n_workers == 0 else min(profile.n_workers, len(gpus))
    return {
        f"gpu-{gpu}": {"cls": Nanny, "options": {
            "nthreads": profile.threads_per_worker, "memory_limit": profile.memory_limit,
            "resources": profile.worker_resources, "silence_logs": logging.CRITICAL,
            "env": {"CUDA_VISIBLE_DEVICES": gpu, **_thread_env(profile)}}}
        for gpu in gpus[:n]
    }


@contextlib.contextmanager
def _local_gpu_cluster(profile: ClusterProfile) -> Iterator[Any]:
    try:
        from dask_cuda import LocalCUDACluster
    except ImportError:
        LocalCUDACluster = None
    if LocalCUDACluster is not None:
        n = profile.n_workers or None
        with LocalCUDACluster(n_workers=n, threads_per_worker=profile.threads_per_worker,
                              resources=profile.worker_resources,
                              dashboard_address=":0") as cluster:
            yield cluster
        return
    from distributed import Scheduler, SpecCluster

    workers = local_gpu_worker_specs(profile, visible_gpus())
    scheduler = {"cls": Scheduler, "options": {"dashboard_address": ":0"}}
    with SpecCluster(workers=workers, scheduler=scheduler,
                     silence_logs=logging.ERROR) as cluster:
        yield cluster


@contextlib.contextmanager
def start_cluster(profile: ClusterProfile) -> Iterator[Any]:
    """Start the cluster a profile describes; shut it down on exit."""
    if profile.kind == "local":
        from distributed import LocalCluster

        with LocalCluster(n_workers=profile.n_workers,
                          threads_per_worker=profile.threads_per_worker, processes=True,
                          memory_limit=profile.memory_limit, dashboard_address=":0",
                          # task failures reach the client, which logs their tracebacks
                          # to the cube (see engine.execute): keep the terminal to one line
                          silence_logs=logging.CRITICAL) as cluster:
            yield cluster
    elif profile.kind == "local-gpu":
        with _local_gpu_cluster(profile) as cluster:
            yield cluster
    elif profile.kind == "slurm":
        from dask_jobqueue import SLURMCluster

        with SLURMCluster(**slurm_cluster_kwargs(profile)) as cluster:
            cluster.scale(profile.n_workers)
            yield cluster
    else:
        from dask_kubernetes.operator import KubeCluster

        with KubeCluster(custom_cluster_spec=kubernetes_cluster_spec(profile),
                         namespace=profile.namespace) as cluster:
            yield cluster


def _gpu_note(profile: ClusterProfile) -> str:
    if not profile.gpus_per_worker:
        return ""
    tasks = profile.tasks_per_gpu
    return f", one GPU each ({tasks} task{'s' if tasks > 1 else ''} at a time)"


@contextlib.contextmanager
def connect(profile: ClusterProfile | None = None, *, scheduler: str | None = None,
            quiet: bool = False) -> Iterator[Client]:
    """Start the cluster a profile describes (or connect to ``scheduler``) and yield a Client.

    The cluster is shut down on exit; an external scheduler is left running.
    """
    from distributed import Client

    if scheduler:
        with Client(scheduler) as client:
            if not quiet:
                print(f"cluster: scheduler {scheduler}, dashboard {client.dashboard_link}")
            yield client
        return
    profile = profile or ClusterProfile()
    with start_cluster(profile) as cluster, Client(cluster) as client:
        if not quiet:
            workers = len(client.scheduler_info().get("workers", {}))
            print(f"cluster: {profile.kind}, {workers} worker processes x "
                  f"{profile.threads_per_worker} thread(s)"
                  f"{_gpu_note(profile)}, "
                  f"dashboard {client.dashboard_link}")
        yield client
