import dataclasses
import datetime as dt
from pathlib import Path

import pytest
import yaml

from conftest import config_dict
from lst_pipeline.config import StarfmParams, bundled_pipeline, load_pipeline, replace_paths
from lst_pipeline.config.locations import is_remote
from lst_pipeline.errors import ConfigError


def test_bundled_demo_parses_to_typed_frozen_config():
    config = load_pipeline(bundled_pipeline("demo"))
    assert config.grid.coarse_factor == 32
    assert config.dates.start == dt.date(2021, 1, 1)
    assert config.dates.n_days == 365
    assert isinstance(config.inputs.stack, Path)
    assert config.fusion.method == "dlstfm"
    assert config.fusion.two_references
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.name = "other"


def test_yaml_file_round_trip(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(config_dict(tmp_path)))
    config = load_pipeline(path)
    assert config.chunks.y == 64
    assert config.output.cube == tmp_path / "cube.zarr"


@pytest.mark.parametrize(
    ("section", "values", "match"),
    [
        ("grid", {"coarse_factor": 15.5}, r"grid\.coarse_factor: expected an integer"),
        ("grid", {"colour": "blue"}, r"grid\.colour: unknown field"),
        ("grid", {"resolution": "thirty"}, r"grid\.resolution: expected a number"),
        ("grid", {"bounds": [0, 0, 100]}, r"grid\.bounds: expected a list of 4"),
        ("grid", {"coarse_factor": 7, "snap": "exact"},
         r"grid\.bounds: width .* not a whole number"),
        ("grid", {"snap": "inward"}, r"grid\.snap: 'inward' is not one of"),
        ("grid", {"bounds_crs": "EPSG:0"}, r"grid\.bounds_crs: 'EPSG:0' is not a valid CRS"),
        ("dates", {"end": "2020-12-31"}, r"dates\.end: 2020-12-31 is before"),
        ("dates", {"start": "1st of May"}, r"dates\.start: expected a date"),
        ("chunks", {"time": 0}, r"chunks\.time: must be >= 1"),
        ("fusion", {"method": "magic"}, r"fusion\.method: 'magic' is not one of"),
        ("fusion", {"min_clear_fraction": 1.5}, r"fusion\.min_clear_fraction: must be between"),
        ("fusion", {"modis_registration": "yes"}, r"fusion\.modis_registration: 'yes' is not one"),
        ("output", {"dtype": "uint8"}, r"output\.dtype: 'uint8' is not one of"),
        ("simulation", {"landsat_revisit_days": 10}, r"simulation\.landsat_revisit_days"),
        ("simulation", {"modis_cloud_fraction": 1.0}, r"simulation\.modis_cloud_fraction"),
    ],
)
def test_bad_values_name_the_field(tmp_path, section, values, match):
    with pytest.raises(ConfigError, match=match):
        load_pipeline(config_dict(tmp_path, **{section: values}))


def test_a_bare_off_in_yaml_is_the_word_off(tmp_path):
    import yaml

    text = yaml.safe_dump(config_dict(tmp_path)).replace(
        "fusion:\n", "fusion:\n  overpass_correction: off\n  modis_registration: off\n", 1)
    path = tmp_path / "pipeline.yaml"
    path.write_text(text)
    fusion = load_pipeline(path).fusion  # safe_load reads both as False
    assert (fusion.overpass_correction, fusion.modis_registration) == ("off", "off")
    with pytest.raises(ConfigError, match=r"fusion\.modis_registration: True is not one of"):
        load_pipeline(config_dict(tmp_path, fusion={"modis_registration": True}))


def test_missing_and_unknown_top_level_fields(tmp_path):
    data = config_dict(tmp_path)
    del data["grid"]
    with pytest.raises(ConfigError, match="grid: required field is missing"):
        load_pipeline(data)
    with pytest.raises(ConfigError, match="extra: unknown field"):
        load_pipeline({**config_dict(tmp_path), "extra": 1})


def test_file_errors_name_the_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_pipeline(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("grid: [unclosed")
    with pytest.raises(ConfigError, match=r"bad\.yaml: not valid YAML"):
        load_pipeline(bad)
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text(yaml.safe_dump(config_dict(tmp_path, grid={"coarse_factor": 2.5})))
    with pytest.raises(ConfigError, match=r"wrong\.yaml: grid\.coarse_factor"):
        load_pipeline(wrong)


def test_yaml_is_loaded_safely(tmp_path):
    evil = tmp_path / "evil.yaml"
    evil.write_text("name: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_pipeline(evil)


def test_replace_paths_moves_relative_stores_under_workdir(tmp_path):
    config = load_pipeline(bundled_pipeline("demo"))
    moved = replace_paths(config, tmp_path)
    assert moved.inputs.stack == tmp_path / "inputs.zarr"
    assert moved.output.cube == tmp_path / "cube.zarr"
    assert moved.simulation.truth == tmp_path / "truth.zarr"


def test_unknown_bundled_pipeline():
    with pytest.raises(ConfigError, match="no bundled pipeline named 'nope'"):
        bundled_pipeline("nope")


def test_baseline_method_options_are_validated(tmp_path):
    ok = load_pipeline(config_dict(tmp_path, fusion={"method": "starfm",
                                                     "starfm": {"window": 21, "pairs": 2}}))
    assert ok.fusion.starfm.window == 21
    assert dict(ok.fusion.method_params())["pairs"] == 2
    ensemble = load_pipeline(config_dict(tmp_path, fusion={
        "method": "ensemble", "ensemble": {"members": ["starfm", "reference_change"],
                                           "weights": [0.25, 0.75]}}))
    assert ensemble.fusion.method_params() == (
        ("members", (("starfm", tuple(sorted(dataclasses.asdict(StarfmParams()).items()))),
                     ("reference_change", ()))),
        ("weights", (0.25, 0.75)))
    cases = [
        ({"method": "starfm", "starfm": {"window": 20}},
         r"fusion\.starfm\.window: must be an odd number"),
        ({"method": "starfm", "starfm": {"modis_uncertainty_k": 0}},
         r"fusion\.starfm\.modis_uncertainty_k: must be > 0"),
        ({"method": "starfm", "starfm": {"pairs": 3}}, r"fusion\.starfm\.pairs: 3 is not one of"),
        ({"method": "ubestarfm", "two_references": False},
         r"fusion\.two_references: method ubestarfm predicts from a reference before"),
        ({"method": "ubestarfm", "ubestarfm": {"conversion": "fit"}},
         r"fusion\.ubestarfm\.conversion"),
        ({"method": "fsdaf"}, r"fusion\.method: 'fsdaf' is not one of"),
        ({"method": "ensemble", "ensemble": {"members": ["dlstfm"]}},
         r"fusion\.ensemble\.members: must name at least two different methods"),
        ({"method": "ensemble", "ensemble": {"members": ["dlstfm", "ubestarfm"]}},
         r"fusion\.ensemble\.members: 'ubestarfm' is not a one-reference fusion method"),
        ({"method": "ensemble", "ensemble": {"members": ["dlstfm", "fsdaf"]}},
         r"fusion\.ensemble\.members: 'fsdaf' is not"),
        ({"method": "ensemble", "ensemble": {"weights": [0.5, 0.5]}},
         r"fusion\.ensemble\.weights: needs one weight per member \(3\), got 2"),
        ({"method": "ensemble", "ensemble": {"weights": [0.5, 0.5, 0.5]}},
         r"fusion\.ensemble\.weights: must be >= 0 and sum to 1"),
        ({"method": "ensemble", "starfm": {"pairs": 2}},
         r"fusion\.starfm\.pairs: an ensemble's members predict from one reference"),
    ]
    for fusion, message in cases:
        with pytest.raises(ConfigError, match=message):
            load_pipeline(config_dict(tmp_path, fusion=fusion))


@pytest.mark.parametrize("url", ["s3://bucket/inputs.zarr", "memory://region/inputs.zarr"])
def test_store_urls_are_object_store_locations_not_local_directories(tmp_path, url, monkeypatch):
    """`s3://b/x` taken as a file name would write ./s3:/b/x and reach no bucket."""
    monkeypatch.chdir(tmp_path)
    config = load_pipeline(config_dict(tmp_path, inputs={"stack": url}))
    assert is_remote(config.inputs.stack) and str(config.inputs.stack) == url
    assert not is_remote(config.output.cube)
    assert list(tmp_path.iterdir()) == []


def test_storage_options_reach_the_stores_and_are_never_printed(tmp_path):
    config = load_pipeline(config_dict(
        tmp_path, inputs={"stack": "s3://bucket/in.zarr"}, output={"cube": "s3://bucket/out.zarr"},
        storage_options={"key": "AKIA-NOT-PRINTED", "secret": "s3cr3t-not-printed"}))
    assert config.inputs.stack.storage_options["secret"] == "s3cr3t-not-printed"
    assert config.output.cube.storage_options["key"] == "AKIA-NOT-PRINTED"
    assert "not-printed" not in repr(config) and "not-printed" not in str(config.inputs.stack)


@pytest.mark.parametrize("url", ["https://example.org/x.zarr", "ftp://host/x.zarr",
                                 "s3://bucket-only"])
def test_store_urls_that_cannot_hold_a_store_are_refused(tmp_path, url, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=r"^inputs\.stack: .*(cannot be at|names a bucket)"):
        load_pipeline(config_dict(tmp_path, inputs={"stack": url}))
    with pytest.raises(ConfigError, match=r"^output\.cube: "):
        load_pipeline(config_dict(tmp_path, output={"cube": url}))
    assert list(tmp_path.iterdir()) == []


def test_stores_at_urls_must_be_apart(tmp_path):
    with pytest.raises(ConfigError, match=r"output\.cube: .* lies inside inputs\.stack"):
        load_pipeline(config_dict(tmp_path, inputs={"stack": "s3://bucket/in.zarr"},
                                  output={"cube": "s3://bucket/in.zarr/cube.zarr"}))


def test_file_urls_are_local_paths(tmp_path):
    config = load_pipeline(config_dict(tmp_path, inputs={"stack": f"file://{tmp_path}/in%20put.zarr"}))
    assert config.inputs.stack == tmp_path / "in put.zarr"
