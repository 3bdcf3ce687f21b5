"""Shared Zarr v3 helpers: create a store from a lazy template, write regions, grid attrs.

Stores are created by xarray from a lazy template (so the metadata is exactly what
``xr.open_zarr`` expects) and then filled region by region with plain zarr writes, which
is cheap, works from any Dask worker and never rewrites metadata.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from lst_pipeline.errors import InputError, StoreError

if TYPE_CHECKING:
    import xarray as xr

    from lst_pipeline.grid import TargetGrid

GRID_ATTR = "lst_pipeline:grid"
STATUS_ATTR = "lst_pipeline:status"
FINGERPRINT_ATTR = "lst_pipeline:fingerprint"


def grid_attrs(grid: TargetGrid) -> dict[str, Any]:
    """The grid as JSON-able attributes, enough to rebuild it exactly."""
    a = grid.fine.affine
    return {
        "crs_wkt": grid.fine.crs.to_wkt(),
        "transform": [a.a, a.b, a.c, a.d, a.e, a.f],
        "shape": list(grid.shape),
        "coarse_factor": grid.coarse_factor,
    }


def grid_from_attrs(attrs: dict[str, Any], source: Path | str) -> TargetGrid:
    """Rebuild the :class:`~lst_pipeline.grid.TargetGrid` recorded by :func:`grid_attrs`."""
    from affine import Affine
    from odc.geo.geobox import GeoBox

    from lst_pipeline.grid import TargetGrid

    try:
        g = attrs[GRID_ATTR]
        fine = GeoBox(tuple(g["shape"]), Affine(*g["transform"]), g["crs_wkt"])
        return TargetGrid(fine=fine, coarse_factor=int(g["coarse_factor"]))
    except (KeyError, TypeError) as exc:
        raise InputError(
            f"{source}: store has no lst_pipeline grid description ({exc}); "
            "was it written by lst_pipeline?"
        ) from exc


def spatial_coords(grid: TargetGrid, *, coarse: bool = False) -> dict[str, Any]:
    """Pixel-centre coordinates and ``spatial_ref`` of the fine (or coarse) grid.

    Coarse coordinates are named ``yc``/``xc`` so both grids can share one dataset.
    """
    from odc.geo.xr import xr_coords

    box = grid.coarse if coarse else grid.fine
    coords = dict(xr_coords(box, crs_coord_name="spatial_ref"))
    if "latitude" in coords:  # geographic grids: the same y/x dimension names
        coords["y"] = coords.pop("latitude").rename({"latitude": "y"})
        coords["x"] = coords.pop("longitude").rename({"longitude": "x"})
    if coarse:
        coords["yc"] = coords.pop("y").rename({"y": "yc"})
        coords["xc"] = coords.pop("x").rename({"x": "xc"})
    return coords


PRIVATE_GROUP = "_lst_pipeline"
#: Root attribute naming what an lst_pipeline store is: ``cube``, ``stack`` or ``truth``.
KIND_ATTR = "lst_pipeline:kind"
#: Human names of the store kinds, for messages.
KINDS = {"cube": "output cube", "stack": "input stack", "truth": "simulated truth store"}
#: Titles written by versions that had no :data:`KIND_ATTR` (their stores stay recognised).
_LEGACY_TITLES = {"lst_pipeline daily LST cube": "cube", "lst_pipeline input stack": "stack",
                  "lst_pipeline simulated truth": "truth"}
#: What :func:`remove_store` keeps when the process replacing a store holds its lock.
LOCK_FILES = (f"{PRIVATE_GROUP}/lock", f"{PRIVATE_GROUP}/zarr.json")
_GROUP_METADATA = '{"zarr_format": 3, "node_type": "group", "attributes": {}}'


def private_dir(store: Path | str) -> Path:
    """``<store>/_lst_pipeline``: our own files inside a store (records, locks, staging).

    It is made a Zarr group (its own ``zarr.json``), so Zarr and xarray pass over it quietly,
    even before the store's root metadata exists.
    """
    root = Path(store) / PRIVATE_GROUP
    if not (root / "zarr.json").exists():
        root.mkdir(parents=True, exist_ok=True)
        write_atomic(root / "zarr.json", _GROUP_METADATA)
    return root


def write_atomic(path: Path, text: str) -> None:
    """Replace ``path`` by ``text`` atomically (a reader sees the old or the new file)."""
    import os

    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def root_attrs(path: Path | str) -> dict[str, Any] | None:
    """The root attributes of a Zarr v3 store, read from its ``zarr.json`` (None: no store)."""
    import json

    meta = Path(path) / "zarr.json"
    try:
        data = json.loads(meta.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    attrs = data.get("attributes")
    return attrs if isinstance(attrs, dict) else {}


def store_kind(path: Path | str) -> str | None:
    """``cube``, ``stack`` or ``truth`` for a store written by lst_pipeline, else None."""
    attrs = root_attrs(path)
    if attrs is None:
        return None
    kind = attrs.get(KIND_ATTR)
    if kind in KINDS:
        return kind
    title = str(attrs.get("title", ""))
    return next((k for t, k in _LEGACY_TITLES.items() if title.startswith(t)), None)


def _a(noun: str) -> str:
    return f"{'an' if noun[0] in 'aeiou' else 'a'} {noun}"


def _protected_clash(path: Path, protected: dict[str, Path | str]) -> str | None:
    target = path.resolve()
    for name, other in protected.items():
        other = Path(other).resolve()
        if target == other:
            return f"it is {name} ({other})"
        if target in other.parents:
            return f"it contains {name} ({other})"
        if other in target.parents:
            return f"it lies inside {name} ({other})"
    return None


def _is_unborn(path: Path) -> bool:
    """An empty directory, or one holding only our private group (a store being created)."""
    entries = list(path.iterdir())
    return not entries or (len(entries) == 1 and entries[0].name == PRIVATE_GROUP
                           and (entries[0] / "zarr.json").is_file())


def _foreign_entries(path: Path) -> list[str]:
    """Entries of a store directory that are not part of a Zarr v3 store of ours."""
    foreign = []
    for entry in sorted(path.iterdir()):
        if entry.name == "zarr.json" and entry.is_file():
            continue
        if entry.is_dir() and not entry.is_symlink() and (entry / "zarr.json").is_file():
            continue  # an array or group of the store, or our private group
        foreign.append(entry.name)
    return foreign


def check_replaceable(path: Path | str, kind: str, *, field: str,
                      protected: dict[str, Path | str] | None = None,
                      source: str | None = None) -> bool:
    """Check that ``path`` may be (re)created as a store of ``kind``; True if it exists.

    A path may be written when it is absent, an empty directory, or a store that is
    provably one of ours of the expected kind: its ``zarr.json`` says so and it holds
    nothing but the store's own arrays and groups. It may never be, contain or lie inside a
    ``protected`` path (the run's input stack, a rechunk's source).

    Parameters
    ----------
    path
        The store to replace.
    kind
        ``cube``, ``stack`` or ``truth``.
    field
        Where the path comes from (``output.cube``), for the message.
    protected
        ``{description: path}`` that must never be touched.
    source
        For stacks: the ``source`` attribute the store must carry (``lst_pipeline.simulate``
        for ``simulate --overwrite``: an ingested stack is never replaced by a simulation).

    Returns
    -------
    bool
        Whether a store exists at ``path`` (False: absent, an empty directory, or one that
        holds only our private group, as while another run is creating the store).

    Raises
    ------
    StoreError
        Naming the path and why it is not ours to replace; nothing has been changed.
    """
    path = Path(path)
    clash = _protected_clash(path, protected or {})
    what = KINDS[kind]
    if clash:
        raise StoreError(f"{field}: {path} cannot be the {what}: {clash}; choose another path "
                         "(nothing was changed)")
    if path.is_symlink():
        raise StoreError(f"{field}: {path} is a symbolic link; give the real path of the "
                         f"{what} (nothing was changed)")
    if not path.exists():
        return False
    if not path.is_dir():
        raise StoreError(f"{field}: {path} is a file, not a Zarr store; choose another path "
                         "(nothing was changed)")
    if _is_unborn(path):
        return False
    found = store_kind(path)
    if found is None:
        raise StoreError(f"{field}: {path} exists and is not a store written by lst_pipeline; "
                         "it is never deleted or written into: choose another path (nothing "
                         "was changed)")
    if found != kind:
        raise StoreError(f"{field}: {path} is an lst_pipeline {KINDS[found]}, not {_a(what)}; "
                         "it is never replaced by one: choose another path (nothing was "
                         "changed)")
    if source is not None and (root_attrs(path) or {}).get("source") != source:
        raise StoreError(f"{field}: {path} is {_a(what)} written by "
                         f"{(root_attrs(path) or {}).get('source', 'another command')}, not by "
                         f"{source}; it is never replaced: choose another path (nothing was "
                         "changed)")
    foreign = _foreign_entries(path)
    if foreign:
        raise StoreError(f"{field}: {path} is {_a(what)} but also holds {', '.join(foreign[:3])}"
                         f"{' ...' if len(foreign) > 3 else ''}, which are not part of it; "
                         "refusing to delete them: move them out or choose another path "
                         "(nothing was changed)")
    return True


def remove_store(path: Path | str, kind: str, *, field: str,
                 protected: dict[str, Path | str] | None = None, source: str | None = None,
                 keep: tuple[str, ...] = ()) -> None:
    """Delete a store that :func:`check_replaceable` proves is ours (else nothing happens).

    Parameters
    ----------
    path, kind, field, protected, source
        As for :func:`check_replaceable`.
    keep
        Paths relative to the store that are kept (``_lst_pipeline/lock`` of the run doing
        the replacement).
    """
    import shutil

    path = Path(path)
    if not check_replaceable(path, kind, field=field, protected=protected, source=source):
        return
    kept = {path / k for k in keep}
    for entry in path.iterdir():
        if entry in kept:
            continue
        inner = [k for k in kept if entry in k.parents]
        if inner:  # a kept file inside this folder: empty the folder around it
            for sub in entry.iterdir():
                if sub not in kept:
                    shutil.rmtree(sub) if sub.is_dir() else sub.unlink()
        elif entry.is_dir():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def compressor() -> Any:
    """The codec used for every array: Blosc zstd with bit shuffle."""
    from zarr.codecs import BloscCodec

    return BloscCodec(cname="zstd", clevel=3, shuffle="bitshuffle")


def create_store(path: Path, template: xr.Dataset, encoding: dict[str, dict], *,
                 kind: str) -> None:
    """Write ``template``'s metadata and coordinates (not its lazy data) as a new Zarr v3 store.

    The path must be free: absent, an empty directory, or one holding only our private
    group (a run's lock); callers replace an old store with :func:`remove_store` first, so
    nothing that is not ours is ever deleted here.

    Parameters
    ----------
    path
        Store directory.
    template
        Dataset whose data variables are lazy dask arrays with the final chunking.
    encoding
        Per-variable encoding (dtype, chunks, fill value, CF packing).
    kind
        ``cube``, ``stack`` or ``truth``: recorded as :data:`KIND_ATTR`.
    """
    path = Path(path)
    if (path / "zarr.json").exists():
        raise StoreError(f"{path}: store already exists; pass --overwrite to replace it")
    for enc in encoding.values():
        enc.setdefault("compressors", [compressor()])
    template = template.assign_attrs({KIND_ATTR: kind})
    template.to_zarr(path, mode="a", compute=False, zarr_format=3, consolidated=False,
                     encoding=encoding)


def open_group(path: Path | str, mode: str = "r") -> Any:
    """Open a Zarr group, with a clear error when it is missing."""
    import zarr

    try:
        return zarr.open_group(str(path), mode=mode, zarr_format=3)
    except (FileNotFoundError, zarr.errors.GroupNotFoundError) as exc:
        raise InputError(f"{path}: no Zarr store here ({exc.__class__.__name__})") from exc


class StoreLock:
    """A writer lock inside a store: ``<store>/_lst_pipeline/lock``, created exclusively.

    The lock file is written in full under a temporary name and then hard-linked into place,
    which fails if a lock exists: two processes that start together cannot both hold it, and
    a lock file is never seen half-written. A lock whose process is dead (same host) is stale
    and taken over.

    Parameters
    ----------
    store
        The store directory (created with the private group if absent).
    what
        What the holder is doing, for the message (``another run is writing this cube``).
    """

    def __init__(self, store: Path | str,
                 what: str = "another command is writing this store") -> None:
        self.store = Path(store)
        self.path = self.store / PRIVATE_GROUP / "lock"
        self.what = what

    def acquire(self) -> None:
        """Take the lock, or refuse if a live process holds it.

        Raises
        ------
        StoreError
            Naming the process that holds the lock, or the unreadable lock file.
        """
        import json
        import os
        import socket
        import time

        private_dir(self.store)
        me = {"pid": os.getpid(), "host": socket.gethostname(),
              "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        tmp = self.path.with_name(f".lock.{os.getpid()}.tmp")
        for _ in range(2):
            tmp.write_text(json.dumps(me))
            try:
                _link_exclusive(tmp, self.path)
            except FileExistsError:
                holder = self.holder()
                if holder is None:
                    raise StoreError(
                        f"{self.path}: lock file is empty or unreadable (lst_pipeline never "
                        "leaves one so); if no lst-pipeline command is using "
                        f"{self.store}, delete this file and start again") from None
                if holder.get("host") == me["host"] and not _pid_alive(holder.get("pid")):
                    self.path.unlink(missing_ok=True)  # stale: its process is dead
                    continue
                raise StoreError(
                    f"{self.store}: {self.what} (pid {holder.get('pid')} "
                    f"on {holder.get('host')}, since {holder.get('started')}); wait for it, or "
                    f"if it died on another host delete {self.path}") from None
            finally:
                tmp.unlink(missing_ok=True)
            return
        raise StoreError(f"{self.store}: could not take the lock {self.path}")

    def release(self) -> None:
        """Give the lock up (only if this process holds it)."""
        import os

        holder = self.holder()
        if holder is not None and holder.get("pid") == os.getpid():
            self.path.unlink(missing_ok=True)

    def holder(self) -> dict | None:
        """The holder's ``pid``, ``host`` and ``started``; None if unreadable or absent."""
        import json

        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) and "pid" in data else None

    def __enter__(self) -> StoreLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _link_exclusive(source: Path, target: Path) -> None:
    """Create ``target`` with ``source``'s content, failing if it exists (atomic)."""
    import os

    try:
        os.link(source, target)
    except FileExistsError:
        raise
    except OSError:  # no hard links on this file system: exclusive create instead
        fd = os.open(target, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        with os.fdopen(fd, "w") as fh:
            fh.write(source.read_text())


def _pid_alive(pid: object) -> bool:
    import os

    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def lock_store(path: Path | str, kind: str, *, field: str, what: str,
               protected: dict[str, Path | str] | None = None) -> tuple[StoreLock, bool]:
    """Check that ``path`` is ours (or free), create its directory if absent, and lock it.

    The lock is taken before any store metadata is written, so two commands started
    together cannot both create or resume the store. Nothing is created in a path that
    :func:`check_replaceable` refuses.

    Returns
    -------
    (lock, created)
        The held lock, and whether this call created the directory (the caller removes it
        with :func:`discard_unborn` if it gives up before writing the store).
    """
    path = Path(path)
    check_replaceable(path, kind, field=field, protected=protected)
    created = False
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            path.mkdir()
            created = True
        except FileExistsError:  # another command just created it: the lock decides
            pass
    lock = StoreLock(path, what)
    try:
        lock.acquire()
        check_replaceable(path, kind, field=field, protected=protected)  # again, locked
    except BaseException:
        lock.release()
        if created:
            discard_unborn(path)
        raise
    return lock, created


def discard_unborn(path: Path | str) -> None:
    """Remove a store directory that never got its metadata (only our private group in it).

    Anything else in it is left alone; a lock of another live process keeps it too.
    """
    import shutil

    path = Path(path)
    if not path.is_dir() or (path / "zarr.json").exists():
        return
    if not _is_unborn(path):
        return
    holder = StoreLock(path).holder()
    if holder is not None and _pid_alive(holder.get("pid")):
        return
    shutil.rmtree(path)


def read_json(store: Path | str, name: str) -> Any:
    """A JSON document kept in the store's private group (None if absent)."""
    import json

    path = Path(store) / PRIVATE_GROUP / name
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except ValueError as exc:
        raise InputError(f"{path}: unreadable record ({exc}); the store is damaged") from exc


def write_json(store: Path | str, name: str, data: Any) -> None:
    """Replace a JSON document in the store's private group atomically."""
    import json

    write_atomic(private_dir(store) / name, json.dumps(data, indent=1, sort_keys=True))


def delete_json(store: Path | str, name: str) -> None:
    """Remove a JSON document from the store's private group (no error if absent)."""
    (Path(store) / PRIVATE_GROUP / name).unlink(missing_ok=True)


def content_digest(values: Any) -> str:
    """A short digest of an array's bytes: what resume compares to see input changes."""
    import hashlib

    import numpy as np

    return hashlib.blake2b(np.ascontiguousarray(values).tobytes(), digest_size=12).hexdigest()
