"""The command line, driven for real with tiny configs (torchgeo-style end-to-end tests)."""

import subprocess
import sys

import pytest
import yaml

from conftest import config_dict
from lst_pipeline.cli import build_parser, main
from lst_pipeline.io.cube import cube_status


@pytest.mark.parametrize("command", [[], ["simulate"], ["ingest"], ["inspect"], ["run"],
                                     ["demo"], ["train"], ["adapt"]])
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args([*command, "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "usage: lst-pipeline" in out
    if command and command != ["inspect"]:
        assert "--no-progress" in out


def test_import_is_cheap():
    code = ("import sys, lst_pipeline; heavy = {'torch', 'distributed', 'xarray', 'zarr', "
            "'matplotlib'} & set(sys.modules); print(sorted(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"


def test_bad_config_exits_2_naming_field(tmp_path, capsys):
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(config_dict(tmp_path, grid={"coarse_factor": 2.5})))
    assert main(["simulate", str(path)]) == 2
    err = capsys.readouterr().err
    assert "p.yaml: grid.coarse_factor: expected an integer, got 2.5" in err


def test_run_without_stack_says_how_to_make_one(tmp_path, capsys):
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(config_dict(tmp_path)))
    assert main(["run", str(path), "--no-progress"]) == 2
    assert "input stack not found; create it with `lst-pipeline simulate" in \
        capsys.readouterr().err
    assert not (tmp_path / "cube.zarr").exists()


@pytest.mark.slow
def test_simulate_run_and_demo_commands(tmp_path, capsys):
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(config_dict(tmp_path)))
    assert main(["simulate", str(path), "--no-progress"]) == 0
    assert main(["run", str(path), "--plan-only"]) == 0
    assert "12 chunks" in capsys.readouterr().out
    assert not (tmp_path / "cube.zarr").exists()
    assert main(["run", str(path), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "pixel-days/s" in out and "2 worker processes" in out
    assert cube_status(tmp_path / "cube.zarr") == "complete"
    assert main(["run", str(path), "--no-progress"]) == 0  # exists: resumed, nothing to do
    assert "12 of 12 chunks already done" in capsys.readouterr().out

    workdir = tmp_path / "demo"
    relative = config_dict(tmp_path, inputs={"stack": "in.zarr"}, output={"cube": "out.zarr"},
                           simulation={"truth": "truth.zarr"})
    path.write_text(yaml.safe_dump(relative))
    assert main(["demo", "--config", str(path), "--workdir", str(workdir),
                 "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "=== lst_pipeline demo summary ===" in out
    assert "vs truth fused" in out and "MAE" in out
    png = workdir / "quicklook.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the demo wrote only under its workdir
    assert sorted(p.name for p in workdir.iterdir()) == [
        "in.zarr", "out.zarr", "quicklook.png", "truth.zarr"]


def test_a_run_of_a_cube_another_run_writes_is_refused_before_planning(tmp_path, capsys):
    import os

    from lst_pipeline.io.lock import StoreLock

    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(config_dict(tmp_path)))
    assert main(["simulate", str(path), "--no-progress"]) == 0
    capsys.readouterr()
    holder = StoreLock(tmp_path / "cube.zarr", "another run is writing this cube")
    holder.acquire()  # a live writer: this test's process
    try:
        assert main(["run", str(path), "--no-progress"]) == 2
        out, err = capsys.readouterr()
        assert f"another run is writing this cube (pid {os.getpid()}" in err
        assert "plan:" not in out and "cluster:" not in out  # no planning, no cluster
        assert not (tmp_path / "cube.zarr" / "zarr.json").exists()  # nothing written
        assert main(["run", str(path), "--plan-only"]) == 0  # looking is still allowed
        assert "plan:" in capsys.readouterr().out
    finally:
        holder.release()
    assert main(["run", str(path), "--no-progress"]) == 0
    assert cube_status(tmp_path / "cube.zarr") == "complete"


def test_an_ingest_into_a_stack_another_ingest_writes_is_refused_before_planning(tmp_path,
                                                                                  capsys):
    import os

    from lst_pipeline.io.lock import StoreLock

    cfg, path = yanco_yaml(tmp_path)
    holder = StoreLock(cfg.inputs.stack, "another ingest is writing into this stack")
    holder.acquire()  # a live writer: this test's process
    try:
        assert main(["ingest", str(path), "--no-progress"]) == 2
        out, err = capsys.readouterr()
        assert f"another ingest is writing into this stack (pid {os.getpid()}" in err
        assert "ingest into" not in out  # refused before planning
        assert not (cfg.inputs.stack / "zarr.json").exists()
        assert main(["ingest", str(path), "--plan-only"]) == 0  # looking is still allowed
        assert "ingest into" in capsys.readouterr().out
    finally:
        holder.release()
    assert main(["ingest", str(path), "--no-progress"]) == 0
    assert (cfg.inputs.stack / "zarr.json").exists()


def yanco_yaml(tmp_path):
    """The Yanco series (pre-gridded GeoTIFFs) as a pipeline YAML: its config and path."""
    from test_ingest import yanco_config

    cfg = yanco_config(tmp_path)
    data = {"name": "yanco", "grid": {"crs": "EPSG:4326", "resolution": 0.001,
                                      "bounds": [146.0, -35.2, 146.4, -34.8],
                                      "coarse_factor": 10, "allow_geographic": True},
            "dates": {"start": "2016-02-05", "end": "2016-02-18"},
            "inputs": {"stack": str(cfg.inputs.stack)}, "output": {"cube": str(cfg.output.cube)},
            "chunks": {"time": 14, "y": 400, "x": 400},
            "fusion": {"method": "reference_change"},
            "ingest": {"pregridded": {"landsat": list(cfg.ingest.pregridded.landsat),
                                      "modis": list(cfg.ingest.pregridded.modis)}}}
    path = tmp_path / "yanco.yaml"
    path.write_text(yaml.safe_dump(data))
    return cfg, path


def test_ingest_inspect_and_run_the_yanco_series(tmp_path, capsys):
    cfg, path = yanco_yaml(tmp_path)
    assert main(["ingest", str(path), "--plan-only"]) == 0
    out = capsys.readouterr().out
    assert "landsat: 1 file(s) on 1 date(s)" in out and "modis: 2 file(s) on 2 date(s)" in out
    assert not cfg.inputs.stack.exists()  # planning writes nothing
    assert main(["ingest", str(path), "--no-progress"]) == 0
    assert "ingested 1 Landsat and 2 MODIS date(s) from 3 file(s)" in capsys.readouterr().out
    assert main(["inspect", str(cfg.inputs.stack), "--dates"]) == 0
    out = capsys.readouterr().out
    assert "input stack, status complete" in out and "EPSG:4326, 400 x 400 px" in out
    assert "modis: 2 date(s), 2016-02-05 .. 2016-02-18" in out
    assert "missing days in the record: 12" in out
    assert "Landsat_LST_cloudrm_20160205.tif" in out
    assert main(["run", str(path), "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["inspect", str(cfg.output.cube)]) == 0
    out = capsys.readouterr().out
    assert "output cube, status complete" in out and "method: reference_change" in out
    assert main(["inspect", str(tmp_path / "nothing.zarr")]) == 2
    assert "no such store" in capsys.readouterr().err


@pytest.mark.slow
def test_files_at_coarse_factor_30_ingest_and_fuse_with_dlstfm_without_chunks(tmp_path,
                                                                               capsys):
    """360 x 360 px of 30 m with 900 m coarse pixels: a grid no chunk arithmetic was done for."""
    import numpy as np

    from lst_pipeline.io.cube import open_cube

    region = {"name": "f30", "grid": {"crs": "EPSG:32755", "resolution": 30,
                                      "coarse_factor": 30,
                                      "bounds": [400000, 6200000, 410800, 6210800]},
              "dates": {"start": "2021-03-01", "end": "2021-03-12"},
              "inputs": {"stack": str(tmp_path / "sim.zarr")},
              "output": {"cube": str(tmp_path / "unused.zarr")},
              "simulation": {"truth": str(tmp_path / "truth.zarr"), "seed": 3,
                             "landsat_revisit_days": 8},
              "fusion": {"method": "dlstfm", "max_reference_gap_days": 16}}
    sim = tmp_path / "sim.yaml"
    sim.write_text(yaml.safe_dump(region))
    assert main(["simulate", str(sim), "--write-files", str(tmp_path / "files"),
                 "--no-progress"]) == 0
    run = {**region, "inputs": {"stack": str(tmp_path / "ingested.zarr")},
           "output": {"cube": str(tmp_path / "cube.zarr")},
           "ingest": {"landsat": {"paths": [str(tmp_path / "files" / "landsat" / "*")]},
                      "modis": {"paths": [str(tmp_path / "files" / "modis" / "*.hdf")]}}}
    run.pop("simulation")
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(run))
    capsys.readouterr()
    assert main(["ingest", str(path), "--no-progress"]) == 0
    assert main(["run", str(path), "--plan-only"]) == 0
    out = capsys.readouterr().out
    assert "chunks:" in out and "chosen" in out and "GiB per task" in out
    assert main(["run", str(path), "--no-progress"]) == 0
    cube = open_cube(tmp_path / "cube.zarr")
    assert cube["lst"].shape == (12, 360, 360)
    assert float(cube.x[0]) == 400015 and float(cube.y[0]) == 6210785  # the configured grid
    assert cube.attrs["lst_pipeline:method"] == "dlstfm"
    assert np.isfinite(cube["lst"].values).mean() > 0.5


def test_the_yanco_series_fuses_with_dlstfm_at_coarse_factor_10(tmp_path, capsys):
    import numpy as np
    from test_ingest import yanco_config

    from lst_pipeline.io.cube import open_cube

    cfg = yanco_config(tmp_path)
    data = {"name": "yanco", "grid": {"crs": "EPSG:4326", "resolution": 0.001,
                                      "bounds": [146.0, -35.2, 146.4, -34.8],
                                      "coarse_factor": 10, "allow_geographic": True},
            "dates": {"start": "2016-02-05", "end": "2016-02-18"},
            "inputs": {"stack": str(cfg.inputs.stack)}, "output": {"cube": str(cfg.output.cube)},
            "fusion": {"method": "dlstfm", "landsat_days": "fuse"},
            "ingest": {"pregridded": {"landsat": list(cfg.ingest.pregridded.landsat),
                                      "modis": list(cfg.ingest.pregridded.modis)}}}
    path = tmp_path / "yanco.yaml"
    path.write_text(yaml.safe_dump(data))
    assert main(["ingest", str(path), "--no-progress"]) == 0
    assert main(["run", str(path), "--no-progress"]) == 0
    cube = open_cube(cfg.output.cube)
    assert cube["lst"].shape == (14, 400, 400)
    day = cube["lst"].sel(time="2016-02-18").values  # predicted from the 02-05 pair
    assert np.isfinite(day).mean() > 0.99
    assert 300 < np.nanmean(day) < 320


def test_a_store_url_argument_is_a_usage_error(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exc:
        main(["inspect", "https://example.org/cube.zarr"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "argument store: https://example.org/cube.zarr: a store cannot be at a https://" in err
    assert list(tmp_path.iterdir()) == []
