"""Cluster profiles: local ones run for real; SLURM and Kubernetes ones are rendered."""

import dataclasses
import os
import time

import pytest

from lst_pipeline.cluster import (
    ClusterProfile,
    connect,
    kubernetes_cluster_spec,
    load_profile,
    local_gpu_worker_specs,
    slurm_job_script,
)
from lst_pipeline.errors import ConfigError

SHIPPED = ["local", "local-gpu", "slurm", "slurm-gpu", "kubernetes", "kubernetes-gpu",
           "kubernetes-s3"]


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_profiles_parse(name):
    profile = load_profile(name)
    assert profile.kind in name or (name.startswith("slurm") and profile.kind == "slurm")
    assert (profile.task_resources == {"GPU": 1}) == ("gpu" in name)


def test_profile_errors(tmp_path):
    with pytest.raises(ConfigError, match="cluster profile 'nope' not found"):
        load_profile("nope")
    bad = tmp_path / "bad.yaml"
    bad.write_text("kind: local\ngpus_per_worker: 2\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: cluster\.gpus_per_worker"):
        load_profile(bad)
    bad.write_text("kind: pbs\n")
    with pytest.raises(ConfigError, match=r"cluster\.kind: 'pbs' is not one of"):
        load_profile(bad)


def test_slurm_gpu_job_script_pins_one_gpu_per_worker():
    script = slurm_job_script(load_profile("slurm-gpu"))
    assert "#SBATCH --gres=gpu:1" in script
    assert "#SBATCH -p gpu" in script
    assert "--resources GPU=4" in script
    assert "--nthreads 8" in script and "--nworkers" not in script  # one worker per job
    assert "module load cuda" in script and "export OMP_NUM_THREADS=8" in script
    cpu = slurm_job_script(load_profile("slurm"))
    assert "gres" not in cpu and "GPU=" not in cpu


def test_kubernetes_gpu_spec_requests_gpus_for_workers_only():
    spec = kubernetes_cluster_spec(load_profile("kubernetes-gpu"))
    assert spec["kind"] == "DaskCluster"
    worker = spec["spec"]["worker"]["spec"]["containers"][0]
    assert spec["spec"]["worker"]["replicas"] == 8
    assert worker["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert worker["args"][-2:] == ["--resources", "GPU=4"]
    assert {"name": "OMP_NUM_THREADS", "value": "8"} in worker["env"]
    scheduler = spec["spec"]["scheduler"]["spec"]["containers"][0]
    assert "nvidia.com/gpu" not in str(scheduler.get("resources", {}))
    cpu = kubernetes_cluster_spec(load_profile("kubernetes"))
    assert "nvidia.com/gpu" not in str(cpu)


def test_kubernetes_s3_profile_takes_credentials_from_a_secret_only():
    profile = load_profile("kubernetes-s3")
    spec = kubernetes_cluster_spec(profile)
    for role in ("worker", "scheduler"):
        container = spec["spec"][role]["spec"]["containers"][0]
        assert container["envFrom"] == [{"secretRef": {"name": "lst-pipeline-s3"}}]
        assert {"name": "AWS_REGION", "value": "eu-central-1"} in container["env"]
    assert "AWS_SECRET_ACCESS_KEY" not in str(spec)


def test_profile_env_reaches_slurm_jobs(tmp_path):
    path = tmp_path / "slurm-s3.yaml"
    path.write_text("kind: slurm\nenv: {AWS_ENDPOINT_URL: 'http://minio:9000'}\n")
    assert "export AWS_ENDPOINT_URL=http://minio:9000" in slurm_job_script(load_profile(path))


def test_local_gpu_specs_pin_one_gpu_per_worker():
    profile = load_profile("local-gpu")
    specs = local_gpu_worker_specs(profile, ["0", "1", "3"])
    assert [s["options"]["env"]["CUDA_VISIBLE_DEVICES"] for s in specs.values()] == \
        ["0", "1", "3"]
    assert all(s["options"]["resources"] == {"GPU": 1} for s in specs.values())
    with pytest.raises(ConfigError, match="found no GPU"):
        local_gpu_worker_specs(profile, [])


def test_pinned_workers_really_see_their_own_device(monkeypatch):
    """The CPU-side mechanism of local-gpu: each worker process gets its own
    CUDA_VISIBLE_DEVICES and the GPU resource (no GPU needed to check the pinning)."""
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    profile = ClusterProfile(kind="local-gpu", n_workers=0, threads_per_worker=1,
                             gpus_per_worker=1)
    with connect(profile, quiet=True) as client:
        seen = client.run(lambda: os.environ["CUDA_VISIBLE_DEVICES"])
        futures = [client.submit(lambda i: os.environ["CUDA_VISIBLE_DEVICES"], i,
                                 resources={"GPU": 1}, pure=False) for i in range(6)]
        used = set(client.gather(futures))
    assert sorted(seen.values()) == ["0", "1"]
    assert used <= {"0", "1"}


def _overlapping_tasks(profile: ClusterProfile, n: int = 6) -> int:
    """The most GPU tasks that ran at once on ``profile``'s one pinned worker."""
    def busy(i):
        start = time.monotonic()
        time.sleep(0.4)
        return start, time.monotonic()

    with connect(profile, quiet=True) as client:
        spans = client.gather([client.submit(busy, i, resources=profile.task_resources,
                                             pure=False) for i in range(n)])
    return max(sum(s <= t < e for s, e in spans) for t, _ in spans)


def test_tasks_per_gpu_lets_that_many_tasks_share_a_gpu(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    one = ClusterProfile(kind="local-gpu", n_workers=0, threads_per_worker=2,
                         gpus_per_worker=1)
    two = dataclasses.replace(one, tasks_per_gpu=2)
    assert two.worker_resources == {"GPU": 2} and two.task_resources == {"GPU": 1}
    assert _overlapping_tasks(one) == 1
    assert _overlapping_tasks(two) == 2


def test_tasks_per_gpu_reaches_cluster_workers_and_is_checked(tmp_path):
    path = tmp_path / "gpu4.yaml"
    path.write_text("kind: slurm\nthreads_per_worker: 8\ngpus_per_worker: 1\n"
                    "tasks_per_gpu: 4\n")
    assert "--resources GPU=4" in slurm_job_script(load_profile(path))
    kube = dataclasses.replace(load_profile("kubernetes-gpu"), tasks_per_gpu=2)
    worker = kubernetes_cluster_spec(kube)["spec"]["worker"]["spec"]["containers"][0]
    assert worker["args"][-2:] == ["--resources", "GPU=2"]
    path.write_text("kind: local-gpu\nn_workers: 0\nthreads_per_worker: 2\n"
                    "gpus_per_worker: 1\ntasks_per_gpu: 4\n")
    with pytest.raises(ConfigError, match=r"gpu4\.yaml: cluster\.tasks_per_gpu: 4 tasks per "
                                          r"GPU need as many threads_per_worker"):
        load_profile(path)


def test_local_profile_runs_worker_processes():
    with connect(load_profile("local"), quiet=True) as client:
        pids = client.run(os.getpid)
    assert len(pids) == 2 and os.getpid() not in pids.values()


def _start(args, log):
    import subprocess

    return subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)


def test_run_on_a_cluster_started_like_slurm_and_kubernetes_start_one(simulated_tiny, tmp_path):
    """`dask scheduler` and two `dask worker` processes, as a batch job or a pod starts them;
    `lst-pipeline run --scheduler ADDRESS` fuses on them, one worker is SIGKILLed mid-run, and
    the cube is complete and the same as a run on the local profile."""
    import json
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    import numpy as np
    import yaml
    import zarr

    from conftest import config_dict
    from lst_pipeline.cli import main
    from lst_pipeline.io.cube_store import CubeStore

    dask = str(Path(sys.executable).parent / "dask")
    scheduler_file = tmp_path / "scheduler.json"
    log = (tmp_path / "cluster.log").open("w")
    procs = [_start([dask, "scheduler", "--host", "127.0.0.1", "--port", "0",
                     "--no-dashboard", "--scheduler-file", str(scheduler_file)], log)]
    try:
        deadline = time.monotonic() + 60
        while not scheduler_file.is_file() and time.monotonic() < deadline:
            time.sleep(0.2)
        address = json.loads(scheduler_file.read_text())["address"]
        procs += [_start([dask, "worker", address, "--nthreads", "1", "--memory-limit", "3GB",
                          "--no-dashboard", "--name", f"w{i}"], log) for i in range(2)]
        from distributed import Client

        with Client(address, timeout=60) as client:
            client.wait_for_workers(2, timeout=60)
        stack = simulated_tiny.inputs.stack
        paths = {}
        for name in ("remote", "local"):
            data = config_dict(tmp_path, inputs={"stack": str(stack)},
                               output={"cube": str(tmp_path / f"{name}.zarr")},
                               chunks={"time": 4})  # 48 chunks: time to kill a worker
            paths[name] = tmp_path / f"{name}.yaml"
            paths[name].write_text(yaml.safe_dump(data))
        run = subprocess.Popen([sys.executable, "-m", "lst_pipeline.cli", "run",
                                str(paths["remote"]), "--no-progress", "--scheduler", address],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        record = CubeStore(tmp_path / "remote.zarr")
        while len(record.done()) < 5:
            assert run.poll() is None, run.stdout.read()
            assert time.monotonic() < deadline + 240
            time.sleep(0.02)
        procs[1].send_signal(signal.SIGKILL)  # worker w0 dies mid-run
        out, _ = run.communicate(timeout=300)
        assert run.returncode == 0, out
        assert procs[1].wait(timeout=30) == -signal.SIGKILL
        assert main(["run", str(paths["local"]), "--no-progress"]) == 0
        with Client(address, timeout=60) as client:  # the chunk tasks ran on these workers
            ran = client.run_on_scheduler(
                lambda dask_scheduler: sorted(dask_scheduler.task_prefixes))
        assert any(p.startswith("fuse") for p in ran), ran
        remote = zarr.open_group(str(tmp_path / "remote.zarr"), mode="r")
        local = zarr.open_group(str(tmp_path / "local.zarr"), mode="r")
        assert remote.attrs["lst_pipeline:status"] == "complete"
        assert len(record.done()) == 48
        for name in ("lst", "qa", "reference_date"):
            np.testing.assert_array_equal(remote[name][:], local[name][:], err_msg=name)
    finally:
        for proc in reversed(procs):
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=30)
        log.close()
