"""Throughput benchmark of the production engine: one run, one JSON record, one short table.

:func:`bench_pipeline` builds the pipeline to measure (a simulated square region of a given
size, or a user's own pipeline with its input stack) with the cube redirected to a scratch
directory, so a benchmark never touches the user's cube. :func:`run_bench` fuses it on a
client exactly as ``lst-pipeline run`` does and gathers the record: machine, devices,
versions, configuration, pixel-days, wall time, pixel-days/s per worker and per device,
per-stage seconds summed over the chunk tasks, peak memory per worker.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import resource
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lst_pipeline.errors import ConfigError, InputError, MissingDependencyError

if TYPE_CHECKING:
    from distributed import Client

    from lst_pipeline.config import PipelineConfig
    from lst_pipeline.fusion.engine import RunSummary


@dataclass(frozen=True)
class SyntheticRegion:
    """The simulated region benchmarked when no pipeline is given."""

    size: int = 256
    days: int = 64
    chunk: int = 256
    method: str = "dlstfm"
    device: str = "auto"
    seed: int = 11
    checkpoint: Path | None = None

    def __post_init__(self) -> None:
        for name in ("size", "days", "chunk"):
            if getattr(self, name) < 1:
                raise ConfigError(f"bench --{name}: must be >= 1")
        if self.checkpoint is not None and not Path(self.checkpoint).is_file():
            raise InputError(f"{self.checkpoint}: bench --checkpoint not found; give the path "
                             "of a DLSTFM checkpoint (.pt), or leave it out for the shipped one")
        if self.size % 32 or self.chunk % 32:
            raise ConfigError("bench --size/--chunk: must be multiples of 32 px (the coarse "
                              "factor of the simulated region)")


def bench_pipeline(scratch: Path, *, config: PipelineConfig | None = None,
                   region: SyntheticRegion | None = None, days: int | None = None,
                   progress: bool = False) -> tuple[PipelineConfig, float]:
    """The pipeline to benchmark, with its cube under ``scratch``; simulated if needed.

    Parameters
    ----------
    scratch
        Directory for the benchmark's cube (and the simulated stack).
    config
        A user's pipeline: its input stack must exist; only ``output.cube`` is replaced.
    region
        Without ``config``: the simulated region (default :class:`SyntheticRegion`).
    days
        Benchmark only the first ``days`` days of ``config``.
    progress
        Progress bars while simulating.

    Returns
    -------
    (PipelineConfig, float)
        The pipeline and the seconds spent simulating (not part of the benchmark).
    """
    from lst_pipeline.simulate import simulate_region, synthetic_pipeline

    scratch = Path(scratch)
    if config is None:
        region = region or SyntheticRegion()
        fusion: dict[str, Any] = {"method": region.method, "device": region.device}
        if region.checkpoint is not None:
            fusion["checkpoint"] = str(Path(region.checkpoint).resolve())
        config = synthetic_pipeline(scratch / "region", seed=region.seed, size=region.size,
                                    days=region.days, chunk=region.chunk, fusion=fusion)
        start = time.perf_counter()
        simulate_region(config, progress=progress)
        return config, time.perf_counter() - start
    if not (config.inputs.stack / "zarr.json").is_file():
        raise InputError(f"{config.inputs.stack}: input stack of pipeline {config.name!r} not "
                         "found (inputs.stack); run `lst-pipeline simulate CONFIG` or the "
                         "ingest first, or bench the demo after `lst-pipeline demo`")
    dates = config.dates
    if days is not None:
        import numpy as np

        if days < 1:
            raise ConfigError("bench --days: must be >= 1")
        end = min(np.datetime64(dates.start, "D") + days - 1, np.datetime64(dates.end, "D"))
        dates = dataclasses.replace(dates, end=end.item())
    config = dataclasses.replace(
        config, dates=dates,
        output=dataclasses.replace(config.output, cube=scratch / "bench_cube.zarr"))
    return config, 0.0


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, timeout=5, cwd=Path(__file__).parent)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def _worker_info() -> dict[str, Any]:
    """Runs on each worker: its devices and peak resident memory."""
    info: dict[str, Any] = {"peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
                            * 1024, "gpus": []}
    try:
        import torch

        if torch.cuda.is_available():
            info["gpus"] = [torch.cuda.get_device_name(i)
                            for i in range(torch.cuda.device_count())]
            info["gpu_peak_bytes"] = int(torch.cuda.max_memory_allocated())
    except ImportError:
        pass
    return info


def machine() -> dict[str, Any]:
    """The client machine: CPU, cores, memory, OS."""
    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = None
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError, AttributeError):
        pass
    return {"hostname": platform.node(), "platform": platform.platform(),
            "machine": platform.machine(), "cpu": cpu, "cpu_count": os.cpu_count(),
            "memory_gib": memory, "load_average_1m_at_start": os.getloadavg()[0]}


def versions() -> dict[str, str]:
    """The versions recorded with a benchmark (see :mod:`lst_pipeline.versions`)."""
    from lst_pipeline.versions import package_versions

    return package_versions()


def run_bench(config: PipelineConfig, client: Client, *, cluster: str = "",
              performance_report: Path | None = None, progress: bool = False,
              resources: dict[str, int] | None = None) -> dict[str, Any]:
    """Fuse ``config`` on ``client`` (overwriting its scratch cube) and return the record.

    Parameters
    ----------
    config
        From :func:`bench_pipeline` (its cube is scratch).
    client
        The cluster to measure.
    cluster
        Profile name or scheduler address, for the record.
    performance_report
        Write dask's HTML performance report of the run here.
    progress
        Progress bar.
    resources
        Worker resources per task (GPU profiles).
    """
    from lst_pipeline.fusion.engine import execute, plan_run

    record: dict[str, Any] = {"benchmark": "lst-pipeline bench",
                              "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                              "commit": _git_commit(), "machine": machine(),
                              "versions": versions()}
    planning = time.perf_counter()
    plan = plan_run(config, overwrite=True, log=lambda *_: None)
    start = time.perf_counter()
    plan_seconds = start - planning
    if performance_report is not None:
        from distributed import performance_report as report

        try:
            import bokeh  # noqa: F401  (the scheduler renders the report with bokeh)
        except ImportError as exc:
            raise MissingDependencyError("--performance-report needs bokeh: "
                                         "pip install 'bokeh>=3.1'") from exc

        Path(performance_report).parent.mkdir(parents=True, exist_ok=True)
        with report(filename=str(performance_report)):
            summary = execute(plan, client, overwrite=True, progress=progress,
                              resources=resources, log=lambda *_: None)
    else:
        summary = execute(plan, client, overwrite=True, progress=progress,
                          resources=resources, log=lambda *_: None)
    wall = time.perf_counter() - start
    workers = client.run(_worker_info)
    threads = client.nthreads()
    gpus = [g for info in workers.values() for g in info["gpus"]]
    n_workers = len(workers)
    n_devices = len(gpus) or n_workers
    record["machine"]["load_average_1m_at_end"] = os.getloadavg()[0]
    record["devices"] = {
        "kind": "cuda" if gpus else "cpu", "count": n_devices, "gpus": gpus,
        "note": ("one device = one GPU" if gpus else
                 "no GPU: one device = one CPU worker process")}
    record["cluster"] = {"profile": cluster, "workers": n_workers,
                         "threads_per_worker": sorted(set(threads.values())),
                         "scheduler": client.scheduler.address}
    record["config"] = _config_record(plan)
    record.update(_throughput(summary, wall, n_workers, n_devices))
    record["plan_seconds"] = plan_seconds
    record["end_to_end_pixel_days_per_second"] = summary.pixel_days / (plan_seconds + wall)
    record["peak_memory_mib_per_worker"] = {
        addr: info["peak_rss_bytes"] / 2**20 for addr, info in sorted(workers.items())}
    if gpus:
        record["peak_gpu_memory_mib_per_worker"] = {
            addr: info.get("gpu_peak_bytes", 0) / 2**20 for addr, info in sorted(workers.items())}
    if performance_report is not None:
        record["performance_report"] = str(Path(performance_report).resolve())
    return record


def _config_record(plan) -> dict[str, Any]:
    cfg = plan.config
    nt, ny, nx = plan.chunks.shape
    return {"pipeline": cfg.name, "method": plan.task.method, "device": plan.task.device,
            "mixed_precision": plan.task.mixed_precision, "days": nt, "pixels": [ny, nx],
            "chunks": list(plan.chunks.chunks), "n_chunks": len(plan.chunks),
            "halo_px": plan.chunks.halo_aligned, "dtype": cfg.output.dtype,
            "resolution_m": cfg.grid.resolution, "coarse_factor": cfg.grid.coarse_factor,
            "input_stack": str(cfg.inputs.stack), "two_references": plan.task.two_references,
            "uncertainty": plan.task.uncertainty, "checkpoint": plan.task.checkpoint,
            # the hash the cube's provenance records (the method is cached from planning)
            "checkpoint_sha256": plan.task.fusion_method().describe().get(
                "lst_pipeline:checkpoint_sha256"),
            **({"ensemble": plan.ensemble.as_attrs()} if plan.ensemble is not None else {})}


def _throughput(summary: RunSummary, wall: float, n_workers: int,
                n_devices: int) -> dict[str, Any]:
    stages = dict(summary.stage_seconds)
    task_seconds = stages["read"] + stages["fuse"] + stages["write"]
    rate = summary.pixel_days / wall
    return {
        "pixel_days": summary.pixel_days, "chunks": summary.chunks, "wall_seconds": wall,
        "pixel_days_per_second": rate,
        "pixel_days_per_second_per_worker": rate / n_workers,
        "pixel_days_per_second_per_device": rate / n_devices,
        "task_seconds": task_seconds,
        "stage_seconds": stages,
        "stage_notes": {
            "read": "Zarr read of the window + halo and the needed dates",
            "fuse": "everything between read and write (includes upsample and model)",
            "upsample": "NaN-aware bilinear upsampling of MODIS to the fine grid",
            "model": "network call = host_to_device + forward + device_to_host",
            "host_to_device": "tensor preparation and copy to the device (on CPU: the "
                              "channels-last layout copy only)",
            "forward": "the network's forward passes (synchronised on GPU)",
            "device_to_host": "copy of the result back to numpy",
            "write": "int16 encoding + Zarr region write + completion record",
        },
    }


def format_table(record: dict[str, Any]) -> str:
    """A short human-readable summary of a record."""
    cfg = record["config"]
    stages = record["stage_seconds"]
    total = record["task_seconds"] or 1.0
    lines = [
        f"benchmark  {cfg['method']} on {cfg['days']} days x {cfg['pixels'][0]} x "
        f"{cfg['pixels'][1]} px ({record['pixel_days']:,} pixel-days, {record['chunks']} "
        f"chunks of {' x '.join(map(str, cfg['chunks']))})",
        f"cluster    {record['cluster']['workers']} workers x "
        f"{record['cluster']['threads_per_worker']} threads; devices "
        f"{record['devices']['count']} {record['devices']['kind']}",
        f"wall       {record['wall_seconds']:.2f} s = {record['pixel_days_per_second']:,.0f} "
        f"pixel-days/s ({record['pixel_days_per_second_per_worker']:,.0f} per worker, "
        f"{record['pixel_days_per_second_per_device']:,.0f} per device)",
        f"end to end {record['plan_seconds']:.2f} s planning"
        f"{' (incl. fitting the lst_uncertainty model)' if cfg['uncertainty'] else ''} "
        f"+ wall = {record['end_to_end_pixel_days_per_second']:,.0f} pixel-days/s",
        "stage            seconds  share of task time",
    ]
    if "ensemble" in cfg:  # fitted in planning: which members ran
        lines.insert(2, "ensemble   weights " + ", ".join(
            f"{m} {w:.3f}" for m, w in zip(cfg["ensemble"]["members"], cfg["ensemble"]["weights"])))
    for name in ("read", "upsample", "host_to_device", "forward", "device_to_host", "write"):
        lines.append(f"  {name:<15}{stages[name]:8.2f}  {100 * stages[name] / total:5.1f} %")
    other = stages["fuse"] - stages["upsample"] - stages["model"]
    lines.append(f"  {'other fusion':<15}{other:8.2f}  {100 * other / total:5.1f} %  "
                 "(reference selection, masks, blending)")
    peaks = record["peak_memory_mib_per_worker"].values()
    lines.append(f"peak memory per worker  {', '.join(f'{p:.0f}' for p in peaks)} MiB")
    return "\n".join(lines)


def write_record(record: dict[str, Any], path: Path) -> Path:
    """Write ``record`` as indented JSON."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2, default=str) + "\n")
    return path
