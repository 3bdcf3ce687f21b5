"""`lst-pipeline bench`: the JSON record's figures are present, positive and add up."""

from __future__ import annotations

import json

import pytest
import yaml

from conftest import config_dict, tiny_config
from lst_pipeline.bench import SyntheticRegion, bench_pipeline, format_table, run_bench
from lst_pipeline.cli import main
from lst_pipeline.errors import ConfigError, InputError
from lst_pipeline.model.checkpoint import DEFAULT_CHECKPOINT, V1_CHECKPOINT, file_sha256

OTHER_CHECKPOINT = V1_CHECKPOINT  # not the default


def _check_record(record, *, pixel_days, workers=2):
    assert record["pixel_days"] == pixel_days
    wall = record["wall_seconds"]
    assert wall > 0
    assert record["pixel_days_per_second"] == pytest.approx(pixel_days / wall)
    assert record["pixel_days_per_second_per_worker"] == pytest.approx(
        pixel_days / wall / workers)
    assert record["devices"]["kind"] == "cpu" and record["devices"]["count"] == workers
    stages = record["stage_seconds"]
    for name in ("read", "fuse", "upsample", "model", "host_to_device", "forward",
                 "device_to_host", "write"):
        assert stages[name] >= 0, name
    for name in ("read", "fuse", "upsample", "forward", "write"):
        assert stages[name] > 0, name
    # Stages nest: upsample and the network call happen inside fuse; the network call is
    # copies + forward; and summed task time fits in wall time x worker threads.
    assert stages["upsample"] + stages["model"] <= stages["fuse"] + 1e-6
    parts = stages["host_to_device"] + stages["forward"] + stages["device_to_host"]
    assert parts == pytest.approx(stages["model"])
    threads = record["cluster"]["threads_per_worker"][0]
    assert record["task_seconds"] <= wall * workers * threads
    assert len(record["peak_memory_mib_per_worker"]) == workers
    assert all(v > 50 for v in record["peak_memory_mib_per_worker"].values())
    for key in ("numpy", "dask", "distributed", "zarr", "torch", "lst_pipeline"):
        assert record["versions"][key]
    assert record["machine"]["cpu_count"] >= 1


@pytest.mark.slow
def test_bench_record_on_a_simulated_region(client, tmp_path):
    region = SyntheticRegion(size=64, days=32, chunk=32, method="dlstfm", device="cpu")
    config, simulate_seconds = bench_pipeline(tmp_path, region=region)
    assert simulate_seconds > 0
    record = run_bench(config, client, cluster="test", performance_report=tmp_path / "r.html")
    _check_record(record, pixel_days=32 * 64 * 64)
    assert record["config"]["method"] == "dlstfm" and record["config"]["n_chunks"] == 4
    assert record["config"]["checkpoint_sha256"] == file_sha256(DEFAULT_CHECKPOINT)
    assert (tmp_path / "r.html").stat().st_size > 10_000
    table = format_table(record)
    assert "pixel-days/s" in table and "forward" in table


def test_stage_times_add_up_when_tasks_share_a_worker(tmp_path):
    """Two tasks at once in one worker process (threads, as with ``tasks_per_gpu``): each
    counts its own network time, not its neighbour's (the stages still nest)."""
    from lst_pipeline.cluster import ClusterProfile, connect

    region = SyntheticRegion(size=128, days=32, chunk=64, method="dlstfm", device="cpu")
    config, _ = bench_pipeline(tmp_path, region=region)
    with connect(ClusterProfile(n_workers=1, threads_per_worker=2), quiet=True) as client:
        record = run_bench(config, client, cluster="test")
    _check_record(record, pixel_days=32 * 128 * 128, workers=1)


def test_bench_cli_on_a_users_pipeline(small_cube, client, tmp_path, capsys):
    out = tmp_path / "rec" / "bench.json"
    user_cube = small_cube.output.cube
    before = sorted(p.stat().st_mtime_ns for p in user_cube.rglob("*") if p.is_file())
    cfg = config_dict(small_cube.output.cube.parent, output={"dtype": "int16"},
                      grid={"bounds": [400000, 6200000, 400000 + 64 * 30, 6200000 + 64 * 30]},
                      dates={"end": "2021-02-09"}, chunks={"time": 16, "y": 32, "x": 32})
    yaml_path = tmp_path / "pipeline.yaml"
    yaml_path.write_text(yaml.safe_dump(cfg))
    assert main(["bench", str(yaml_path), "--days", "20", "--scheduler",
                 client.scheduler.address, "--no-progress", "--mixed-precision",
                 "-o", str(out)]) == 0
    record = json.loads(out.read_text())
    assert record["config"]["days"] == 20 and record["source"] == str(yaml_path)
    assert record["config"]["mixed_precision"] is True  # bf16 on GPU workers; no-op on CPU
    assert record["pixel_days"] == 20 * 64 * 64 and record["wall_seconds"] > 0
    assert record["pixel_days_per_second"] == pytest.approx(
        record["pixel_days"] / record["wall_seconds"])
    assert "pixel-days/s" in capsys.readouterr().out
    # The benchmark wrote to scratch: the user's cube is untouched.
    after = sorted(p.stat().st_mtime_ns for p in user_cube.rglob("*") if p.is_file())
    assert before == after


def test_bench_errors(tmp_path):
    with pytest.raises(ConfigError, match="multiples of 32"):
        SyntheticRegion(size=100)
    with pytest.raises(InputError, match="input stack of pipeline 'tiny' not found"):
        bench_pipeline(tmp_path, config=tiny_config(tmp_path))
    with pytest.raises(InputError, match=r"missing\.pt: bench --checkpoint not found"):
        SyntheticRegion(checkpoint=tmp_path / "missing.pt")


def test_bench_cli_fuses_with_the_checkpoint_it_is_given(client, tmp_path):
    out = tmp_path / "bench.json"
    assert main(["bench", "--size", "64", "--days", "32", "--chunk", "64", "--device", "cpu",
                 "--checkpoint", str(OTHER_CHECKPOINT), "--scheduler", client.scheduler.address,
                 "--workdir", str(tmp_path), "--no-progress", "-o", str(out)]) == 0
    record = json.loads(out.read_text())
    assert record["config"]["mixed_precision"] is False
    assert record["config"]["checkpoint"] == str(OTHER_CHECKPOINT.resolve())
    assert record["config"]["checkpoint_sha256"] == file_sha256(OTHER_CHECKPOINT)
    assert record["pixel_days"] == 32 * 64 * 64


def test_bench_of_an_ensemble_records_its_fitted_weights(client, tmp_path):
    region = SyntheticRegion(size=64, days=32, chunk=32, method="ensemble", device="cpu")
    config, _ = bench_pipeline(tmp_path, region=region)
    record = run_bench(config, client, cluster="test")
    _check_record(record, pixel_days=32 * 64 * 64)
    fitted = record["config"]["ensemble"]
    assert fitted["members"] == ["dlstfm", "starfm", "reference_change"]
    assert sum(fitted["weights"]) == pytest.approx(1.0) and min(fitted["weights"]) >= 0
    assert "ensemble   weights dlstfm " in format_table(record)
