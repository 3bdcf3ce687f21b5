"""Executing a fusion plan on a Dask cluster: one task per chunk, writes, records.

:func:`execute` takes the cube's lock, creates the cube or resumes it (a cube of another
run or a path that is not ours is refused), then submits one task per chunk, a bounded
number at a time, so the scheduler never holds a huge graph. Each task (:func:`fuse_chunk`)
reads only its window plus halo and the dates it needs, fuses, writes its own Zarr chunks
(tasks never share a chunk, so writes need no lock) and records the chunk as done.
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any, NoReturn

import numpy as np

from lst_pipeline.chunks import OutputChunk
from lst_pipeline.config.locations import StorePath
from lst_pipeline.devices import limit_numba_threads
from lst_pipeline.errors import LSTPipelineError, StoreError, TaskError, describe_os_error
from lst_pipeline.flags import Flag
from lst_pipeline.fusion import timing
from lst_pipeline.fusion.block import fuse_inputs, read_block_inputs
from lst_pipeline.fusion.plan import FusionTask, RunPlan, fingerprint
from lst_pipeline.fusion.provenance import provenance
from lst_pipeline.io.cube import CubeWriter, create_cube
from lst_pipeline.io.cube_store import CubeStore
from lst_pipeline.io.zarr_store import FINGERPRINT_ATTR

if TYPE_CHECKING:
    from distributed import Client


def worker_threads() -> int | None:
    """The current Dask worker's threads, None outside a worker."""
    try:
        from distributed import get_worker

        return int(get_worker().state.nthreads)
    except (ImportError, ValueError, AttributeError):
        return None


#: What a live holder of a cube's lock is doing, in the refusal.
CUBE_WRITER = "another run is writing this cube"


@lru_cache(maxsize=8)
def _writer(path: StorePath) -> CubeWriter:
    return CubeWriter(path)


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
    threads = worker_threads()
    limit_numba_threads(threads)  # else numba would also reset the threads torch may use
    method = task.fusion_method(threads)
    block = fuse_inputs(task, inputs, chunk.window, chunk.read_window, method=method)
    t_fuse = time.perf_counter()
    # this thread's clocks: tasks sharing a worker (threads, tasks_per_gpu) count only their own
    clocks = {k: v - clocks[k] for k, v in timing.snapshot().items()}
    model_seconds = clocks["host_to_device"] + clocks["forward"] + clocks["device_to_host"]
    try:
        _writer(task.cube).write(chunk.t0, chunk.window, block.lst_k, block.qa,
                                 block.reference_day, block.uncertainty_k)
        CubeStore(task.cube).mark_done(chunk.index)  # only after the whole region is written
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


@dataclass(frozen=True)
class RunSummary:
    """Totals of an executed run."""

    cube: StorePath
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
        """Throughput of the chunks computed by this call."""
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


def prepare_cube(plan: RunPlan, *, overwrite: bool, log=print
                 ) -> tuple[CubeStore, set[tuple[int, int, int]]]:
    """Lock the cube, then create it, or check that an existing one can be resumed.

    The writer lock is taken before anything is created or read, so two runs started
    together cannot both proceed. A path that is not provably a cube of ours (a plain
    directory, a file, the input stack, a stack or truth store) is refused untouched, with
    or without ``overwrite``. On resume, the digests of the input stack's dates are compared
    with those the cube was computed from: finished chunks that read a changed date are
    computed again, and the message says which dates changed.

    Returns
    -------
    (store, done)
        The cube's store (locked) and the chunk indices already completed.

    Raises
    ------
    StoreError
        If another live run holds the lock, the path is not a cube of ours, or the existing
        cube was made with another configuration, model, grid or dates (unless
        ``overwrite``).
    """
    from lst_pipeline.fusion.plan import resume_state
    from lst_pipeline.io.lock import (
        discard_unborn,
        lock_store,
    )
    from lst_pipeline.io.ownership import (
        LOCK_FILES,
        remove_store,
    )

    cube = plan.task.cube
    protected = {"inputs.stack": plan.task.stack}
    lock, made_dir = lock_store(cube, "cube", field="output.cube", what=CUBE_WRITER,
                                protected=protected)
    store = CubeStore(cube)
    try:
        if store.exists and not overwrite:
            return store, _resume(plan, store, resume_state(plan), log)  # checked again, locked
        if store.exists:
            remove_store(cube, "cube", field="output.cube", protected=protected,
                         keep=LOCK_FILES)
        create_cube(cube, plan.grid, plan.days, plan.chunks.chunks,
                    dtype=plan.config.output.dtype, uncertainty=plan.task.uncertainty,
                    attrs={**provenance(plan), FINGERPRINT_ATTR: fingerprint(plan)})
        store.ensure()
        store.set_inputs(plan.stack_content)
        return store, set()
    except BaseException:
        lock.release()
        if made_dir:
            discard_unborn(cube)
        raise


def _not_this_run(plan: RunPlan, store: CubeStore) -> str:
    """Why a cube cannot be resumed: its network if that is what differs, else in general."""
    key = "lst_pipeline:checkpoint_sha256"
    made_with = store.attrs.get(key)
    now = plan.task.fusion_method().describe().get(key)
    if made_with and now and made_with != now:
        return (f"{store.cube}: this cube was made with the DLSTFM checkpoint "
                f"{store.attrs.get('lst_pipeline:checkpoint')} (sha256 {made_with[:8]}...), "
                f"this run uses {plan.task.checkpoint or 'the shipped default'} (sha256 "
                f"{now[:8]}...), so it cannot be resumed; set fusion.checkpoint to the "
                "cube's checkpoint to finish it (the shipped default changed on 2026-12-04; "
                "the earlier one is lst_pipeline/model/weights/dlstfm_v1.pt), or pass "
                "--overwrite to start over")
    return (f"{store.cube}: this cube was made with a different configuration, model, grid "
            "or dates than the current run, so it cannot be resumed; pass --overwrite "
            "to start over (or choose another output.cube)")


def _resume(plan: RunPlan, store: CubeStore, state, log) -> set[tuple[int, int, int]]:
    """The chunks still valid in an existing cube; stale records are forgotten."""
    cube = store.cube
    if state is None:
        raise StoreError(_not_this_run(plan, store))
    if plan.stack_content is None:
        raise StoreError(
            f"{plan.task.stack}: the input stack has no content record (written by an "
            "older lst_pipeline), so a resume cannot tell whether it changed since "
            f"{cube} was started; pass --overwrite to start over")
    done = set(state.done)
    if any(state.changed.values()):
        from lst_pipeline.fusion.plan import summarise_changes

        store.set_status("writing")
        store.forget(set(state.stale))  # first forget, then record the new inputs
        store.set_inputs(plan.stack_content)
        log(f"{plan.task.stack}: changed since {cube} was computed "
            f"({summarise_changes(state.changed)}); {len(state.stale)} finished chunk(s) "
            "read those dates and are computed again")
        done -= state.stale
    return done


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
    cube = plan.task.cube
    start = time.perf_counter()
    record, done = prepare_cube(plan, overwrite=overwrite, log=log)
    try:
        if done:
            log(f"resuming {cube}: {len(done)} of {len(plan.chunks)} chunks already done, "
                "skipping them")
        if max_in_flight is None:
            max_in_flight = 4 * (sum(client.nthreads().values()) or 1)
        tally = _Tally()
        _fuse_chunks(plan, client, [c for c in plan.chunks if c.index not in done], record,
                     tally, done=len(done), max_in_flight=max_in_flight, resources=resources,
                     progress=progress)
        if len(record.done()) != len(plan.chunks):
            raise StoreError(f"{cube}: {len(plan.chunks) - len(record.done())} chunks have no "
                             "completion record after the run; run again to finish them")
        record.sweep_partial_writes()  # left by workers killed while writing a chunk
        record.set_status("complete")
    finally:
        record.release_lock()
    ny, nx = plan.grid.shape
    t = tally.totals
    return RunSummary(cube=cube, days=len(plan.days), shape=(ny, nx), chunks=tally.computed,
                      skipped=len(done), pixel_days=int(t[0]), observed=int(t[1]),
                      fused=int(t[2]), fused_two=int(t[3]), no_data=int(t[4]),
                      wall_seconds=time.perf_counter() - start, stage_seconds=tally.stages)


class _Tally:
    """Counts and stage seconds of the chunks computed so far."""

    def __init__(self) -> None:
        self.totals = np.zeros(5, dtype=np.int64)
        self.stages = dict.fromkeys(ChunkStats.STAGES, 0.0)
        self.computed = 0

    def add(self, stats: ChunkStats) -> None:
        self.totals += (stats.pixel_days, stats.observed, stats.fused, stats.fused_two,
                        stats.no_data)
        for stage in self.stages:
            self.stages[stage] += getattr(stats, f"{stage}_seconds")
        self.computed += 1


def _fuse_chunks(plan: RunPlan, client: Client, todo: list[OutputChunk], record: CubeStore,
                 tally: _Tally, *, done: int, max_in_flight: int,
                 resources: dict[str, int] | None, progress: bool) -> None:
    """Keep ``max_in_flight`` chunk tasks submitted until ``todo`` is fused; cancel on error."""
    from distributed import as_completed
    from tqdm.auto import tqdm

    chunks: Iterable[OutputChunk] = iter(todo)
    bar = tqdm(total=len(plan.chunks), initial=done, unit="chunk", desc="fusing",
               disable=not progress)
    pending = as_completed()
    run_token = uuid.uuid4().hex[:8]

    def submit(chunk: OutputChunk) -> None:
        pending.add(client.submit(fuse_chunk, plan.task, chunk, resources=resources,
                                  key=_key(chunk, run_token)))

    try:
        for chunk in _take(chunks, max_in_flight):
            submit(chunk)
        for future in pending:
            try:
                stats: ChunkStats = future.result()
            except Exception as exc:
                _raise_task_failure(record, future, exc)
            future.release()
            tally.add(stats)
            bar.update()
            for chunk in _take(chunks, 1):
                submit(chunk)
    except BaseException:
        client.cancel(list(pending.futures))
        raise
    finally:
        bar.close()


def _raise_task_failure(record: CubeStore, future: Any, exc: Exception) -> NoReturn:
    """Log a failed task's traceback in the cube; raise one line for input or output faults."""
    where = record.write_log("task-failure", _failure_text(future, exc))
    if isinstance(exc, LSTPipelineError):
        raise type(exc)(f"{exc} (worker traceback: {where})") from None
    if isinstance(exc, OSError):
        raise TaskError(f"{describe_os_error(exc)} (worker traceback: {where})") from None
    raise exc  # a bug: the traceback is printed too


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
