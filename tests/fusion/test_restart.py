"""Kill the running command with SIGKILL and resume: same bytes, finished chunks kept."""

import copy
import os
import signal
import subprocess
import sys
import time

import pytest
import yaml

from conftest import TINY
from lst_pipeline.config import load_pipeline
from lst_pipeline.fusion.engine import execute, plan_run
from lst_pipeline.io.cube import RunRecord, cube_status

ARRAYS = ("lst", "qa", "reference_date")


def write_config(tmp_path, stack, cube):
    data = copy.deepcopy(TINY)
    data["inputs"]["stack"] = str(stack)
    data["output"]["cube"] = str(cube)
    data["simulation"]["truth"] = str(tmp_path / "unused-truth.zarr")
    data["chunks"]["time"] = 4  # 48 chunks: time to kill the run half way
    path = tmp_path / f"{cube.stem}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def data_files(cube):
    return {p.relative_to(cube): p.read_bytes() for name in ARRAYS
            for p in (cube / name).rglob("*") if p.is_file()}


def run_command(config_path):
    return subprocess.Popen([sys.executable, "-m", "lst_pipeline.cli", "run",
                             str(config_path), "--no-progress"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)


@pytest.mark.slow
@pytest.mark.parametrize("kill_after", [1, 20])
def test_sigkill_then_resume_is_byte_identical(simulated_tiny, client, tmp_path, kill_after):
    stack = simulated_tiny.inputs.stack
    reference = tmp_path / "reference.zarr"
    execute(plan_run(load_pipeline(write_config(tmp_path, stack, reference))), client,
            progress=False)

    cube = tmp_path / "killed.zarr"
    config_path = write_config(tmp_path, stack, cube)
    record = RunRecord(cube)
    proc = run_command(config_path)
    deadline = time.monotonic() + 120
    while len(record.done()) < kill_after:
        assert proc.poll() is None, proc.stdout.read()
        assert time.monotonic() < deadline
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done_at_kill = {p.name: p.stat().st_mtime_ns for p in record.done_dir.iterdir()}
    assert kill_after <= len(done_at_kill) < 48
    assert cube_status(cube) == "writing"  # a killed run never looks finished

    resumed = run_command(config_path)
    out, _ = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, out
    assert f"{len(done_at_kill)} of 48 chunks already done" in out
    assert cube_status(cube) == "complete"
    # finished chunks were not recomputed (their records were not written again)
    assert {n: (record.done_dir / n).stat().st_mtime_ns for n in done_at_kill} == done_at_kill
    assert data_files(cube) == data_files(reference)
    assert not record.lock_path.exists()


@pytest.mark.slow
def test_worker_killed_mid_run_is_replaced_and_output_identical(simulated_tiny, client,
                                                                 tmp_path):
    import logging
    import threading

    from distributed import Client, LocalCluster

    stack = simulated_tiny.inputs.stack
    reference = tmp_path / "reference.zarr"
    execute(plan_run(load_pipeline(write_config(tmp_path, stack, reference))), client,
            progress=False)
    cube = tmp_path / "faulty.zarr"
    plan = plan_run(load_pipeline(write_config(tmp_path, stack, cube)))
    record = RunRecord(cube)
    killed = []
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=":0", silence_logs=logging.CRITICAL) as cluster, \
            Client(cluster) as own:

        def kill_one_worker():
            while len(record.done()) < 5:
                time.sleep(0.01)
            pid = next(iter(own.run(os.getpid).values()))
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)

        killer = threading.Thread(target=kill_one_worker, daemon=True)
        killer.start()
        summary = execute(plan, own, progress=False)
        killer.join(timeout=60)
    assert killed, "the worker was not killed during the run"
    assert summary.chunks == 48
    assert cube_status(cube) == "complete"
    assert data_files(cube) == data_files(reference)
