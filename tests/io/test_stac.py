"""STAC input: a local static catalog and a saved ItemCollection, pointing at local files."""

import datetime as dt

import numpy as np
import pystac
import pytest
import xarray as xr

from conftest import ingest_config
from lst_pipeline.errors import InputError
from lst_pipeline.ingest import ingest
from lst_pipeline.io import landsat, stac
from lst_pipeline.io.stac import landsat_scene


def landsat_item(scene_dir):
    meta = landsat.find_scene(scene_dir).metadata
    item = pystac.Item(meta.product_id, None, None, meta.acquired,
                       {"platform": "landsat-8", "landsat:collection_number": "02"},
                       collection="landsat-c2-l2")
    item.add_asset("lwir11", pystac.Asset(str(scene_dir / meta.files["st_b10"]), extra_fields={
        "raster:bands": [{"scale": meta.st_scale, "offset": meta.st_offset, "nodata": 0}]}))
    item.add_asset("qa_pixel", pystac.Asset(str(scene_dir / meta.files["qa_pixel"])))
    item.add_asset("qa", pystac.Asset(str(scene_dir / meta.files["st_qa"])))
    return item


def modis_item(lst_tif):
    name = lst_tif.name  # MOD11A1.061_LST_Day_1km_doy2021001_aid0001.tif
    doy = name.split("_doy")[1][:7]
    day = dt.datetime.strptime(doy, "%Y%j").replace(tzinfo=dt.UTC)
    item = pystac.Item(f"MOD11A1.A{doy}.h30v12.061.2021000000000", None, None, day, {},
                       collection="modis-11A1-061")
    for layer in ("LST_Day_1km", "QC_Day", "Day_view_time"):
        item.add_asset(layer, pystac.Asset(str(lst_tif.with_name(
            name.replace("LST_Day_1km", layer)))))
    return item


@pytest.fixture(scope="module")
def catalog(real_format_region, tmp_path_factory):
    _, root = real_format_region
    items = [landsat_item(d) for d in sorted((root / "files" / "landsat").iterdir())]
    items += [modis_item(p) for p in sorted((root / "files" / "modis_tif").glob("*LST*.tif"))]
    out = tmp_path_factory.mktemp("stac")
    cat = pystac.Catalog("sim", "simulated region as STAC")
    for item in items:
        cat.add_item(item)
    cat.normalize_hrefs(str(out / "catalog"))
    cat.save(pystac.CatalogType.SELF_CONTAINED)
    pystac.ItemCollection(items).save_object(dest_href=str(out / "search.json"))
    return out


def test_stac_catalog_ingests_like_the_files(real_format_region, catalog, tmp_path):
    _, root = real_format_region
    by_stac = ingest_config(root, stack=str(tmp_path / "stac.zarr"),
                            stac={"catalog": str(catalog / "catalog" / "catalog.json")})
    by_files = ingest_config(root, stack=str(tmp_path / "files.zarr"),
                             landsat={"paths": [str(root / "files" / "landsat" / "*")]},
                             modis={"paths": [str(root / "files" / "modis_tif" / "*LST*")]})
    ingest(by_stac, progress=False)
    ingest(by_files, progress=False)
    a = xr.open_zarr(by_stac.inputs.stack, consolidated=False)
    b = xr.open_zarr(by_files.inputs.stack, consolidated=False)
    for name in ("landsat_lst", "landsat_qa_pixel", "modis_lst", "modis_valid_fraction"):
        np.testing.assert_array_equal(a[name].values, b[name].values, err_msg=name)
    np.testing.assert_array_equal(a.time_modis.values, b.time_modis.values)
    # a saved search result (ItemCollection) works the same way
    by_items = ingest_config(root, stack=str(tmp_path / "items.zarr"),
                             stac={"items": str(catalog / "search.json")})
    ingest(by_items, progress=False)
    c = xr.open_zarr(by_items.inputs.stack, consolidated=False)
    np.testing.assert_array_equal(c.landsat_lst.values, a.landsat_lst.values)


def test_stac_refuses_collection1_and_missing_assets(real_format_region):
    _, root = real_format_region
    scene = sorted((root / "files" / "landsat").iterdir())[0]
    item = landsat_item(scene)
    item.id = item.id.replace("_02_T1", "_01_T1")
    item.properties["landsat:collection_number"] = "01"
    with pytest.raises(InputError, match="Collection 1"):
        landsat_scene(item)
    item = landsat_item(scene)
    del item.assets["lwir11"]
    with pytest.raises(InputError, match="has none of the assets lwir11"):
        landsat_scene(item)


def test_missing_catalog_is_a_clear_error(tmp_path):
    from lst_pipeline.config import StacSourceConfig

    with pytest.raises(InputError, match="STAC catalog file not found"):
        stac.load_items(StacSourceConfig(catalog=tmp_path / "catalog.json"))
