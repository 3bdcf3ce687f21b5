"""The Dask engine: plan a run, then map the block kernel over the plan on a cluster.

Planning (:func:`plan_run`) opens the input stack's metadata, checks it against the
pipeline config and cuts the output cube into chunks; it reads no pixels and needs no
cluster. Executing (:func:`execute`) creates the cube and submits one task per chunk to a
``distributed`` client, a bounded number at a time, so the scheduler never holds a huge
graph. Each task (:func:`fuse_chunk`) reads only its window plus halo and the dates it needs,
fuses, and writes its own Zarr chunks: tasks never share a chunk, so writes need no lock.
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from lst_pipeline import __version__
from lst_pipeline.errors import (
    GridError,
    InputError,
    LSTPipelineError,
    StoreError,
    TaskError,
    describe_os_error,
)
from lst_pipeline.fusion import timing
from lst_pipeline.fusion.kernel import FusedBlock, fuse_block, interpolate_modis_gaps
from lst_pipeline.fusion.methods import FusionMethod, get_method, method_alignment
from lst_pipeline.grid import (
    ChunkPlan,
    OutputChunk,
    TargetGrid,
    Window,
    choose_chunks,
    plan_chunks,
    resolve_grid,
)
from lst_pipeline.io.cube import (
    CubeWriter,
    Flag,
    RunRecord,
    create_cube,
    remove_partial_writes,
)
from lst_pipeline.io.stack import StackReader
from lst_pipeline.io.zarr_store import FINGERPRINT_ATTR

if TYPE_CHECKING:
    from distributed import Client

    from lst_pipeline.config import PipelineConfig


@dataclass(frozen=True)
class FusionTask:
    """Everything a chunk task needs besides its chunk; small and picklable."""

    stack: str
    cube: str
    method: str
    checkpoint: str | None
    device: str
    mixed_precision: bool
    batch_pixels: int
    coarse_factor: int
    first_day: int  # output day 0, days since 1970-01-01
    max_gap_days: int
    min_clear_fraction: float
    max_references: int
    two_references: bool
    max_disagreement_k: float
    modis_gap_days: int  # 0: keep gaps; n: interpolate over at most n days each side
    keep_observations: bool
    method_params: tuple = ()

    def fusion_method(self) -> FusionMethod:
        """The method, built once per process (a worker loads its model once), with torch
        limited to the Dask worker's threads when it runs on one."""
        return get_method(self.method, self.checkpoint, self.device, self.mixed_precision,
                          self.batch_pixels, self.method_params, _worker_threads())


def _worker_threads() -> int | None:
    """The current Dask worker's threads, None outside a worker."""
    try:
        from distributed import get_worker

        return int(get_worker().state.nthreads)
    except (ImportError, ValueError, AttributeError):
        return None


@dataclass(frozen=True)
class RunPlan:
    """A fusion run, fully decided but not started."""

    config: PipelineConfig
    grid: TargetGrid
    days: np.ndarray
    chunks: ChunkPlan
    task: FusionTask
    n_landsat_dates: int
    #: digests of the input stack's dates (:attr:`StackReader.content`), None if unrecorded
    stack_content: dict | None = None

    #: what the planner adjusted or chose (grid widened, chunks chosen or rounded)
    notes: tuple[str, ...] = ()
    #: estimated peak memory of one task (bytes)
    task_bytes: float = 0.0
    #: what ``fusion.method: auto`` chose (None when a method was named)
    auto: Any = None

    @property
    def n_pixel_days(self) -> int:
        nt, ny, nx = self.chunks.shape
        return nt * ny * nx

    def describe(self) -> str:
        """A human-readable summary of the plan."""
        nt, ny, nx = self.chunks.shape
        ct, cy, cx = self.chunks.chunks
        lines = [f"note: {n}" for n in self.notes]
        lines.append(
            f"plan: {nt} days ({self.days[0]} .. {self.days[-1]}) x {ny} x {nx} px, "
            f"method {self.task.method}, {len(self.chunks)} chunks of {ct} x {cy} x {cx} "
            f"(halo {self.chunks.halo_aligned} px, {self.chunks.computed_ratio:.2f} pixels "
            f"computed per output pixel, about {self.task_bytes / 2**30:.2f} GiB per task), "
            f"{self.n_landsat_dates} Landsat dates, output {self.task.cube}")
        return "\n".join(lines)


def output_days(config: PipelineConfig) -> np.ndarray:
    """Every output day of a pipeline, ``datetime64[D]``."""
    start = np.datetime64(config.dates.start, "D")
    return start + np.arange(config.dates.n_days)


def plan_run(config: PipelineConfig, *, n_workers: int = 2) -> RunPlan:
    """Check the inputs against the configuration and cut the run into chunks.

    Chunks missing from the configuration are chosen (:func:`~lst_pipeline.grid.choose_chunks`)
    for ``n_workers`` worker threads, or taken from the existing cube of this run so that a
    resume on another cluster keeps them.

    Raises
    ------
    InputError
        If the stack is missing or incomplete, or holds no Landsat date that can serve as
        a reference for the requested days.
    GridError
        If the stack's grid differs from the configured grid.
    """
    choice = None
    if config.fusion.method == "auto":
        from lst_pipeline.fusion.holdout import choose_method

        choice = choose_method(config, log=lambda _: None)
        config = dataclasses.replace(config, fusion=dataclasses.replace(
            config.fusion, method=choice.method))
    grid, grid_notes = resolve_grid(config.grid)
    reader = StackReader(config.inputs.stack)
    if reader.grid != grid:
        raise GridError(
            f"{config.inputs.stack}: the stack's grid ({reader.grid.describe()}) differs from "
            f"the configured grid ({grid.describe()}); fix `grid:` in the config or rebuild "
            "the stack")
    days = output_days(config)
    gap = config.fusion.max_reference_gap_days
    ldays = reader.landsat_dates
    near = (ldays >= days[0] - gap) & (ldays <= days[-1] + gap)
    near &= reader.landsat_clear_fraction > 0
    if not near.any():
        raise InputError(
            f"{config.inputs.stack}: no Landsat date with clear pixels within "
            f"{gap} days of {days[0]} .. {days[-1]}; widen fusion.max_reference_gap_days "
            "or add Landsat scenes"
        )
    mdays = reader.modis_dates
    if not np.any((mdays >= days[0]) & (mdays <= days[-1])):
        raise InputError(
            f"{config.inputs.stack}: no MODIS day between {days[0]} and {days[-1]} (the stack "
            f"holds {len(mdays)} MODIS date(s)); ingest the MOD11A1/MYD11A1 tiles of these "
            "days (ingest.modis) before `run`")
    fusion = config.fusion
    task = FusionTask(
        stack=str(config.inputs.stack), cube=str(config.output.cube), method=fusion.method,
        checkpoint=None if fusion.checkpoint is None else str(fusion.checkpoint),
        device=fusion.device, mixed_precision=fusion.mixed_precision,
        batch_pixels=fusion.batch_pixels, coarse_factor=grid.coarse_factor,
        first_day=int(days[0].astype(np.int64)), max_gap_days=gap,
        min_clear_fraction=fusion.min_clear_fraction, max_references=fusion.max_references,
        two_references=fusion.two_references, max_disagreement_k=fusion.max_disagreement_k,
        modis_gap_days=(fusion.max_modis_interpolation_days
                        if fusion.modis_gaps == "interpolate" else 0),
        keep_observations=fusion.landsat_days == "observe",
        method_params=fusion.method_params(),
    )
    method = task.fusion_method()
    halo = method.halo(grid.coarse_factor)
    alignment = method_alignment(method, grid.coarse_factor)
    usable_days = ldays[reader.landsat_clear_fraction > 0].astype(np.int64)

    def references(n: int) -> int:  # most Landsat dates one block of n days reads
        starts = days[::n].astype(np.int64)
        lo = np.searchsorted(usable_days, starts - gap)
        hi = np.searchsorted(usable_days, starts + n - 1 + gap, side="right")
        return int((hi - lo).max()) if len(starts) else 0

    requested = (config.chunks.time, config.chunks.y, config.chunks.x)
    existing = _existing_chunks(Path(config.output.cube))
    notes = list(grid_notes) + ([choice.describe()] if choice is not None else [])
    if existing is not None and requested == (None, None, None):
        requested = existing
        notes.append(f"chunks: {existing[0]} x {existing[1]} x {existing[2]} of the existing "
                     f"cube {config.output.cube}")
    chosen = choose_chunks(grid, len(days), halo=halo, alignment=alignment,
                           requested=requested, n_workers=n_workers, references=references,
                           cost=getattr(method, "cost", None),
                           budget=config.chunks.task_memory_gib * 2**30)
    chunks = plan_chunks(grid, len(days), chosen.chunks, halo=halo, alignment=alignment)
    return RunPlan(config=config, grid=grid, days=days, chunks=chunks, task=task,
                   n_landsat_dates=int(near.sum()), stack_content=reader.content,
                   notes=(*notes, *chosen.notes), task_bytes=chosen.task_bytes,
                   auto=choice)


#: Root attribute of a cube: the chunks its run was planned with.
CHUNKS_ATTR = "lst_pipeline:chunks"


def _existing_chunks(cube: Path) -> tuple[int, int, int] | None:
    """The planned chunks of an existing cube of ours (so that a resume keeps them)."""
    from lst_pipeline.io.zarr_store import root_attrs, store_kind

    if store_kind(cube) != "cube":
        return None
    chunks = (root_attrs(cube) or {}).get(CHUNKS_ATTR)
    try:
        return tuple(int(c) for c in chunks) if chunks and len(chunks) == 3 else None
    except (TypeError, ValueError):
        return None


@lru_cache(maxsize=4)
def _reader(path: str) -> StackReader:
    """One stack reader per worker process and store (metadata read once)."""
    return StackReader(Path(path))


@lru_cache(maxsize=8)
def _writer(path: str) -> CubeWriter:
    return CubeWriter(Path(path))


@dataclass(frozen=True)
class BlockInputs:
    """What one block reads: candidate references and MODIS over its read window."""

    landsat_lst: np.ndarray
    landsat_days: np.ndarray
    landsat_modis: np.ndarray
    target_modis: np.ndarray
    target_days: np.ndarray
    target_modis_filled: np.ndarray | None = None


def read_block_inputs(task: FusionTask, t0: int, t1: int, read_window: Window) -> BlockInputs:
    """Read the inputs of output days ``[t0, t1)`` over ``read_window`` (needed dates only).

    Raises
    ------
    InputError
        Naming the stack, if a chunk file is corrupt or unreadable.
    """
    try:
        reader = _reader(task.stack)
        target_days = task.first_day + np.arange(t0, t1, dtype=np.int64)
        ldays = reader.landsat_dates.astype(np.int64)
        gap = task.max_gap_days
        wanted = np.nonzero((ldays >= target_days[0] - gap) & (ldays <= target_days[-1] + gap)
                            & (reader.landsat_clear_fraction > 0))[0]
        coarse_read = read_window.coarse(task.coarse_factor)
        filled = None
        if task.modis_gap_days:
            m = task.modis_gap_days
            around = np.arange(target_days[0] - m, target_days[-1] + m + 1)
            modis = reader.read_modis(around.astype("datetime64[D]"), coarse_read)
            target_modis, filled = interpolate_modis_gaps(modis, around, target_days, m)
        else:
            target_modis = reader.read_modis(target_days.astype("datetime64[D]"), coarse_read)
        return BlockInputs(
            landsat_lst=reader.read_landsat(wanted, read_window),
            landsat_days=ldays[wanted],
            landsat_modis=reader.read_modis(ldays[wanted].astype("datetime64[D]"), coarse_read),
            target_modis=target_modis, target_days=target_days, target_modis_filled=filled,
        )
    except LSTPipelineError:
        raise
    except Exception as exc:  # a corrupt or truncated chunk file, an I/O error ...
        raise InputError(
            f"{task.stack}: cannot read inputs of days {t0}..{t1 - 1}, window {read_window} "
            f"({type(exc).__name__}: {exc}); check or rebuild the input stack"
        ) from exc


def read_and_fuse(task: FusionTask, t0: int, t1: int, window: Window,
                  read_window: Window) -> FusedBlock:
    """Read the inputs of one block (window plus halo) and fuse it."""
    return fuse_inputs(task, read_block_inputs(task, t0, t1, read_window), window, read_window)


def fuse_inputs(task: FusionTask, inputs: BlockInputs, window: Window,
                read_window: Window) -> FusedBlock:
    """Fuse inputs already read (:func:`read_block_inputs`) over ``window`` of ``read_window``.

    The one way a block of a stack is fused: the engine's tasks, ``fuse_scene``, the
    leave-one-date-out of :mod:`lst_pipeline.fusion.holdout` and ``evaluate`` call it.
    """
    return fuse_block(
        inputs.landsat_lst, inputs.landsat_days, inputs.landsat_modis, inputs.target_modis,
        inputs.target_days, method=task.fusion_method(), coarse_factor=task.coarse_factor,
        out_window=window.relative_to(read_window), max_gap_days=task.max_gap_days,
        min_clear_fraction=task.min_clear_fraction, max_references=task.max_references,
        two_references=task.two_references, max_disagreement_k=task.max_disagreement_k,
        keep_observations=task.keep_observations,
        target_modis_filled=inputs.target_modis_filled,
    )


@dataclass(frozen=True)
class ChunkStats:
    """What one chunk task did."""

    index: tuple[int, int, int]
    pixel_days: int
    observed: int
    fused: int
    fused_two: int
    no_data: int
    seconds: float
    read_seconds: float
    fuse_seconds: float
    model_seconds: float
    write_seconds: float
    upsample_seconds: float = 0.0
    host_to_device_seconds: float = 0.0
    forward_seconds: float = 0.0
    device_to_host_seconds: float = 0.0

    #: Stage names of :attr:`RunSummary.stage_seconds`: ``fuse`` holds everything between
    #: read and write (``upsample`` and ``model`` among it); ``model`` is the network call,
    #: the sum of ``host_to_device``, ``forward`` and ``device_to_host``; ``write`` is
    #: encode + Zarr write.
    STAGES = ("read", "fuse", "upsample", "model", "host_to_device", "forward",
              "device_to_host", "write")


def fuse_chunk(task: FusionTask, chunk: OutputChunk) -> ChunkStats:
    """Task body: read, fuse and write one output chunk. Runs on a Dask worker."""
    start = time.perf_counter()
    clocks = timing.snapshot()
    inputs = read_block_inputs(task, chunk.t0, chunk.t1, chunk.read_window)
    t_read = time.perf_counter()
    method = task.fusion_method()
    model_before = getattr(method, "seconds", 0.0)
    block = fuse_inputs(task, inputs, chunk.window, chunk.read_window)
    model_seconds = getattr(method, "seconds", 0.0) - model_before
    t_fuse = time.perf_counter()
    clocks = {k: v - clocks[k] for k, v in timing.snapshot().items()}
    try:
        _writer(task.cube).write(chunk.t0, chunk.window, block.lst_k, block.qa,
                                 block.reference_day)
        RunRecord(task.cube).mark_done(chunk.index)  # only after the whole region is written
    except OSError as exc:  # a full disk, a quota, a read-only or vanished output ...
        raise StoreError(f"{task.cube}: cannot write chunk {chunk.index} "
                         f"({describe_os_error(exc)}); check free space and write permission "
                         "of the output, then run again (finished chunks are kept)") from exc
    t_write = time.perf_counter()
    counts = np.bincount(block.qa.ravel(), minlength=len(Flag.values))
    return ChunkStats(
        index=chunk.index, pixel_days=int(block.qa.size), observed=int(counts[Flag.OBSERVED]),
        fused=int(counts[Flag.FUSED] + counts[Flag.FUSED_TWO] + counts[Flag.MODIS_GAP_FILLED]),
        fused_two=int(counts[Flag.FUSED_TWO]), no_data=int(counts[Flag.NO_DATA]),
        seconds=t_write - start, read_seconds=t_read - start, fuse_seconds=t_fuse - t_read,
        model_seconds=model_seconds, write_seconds=t_write - t_fuse,
        upsample_seconds=clocks["upsample"], host_to_device_seconds=clocks["host_to_device"],
        forward_seconds=clocks["forward"], device_to_host_seconds=clocks["device_to_host"],
    )


def fuse_scene(plan: RunPlan) -> FusedBlock:
    """The same computation in this process, unchunked: the whole scene and all days at once.

    For tests and small scenes: it holds the whole stack and cube in memory.
    """
    ny, nx = plan.grid.shape
    whole = Window(0, ny, 0, nx)
    return read_and_fuse(plan.task, 0, len(plan.days), whole, whole)


@dataclass(frozen=True)
class RunSummary:
    """Totals of an executed run."""

    cube: Path
    days: int
    shape: tuple[int, int]
    chunks: int
    skipped: int
    pixel_days: int
    observed: int
    fused: int
    fused_two: int
    no_data: int
    wall_seconds: float
    stage_seconds: dict[str, float] = dataclasses.field(default_factory=dict)

    @property
    def pixel_days_per_second(self) -> float:
        return self.pixel_days / self.wall_seconds if self.wall_seconds > 0 else float("nan")

    def __str__(self) -> str:
        pd = max(self.pixel_days, 1)
        return (
            f"fused {self.days} days x {self.shape[0]} x {self.shape[1]} px "
            f"({self.pixel_days:,} pixel-days, {self.chunks} chunks computed, {self.skipped} "
            f"already done) in {self.wall_seconds:.1f} s "
            f"= {self.pixel_days_per_second:,.0f} pixel-days/s\n"
            f"  observed {100 * self.observed / pd:.1f} %, fused {100 * self.fused / pd:.1f} % "
            f"({100 * self.fused_two / pd:.1f} % from two references), "
            f"no data {100 * self.no_data / pd:.1f} %\n  cube: {self.cube}"
        )


#: CF ``references`` of every cube: the fusion model the default method follows.
REFERENCES = (
    "Jin, Li & Shen (2026), Deep-Learning Spatial and Temporal Fusion Model for Land Surface "
    "Temperature Based on a Spatially Adaptive Feature and Temperature-Adaptive Correction "
    "Module, Remote Sensing 18(2):238, doi:10.3390/rs18020238 (DLSTFM)"
)


def provenance(plan: RunPlan) -> dict[str, Any]:
    """Root attributes recording how the cube was made."""
    cfg = plan.config
    fusion = {k: (str(v) if isinstance(v, Path) else v)
              for k, v in dataclasses.asdict(cfg.fusion).items()}
    return {
        "lst_pipeline:version": __version__,
        **plan.task.fusion_method().describe(),
        "lst_pipeline:fusion": fusion,
        "lst_pipeline:input_stack": str(cfg.inputs.stack),
        CHUNKS_ATTR: list(plan.chunks.chunks),
        **({"lst_pipeline:auto": plan.auto.as_attrs()} if plan.auto is not None else {}),
        "lst_pipeline:pipeline": cfg.name,
        "source": "Landsat Collection 2 L2 ST + MODIS MOD11A1 fused by lst_pipeline",
        "references": REFERENCES,
        "history": f"{time.strftime('%Y-%m-%dT%H:%M:%S%z')} lst_pipeline {__version__} "
                   f"run of pipeline {cfg.name!r}",
    }


def fingerprint(plan: RunPlan) -> str:
    """Hash of everything that determines the cube's bytes (grid, days, chunks, method,
    model, fusion parameters, dtype) but the input stack's content, which resume compares
    date by date (:func:`stale_chunks`): a resume must match it.

    The stack's path is left out on purpose: a moved stack with the same content resumes,
    another stack on the same grid is caught by its content digests.
    """
    import hashlib
    import json

    from lst_pipeline.io.zarr_store import grid_attrs

    cfg = plan.config
    method = plan.task.fusion_method().describe()
    method.pop("lst_pipeline:checkpoint", None)  # the path may move; the hash may not
    payload = {
        "grid": grid_attrs(plan.grid), "days": [str(plan.days[0]), str(plan.days[-1])],
        "chunks": list(plan.chunks.chunks), "halo": plan.chunks.halo_aligned,
        "method": method, "task": dataclasses.asdict(plan.task) | {
            "cube": None, "checkpoint": None, "stack": None},
        "dtype": cfg.output.dtype,
    }
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def changed_dates(old: dict | None, new: dict | None) -> dict[str, list[str]]:
    """Dates (per sensor) whose content digest differs between two stack content records."""
    old, new = old or {}, new or {}
    out = {}
    for sensor in ("landsat", "modis"):
        a, b = old.get(sensor, {}), new.get(sensor, {})
        out[sensor] = sorted(d for d in set(a) | set(b) if a.get(d) != b.get(d))
    return out


def stale_chunks(plan: RunPlan, done: set[tuple[int, int, int]],
                 changed: dict[str, list[str]], landsat_dates: set[str]
                 ) -> set[tuple[int, int, int]]:
    """The finished chunks whose inputs include a changed date (they must be recomputed).

    A chunk of days ``[first, last]`` reads the Landsat dates within
    ``max_reference_gap_days`` of them, the MODIS of its days (widened by the interpolation
    window when gaps are interpolated) and the MODIS of those Landsat dates.

    Parameters
    ----------
    plan
        The run.
    done
        Chunks recorded as finished.
    changed
        From :func:`changed_dates`.
    landsat_dates
        Every Landsat date before or after the change (ISO strings): their MODIS is read.
    """
    task = plan.task
    ct = plan.chunks.chunks[0]
    n_days = len(plan.days)

    def days(dates: list[str]) -> np.ndarray:
        return np.array(dates, "datetime64[D]").astype(np.int64)

    landsat = days(changed["landsat"])
    modis = days(changed["modis"])
    modis_as_reference = modis[np.isin(modis, days(sorted(landsat_dates)))]
    stale_times = set()
    for it in range(plan.chunks.n_chunks[0]):
        first = task.first_day + it * ct
        last = task.first_day + min((it + 1) * ct, n_days) - 1
        lo, hi = first - task.max_gap_days, last + task.max_gap_days
        m = task.modis_gap_days
        if (np.any((landsat >= lo) & (landsat <= hi))
                or np.any((modis >= first - m) & (modis <= last + m))
                or np.any((modis_as_reference >= lo) & (modis_as_reference <= hi))):
            stale_times.add(it)
    return {c for c in done if c[0] in stale_times}


def _summary_of(changed: dict[str, list[str]], most: int = 4) -> str:
    parts = []
    for sensor, dates in changed.items():
        if dates:
            shown = ", ".join(dates[:most]) + (" ..." if len(dates) > most else "")
            parts.append(f"{sensor} {shown}")
    return "; ".join(parts)


def prepare_cube(plan: RunPlan, *, overwrite: bool, log=print
                 ) -> tuple[RunRecord, set[tuple[int, int, int]]]:
    """Lock the cube, then create it, or check that an existing one can be resumed.

    The writer lock is taken before anything is created or read, so two runs started
    together cannot both proceed. A path that is not provably a cube of ours (a plain
    directory, a file, the input stack, a stack or truth store) is refused untouched, with
    or without ``overwrite``. On resume, the digests of the input stack's dates are compared
    with those the cube was computed from: finished chunks that read a changed date are
    computed again, and the message says which dates changed.

    Returns
    -------
    (record, done)
        The run record (locked) and the chunk indices already completed.

    Raises
    ------
    StoreError
        If another live run holds the lock, the path is not a cube of ours, or the existing
        cube was made with another configuration, model, grid or dates (unless
        ``overwrite``).
    """
    from lst_pipeline.io.zarr_store import (
        LOCK_FILES,
        discard_unborn,
        lock_store,
        remove_store,
        root_attrs,
    )

    cube = Path(plan.task.cube)
    protected = {"inputs.stack": plan.task.stack}
    lock, made_dir = lock_store(cube, "cube", field="output.cube",
                                what="another run is writing this cube", protected=protected)
    record = RunRecord(cube)
    expected = fingerprint(plan)
    try:
        exists = (cube / "zarr.json").exists()
        if exists and not overwrite:
            if (root_attrs(cube) or {}).get(FINGERPRINT_ATTR) != expected:
                raise StoreError(
                    f"{cube}: this cube was made with a different configuration, model, grid "
                    "or dates than the current run, so it cannot be resumed; pass --overwrite "
                    "to start over (or choose another output.cube)")
            if plan.stack_content is None:
                raise StoreError(
                    f"{plan.task.stack}: the input stack has no content record (written by an "
                    "older lst_pipeline), so a resume cannot tell whether it changed since "
                    f"{cube} was started; pass --overwrite to start over")
            done = record.done()
            changed = changed_dates(record.inputs(), plan.stack_content)
            if any(changed.values()):
                before = set((record.inputs() or {}).get("landsat", {}))
                now = set(plan.stack_content.get("landsat", {}))
                stale = stale_chunks(plan, done, changed, before | now)
                CubeWriter(cube).set_status("writing")
                record.forget(stale)  # first forget, then record the new inputs
                record.set_inputs(plan.stack_content)
                log(f"{plan.task.stack}: changed since {cube} was computed "
                    f"({_summary_of(changed)}); {len(stale)} finished chunk(s) read those "
                    "dates and are computed again")
                done -= stale
            return record, done
        if exists:
            remove_store(cube, "cube", field="output.cube", protected=protected,
                         keep=LOCK_FILES)
        create_cube(cube, plan.grid, plan.days, plan.chunks.chunks,
                    dtype=plan.config.output.dtype,
                    attrs={**provenance(plan), FINGERPRINT_ATTR: expected})
        record.ensure()
        record.set_inputs(plan.stack_content)
        return record, set()
    except BaseException:
        lock.release()
        if made_dir:
            discard_unborn(cube)
        raise


def execute(plan: RunPlan, client: Client, *, overwrite: bool = False,
            progress: bool = True, max_in_flight: int | None = None,
            resources: dict[str, int] | None = None, log=print) -> RunSummary:
    """Fuse every chunk of ``plan`` on ``client`` into the cube, resuming if it exists.

    Parameters
    ----------
    plan
        From :func:`plan_run`.
    client
        A ``distributed.Client`` (local cluster, SLURM, Kubernetes ...).
    overwrite
        Start over even if the cube exists; otherwise an existing cube of the same run is
        resumed (finished chunks are skipped) and one of another run is refused.
    progress
        Show a progress bar.
    max_in_flight
        Chunks submitted at once (default: 4 per worker thread), keeping the scheduler's
        graph small for plans with millions of chunks.
    resources
        Worker resources every task needs, e.g. ``{"GPU": 1}`` on GPU clusters so each GPU
        runs one task at a time (see :attr:`ClusterProfile.task_resources`).
    log
        Where messages (resume counts) go.

    Returns
    -------
    RunSummary
        Counts of the chunks computed by this call.

    Notes
    -----
    Each task records its chunk as done after its region write; the cube's
    ``lst_pipeline:status`` becomes ``complete`` only when every chunk is recorded. A killed
    run leaves ``writing`` and its records, and the next run continues from there.
    """
    from distributed import as_completed
    from tqdm.auto import tqdm

    cube = Path(plan.task.cube)
    start = time.perf_counter()
    record, done = prepare_cube(plan, overwrite=overwrite, log=log)
    try:
        if done:
            log(f"resuming {cube}: {len(done)} of {len(plan.chunks)} chunks already done, "
                "skipping them")
        if max_in_flight is None:
            threads = sum(client.nthreads().values()) or 1
            max_in_flight = 4 * threads
        chunks: Iterable[OutputChunk] = (c for c in plan.chunks if c.index not in done)
        totals = np.zeros(5, dtype=np.int64)
        stages = dict.fromkeys(ChunkStats.STAGES, 0.0)
        bar = tqdm(total=len(plan.chunks), initial=len(done), unit="chunk", desc="fusing",
                   disable=not progress)
        pending = as_completed()
        run_token = uuid.uuid4().hex[:8]
        computed = 0
        try:
            def submit(chunk: OutputChunk) -> None:
                pending.add(client.submit(fuse_chunk, plan.task, chunk, resources=resources,
                                          key=_key(chunk, run_token)))

            for chunk in _take(chunks, max_in_flight):
                submit(chunk)
            for future in pending:
                try:
                    stats: ChunkStats = future.result()
                except Exception as exc:
                    where = record.write_log("task-failure", _failure_text(future, exc))
                    # input or output at fault: one line, same kind of error
                    if isinstance(exc, LSTPipelineError):
                        raise type(exc)(f"{exc} (worker traceback: {where})") from None
                    if isinstance(exc, OSError):
                        raise TaskError(f"{describe_os_error(exc)} (worker traceback: "
                                        f"{where})") from None
                    raise  # a bug: the traceback is printed too
                future.release()
                totals += (stats.pixel_days, stats.observed, stats.fused, stats.fused_two,
                           stats.no_data)
                for stage in stages:
                    stages[stage] += getattr(stats, f"{stage}_seconds")
                computed += 1
                bar.update()
                for chunk in _take(chunks, 1):
                    submit(chunk)
        except BaseException:
            client.cancel(list(pending.futures))
            raise
        finally:
            bar.close()
        if len(record.done()) != len(plan.chunks):
            raise StoreError(f"{cube}: {len(plan.chunks) - len(record.done())} chunks have no "
                             "completion record after the run; run again to finish them")
        remove_partial_writes(cube)  # left by workers killed while writing a chunk
        CubeWriter(cube).set_status("complete")
    finally:
        record.release_lock()
    ny, nx = plan.grid.shape
    return RunSummary(cube=cube, days=len(plan.days), shape=(ny, nx), chunks=computed,
                      skipped=len(done), pixel_days=int(totals[0]), observed=int(totals[1]),
                      fused=int(totals[2]), fused_two=int(totals[3]), no_data=int(totals[4]),
                      wall_seconds=time.perf_counter() - start, stage_seconds=stages)


def _failure_text(future: Any, exc: BaseException) -> str:
    """The failed task, its exception and the worker's traceback, for the failure log."""
    import traceback

    lines = [f"task {future.key} failed on a worker: {type(exc).__name__}: {exc}", ""]
    tb = future.traceback()
    lines += traceback.format_exception(type(exc), exc, tb) if tb is not None else []
    return "\n".join(lines)


def _take(iterator: Iterable[OutputChunk], n: int) -> list[OutputChunk]:
    out = []
    for item in iterator:
        out.append(item)
        if len(out) == n:
            break
    return out


def _key(chunk: OutputChunk, run_token: str) -> str:
    it, iy, ix = chunk.index
    return f"fuse-chunk-{run_token}-{it}-{iy}-{ix}"
