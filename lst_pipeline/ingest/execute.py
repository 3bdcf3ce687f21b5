"""Executing an ingest: lock the stack, read every date into staging, commit.

Memory is bounded by one date of the fine grid (read, masked, resampled) and the commit's
copy blocks (:data:`~lst_pipeline.io.stack_writer.COMMIT_BLOCK_BYTES`), whatever the number
of dates.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from lst_pipeline.config import PipelineConfig
from lst_pipeline.config.locations import StorePath
from lst_pipeline.ingest.plan import (
    PLATFORM_ATTR,
    IngestPlan,
    check_existing_stack,
    modis_options,
    plan_ingest,
)
from lst_pipeline.ingest.read import Updates, read_dates
from lst_pipeline.io.lock import (
    discard_unborn,
    lock_store,
)
from lst_pipeline.io.ownership import (
    LOCK_FILES,
    remove_store,
)
from lst_pipeline.io.stack import create_stack
from lst_pipeline.io.stack_writer import StackCommit, StackWriter

if TYPE_CHECKING:
    from distributed import Client

INGEST_SOURCE = "lst_pipeline.ingest"
#: What a live holder of a stack's lock is doing, in the refusal.
STACK_WRITER = "another ingest is writing into this stack"


@dataclass
class IngestSummary:
    """What an ingest did."""

    stack: StorePath
    landsat_dates: int
    modis_dates: int
    files: int
    bytes_read: int
    seconds: float
    landsat_clear: dict[str, float]
    modis_clear: dict[str, float]
    skipped: list[str]

    def __str__(self) -> str:
        rate = self.bytes_read / 1e6 / max(self.seconds, 1e-9)

        def mean(clear: dict[str, float]) -> str:
            return f"{np.mean(list(clear.values())):.1%}" if clear else "-"

        return (f"ingested {self.landsat_dates} Landsat and {self.modis_dates} MODIS date(s) "
                f"from {self.files} file(s) in {self.seconds:.1f} s "
                f"({self.bytes_read / 1e6:.0f} MB, {rate:.0f} MB/s) into {self.stack}\n"
                f"  mean clear fraction: Landsat {mean(self.landsat_clear)}, "
                f"MODIS {mean(self.modis_clear)}")


def execute_ingest(plan: IngestPlan, *, progress: bool = True, log=print,
                   client: Client | None = None) -> IngestSummary:
    """Read every planned date onto the grid and commit them into the stack.

    The stack is locked for the whole ingest (a second ingest into it is refused). Dates are
    read into staging stores inside the stack; only when all are read is a commit journal
    written and the commit applied. The commit copies only from the staging stores, so
    it can be repeated: an ingest killed during its commit is finished by the next
    ``lst-pipeline ingest`` into the same stack, whatever that one's inputs.

    Parameters
    ----------
    plan
        From :func:`plan_ingest`.
    progress
        Show a progress bar over the files.
    log
        Where notes (a finished interrupted commit) go.
    client
        A Dask client: the files are read and regridded on its workers, each staging the
        dates it read (:mod:`lst_pipeline.ingest.parallel`); the commit stays here. None:
        read in this process.

    Returns
    -------
    IngestSummary
    """
    started = time.perf_counter()
    stack = plan.stack
    ingest = plan.config.ingest
    assert ingest is not None  # plan_ingest refuses a configuration without an ingest section
    platform = modis_options(ingest).platform
    lock, made_dir = lock_store(stack, "stack", field="inputs.stack", what=STACK_WRITER)
    created = not (stack / "zarr.json").exists()
    commit = StackCommit(stack, plan.grid, spatial_chunk=_stack_chunk(plan),
                         attrs={"source": INGEST_SOURCE})
    committing = False
    try:
        if created:
            create_stack(stack, plan.grid, np.array([], "datetime64[D]"),
                         np.array([], "datetime64[D]"), spatial_chunk=_stack_chunk(plan),
                         attrs={"source": INGEST_SOURCE, PLATFORM_ATTR: platform})
            StackWriter(stack).finish()  # an empty, complete stack until the commit
        else:
            check_existing_stack(plan, platform)
            interrupted = commit.interrupted()
            if interrupted is not None:
                log(f"{stack}: finishing the commit of an interrupted ingest first")
                commit.apply(interrupted)
            commit.remove_staging()
        staged = commit.staging_writer(
            *(np.array([d.date for d in getattr(plan, s)], "datetime64[D]")
              for s in ("landsat", "modis")))
        if client is None:
            updates, bytes_read = _read_into(plan, staged, progress)
        else:
            from lst_pipeline.ingest.parallel import read_on_cluster

            updates, bytes_read = read_on_cluster(plan, staged, client, progress=progress)
        journal = commit.prepare(staged, updates)
        committing = True
        commit.commit(journal)
    except BaseException:
        if created:
            remove_store(stack, "stack", field="inputs.stack", keep=LOCK_FILES)
        elif not committing:
            commit.remove_staging()
        raise
    finally:
        lock.release()
        if made_dir:
            discard_unborn(stack)
    return IngestSummary(
        stack=stack,
        landsat_dates=len(updates["landsat"]), modis_dates=len(updates["modis"]),
        files=plan.n_files, bytes_read=bytes_read, seconds=time.perf_counter() - started,
        landsat_clear={d: r["clear_fraction"] for d, r in updates["landsat"].items()},
        modis_clear={d: r["clear_fraction"] for d, r in updates["modis"].items()},
        skipped=list(plan.skipped))


def _stack_chunk(plan: IngestPlan) -> int:
    """Spatial chunk edge of the stack: the run's chunks when given, else 512 px."""
    return plan.config.chunks.y or plan.config.chunks.x or 512


def _read_into(plan: IngestPlan, writer: StackWriter, progress: bool) -> tuple[Updates, int]:
    """Read every planned date onto the grid into the staging store (plan order)."""
    from tqdm.auto import tqdm

    with tqdm(total=plan.n_files, unit="file", desc="ingest", disable=not progress) as bar:
        return read_dates(plan, writer, range(len(plan.landsat)), range(len(plan.modis)),
                          tick=bar.update)


def ingest(config: PipelineConfig, *, progress: bool = True) -> IngestSummary:
    """Plan and execute an ingest (what ``lst-pipeline ingest CONFIG`` does)."""
    return execute_ingest(plan_ingest(config), progress=progress)
