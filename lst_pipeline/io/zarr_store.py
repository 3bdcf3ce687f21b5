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


def private_dir(store: Path | str) -> Path:
    """``<store>/_lst_pipeline``: our own files inside a store (records, locks, staging).

    It is made a Zarr group, so Zarr and xarray pass over it quietly.
    """
    root = Path(store) / PRIVATE_GROUP
    if not (root / "zarr.json").exists():
        open_group(store, mode="r+").require_group(PRIVATE_GROUP)
    return root


def compressor() -> Any:
    """The codec used for every array: Blosc zstd with bit shuffle."""
    from zarr.codecs import BloscCodec

    return BloscCodec(cname="zstd", clevel=3, shuffle="bitshuffle")


def create_store(path: Path, template: xr.Dataset, encoding: dict[str, dict],
                 *, overwrite: bool) -> None:
    """Write ``template``'s metadata and coordinates (not its lazy data) as a Zarr v3 store.

    Parameters
    ----------
    path
        Store directory.
    template
        Dataset whose data variables are lazy dask arrays with the final chunking.
    encoding
        Per-variable encoding (dtype, chunks, fill value, CF packing).
    overwrite
        Replace an existing store; otherwise an existing store is an error.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise StoreError(f"{path}: store already exists; pass --overwrite to replace it")
    for enc in encoding.values():
        enc.setdefault("compressors", [compressor()])
    template.to_zarr(path, mode="w", compute=False, zarr_format=3, consolidated=False,
                     encoding=encoding)


def open_group(path: Path | str, mode: str = "r") -> Any:
    """Open a Zarr group, with a clear error when it is missing."""
    import zarr

    try:
        return zarr.open_group(str(path), mode=mode, zarr_format=3)
    except (FileNotFoundError, zarr.errors.GroupNotFoundError) as exc:
        raise InputError(f"{path}: no Zarr store here ({exc.__class__.__name__})") from exc
