"""Shared Zarr v3 helpers: create a store from a lazy template, write regions, grid attrs.

Stores are created by xarray from a lazy template (so the metadata is exactly what
``xr.open_zarr`` expects) and then filled region by region with plain zarr writes, which
is cheap, works from any Dask worker and never rewrites metadata.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lst_pipeline.config.locations import StorePath, as_store_path
from lst_pipeline.errors import InputError, StoreError
from lst_pipeline.io.location import ensure_dir, write_atomic, zarr_store

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


def grid_from_attrs(attrs: dict[str, Any], source: StorePath | str) -> TargetGrid:
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
_GROUP_METADATA = '{"zarr_format": 3, "node_type": "group", "attributes": {}}'


def private_dir(store: StorePath | str) -> StorePath:
    """``<store>/_lst_pipeline``: our own records inside a store (records, locks, staging).

    It is made a Zarr group (its own ``zarr.json``), so Zarr and xarray pass over it quietly,
    even before the store's root metadata exists.
    """
    root = as_store_path(store) / PRIVATE_GROUP
    if not (root / "zarr.json").exists():
        ensure_dir(root)
        write_atomic(root / "zarr.json", _GROUP_METADATA)
    return root


def root_attrs(path: StorePath | str) -> dict[str, Any] | None:
    """The root attributes of a Zarr v3 store, read from its ``zarr.json`` (None: no store)."""
    import json

    meta = as_store_path(path) / "zarr.json"
    try:
        data = json.loads(meta.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    attrs = data.get("attributes")
    return attrs if isinstance(attrs, dict) else {}


def store_status(path: StorePath | str) -> str | None:
    """A store's ``lst_pipeline:status`` (``writing`` or ``complete``); None if no store."""
    attrs = root_attrs(path)
    return None if attrs is None else attrs.get(STATUS_ATTR)


def compressor() -> Any:
    """The codec used for every array: Blosc zstd with bit shuffle."""
    from zarr.codecs import BloscCodec

    return BloscCodec(cname="zstd", clevel=3, shuffle="bitshuffle")


def create_store(path: StorePath, template: xr.Dataset, encoding: dict[str, dict], *,
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
    path = as_store_path(path)
    if (path / "zarr.json").exists():
        raise StoreError(f"{path}: store already exists; pass --overwrite to replace it")
    for enc in encoding.values():
        enc.setdefault("compressors", [compressor()])
    template = template.assign_attrs({KIND_ATTR: kind})
    template.to_zarr(zarr_store(path), mode="a", compute=False, zarr_format=3, consolidated=False,
                     encoding=encoding)


def open_group(path: StorePath | str, mode: str = "r") -> Any:
    """Open a Zarr group, with a clear error when it is missing."""
    import zarr

    store = zarr_store(as_store_path(path), read_only=mode == "r")
    try:  # live metadata always: a consolidated copy describes the store when it was complete
        return zarr.open_group(store, mode=mode, zarr_format=3, use_consolidated=False)
    except (FileNotFoundError, zarr.errors.GroupNotFoundError) as exc:
        raise InputError(f"{path}: no Zarr store here ({exc.__class__.__name__})") from exc


def set_status(path: StorePath | str, status: str, group: Any = None) -> None:
    """Set a store's ``lst_pipeline:status``; consolidate its metadata when ``complete``.

    A complete store gets Zarr's consolidated metadata, so ``xr.open_zarr(path)`` reads one
    document and warns of nothing. Any other status rewrites the root document without it:
    arrays about to change are never described by a stale copy. This package itself always
    reads live metadata (:func:`open_group`, ``consolidated=False``).
    """
    import warnings

    import zarr

    (group if group is not None else open_group(path, mode="r+")).attrs[STATUS_ATTR] = status
    if status == "complete":
        with warnings.catch_warnings():  # "not part of the Zarr v3 specification" (yet)
            warnings.simplefilter("ignore", UserWarning)
            zarr.consolidate_metadata(zarr_store(as_store_path(path)), zarr_format=3)


def read_json(store: StorePath | str, name: str) -> Any:
    """A JSON document kept in the store's private group (None if absent)."""
    import json

    path = as_store_path(store) / PRIVATE_GROUP / name
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except ValueError as exc:
        raise InputError(f"{path}: unreadable record ({exc}); the store is damaged") from exc


def write_json(store: StorePath | str, name: str, data: Any) -> None:
    """Replace a JSON document in the store's private group atomically."""
    import json

    write_atomic(private_dir(store) / name, json.dumps(data, indent=1, sort_keys=True))


def delete_json(store: StorePath | str, name: str) -> None:
    """Remove a JSON document from the store's private group (no error if absent)."""
    (as_store_path(store) / PRIVATE_GROUP / name).unlink(missing_ok=True)


def content_digest(values: Any) -> str:
    """A short digest of an array's bytes: what resume compares to see input changes."""
    import hashlib

    import numpy as np

    return hashlib.blake2b(np.ascontiguousarray(values).tobytes(), digest_size=12).hexdigest()
