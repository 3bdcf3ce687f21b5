"""How many bytes a selection of a cube reads: a Zarr store wrapper that counts.

``measure_read(path, select)`` opens the cube through :class:`CountingStore`, loads
``select(cube)`` and reports the bytes fetched from chunk files and from metadata. It is how
the benchmarks and the notebook show that a point's series or a day's map reads only the
chunks it touches, and how the production and rechunked layouts compare.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zarr.storage import LocalStore, WrapperStore

from lst_pipeline.errors import InputError

if TYPE_CHECKING:
    import xarray as xr


class CountingStore(WrapperStore):
    """Wraps a Zarr store and counts the bytes returned per key (thread-safe)."""

    def __init__(self, store: Any) -> None:
        super().__init__(store)
        self._lock = threading.Lock()
        self.bytes_by_key: dict[str, int] = {}

    def _count(self, key: str, buf: Any) -> None:
        if buf is not None:
            with self._lock:
                self.bytes_by_key[key] = self.bytes_by_key.get(key, 0) + len(buf)

    async def get(self, key: str, prototype: Any, byte_range: Any = None) -> Any:
        """Read a key, counting its bytes."""
        buf = await self._store.get(key, prototype, byte_range)
        self._count(key, buf)
        return buf

    async def get_partial_values(self, prototype: Any,
                                 key_ranges: Iterable[tuple[str, Any]]) -> list[Any]:
        """Read byte ranges, counting their bytes."""
        key_ranges = list(key_ranges)
        bufs = await self._store.get_partial_values(prototype, key_ranges)
        for (key, _), buf in zip(key_ranges, bufs):
            self._count(key, buf)
        return bufs

    def reset(self) -> None:
        """Forget the bytes counted so far."""
        with self._lock:
            self.bytes_by_key.clear()


def _is_chunk(key: str) -> bool:
    return "/c/" in key or key.startswith("c/")


@dataclass(frozen=True)
class ReadCost:
    """Bytes read by one selection."""

    chunk_bytes: int
    open_bytes: int
    chunks: int
    by_variable: dict[str, int] = field(default_factory=dict)

    @property
    def total_bytes(self) -> int:
        """Chunk bytes plus metadata bytes read."""
        return self.chunk_bytes + self.open_bytes


def stored_bytes(path: Path | str, variables: Iterable[str] | None = None) -> int:
    """Bytes of the chunk files of a store on disk (of ``variables``, or of all arrays)."""
    path = Path(path)
    names = list(variables) if variables is not None else [
        p.name for p in path.iterdir() if (p / "c").is_dir()]
    return sum(f.stat().st_size for name in names for f in (path / name / "c").rglob("*")
               if f.is_file())


def measure_read(path: Path | str, select: Callable[[xr.Dataset], Any]) -> ReadCost:
    """Open the cube at ``path`` through a counting store and load ``select(cube)``.

    Parameters
    ----------
    path
        A cube (or any Zarr v3 store readable by ``xr.open_zarr``).
    select
        Maps the lazily opened dataset to what should be loaded, e.g.
        ``lambda c: c["lst"].sel(x=..., y=..., method="nearest")``.

    Returns
    -------
    ReadCost
        Bytes fetched from chunk files by the selection (what it costs), bytes fetched by
        opening (metadata and coordinate arrays), and the number of chunk files touched.

    Notes
    -----
    The load runs on dask's synchronous scheduler in this process, so every read is counted
    even when a distributed client is active.
    """
    import dask
    import xarray as xr

    path = Path(path)
    if not (path / "zarr.json").is_file():
        raise InputError(f"{path}: no Zarr store here (no zarr.json)")
    store = CountingStore(LocalStore(str(path), read_only=True))
    with dask.config.set(scheduler="synchronous"):
        cube = xr.open_zarr(store, consolidated=False)
        opened = dict(store.bytes_by_key)
        store.reset()
        result = select(cube)
        if hasattr(result, "load"):
            result.load()
    read = store.bytes_by_key
    by_variable: dict[str, int] = {}
    for key, n in read.items():
        if _is_chunk(key):
            by_variable[key.split("/c/")[0]] = by_variable.get(key.split("/c/")[0], 0) + n
    opening = sum(opened.values()) + sum(n for k, n in read.items() if not _is_chunk(k))
    return ReadCost(chunk_bytes=sum(by_variable.values()), open_bytes=opening,
                    chunks=sum(1 for k in read if _is_chunk(k)), by_variable=by_variable)
