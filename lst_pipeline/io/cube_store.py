"""The records a run keeps inside its cube: status, fingerprint, completion, lock, logs.

``<cube>/_lst_pipeline/`` is a Zarr group (so Zarr and xarray ignore it quietly) holding
``done/<it>-<iy>-<ix>``: one empty file per output chunk, written *after* the chunk's
region write, so "chunk recorded" means "chunk completely written" (a chunk file that
merely exists proves nothing: Zarr skips all-fill chunks); ``inputs.json``: the content
digest of every input-stack date the cube was computed from (what a resume compares);
``lock``: the process writing the cube; ``logs/``: tracebacks of failed tasks. The root
attributes hold the status, the fingerprint and the planned chunks.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lst_pipeline.config.locations import StorePath, as_store_path, is_remote
from lst_pipeline.io.location import ensure_dir
from lst_pipeline.io.lock import StoreLock
from lst_pipeline.io.ownership import store_kind
from lst_pipeline.io.zarr_store import (
    FINGERPRINT_ATTR,
    PRIVATE_GROUP,
    STATUS_ATTR,
    private_dir,
    read_json,
    root_attrs,
    set_status,
    write_json,
)

#: Root attribute of a cube: the chunks its run was planned with.
CHUNKS_ATTR = "lst_pipeline:chunks"
#: The arrays whose chunks a run writes.
ARRAYS = ("lst", "qa", "reference_date")


class CubeStore:
    """One cube's records and lock (the cube itself: :mod:`lst_pipeline.io.cube`)."""

    INPUTS = "inputs.json"

    def __init__(self, cube: StorePath | str) -> None:
        self.cube = as_store_path(cube)
        self.root = self.cube / PRIVATE_GROUP
        self.done_dir = self.root / "done"
        self.lock = StoreLock(self.cube, "another run is writing this cube")
        self.lock_path = self.lock.path

    @property
    def exists(self) -> bool:
        """Whether the cube's metadata exists (it may still be being written)."""
        return (self.cube / "zarr.json").is_file()

    @property
    def is_cube(self) -> bool:
        """Whether the path holds a cube of ours."""
        return store_kind(self.cube) == "cube"

    @property
    def attrs(self) -> dict[str, Any]:
        """The cube's root attributes (empty when there is no cube)."""
        return root_attrs(self.cube) or {}

    @property
    def status(self) -> str | None:
        """``writing`` or ``complete`` (None: no cube)."""
        return self.attrs.get(STATUS_ATTR)

    def set_status(self, status: str) -> None:
        """Record the cube as ``writing`` or ``complete``."""
        set_status(self.cube, status)

    @property
    def fingerprint(self) -> str | None:
        """The fingerprint of the run that made the cube."""
        return self.attrs.get(FINGERPRINT_ATTR)

    @property
    def planned_chunks(self) -> tuple[int, int, int] | None:
        """The chunks the cube's run was planned with (None if unknown)."""
        chunks = self.attrs.get(CHUNKS_ATTR) if self.is_cube else None
        try:
            if not chunks or len(chunks) != 3:
                return None
            ct, cy, cx = (int(c) for c in chunks)
        except (TypeError, ValueError):
            return None
        return ct, cy, cx

    def ensure(self) -> None:
        """Create the record group (idempotent)."""
        private_dir(self.cube)
        ensure_dir(self.done_dir)

    def mark_done(self, index: tuple[int, int, int]) -> None:
        """Record a chunk as completely written."""
        (self.done_dir / "-".join(map(str, index))).write_bytes(b"")

    def done(self) -> set[tuple[int, int, int]]:
        """The chunks recorded as completely written."""
        if not self.done_dir.is_dir():
            return set()
        return {_chunk_index(p.name) for p in self.done_dir.iterdir()}

    def forget(self, indices: set[tuple[int, int, int]]) -> None:
        """Drop the completion records of chunks that must be computed again."""
        for index in indices:
            (self.done_dir / "-".join(map(str, index))).unlink(missing_ok=True)

    def inputs(self) -> dict | None:
        """The input digests recorded by :meth:`set_inputs` (None: none recorded)."""
        return read_json(self.cube, self.INPUTS)

    def set_inputs(self, content: dict | None) -> None:
        """Record the digests of the input-stack dates the cube is computed from."""
        write_json(self.cube, self.INPUTS, content)

    def write_log(self, name: str, text: str) -> str:
        """Keep ``text`` as ``_lst_pipeline/logs/<name>-<time>.log``; returns where it went.

        If the cube cannot take it (a full disk), the log goes to the temporary directory.
        """
        import tempfile
        import time

        stamp = time.strftime("%Y%m%d-%H%M%S")
        for folder in (self.root / "logs", Path(tempfile.gettempdir())):
            path = folder / f"{name}-{stamp}.log"
            try:
                ensure_dir(folder)
                path.write_text(text)
                return str(path)
            except Exception:  # a full disk, a refused PUT: try the next place
                continue
        return "(no log: neither the cube nor the temporary directory can be written)"

    def acquire_lock(self) -> None:
        """Take the writer lock, or refuse if a live run holds it; a dead run's lock is stale.

        Raises
        ------
        StoreError
            Naming the process that holds the lock.
        """
        self.lock.acquire()

    def release_lock(self) -> None:
        """Release the writer lock taken by this run."""
        self.lock.release()

    def sweep_partial_writes(self) -> int:
        """See :func:`remove_partial_writes`."""
        return remove_partial_writes(self.cube)


#: The name the records had before the cube store was a class of its own.
RunRecord = CubeStore


def _chunk_index(name: str) -> tuple[int, int, int]:
    """The chunk index ``(it, iy, ix)`` of a completion record named ``it-iy-ix``."""
    it, iy, ix = (int(v) for v in name.split("-"))
    return it, iy, ix


def remove_partial_writes(path: StorePath | str) -> int:
    """Delete the temporary files of chunk writes that never finished; returns how many.

    Zarr writes a chunk to ``<key>.<uuid>.partial`` and renames it into place, so a worker
    killed in the middle of a write leaves such a file behind (never a damaged chunk). Run
    once every chunk is recorded, the sweep leaves exactly the chunks of an uninterrupted
    run. Object stores write each chunk in one atomic PUT: there is nothing to sweep.
    """
    import os

    if is_remote(as_store_path(path)):
        return 0
    removed = 0
    stack = [os.path.join(str(path), name) for name in ARRAYS]
    while stack:
        folder = stack.pop()
        try:
            entries = list(os.scandir(folder))
        except FileNotFoundError:
            continue
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                stack.append(entry.path)
            elif entry.name.endswith(".partial"):
                os.unlink(entry.path)
                removed += 1
    return removed


