"""Faults and bad input through the real command line, on real-format files.

Every case asserts the exit status, the one-line message (naming the file or field) and that
every store and user directory involved is byte-identical to before, or absent if it was new.
The README's safety table lists these cases.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import FILES_REGION, config_dict
from lst_pipeline.cli import main
from lst_pipeline.io.cube import RunRecord, cube_status

ARRAYS = ("lst", "qa", "reference_date")


# --------------------------------------------------------------------------------------
# Helpers


def tree(path: Path) -> dict[str, bytes | None] | None:
    """Every file under ``path`` with its bytes (directories as None); None if absent."""
    path = Path(path)
    if not path.exists():
        return None
    if path.is_file():
        return {".": path.read_bytes()}
    return {str(p.relative_to(path)): (p.read_bytes() if p.is_file() else None)
            for p in sorted(path.rglob("*"))}


def cube_data(cube: Path) -> dict[str, bytes]:
    return {str(p.relative_to(cube)): p.read_bytes() for name in ARRAYS
            for p in (cube / name).rglob("*") if p.is_file()}


def cli(capsys, *args: str) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def one_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line of error, got:\n{err}"
    assert lines[0].startswith("lst-pipeline ") and ": error: " in lines[0], lines[0]
    return lines[0]


def landsat_files(root: Path) -> str:
    return str(root / "files" / "landsat" / "*")


def modis_files(root: Path) -> str:
    return str(root / "files" / "modis" / "*.hdf")


def write_config(path: Path, root: Path, *, stack: Path, cube: Path, ingest=None,
                 simulation=None, **sections) -> Path:
    """A pipeline YAML over the real-format region, with its stores where the test says."""
    data = config_dict(root, **FILES_REGION)
    data["inputs"] = {"stack": str(stack)}
    data["output"] = {"cube": str(cube), "dtype": "float32"}
    if simulation is None:
        data.pop("simulation")
    else:
        data["simulation"] = simulation
    if ingest is not None:
        data["ingest"] = ingest
    for name, values in sections.items():
        if isinstance(values, dict) and isinstance(data.get(name), dict):
            data[name] = {**data[name], **values}
        else:
            data[name] = values
    path.write_text(yaml.safe_dump(data))
    return path


def all_files(root: Path) -> dict:
    return {"landsat": {"paths": [landsat_files(root)]}, "modis": {"paths": [modis_files(root)]}}


@pytest.fixture(scope="module")
def region(real_format_region):
    return real_format_region[1]


@pytest.fixture(scope="module")
def stack(region, tmp_path_factory):
    """The region's files ingested once into a stack the tests copy or only read."""
    from conftest import ingest_config
    from lst_pipeline.ingest import ingest

    path = tmp_path_factory.mktemp("faults") / "stack.zarr"
    ingest(ingest_config(region, stack=str(path), landsat={"paths": [landsat_files(region)]},
                         modis={"paths": [modis_files(region)]}), progress=False)
    return path


@pytest.fixture(scope="module")
def fused(region, stack, tmp_path_factory, client):
    """A complete cube of that stack."""
    from lst_pipeline.config import load_pipeline
    from lst_pipeline.fusion.engine import execute, plan_run

    root = tmp_path_factory.mktemp("fused")
    config = write_config(root / "run.yaml", region, stack=stack, cube=root / "cube.zarr")
    execute(plan_run(load_pipeline(config)), client, progress=False)
    return root / "cube.zarr"


def copy_scene(src: Path, dst_root: Path, *, product_id: str | None = None) -> Path:
    """Copy a scene directory, optionally under another product id (files and MTL renamed)."""
    old = src.name
    new = product_id or old
    dst = dst_root / new
    dst.mkdir(parents=True)
    for f in src.iterdir():
        target = dst / f.name.replace(old, new)
        if f.name.endswith("_MTL.txt"):
            target.write_text(f.read_text().replace(old, new))
        else:
            shutil.copy(f, target)
    return dst


def rewrite_tiff(path: Path, *, data=None, shift_m: tuple[float, float] = (0.0, 0.0)) -> None:
    import rasterio
    from affine import Affine

    with rasterio.open(path) as src:
        profile = src.profile
        values = src.read(1) if data is None else data(src.read(1))
    t = profile["transform"]
    profile["transform"] = Affine(t.a, t.b, t.c + shift_m[0], t.d, t.e, t.f + shift_m[1])
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(values, 1)


# --------------------------------------------------------------------------------------
# 1. Nothing that is not ours is ever deleted or written into.


def test_cube_path_equal_to_the_input_stack_is_refused(region, stack, tmp_path, capsys):
    before = tree(stack)
    config = write_config(tmp_path / "p.yaml", region, stack=stack, cube=stack)
    for extra in ((), ("--overwrite",)):
        code, _, err = cli(capsys, "run", config, "--no-progress", *extra)
        line = one_line(err)
        assert code == 2
        assert "output.cube" in line and "same store as inputs.stack" in line
        assert "--overwrite" not in line  # never suggested where it would not be safe
    assert tree(stack) == before


def test_cube_inside_the_input_stack_is_refused(region, stack, tmp_path, capsys):
    before = tree(stack)
    config = write_config(tmp_path / "p.yaml", region, stack=stack, cube=stack / "cube.zarr")
    code, _, err = cli(capsys, "run", config, "--overwrite", "--no-progress")
    assert code == 2 and "lies inside inputs.stack" in one_line(err)
    assert tree(stack) == before


def test_overwrite_never_empties_a_users_directory(region, stack, tmp_path, capsys):
    work = tmp_path / "project"
    shutil.copytree(region / "files" / "landsat", work / "landsat")
    (work / "notes.txt").write_text("my notes")
    before = tree(work)
    config = write_config(tmp_path / "p.yaml", region, stack=stack, cube=work)
    code, _, err = cli(capsys, "run", config, "--overwrite", "--no-progress")
    line = one_line(err)
    assert code == 2 and f"{work} exists and is not a store written by lst_pipeline" in line
    assert tree(work) == before  # not a byte changed, no _lst_pipeline/ left in it


def test_refused_run_on_a_plain_directory_leaves_nothing_in_it(region, stack, tmp_path,
                                                              capsys):
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "data.csv").write_text("a,b\n")
    before = tree(plain)
    config = write_config(tmp_path / "p.yaml", region, stack=stack, cube=plain)
    code, _, err = cli(capsys, "run", config, "--no-progress")
    assert code == 2 and "is never deleted or written into" in one_line(err)
    assert tree(plain) == before
    assert not (plain / "_lst_pipeline").exists()


def test_cube_path_that_is_a_regular_file(region, stack, tmp_path, capsys):
    target = tmp_path / "cube.zarr"
    target.write_text("not a store")
    config = write_config(tmp_path / "p.yaml", region, stack=stack, cube=target)
    code, _, err = cli(capsys, "run", config, "--overwrite", "--no-progress")
    assert code == 2 and f"{target} is a file, not a Zarr store" in one_line(err)
    assert target.read_text() == "not a store"


def test_a_store_of_another_kind_is_never_replaced(region, stack, tmp_path, capsys):
    other = tmp_path / "other-stack.zarr"
    shutil.copytree(stack, other)
    before = tree(other)
    config = write_config(tmp_path / "p.yaml", region, stack=stack, cube=other)
    code, _, err = cli(capsys, "run", config, "--overwrite", "--no-progress")
    assert code == 2 and "is an lst_pipeline input stack, not an output cube" in one_line(err)
    assert tree(other) == before


def test_rechunk_never_empties_an_unrelated_directory(fused, tmp_path, capsys):
    target = tmp_path / "keep"
    target.mkdir()
    (target / "thesis.tex").write_text("chapter 1")
    before = tree(target)
    code, _, err = cli(capsys, "rechunk", fused, target, "--overwrite", "--no-progress")
    assert code == 2 and "is not a store written by lst_pipeline" in one_line(err)
    assert tree(target) == before


def test_simulate_overwrite_never_replaces_an_ingested_stack(region, stack, tmp_path, capsys):
    mine = tmp_path / "mine.zarr"
    shutil.copytree(stack, mine)
    before = tree(mine)
    config = write_config(tmp_path / "p.yaml", region, stack=mine, cube=tmp_path / "c.zarr",
                          simulation={"truth": str(tmp_path / "truth.zarr"), "seed": 1})
    code, _, err = cli(capsys, "simulate", config, "--overwrite", "--no-progress")
    line = one_line(err)
    assert code == 2 and "written by lst_pipeline.ingest, not by lst_pipeline.simulate" in line
    assert tree(mine) == before
    assert not (tmp_path / "truth.zarr").exists()


def test_simulate_overwrite_never_replaces_a_users_directory(region, tmp_path, capsys):
    folder = tmp_path / "results"
    folder.mkdir()
    (folder / "figure.png").write_bytes(b"\x89PNG")
    before = tree(folder)
    config = write_config(tmp_path / "p.yaml", region, stack=tmp_path / "s.zarr",
                          cube=tmp_path / "c.zarr", simulation={"truth": str(folder)})
    code, _, err = cli(capsys, "simulate", config, "--overwrite", "--no-progress")
    assert code == 2 and "simulation.truth" in one_line(err)
    assert tree(folder) == before
    assert not (tmp_path / "s.zarr").exists()


# --------------------------------------------------------------------------------------
# 2. Resume never uses chunks computed from inputs that changed.


def test_resume_after_reingest_recomputes_exactly_the_chunks_of_changed_dates(
        region, stack, tmp_path, capsys):
    from lst_pipeline.io import landsat

    work = tmp_path / "work"
    shutil.copytree(stack, work / "stack.zarr")
    settings = {"chunks": {"time": 8, "y": 128, "x": 128},
                "fusion": {"method": "reference_change", "max_reference_gap_days": 8,
                           "reference_offset_days": 0}}  # its horizon: test_reference_offset
    cube = work / "cube.zarr"
    config = write_config(work / "p.yaml", region, stack=work / "stack.zarr", cube=cube,
                          ingest=all_files(region), **settings)
    assert cli(capsys, "run", config, "--no-progress")[0] == 0
    record = RunRecord(cube)
    stamps = {p.name: p.stat().st_mtime_ns for p in record.done_dir.iterdir()}
    assert len(stamps) == 24  # 6 blocks of 8 days x 4 tiles

    # The 2021-02-01 scenes again, now with a cloud mask over everything.
    cloudy = work / "cloudy"
    for scene in sorted((region / "files" / "landsat").glob("*_20210201_*")):
        dst = copy_scene(scene, cloudy)
        qa = next(dst.glob("*_QA_PIXEL.TIF"))
        rewrite_tiff(qa, data=lambda a: np.where(a == landsat.QA_VALUE_FILL, a,
                                                 landsat.QA_VALUE_CLOUD_HIGH).astype(a.dtype))
    reingest = write_config(work / "re.yaml", region, stack=work / "stack.zarr", cube=cube,
                            ingest={"landsat": {"paths": [str(cloudy / "*")]}}, **settings)
    assert cli(capsys, "ingest", reingest, "--no-progress")[0] == 0

    code, out, _ = cli(capsys, "run", config, "--no-progress")
    assert code == 0
    # day 31 (2021-02-01) is read by the blocks of days 16-23, 24-31 and 32-39 (gap 8 days)
    assert "changed since" in out and "landsat 2021-02-01" in out
    assert "12 finished chunk(s) read those dates and are computed again" in out
    assert "12 of 24 chunks already done" in out
    after = {p.name: p.stat().st_mtime_ns for p in record.done_dir.iterdir()}
    kept = {n for n in stamps if after[n] == stamps[n]}
    assert kept == {n for n in stamps if int(n.split("-")[0]) in (0, 1, 5)}
    assert cube_status(cube) == "complete"

    fresh = work / "fresh.zarr"
    fresh_config = write_config(work / "f.yaml", region, stack=work / "stack.zarr", cube=fresh,
                                **settings)
    assert cli(capsys, "run", fresh_config, "--no-progress")[0] == 0
    assert cube_data(cube) == cube_data(fresh)  # as if computed from the new stack alone


# --------------------------------------------------------------------------------------
# 3-5. Duplicates, registration, product identity.


def arrays(path):
    import zarr

    g = zarr.open_group(str(path), mode="r")
    return {k: g[k][...] for k in g.array_keys()}


def assert_same_arrays(a, b):
    va, vb = arrays(a), arrays(b)
    assert set(va) == set(vb)
    for name in va:
        np.testing.assert_array_equal(va[name], vb[name], err_msg=name)


def test_a_granule_downloaded_twice_is_read_once(region, stack, tmp_path, capsys):
    modis_dir = tmp_path / "modis"
    shutil.copytree(region / "files" / "modis", modis_dir)
    first = sorted(modis_dir.glob("*.hdf"))[5]
    again = first.with_name(re.sub(r"\.\d{13}\.hdf$", ".2099001000000.hdf", first.name))
    shutil.copy(first, again)
    config = write_config(tmp_path / "p.yaml", region, stack=tmp_path / "s.zarr",
                          cube=tmp_path / "c.zarr",
                          ingest={"landsat": {"paths": [landsat_files(region)]},
                                  "modis": {"paths": [str(modis_dir / "*.hdf")]}})
    code, out, _ = cli(capsys, "ingest", config, "--no-progress")
    assert code == 0
    assert f"skipped: {first}: same MOD11A1 granule as {again.name}" in out
    assert_same_arrays(tmp_path / "s.zarr", stack)  # valid cells not counted twice


def test_a_scene_processed_twice_is_read_once(region, stack, tmp_path, capsys):
    scenes = tmp_path / "landsat"
    shutil.copytree(region / "files" / "landsat", scenes)
    original = sorted(scenes.glob("*_20210116_*"))[0]
    later = original.name.replace("_20210125_", "_20230301_")
    copy_scene(original, scenes, product_id=later)
    config = write_config(tmp_path / "p.yaml", region, stack=tmp_path / "s.zarr",
                          cube=tmp_path / "c.zarr",
                          ingest={"landsat": {"paths": [str(scenes / "*")]},
                                  "modis": {"paths": [modis_files(region)]}})
    code, out, _ = cli(capsys, "ingest", config, "--no-progress")
    assert code == 0
    assert f"same scene as {later}" in out and "processed earlier (20210125)" in out
    assert_same_arrays(tmp_path / "s.zarr", stack)


def test_qa_pixel_shifted_by_300_m_is_refused(region, tmp_path, capsys):
    scenes = tmp_path / "landsat"
    shutil.copytree(region / "files" / "landsat", scenes)
    qa = next(sorted(scenes.glob("*_20210116_*"))[0].glob("*_QA_PIXEL.TIF"))
    rewrite_tiff(qa, shift_m=(300.0, 0.0))
    config = write_config(tmp_path / "p.yaml", region, stack=tmp_path / "s.zarr",
                          cube=tmp_path / "c.zarr",
                          ingest={"landsat": {"paths": [str(scenes / "*")]}})
    for extra in (("--plan-only",), ("--no-progress",)):
        code, _, err = cli(capsys, "ingest", config, *extra)
        line = one_line(err)
        assert code == 2 and f"{qa}: not registered with the scene's ST_B10 band" in line
        assert "shifted by (+300, +0)" in line
    assert not (tmp_path / "s.zarr").exists()


def test_an_8_day_product_named_like_a_daily_tile_is_refused(region, tmp_path, capsys):
    from pyhdf.SD import SD, SDC

    modis_dir = tmp_path / "modis"
    shutil.copytree(region / "files" / "modis", modis_dir)
    victim = sorted(modis_dir.glob("*.hdf"))[3]
    sd = SD(str(victim), SDC.WRITE)
    attrs = sd.attributes()
    sd.attr("StructMetadata.0").set(SDC.CHAR8, attrs["StructMetadata.0"].replace(
        "MODIS_Grid_Daily_1km_LST", "MODIS_Grid_8Day_1km_LST"))
    sd.attr("CoreMetadata.0").set(SDC.CHAR8, attrs["CoreMetadata.0"].replace(
        '"MOD11A1"', '"MOD11A2"'))
    sd.end()
    config = write_config(tmp_path / "p.yaml", region, stack=tmp_path / "s.zarr",
                          cube=tmp_path / "c.zarr",
                          ingest={"modis": {"paths": [str(modis_dir / "*.hdf")]}})
    code, _, err = cli(capsys, "ingest", config, "--plan-only")
    line = one_line(err)
    assert code == 2 and f"{victim}: holds grid MODIS_Grid_8Day_1km_LST" in line
    assert not (tmp_path / "s.zarr").exists()


def test_mtl_date_disagreeing_with_the_product_id_is_refused(region, tmp_path, capsys):
    scenes = tmp_path / "landsat"
    scene = copy_scene(sorted((region / "files" / "landsat").glob("*_20210116_*"))[0], scenes)
    mtl = next(scene.glob("*_MTL.txt"))
    mtl.write_text(mtl.read_text().replace("DATE_ACQUIRED = 2021-01-16",
                                           "DATE_ACQUIRED = 2021-01-20"))
    config = write_config(tmp_path / "p.yaml", region, stack=tmp_path / "s.zarr",
                          cube=tmp_path / "c.zarr",
                          ingest={"landsat": {"paths": [str(scenes / "*")]}})
    code, _, err = cli(capsys, "ingest", config, "--plan-only")
    line = one_line(err)
    assert code == 2 and f"{mtl}: DATE_ACQUIRED 2021-01-20 disagrees" in line


# --------------------------------------------------------------------------------------
# 6-7. Interrupted commits and stacks without MODIS.


def test_commit_interrupted_then_an_ingest_of_other_inputs_finishes_it(
        region, tmp_path, capsys, monkeypatch):
    from lst_pipeline.io.stack_writer import StackWriter

    hdfs = sorted((region / "files" / "modis").glob("*.hdf"))
    parts = [{"modis": {"paths": [str(p) for p in hdfs[:20]]}},
             {"landsat": {"paths": [landsat_files(region)]}},
             {"modis": {"paths": [str(p) for p in hdfs[20:]]}}]

    def configs(name):
        return [write_config(tmp_path / f"{name}{i}.yaml", region,
                             stack=tmp_path / f"{name}.zarr", cube=tmp_path / "c.zarr",
                             ingest=part) for i, part in enumerate(parts)]

    for config in configs("reference"):
        assert cli(capsys, "ingest", config, "--no-progress")[0] == 0

    broken = configs("broken")
    assert cli(capsys, "ingest", broken[0], "--no-progress")[0] == 0
    real_set_dates = StackWriter.set_dates

    def die_after_the_first_sensor(self, sensor, dates):
        real_set_dates(self, sensor, dates)
        if sensor == "landsat" and "staging" not in str(self.path):
            raise KeyboardInterrupt  # as if killed half way through the commit

    monkeypatch.setattr(StackWriter, "set_dates", die_after_the_first_sensor)
    assert cli(capsys, "ingest", broken[1], "--no-progress")[0] == 130
    monkeypatch.undo()
    assert cube_status(tmp_path / "broken.zarr") == "writing"  # readers refuse it

    code, out, _ = cli(capsys, "ingest", broken[2], "--no-progress")
    assert code == 0 and "finishing the commit of an interrupted ingest first" in out
    assert_same_arrays(tmp_path / "broken.zarr", tmp_path / "reference.zarr")
    code, out, _ = cli(capsys, "inspect", tmp_path / "broken.zarr", "--dates")
    assert code == 0 and "nan%" not in out and "status complete" in out


def test_a_stack_without_modis_is_refused_before_any_cube_exists(region, tmp_path, capsys):
    config = write_config(tmp_path / "p.yaml", region, stack=tmp_path / "s.zarr",
                          cube=tmp_path / "c.zarr",
                          ingest={"landsat": {"paths": [landsat_files(region)]}})
    assert cli(capsys, "ingest", config, "--no-progress")[0] == 0
    before = tree(tmp_path / "s.zarr")
    code, _, err = cli(capsys, "run", config, "--no-progress")
    assert code == 2 and "no MODIS day between 2021-01-01 and 2021-02-10" in one_line(err)
    assert not (tmp_path / "c.zarr").exists()
    assert tree(tmp_path / "s.zarr") == before


# --------------------------------------------------------------------------------------
# 8. One line and exit 2, never a traceback, for errors the user can cause.


def test_an_output_directory_that_cannot_be_written(region, stack, tmp_path, capsys):
    if os.geteuid() == 0:  # root writes through permission bits: use a read-only system tree
        target = Path("/sys/lst-pipeline-test/cube.zarr")
    else:
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o555)
        target = locked / "cube.zarr"
    config = write_config(tmp_path / "p.yaml", region, stack=stack, cube=target)
    code, _, err = cli(capsys, "run", config, "--no-progress")
    line = one_line(err)
    assert code == 2 and str(target.parent) in line
    assert re.search(r"Permission denied|Operation not permitted|Read-only", line)
    assert not target.exists()


@pytest.mark.slow
def test_a_write_that_fails_in_a_worker_is_one_line_with_its_log(region, stack, tmp_path):
    config = write_config(tmp_path / "p.yaml", region, stack=stack, cube=tmp_path / "c.zarr")
    code = ("import resource, sys; resource.setrlimit(resource.RLIMIT_FSIZE, (65536, 65536)); "
            "from lst_pipeline.cli import main; "
            f"sys.exit(main(['run', {str(config)!r}, '--no-progress']))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300)
    line = one_line(proc.stderr)
    assert proc.returncode == 2, proc.stderr
    assert "File too large" in line and "cannot write chunk" in line
    assert "worker traceback: " in line
    assert cube_status(tmp_path / "c.zarr") == "writing"  # never looks finished


@pytest.mark.parametrize("section, field, value, message", [
    ("grid", "bounds", [400000, 6200000, float("inf"), 6207680],
     "grid.bounds[2]: expected a finite number, got inf"),
    ("fusion", "max_reference_gap_days", 1000000,
     "fusion.max_reference_gap_days: must be between 0 and 366 days"),
    ("grid", "crs", "EPSG:99999", "grid.crs: 'EPSG:99999' is not a valid CRS"),
])
def test_bad_configuration_values_name_the_file_and_field(region, stack, tmp_path, capsys,
                                                          section, field, value, message):
    path = write_config(tmp_path / "p.yaml", region, stack=stack, cube=tmp_path / "c.zarr")
    data = yaml.safe_load(path.read_text())
    data[section][field] = value
    path.write_text(yaml.safe_dump(data))
    for command in ("run", "ingest", "simulate"):
        code, _, err = cli(capsys, command, path)
        assert code == 2 and f"{path}: {message}" in one_line(err)
    assert not (tmp_path / "c.zarr").exists()


@pytest.mark.slow
def test_a_failing_task_prints_one_line_and_keeps_the_traceback_in_a_log(
        region, stack, tmp_path):
    broken = tmp_path / "broken.zarr"
    shutil.copytree(stack, broken)
    chunk = next(p for p in sorted((broken / "landsat_lst").rglob("*")) if p.is_file())
    chunk.write_bytes(b"\x00garbage" * 50)
    before = tree(broken)
    # with lst_uncertainty the planner's leave-one-date-out may read the chunk first
    config = write_config(tmp_path / "p.yaml", region, stack=broken, cube=tmp_path / "u.zarr")
    proc = subprocess.run([sys.executable, "-m", "lst_pipeline.cli", "run", str(config),
                           "--no-progress"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert f"{broken}: cannot read" in one_line(proc.stderr)
    assert cube_status(tmp_path / "u.zarr") in (None, "writing")
    # without it, a task on a worker fails: one line, the traceback in a log
    config = write_config(tmp_path / "p.yaml", region, stack=broken, cube=tmp_path / "c.zarr",
                          output={"dtype": "float32", "uncertainty": False})
    proc = subprocess.run([sys.executable, "-m", "lst_pipeline.cli", "run", str(config),
                           "--no-progress"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr[-3000:]
    line = one_line(proc.stderr)  # no distributed logs, no traceback
    assert f"{broken}: cannot read inputs of days" in line
    log = Path(line.split("worker traceback: ")[1].rstrip(")"))
    assert log.is_file() and "Traceback" in log.read_text()
    assert cube_status(tmp_path / "c.zarr") == "writing"
    assert tree(broken) == before


# --------------------------------------------------------------------------------------
# 9. --plan-only checks the band files.


def test_plan_only_finds_a_missing_qa_pixel(region, tmp_path, capsys):
    scenes = tmp_path / "landsat"
    shutil.copytree(region / "files" / "landsat", scenes)
    qa = next(sorted(scenes.glob("*"))[1].glob("*_QA_PIXEL.TIF"))
    qa.unlink()
    config = write_config(tmp_path / "p.yaml", region, stack=tmp_path / "s.zarr",
                          cube=tmp_path / "c.zarr",
                          ingest={"landsat": {"paths": [str(scenes / "*")]}})
    code, _, err = cli(capsys, "ingest", config, "--plan-only")
    assert code == 2 and f"{qa}: QA_PIXEL band file is missing" in one_line(err)


def test_plan_only_finds_a_truncated_tiff(region, tmp_path, capsys):
    scenes = tmp_path / "landsat"
    shutil.copytree(region / "files" / "landsat", scenes)
    band = next(sorted(scenes.glob("*"))[2].glob("*_ST_B10.TIF"))
    band.write_bytes(band.read_bytes()[: band.stat().st_size // 2])
    config = write_config(tmp_path / "p.yaml", region, stack=tmp_path / "s.zarr",
                          cube=tmp_path / "c.zarr",
                          ingest={"landsat": {"paths": [str(scenes / "*")]}})
    code, _, err = cli(capsys, "ingest", config, "--plan-only")
    line = one_line(err)
    assert code == 2 and line.split("error: ")[1].startswith(f"{band}: ")
    assert re.search(r"truncated|cannot read", line)


def test_plan_only_finds_a_corrupt_hdf(region, tmp_path, capsys):
    modis_dir = tmp_path / "modis"
    shutil.copytree(region / "files" / "modis", modis_dir)
    victim = sorted(modis_dir.glob("*.hdf"))[7]
    victim.write_bytes(victim.read_bytes()[: victim.stat().st_size - 3000])
    config = write_config(tmp_path / "p.yaml", region, stack=tmp_path / "s.zarr",
                          cube=tmp_path / "c.zarr",
                          ingest={"modis": {"paths": [str(modis_dir / "*.hdf")]}})
    code, _, err = cli(capsys, "ingest", config, "--plan-only")
    line = one_line(err)
    assert code == 2 and f"{victim}: cannot" in line
    assert not (tmp_path / "s.zarr").exists()


# --------------------------------------------------------------------------------------
# 10-11. Smaller defects, and two runs started at the same moment.


def test_grid_mismatch_is_short_and_shows_both_grids(region, stack, tmp_path, capsys):
    config = write_config(tmp_path / "p.yaml", region, stack=stack, cube=tmp_path / "c.zarr",
                          grid={"bounds": [400960, 6200000, 400960 + 7680, 6207680]})
    code, _, err = cli(capsys, "run", config, "--no-progress")
    line = one_line(err)
    assert code == 2 and "differs from the configured grid" in line
    assert "EPSG:32755, 256 x 256 px of 30, origin (400000, 6207680)" in line
    assert len(line) < 500 and "PROJCRS" not in line


def test_an_empty_lock_file_says_what_to_do(fused, region, stack, tmp_path, capsys):
    cube = tmp_path / "cube.zarr"
    shutil.copytree(fused, cube)
    (cube / "_lst_pipeline" / "lock").write_text("")
    before = tree(cube)
    config = write_config(tmp_path / "p.yaml", region, stack=stack, cube=cube)
    code, _, err = cli(capsys, "run", config, "--no-progress")
    line = one_line(err)
    assert code == 2 and "lock file is empty or unreadable" in line and "None" not in line
    assert "delete this file" in line
    assert tree(cube) == before


def test_brackets_in_paths_are_taken_literally_or_explained(region, tmp_path, capsys):
    folder = tmp_path / "site[1]"
    shutil.copytree(region / "files" / "landsat", folder)
    scene = sorted(folder.iterdir())[0]
    ok = write_config(tmp_path / "ok.yaml", region, stack=tmp_path / "s.zarr",
                      cube=tmp_path / "c.zarr", ingest={"landsat": {"paths": [str(scene)]}})
    code, out, _ = cli(capsys, "ingest", ok, "--plan-only")
    assert code == 0 and "landsat: 1 file(s) on 1 date(s)" in out
    pattern = str(folder / "LC08_*")
    bad = write_config(tmp_path / "bad.yaml", region, stack=tmp_path / "s.zarr",
                       cube=tmp_path / "c.zarr", ingest={"landsat": {"paths": [pattern]}})
    code, _, err = cli(capsys, "ingest", bad, "--plan-only")
    assert code == 2 and "'[' and ']' are glob characters: write [[] and []]" in one_line(err)


def test_a_checkpoint_with_code_is_refused_without_torchs_advice(region, stack, tmp_path,
                                                                 capsys):
    import collections

    import torch

    bad = tmp_path / "evil.pt"
    torch.save({"format": collections.OrderedDict(a=1), "x": Path("/")}, bad)
    config = write_config(tmp_path / "p.yaml", region, stack=stack, cube=tmp_path / "c.zarr",
                          fusion={"method": "dlstfm", "checkpoint": str(bad)})
    code, _, err = cli(capsys, "run", config, "--no-progress")
    line = one_line(err)
    assert code == 2 and f"{bad}: not a readable lst_pipeline checkpoint" in line
    assert "weights_only" not in line
    assert not (tmp_path / "c.zarr").exists()


@pytest.mark.slow
def test_two_runs_started_together_one_writes_the_other_is_refused(region, stack, tmp_path):
    cube = tmp_path / "cube.zarr"
    # DLSTFM on 16 days: its 4 chunks (about 6 s) outlast the other process's start by far
    config = write_config(tmp_path / "p.yaml", region, stack=stack, cube=cube,
                          fusion={"method": "dlstfm"}, output={"uncertainty": False},
                          dates={"end": "2021-01-16"})
    procs = [subprocess.Popen([sys.executable, "-m", "lst_pipeline.cli", "run", str(config),
                               "--no-progress"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [(p.wait(timeout=300), p.stdout.read(), p.stderr.read()) for p in procs]
    codes = sorted(r[0] for r in results)
    assert codes == [0, 2], results
    loser = next(r for r in results if r[0] == 2)
    assert "another run is writing this cube" in one_line(loser[2])
    assert cube_status(cube) == "complete"
    assert len(RunRecord(cube).done()) == 1 * 2 * 2
    assert not (cube / "_lst_pipeline" / "lock").exists()

