"""STAC items -> the same scenes and granules the file readers use.

A static catalog (``catalog.json``) or a saved ItemCollection (the JSON a STAC API search
returns) is read with pystac. Items of a ``landsat-c2-l2``-style collection become
:class:`~lst_pipeline.io.landsat.Scene` objects (assets ``lwir11``, ``qa_pixel``, ``qa``,
scale and offset from ``raster:bands``), items of a ``modis-11A1-061``-style collection
become :class:`~lst_pipeline.io.modis.Granule` objects (one COG per layer). Reading then
goes through the same windowed reads, masks and odc-geo reprojection as local files, so
cloud and QC masks are applied on native pixels before any resampling.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, overload

from lst_pipeline.errors import InputError, MissingDependencyError
from lst_pipeline.io import landsat, modis

if TYPE_CHECKING:
    from lst_pipeline.config import StacSourceConfig


def load_items(config: StacSourceConfig) -> list[Any]:
    """All items of a static catalog or a saved ItemCollection, hrefs made absolute."""
    try:
        import pystac
    except ImportError as exc:
        raise MissingDependencyError("STAC input needs pystac: "
                                     "pip install 'lst_pipeline[stac]'") from exc
    source = config.catalog or config.items
    assert source is not None  # StacSourceConfig requires exactly one of catalog or items
    if not Path(source).is_file():
        raise InputError(f"{source}: STAC {'catalog' if config.catalog else 'items'} file "
                         "not found")
    try:
        if config.catalog is not None:
            catalog = pystac.Catalog.from_file(str(config.catalog))
            items = list(catalog.get_items(recursive=True))
        else:
            items = list(pystac.ItemCollection.from_file(str(config.items)))
    except (pystac.STACError, ValueError, KeyError, OSError) as exc:
        raise InputError(f"{source}: not a readable STAC file: {exc}") from exc
    for item in items:
        item.make_asset_hrefs_absolute()
    return items


@overload
def _asset(item: Any, *keys: str, required: Literal[True] = ...) -> str: ...


@overload
def _asset(item: Any, *keys: str, required: bool) -> str | None: ...


def _asset(item: Any, *keys: str, required: bool = True) -> str | None:
    for key in keys:
        if key in item.assets:
            return item.assets[key].get_absolute_href()
    if required:
        raise InputError(f"STAC item {item.id}: has none of the assets {', '.join(keys)}")
    return None


def _item_time(item: Any) -> dt.datetime:
    when = item.datetime or item.common_metadata.start_datetime
    if when is None:
        raise InputError(f"STAC item {item.id}: has no datetime")
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


def landsat_scene(item: Any) -> landsat.Scene:
    """A Landsat Collection 2 Level-2 scene from its STAC item.

    Raises
    ------
    InputError
        Collection 1 or Level-1 items, items without an ST (``lwir11``) asset.
    """
    where = f"STAC item {item.id}"
    landsat.check_product_id(item.id, where,
                             collection=item.properties.get("landsat:collection_number"))
    st_href = _asset(item, "lwir11", "ST_B10", "st_b10")
    scale, offset = landsat.ST_SCALE_K, landsat.ST_OFFSET_K
    bands = item.assets["lwir11" if "lwir11" in item.assets else next(
        k for k in ("ST_B10", "st_b10") if k in item.assets)].extra_fields.get("raster:bands")
    if bands:
        scale = float(bands[0].get("scale", scale))
        offset = float(bands[0].get("offset", offset))
    meta = landsat.SceneMetadata(
        mtl=Path(where), product_id=item.id,
        spacecraft=str(item.properties.get("platform", "")).upper().replace("-", "_"),
        acquired=_item_time(item), st_scale=scale, st_offset=offset,
        files={"st_b10": st_href, "qa_pixel": f"{item.id} qa_pixel asset",
               "st_qa": f"{item.id} qa asset"})
    return landsat.Scene(meta, st_href, _asset(item, "qa_pixel", "QA_PIXEL", required=False),
                         _asset(item, "qa", "ST_QA", required=False))


def modis_granule(item: Any, overpass: str = "day") -> modis.Granule:
    """A MOD11A1/MYD11A1 granule from its STAC item (one COG asset per layer)."""
    product = item.id.split(".")[0].upper()
    if product not in modis.PRODUCTS:
        raise InputError(f"STAC item {item.id}: product {product} is not supported; use "
                         "MOD11A1 or MYD11A1")
    parts = item.id.split(".")
    version = parts[3] if len(parts) > 3 else "061"
    names = modis.layer_names(overpass)
    found = {key: _asset(item, name, required=key != "view_time")
             for key, name in names.items()}
    layers = {k: v for k, v in found.items() if v is not None}
    return modis.Granule(layers["lst"], product, _item_time(item).date(), version, layers)


def split_items(items: list[Any], config: StacSourceConfig, overpass: str = "day"
                ) -> tuple[list[landsat.Scene], list[modis.Granule], list[str]]:
    """Sort items into Landsat scenes and MODIS granules; name the items ignored."""
    scenes, granules, ignored = [], [], []
    for item in items:
        if item.collection_id == config.landsat_collection:
            scenes.append(landsat_scene(item))
        elif item.collection_id == config.modis_collection:
            granules.append(modis_granule(item, overpass))
        else:
            ignored.append(f"STAC item {item.id}: collection {item.collection_id!r} is neither "
                           f"{config.landsat_collection!r} nor {config.modis_collection!r}")
    return scenes, granules, ignored
