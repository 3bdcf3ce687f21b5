"""A time-series-friendly copy of a cube, by dask's own rechunking (p2p on a cluster).

The production cube is chunked for writing and maps (a block of days over a large square);
a pixel's series then touches one chunk per block of days. :func:`plan_rechunk` decides a
layout with all days (or long runs of days) of a small square per chunk and checks the
request; :func:`execute_rechunk` runs it on a ``distributed`` client: every variable is
rechunked with ``dask.array.rechunk(method="p2p")`` (peer-to-peer shuffle in the workers)
and written with xarray. Values are copied as stored (packed int16, raw flags and dates), so
the copy holds exactly the same numbers, CF encoding, attributes and ``spatial_ref``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, SupportsInt

from lst_pipeline.config.locations import StorePath, as_store_path, is_remote, overlap
from lst_pipeline.errors import ConfigError, InputError, StoreError
from lst_pipeline.io.cube import LST
from lst_pipeline.io.location import zarr_store
from lst_pipeline.io.lock import (
    discard_unborn,
    lock_store,
)
from lst_pipeline.io.ownership import (
    LOCK_FILES,
    check_replaceable,
    remove_store,
)
from lst_pipeline.io.zarr_store import (
    KIND_ATTR,
    STATUS_ATTR,
    open_group,
    set_status,
)

if TYPE_CHECKING:
    from dask.delayed import Delayed
    from distributed import Client

#: Dimensions of the cube's data variables.
CUBE_DIMS = ("time", "y", "x")
#: Root attribute of a copy: where it came from and how it is chunked.
RECHUNKED_FROM_ATTR = "lst_pipeline:rechunked_from"


@dataclass(frozen=True)
class RechunkPlan:
    """A rechunk, fully decided but not started."""

    source: StorePath
    target: StorePath
    shape: tuple[int, int, int]
    source_chunks: tuple[int, int, int]
    chunks: tuple[int, int, int]
    method: str
    overwrite: bool

    @property
    def n_chunks(self) -> int:
        """Chunks of the copy's ``lst``."""
        return math.prod(-(-n // c) for n, c in zip(self.shape, self.chunks))

    def describe(self) -> str:
        """The plan in a few lines: shapes, chunks and the rechunk method."""
        nt, ny, nx = self.shape
        ct, cy, cx = self.chunks
        st, sy, sx = self.source_chunks
        return (f"rechunk {self.source} ({nt} days x {ny} x {nx} px, chunks {st} x {sy} x "
                f"{sx}) -> {self.target}: chunks {ct} x {cy} x {cx} ({self.n_chunks} per "
                f"variable), method {self.method}")


def time_series_chunks(shape: tuple[int, int, int], *, itemsize: int = 2,
                       target_mib: float = 32.0, time_chunk: int | None = None,
                       multiple: int = 8) -> tuple[int, int, int]:
    """Chunks for time-series reads: ``time_chunk`` days (default all) x a square.

    The square keeps one ``lst`` chunk near ``target_mib`` MiB uncompressed; its side is a
    multiple of ``multiple`` px, at least ``multiple``, at most the grid.
    """
    nt, ny, nx = shape
    ct = nt if time_chunk in (None, -1) else max(1, min(int(time_chunk), nt))
    side = int(math.sqrt(target_mib * 2**20 / (ct * itemsize)))
    side = max(multiple, side // multiple * multiple)
    return ct, min(side, ny), min(side, nx)


def parse_chunks(text: str | None) -> tuple[int, ...] | None:
    """``T,Y,X`` integers (``--chunks``); None stays None (the default chunks).

    Raises
    ------
    ConfigError
        If the text is not comma-separated integers.
    """
    if not text:
        return None
    try:
        return tuple(int(v) for v in text.split(","))
    except ValueError:
        raise ConfigError(f"--chunks: {text!r} is not T,Y,X integers") from None


def plan_rechunk(source: StorePath | str, target: StorePath | str, *,
                 chunks: tuple[int, ...] | None = None, target_mib: float = 32.0,
                 method: str = "p2p", overwrite: bool = False) -> RechunkPlan:
    """Check a rechunk request and decide the target chunks (reads metadata only).

    Parameters
    ----------
    source
        A complete output cube.
    target
        The store to write; never the source or inside it.
    chunks
        ``(time, y, x)`` target chunks (-1: the whole dimension); default
        :func:`time_series_chunks`.
    target_mib
        Uncompressed size of one ``lst`` chunk the default aims at.
    method
        ``"p2p"`` (default, needs a distributed client) or ``"tasks"``.
    overwrite
        Replace an existing ``target``.

    Raises
    ------
    InputError
        If ``source`` is not a cube.
    StoreError
        If ``target`` is the source (or inside it), exists without ``overwrite``, or the
        source is not complete.
    """
    source, target = as_store_path(source), as_store_path(target)
    if method not in ("p2p", "tasks"):
        raise StoreError(f"--method: {method!r} is not p2p or tasks")
    if overlap(source, target) is not None:
        raise StoreError(f"{target}: OUT is the cube {source} itself (or inside it, or around "
                         "it); give another path: rechunk never writes over its source")
    group = open_group(source)
    if LST not in group:
        raise InputError(f"{source}: not an lst_pipeline cube (no `{LST}` array)")
    status = group.attrs.get(STATUS_ATTR)
    if status != "complete":
        raise StoreError(f"{source}: the cube is not complete (status {status!r}); finish it "
                         "with `lst-pipeline run` (it resumes) before rechunking")
    exists = check_replaceable(target, "cube", field="OUT",
                               protected={"the source cube": source})
    if exists and not overwrite:
        raise StoreError(f"{target}: already exists; pass --overwrite to replace it")
    lst = group[LST]
    shape = _cube_sizes(lst.shape)
    if chunks is None:
        new = time_series_chunks(shape, itemsize=lst.dtype.itemsize, target_mib=target_mib)
    else:
        if len(chunks) != 3 or any(c == 0 or c < -1 for c in chunks):
            raise StoreError(f"--chunks: {chunks} is not three positive sizes time,y,x "
                             "(-1 for a whole dimension)")
        new = _cube_sizes(n if c == -1 else min(int(c), n) for c, n in zip(chunks, shape))
    return RechunkPlan(source=source, target=target, shape=shape,
                       source_chunks=_cube_sizes(lst.chunks), chunks=new,
                       method=method, overwrite=overwrite)


def _cube_sizes(values: Iterable[SupportsInt]) -> tuple[int, int, int]:
    """``(time, y, x)`` sizes as ints (the cube's arrays are three-dimensional)."""
    nt, ny, nx = (int(v) for v in values)
    return nt, ny, nx


def build_rechunk(plan: RechunkPlan) -> Delayed:
    """The lazy write of the copy: opens the source (metadata only) and builds the graph.

    Every ``(time, y, x)`` variable goes through ``dask.array.rechunk(method=plan.method)``;
    the values stay as stored (packed int16, raw flags and dates), with the source's codecs,
    fill values and attributes, so the copy decodes to exactly the same dataset.
    """
    import xarray as xr

    ds = xr.open_zarr(zarr_store(as_store_path(plan.source), read_only=True),
                      consolidated=False, decode_cf=False)
    variables, encoding = {}, {}
    for name, var in ds.variables.items():
        attrs = dict(var.attrs)
        enc = {"compressors": var.encoding.get("compressors"),
               "fill_value": var.encoding.get("fill_value"),
               "_FillValue": attrs.pop("_FillValue", None)}
        data = var.data
        if var.dims == CUBE_DIMS:
            enc["chunks"] = plan.chunks
            data = data.rechunk(plan.chunks, method=plan.method)
        elif var.dims:
            enc["chunks"] = tuple(var.encoding.get("chunks", var.shape))
        variables[name] = xr.Variable(var.dims, data, attrs)
        encoding[name] = {k: v for k, v in enc.items() if v is not None or k == "_FillValue"}
    attrs = dict(ds.attrs)
    attrs[RECHUNKED_FROM_ATTR] = {
        "cube": str(plan.source if is_remote(plan.source) else plan.source.resolve()),
        "source_chunks": list(plan.source_chunks),
        "chunks": list(plan.chunks), "method": f"dask.array.rechunk(method={plan.method!r})",
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    attrs["title"] = f"{attrs.get('title', 'lst_pipeline cube')} (time-series layout)"
    attrs[KIND_ATTR] = "cube"
    attrs[STATUS_ATTR] = "writing"  # complete once every chunk is written (execute_rechunk)
    ds = xr.Dataset({n: v for n, v in variables.items() if n in ds.data_vars},
                    coords={n: v for n, v in variables.items() if n in ds.coords}, attrs=attrs)
    # the target was proven free (or emptied) by execute_rechunk: "a" only adds to it
    return ds.to_zarr(zarr_store(plan.target), mode="a", zarr_format=3, consolidated=False,
                      encoding=encoding, compute=False)


def execute_rechunk(plan: RechunkPlan, client: Client | None = None, *,
                    progress: bool = True) -> float:
    """Write the copy described by ``plan``; returns the wall time in seconds.

    Parameters
    ----------
    plan
        From :func:`plan_rechunk`.
    client
        A ``distributed.Client``: the p2p rechunk runs in its workers. Without one (only
        with ``method="tasks"``) dask's threaded scheduler runs it.
    progress
        Show dask's progress bar.
    """
    if plan.method == "p2p" and client is None:
        raise StoreError("rechunk: the p2p method needs a distributed cluster (client)")
    start = time.perf_counter()
    protected = {"the source cube": plan.source}
    lock, made = lock_store(plan.target, "cube", field="OUT",
                            what="another rechunk is writing this copy", protected=protected)
    try:
        if (plan.target / "zarr.json").exists():
            if not plan.overwrite:
                raise StoreError(f"{plan.target}: already exists; pass --overwrite to replace "
                                 "it")
            remove_store(plan.target, "cube", field="OUT", protected=protected,
                         keep=LOCK_FILES)
        _write(plan, client, progress)
        set_status(plan.target, "complete")
    finally:
        lock.release()
        if made:
            discard_unborn(plan.target)
    return time.perf_counter() - start


def _write(plan: RechunkPlan, client: Client | None, progress: bool) -> None:
    import dask

    write = build_rechunk(plan)
    if client is not None:
        future = client.compute(write)
        if progress:
            from distributed import progress as show_progress

            show_progress(future)
            print()
        future.result()
    else:
        with dask.config.set(scheduler="threads"):
            write.compute()
