"""Ingest on a Dask cluster: every worker reads and regrids dates and stages them itself.

The dates are cut into batches that own whole chunks of the staging store: one Landsat date
(a fine-grid image per chunk), or the MODIS days of one time chunk. A worker reads a batch
onto the grid and writes it into the staging store; only the per-date values that share one
chunk for all dates (clear fraction, time) come back, with the record entries and content
digests, and the client writes them. The commit then runs on the client as for a
single-process ingest, so its guarantees are unchanged.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lst_pipeline.errors import LSTPipelineError
from lst_pipeline.ingest.read import Updates, read_dates
from lst_pipeline.io.stack_writer import StackWriter

if TYPE_CHECKING:
    from distributed import Client

    from lst_pipeline.config.locations import StorePath
    from lst_pipeline.ingest.plan import IngestPlan


def batches(plan: IngestPlan, modis_time_chunk: int) -> list[tuple[range, range]]:
    """``(landsat positions, modis positions)`` of each task: whole staging chunks each."""
    out = [(range(k, k + 1), range(0)) for k in range(len(plan.landsat))]
    n = len(plan.modis)
    out += [(range(0), range(lo, min(lo + modis_time_chunk, n)))
            for lo in range(0, n, modis_time_chunk)]
    return out


def read_batch(plan: IngestPlan, staging: StorePath, landsat: range, modis: range
               ) -> tuple[Updates, int, dict[str, dict[str, str]], dict[str, list]]:
    """On a worker: read one batch into the staging store.

    Returns
    -------
    (record updates, bytes read, content digests, deferred per-date values)
    """
    writer = StackWriter(staging, defer_scalars=True)
    failure = None
    try:
        updates, nbytes = read_dates(plan, writer, landsat, modis)
    except LSTPipelineError as exc:
        failure = type(exc)(str(exc))
    if failure is not None:  # raised afresh: its cause (a GDAL error) may not unpickle
        raise failure
    assert writer.deferred is not None
    return updates, nbytes, writer.content, writer.deferred


def read_on_cluster(plan: IngestPlan, staged: StackWriter, client: Client, *,
                    progress: bool = True) -> tuple[Updates, int]:
    """Read every planned date on the cluster's workers into ``staged``'s store.

    If a task fails, the others are let finish (none writes into a staging store that is
    being removed) and the first failure is raised, as a single-process ingest would.

    Returns
    -------
    (record updates per sensor and date, bytes of files read)
    """
    from distributed import as_completed, wait
    from tqdm.auto import tqdm

    work = batches(plan, staged.modis_time_chunk)
    [shared] = client.scatter([plan], broadcast=True, hash=False)
    futures = {client.submit(read_batch, shared, staged.path, lo, mo, pure=False): (lo, mo)
               for lo, mo in work}
    updates: Updates = {"landsat": {}, "modis": {}}
    deferred: dict[str, list[Any]] = {"landsat": [], "modis": []}
    bytes_read = 0
    try:
        with tqdm(total=plan.n_files, unit="file", desc="ingest", disable=not progress) as bar:
            for future in as_completed(futures):
                part, nbytes, content, scalars = future.result()
                lo, mo = futures[future]
                bar.update(sum(len(plan.landsat[k].sources) for k in lo)
                           + sum(len(plan.modis[k].sources) for k in mo))
                bytes_read += nbytes
                for sensor in updates:
                    updates[sensor].update(part[sensor])
                    staged.content[sensor].update(content[sensor])
                    deferred[sensor] += scalars[sensor]
    except BaseException:
        wait(list(futures))
        raise
    staged.write_scalars(deferred)
    return updates, bytes_read
