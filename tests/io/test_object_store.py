"""Stores on object storage: a real S3-compatible server (moto) on 127.0.0.1, the real CLI.

The lock, the completion records and the ingest staging are objects in the bucket; resume,
the refusal of a second writer and the byte-identical guarantee hold as on disk.
"""

import copy
import json
import os
import signal
import subprocess
import sys
import time
import warnings

import numpy as np
import pytest
import yaml

from conftest import TINY, ingest_config
from lst_pipeline.config.locations import store_url
from lst_pipeline.errors import StoreError
from lst_pipeline.io.cube_store import CubeStore
from lst_pipeline.io.location import create_exclusive
from lst_pipeline.io.lock import StoreLock, lock_store
from lst_pipeline.io.ownership import check_replaceable, remove_store
from object_store import BUCKET, moto_server

ARRAYS = ("lst", "qa", "reference_date", "lst_uncertainty")


@pytest.fixture(scope="module")
def s3():
    with moto_server() as server:
        yield server


def s3_path(s3, name):
    return store_url(s3.url(name), "test", s3.storage_options)


@pytest.mark.parametrize("where", ["s3", "memory"])
def test_only_one_creator_of_a_document(s3, where):
    path = (s3_path(s3, "exclusive/doc") if where == "s3"
            else store_url(f"memory://exclusive-{time.time_ns()}/doc", "test"))
    assert create_exclusive(path, "first")
    assert not create_exclusive(path, "second")
    assert path.read_text() == "first"


def test_lock_and_records_are_objects_in_the_bucket(s3):
    cube = s3_path(s3, "records/cube.zarr")
    lock, created = lock_store(cube, "cube", field="output.cube", what="another run is writing")
    assert created
    fs = s3.filesystem()
    holder = json.loads(fs.cat(f"{BUCKET}/records/cube.zarr/_lst_pipeline/lock"))
    assert holder["pid"] == os.getpid()
    # a second writer (this very process, still alive) is refused while the lock is held
    with pytest.raises(StoreError, match="another run is writing"):
        StoreLock(cube, "another run is writing").acquire()
    store = CubeStore(cube)
    store.ensure()
    for index in [(0, 0, 0), (1, 0, 1), (2, 1, 0)]:
        store.mark_done(index)
    store.forget({(1, 0, 1)})
    assert store.done() == {(0, 0, 0), (2, 1, 0)}
    store.set_inputs({"landsat": {"2021-01-01": "abc"}})
    assert CubeStore(s3_path(s3, "records/cube.zarr")).inputs() == {
        "landsat": {"2021-01-01": "abc"}}
    lock.release()
    assert not fs.exists(f"{BUCKET}/records/cube.zarr/_lst_pipeline/lock")


def test_what_is_not_ours_in_a_bucket_is_never_deleted(s3):
    fs = s3.filesystem()
    fs.pipe_file(f"{BUCKET}/users/data.zarr/zarr.json", b'{"zarr_format": 3, '
                 b'"node_type": "group", "attributes": {}}')
    fs.pipe_file(f"{BUCKET}/users/data.zarr/notes.txt", b"a user's notes")
    path = s3_path(s3, "users/data.zarr")
    with pytest.raises(StoreError, match="not a store written by lst_pipeline"):
        check_replaceable(path, "cube", field="output.cube")
    with pytest.raises(StoreError, match="not a store written by lst_pipeline"):
        remove_store(path, "cube", field="output.cube")
    assert fs.cat(f"{BUCKET}/users/data.zarr/notes.txt") == b"a user's notes"


def test_a_missing_bucket_is_named_and_never_created(s3):
    path = store_url("s3://no-such-bucket/cube.zarr", "output.cube", s3.storage_options)
    with pytest.raises(StoreError, match="the bucket no-such-bucket does not exist"):
        lock_store(path, "cube", field="output.cube", what="another run")
    assert not s3.filesystem().exists("no-such-bucket")


def test_a_task_reads_a_stack_in_a_bucket_with_one_request_per_object(s3, simulated_tiny,
                                                                      monkeypatch):
    """No size request before each chunk, no listing of the stack's arrays per read."""
    import collections
    import dataclasses

    import s3fs

    from lst_pipeline.config import load_pipeline
    from lst_pipeline.fusion.block import read_block_inputs
    from lst_pipeline.fusion.engine import plan_run
    from lst_pipeline.grid import Window

    s3.filesystem().put(str(simulated_tiny.inputs.stack) + "/", f"{BUCKET}/reads/in.zarr/",
                        recursive=True)
    data = copy.deepcopy(TINY)
    data["inputs"]["stack"], data["output"]["cube"] = s3.url("reads/in.zarr"), s3.url(
        "reads/cube.zarr")
    data["storage_options"] = s3.storage_options
    data["output"]["uncertainty"] = False
    data.pop("simulation")
    config = load_pipeline(data)
    window = Window(0, 64, 0, 64)
    plan = plan_run(config, log=lambda *_: None)
    local = read_block_inputs(plan_run(dataclasses.replace(
        simulated_tiny, output=config.output), log=lambda *_: None).task, 0, 16, window)

    calls: collections.Counter = collections.Counter()
    original = s3fs.S3FileSystem._call_s3

    async def counted(self, method, *args, **kwargs):
        calls[method] += 1
        return await original(self, method, *args, **kwargs)

    monkeypatch.setattr(s3fs.S3FileSystem, "_call_s3", counted)
    remote = read_block_inputs(plan.task, 0, 16, window)
    np.testing.assert_array_equal(remote.landsat_lst, local.landsat_lst)
    np.testing.assert_array_equal(remote.target_modis, local.target_modis)
    assert calls["get_object"] > 10  # metadata and chunks
    # before: a size request per object and every array's metadata per listing (59 in all)
    assert calls["head_object"] + calls["list_objects_v2"] <= 4, calls


def stack_arrays(path):
    from lst_pipeline.io.zarr_store import open_group

    group = open_group(path)
    return {k: group[k][...] for k in group.array_keys()}


@pytest.mark.slow
def test_ingest_into_a_bucket_commits_like_on_disk(real_format_region, s3, tmp_path):
    """Staging, journal and commit are objects; a bad file leaves the bucket's stack as it was."""
    from lst_pipeline.errors import InputError
    from lst_pipeline.ingest import ingest

    _, root = real_format_region
    hdfs = sorted((root / "files" / "modis").glob("*.hdf"))
    scenes = [str(p) for p in sorted((root / "files" / "landsat").glob("*"))]
    parts = [{"modis": {"paths": [str(p) for p in hdfs[12:]]}},
             {"landsat": {"paths": scenes}, "modis": {"paths": [str(p) for p in hdfs[:12]]}}]
    url = s3.url("ingest/stack.zarr")
    for part in parts:  # the second ingest inserts dates before the stored ones
        ingest(ingest_config(root, url, storage_options=s3.storage_options, **part),
               progress=False)
        ingest(ingest_config(root, str(tmp_path / "disk.zarr"), **part), progress=False)
    remote, local = stack_arrays(s3_path(s3, "ingest/stack.zarr")), stack_arrays(
        tmp_path / "disk.zarr")
    assert set(remote) == set(local)
    for name in local:
        np.testing.assert_array_equal(remote[name], local[name], err_msg=name)
    fs = s3.filesystem()
    assert not fs.exists(f"{BUCKET}/ingest/stack.zarr/_lst_pipeline/staging.zarr")

    broken = tmp_path / "broken"
    broken.mkdir()
    victim = broken / hdfs[3].name
    victim.write_bytes(hdfs[3].read_bytes()[:5000])
    with pytest.raises(InputError, match=f"{victim.name}: cannot"):
        ingest(ingest_config(root, url, storage_options=s3.storage_options,
                             modis={"paths": [str(victim)]}), progress=False)
    after = stack_arrays(s3_path(s3, "ingest/stack.zarr"))
    for name in local:
        np.testing.assert_array_equal(after[name], local[name], err_msg=name)
    assert not fs.exists(f"{BUCKET}/ingest/stack.zarr/_lst_pipeline/staging.zarr")
    assert not fs.exists(f"{BUCKET}/ingest/stack.zarr/_lst_pipeline/lock")


# --- the real CLI: simulate -> run -> SIGKILL -> run, against the server ------------------


def write_config(tmp_path, name, stack, cube, truth, storage_options=None):
    data = copy.deepcopy(TINY)
    data["inputs"]["stack"], data["output"]["cube"] = stack, cube
    data["simulation"]["truth"] = truth
    # 12 chunks of 16 x 64 x 64: each takes the workers about a second against the moto
    # server, time enough to kill the run part way (48 smaller chunks took 3 x as long)
    if storage_options:
        data["storage_options"] = storage_options
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def cli(*args, env=None):
    return subprocess.Popen([sys.executable, "-m", "lst_pipeline.cli", *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True, env={**os.environ, **(env or {})})


def finish(proc, timeout=300):
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        raise
    return proc.returncode, out


def local_chunks(cube):
    return {str(p.relative_to(cube)): p.read_bytes() for name in ARRAYS
            for p in (cube / name).rglob("*") if p.is_file()}


def bucket_chunks(fs, prefix):
    out = {}
    for name in ARRAYS:
        for key in fs.find(f"{prefix}/{name}"):
            out[key[len(prefix) + 1:]] = fs.cat(key)
    return out


@pytest.mark.slow
def test_simulate_run_sigkill_resume_on_s3_equals_a_local_run(s3, tmp_path):
    local = write_config(tmp_path, "local", str(tmp_path / "in.zarr"),
                         str(tmp_path / "cube.zarr"), str(tmp_path / "truth.zarr"))
    remote = write_config(tmp_path, "remote", s3.url("run/in.zarr"), s3.url("run/cube.zarr"),
                          s3.url("run/truth.zarr"), s3.storage_options)
    for config in (local, remote):
        code, out = finish(cli("simulate", config, "--no-progress"))
        assert code == 0, out
    code, out = finish(cli("run", local, "--no-progress"))
    assert code == 0, out

    fs = s3.filesystem()
    done = f"{BUCKET}/run/cube.zarr/_lst_pipeline/done"
    proc = cli("run", remote, "--no-progress")
    deadline = time.monotonic() + 180
    while not fs.exists(done) or len(fs.ls(done)) < 3:
        assert proc.poll() is None, proc.stdout.read()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    at_kill = len(fs.ls(done))
    assert 3 <= at_kill < 12
    status = json.loads(fs.cat(f"{BUCKET}/run/cube.zarr/zarr.json"))["attributes"]
    assert status["lst_pipeline:status"] == "writing"  # a killed run never looks finished

    code, out = finish(cli("run", remote, "--no-progress"))
    assert code == 0, out
    assert f"{at_kill} of 12 chunks already done" in out
    assert bucket_chunks(fs, f"{BUCKET}/run/cube.zarr") == local_chunks(tmp_path / "cube.zarr")
    assert not fs.exists(f"{BUCKET}/run/cube.zarr/_lst_pipeline/lock")

    import xarray as xr

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # consolidated: opens without a warning
        cube = xr.open_zarr(s3.url("run/cube.zarr"), storage_options=s3.storage_options)
        values = cube["lst"].values
    reference = xr.open_zarr(tmp_path / "cube.zarr")["lst"].values
    np.testing.assert_array_equal(values, reference)
    # credentials reach the server, never a store
    for key in fs.find(f"{BUCKET}/run"):
        if key.endswith(".json") or "/_lst_pipeline/" in key:
            assert s3.secret.encode() not in fs.cat(key), key
    assert s3.secret not in out


@pytest.mark.slow
def test_a_second_run_on_s3_is_refused_and_credentials_come_from_the_environment(s3, tmp_path):
    config = write_config(tmp_path, "env", s3.url("second/in.zarr"), s3.url("second/cube.zarr"),
                          s3.url("second/truth.zarr"))
    code, out = finish(cli("simulate", config, "--no-progress", env=s3.env))
    assert code == 0, out
    holder = StoreLock(s3_path(s3, "second/cube.zarr"), "another run is writing this cube")
    holder.acquire()  # a live writer: this test's process
    try:
        code, out = finish(cli("run", config, "--no-progress", env=s3.env))
    finally:
        holder.release()
    assert code == 2, out
    assert f"another run is writing this cube (pid {os.getpid()}" in out
    assert "plan:" not in out and "cluster:" not in out  # refused before either
    assert not s3.filesystem().exists(f"{BUCKET}/second/cube.zarr/zarr.json")


@pytest.mark.slow
def test_input_files_in_a_bucket_ingest_like_the_same_files_on_disk(real_format_region, s3,
                                                                    tmp_path, monkeypatch):
    """s3:// scene bands and GeoTIFF layers by GDAL range reads, HDF4 tiles via temp files;
    the credentials and endpoint come from the environment, as GDAL and boto read them."""
    from lst_pipeline.ingest import ingest

    for name, value in s3.env.items():
        monkeypatch.setenv(name, value)
    _, root = real_format_region
    base = root / "files"
    fs = s3.filesystem()
    fs.put(str(base) + "/", f"{BUCKET}/inputs/", recursive=True)
    sources = {"landsat": sorted((base / "landsat").glob("*/*_MTL.txt")),
               "modis": sorted((base / "modis_tif").glob("*LST_Day_1km*.tif"))[:8]
               + sorted((base / "modis").glob("*.hdf"))[8:12]}
    in_bucket = {k: {"paths": [s3.url(f"inputs/{p.relative_to(base).as_posix()}") for p in v]}
                 for k, v in sources.items()}
    on_disk = {k: {"paths": [str(p) for p in v]} for k, v in sources.items()}
    remote = ingest(ingest_config(root, str(tmp_path / "from-bucket.zarr"), **in_bucket),
                    progress=False)
    local = ingest(ingest_config(root, str(tmp_path / "from-disk.zarr"), **on_disk),
                   progress=False)
    assert (remote.landsat_dates, remote.modis_dates) == (local.landsat_dates, 12)
    assert remote.bytes_read == local.bytes_read
    a, b = stack_arrays(tmp_path / "from-bucket.zarr"), stack_arrays(tmp_path / "from-disk.zarr")
    assert set(a) == set(b)
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
