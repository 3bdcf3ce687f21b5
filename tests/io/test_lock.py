"""The writer lock and the ownership check in front of it, on disk."""

import json
import os
import subprocess
import sys

import pytest

from lst_pipeline.errors import StoreError
from lst_pipeline.io.lock import StoreLock, lock_store


def _half_created(path):
    """A cube as another command leaves it mid-creation: an array, no root attributes."""
    (path / "lst").mkdir(parents=True)
    (path / "lst" / "zarr.json").write_text('{"zarr_format": 3, "node_type": "array"}')
    (path / "zarr.json").write_text('{"zarr_format": 3, "node_type": "group", '
                                    '"attributes": {}}')


def test_a_store_being_created_by_a_live_command_names_that_command(tmp_path):
    cube = tmp_path / "cube.zarr"
    holder = StoreLock(cube, "another run is writing this cube")
    holder.acquire()  # held by this (live) process, as by a concurrent run
    _half_created(cube)
    with pytest.raises(StoreError, match=rf"another run is writing this cube \(pid {os.getpid()}"):
        lock_store(cube, "cube", field="output.cube", what="another run is writing this cube")
    holder.release()
    assert (cube / "lst" / "zarr.json").exists()  # nothing was touched


def test_the_same_directory_without_a_live_lock_is_refused_as_not_ours(tmp_path):
    cube = tmp_path / "cube.zarr"
    _half_created(cube)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    lock = cube / "_lst_pipeline" / "lock"
    lock.parent.mkdir()
    lock.write_text(json.dumps({"pid": int(dead.stdout), "host": os.uname().nodename,
                                "started": "2026-01-01T00:00:00"}))
    with pytest.raises(StoreError, match="exists and is not a store written by lst_pipeline"):
        lock_store(cube, "cube", field="output.cube", what="another run is writing this cube")
    assert (cube / "lst" / "zarr.json").exists() and lock.exists()


def test_the_input_stack_is_refused_as_such_even_while_it_is_locked(tmp_path):
    stack = tmp_path / "stack.zarr"
    holder = StoreLock(stack, "another ingest is writing this stack")
    holder.acquire()  # an ingest into the stack, still running
    _half_created(stack)
    with pytest.raises(StoreError, match=r"cannot be the output cube: it is inputs\.stack"):
        lock_store(stack, "cube", field="output.cube", what="another run is writing this cube",
                   protected={"inputs.stack": stack})
    holder.release()
