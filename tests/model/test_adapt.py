"""lst-pipeline adapt: fine-tuning on the region's own stack, validated on held-out dates."""

import numpy as np
import pytest
import torch
import yaml

from conftest import config_dict
from lst_pipeline.cli import main
from lst_pipeline.model.adapt import time_block_split
from lst_pipeline.model.checkpoint import load_checkpoint
from lst_pipeline.resample import upsample_bilinear


def test_dates_are_held_out_in_blocks_of_time():
    days = np.arange(0, 160, 8)
    train, val = time_block_split(days, np.ones(len(days), bool), block_days=24, every=3)
    assert set(train) | set(val) == set(range(len(days))) and not set(train) & set(val)
    held_days = days[val]
    assert all(24 <= d % 72 < 48 for d in held_days)  # the second block of every three
    # a held-out date has training dates on both sides
    assert days[train].min() < held_days.min() and days[train].max() > held_days.max()
    cloudy = np.ones(len(days), bool)
    cloudy[:3] = False
    train, val = time_block_split(days, cloudy)
    assert not {0, 1, 2} & (set(train) | set(val))


@pytest.fixture(scope="module")
def stack_8day(tmp_path_factory):
    from conftest import tiny_config
    from lst_pipeline.simulate import simulate_region

    root = tmp_path_factory.mktemp("adapt")
    config = tiny_config(root, simulation={"landsat_revisit_days": 8, "seed": 21},
                         fusion={"method": "dlstfm", "device": "cpu"})
    simulate_region(config, progress=False)
    return root, config


def adapt_through_the_cli(root, checkpoint, tmp_path, steps):
    """Run ``lst-pipeline adapt`` on the stack under ``root`` from ``checkpoint``."""
    data = config_dict(root, fusion={"method": "dlstfm", "device": "cpu",
                                     "checkpoint": str(checkpoint)})
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(data))
    out = tmp_path / "adapted.pt"
    args = ["adapt", str(path), "--steps", str(steps), "--out", str(out), "--no-progress"]
    assert main(args) == 0
    return out


def test_adapt_through_the_cli_writes_a_safe_checkpoint_and_a_table(stack_8day,
                                                                    tiny_checkpoint,
                                                                    tmp_path, capsys):
    root, config = stack_8day
    out = adapt_through_the_cli(root, tiny_checkpoint, tmp_path, 6)
    text = capsys.readouterr().out
    for row in ("dlstfm adapted", "dlstfm start", "reference_change", "starfm"):
        assert f"| {row} |" in text
    assert f"fusion: {{checkpoint: {out}}}" in text
    payload = torch.load(out, weights_only=True)  # no code, only tensors and plain data
    record = payload["training"]
    assert record["steps"] == 6 and record["stack"] == str(config.inputs.stack)
    assert len(record["stack_content_sha256"]) == 64
    assert set(record["validation_dates"]).isdisjoint(record["train_dates"])
    assert record["validation"]["dlstfm adapted"]["mae_k"] <= \
        record["validation"]["dlstfm start"]["mae_k"] + 1e-9  # the best state is kept
    assert record["reference_offset_days"] == config.fusion.reference_offset_days == 32
    # the table says when its adapted row was chosen on the dates it is scored on
    assert ("optimistic" in text) == (record["best_step"] > 0)
    assert ("did not improve" in text) == (record["best_step"] == 0)
    model, _ = load_checkpoint(out)
    assert model.spec == load_checkpoint(tiny_checkpoint)[0].spec


def test_adapt_refuses_a_stack_with_too_few_dates(simulated_tiny, tmp_path, capsys):
    data = config_dict(tmp_path)
    data["inputs"]["stack"] = str(simulated_tiny.inputs.stack)
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(data))
    code = main(["adapt", str(path), "--steps", "2", "--min-clear", "0.99", "--no-progress"])
    assert code == 2 and "adapt needs at least 3" in capsys.readouterr().err


def test_adapt_a_strided_network_on_a_grid_that_is_not_a_multiple_of_its_alignment(
        tmp_path, capsys):
    """The shipped network pools on strided windows: its tiles are multiples of
    lcm(coarse factor, 8) px (248 at factor 31). Validation windows and training patches
    must be cut to that, not only to whole coarse pixels (a 620 px grid at factor 31
    crashed adapt before)."""
    import dataclasses

    from conftest import tiny_config
    from lst_pipeline.model.checkpoint import save_checkpoint
    from lst_pipeline.model.dlstfm import DLSTFM
    from lst_pipeline.simulate import simulate_region
    from lst_pipeline.testing import TINY_SPEC

    strided = dataclasses.replace(TINY_SPEC, architecture=dataclasses.replace(
        TINY_SPEC.architecture, safm="strided"))
    network = DLSTFM(strided)
    align = network.alignment_at(10)
    assert align == 40 and 150 % align  # 15 coarse pixels of 10: not a whole tile
    start = save_checkpoint(tmp_path / "strided.pt", network, training={"name": "strided"})
    edge = 150 * 30
    grid = {"bounds": [400000, 6200000, 400000 + edge, 6200000 + edge], "coarse_factor": 10}
    config = tiny_config(tmp_path, grid=grid,
                         simulation={"landsat_revisit_days": 8, "seed": 21},
                         fusion={"method": "dlstfm", "device": "cpu",
                                 "checkpoint": str(start)})
    simulate_region(config, progress=False)
    data = config_dict(tmp_path, grid=grid,
                       fusion={"method": "dlstfm", "device": "cpu", "checkpoint": str(start)})
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(data))
    out = tmp_path / "adapted.pt"
    assert main(["adapt", str(path), "--steps", "3", "--out", str(out), "--no-progress"]) == 0
    record = torch.load(out, weights_only=True)["training"]
    assert record["patch"] % align == 0
    assert record["validation_pixels"] > 0
    assert record["validation"]["dlstfm adapted"]["mae_k"] < 20.0


def test_adapt_a_network_built_for_the_pixel_gain(stack_8day, tmp_path, capsys):
    import dataclasses

    from lst_pipeline.model.checkpoint import save_checkpoint
    from lst_pipeline.testing import TINY_SPEC, randomised_model

    root, _ = stack_8day
    spec = dataclasses.replace(TINY_SPEC, architecture=dataclasses.replace(
        TINY_SPEC.architecture, pixel_gain=True))
    start = save_checkpoint(tmp_path / "gain.pt", randomised_model(spec), training={"name": "g"})
    out = adapt_through_the_cli(root, start, tmp_path, 4)
    assert "| dlstfm adapted |" in capsys.readouterr().out
    model, _ = load_checkpoint(out)
    assert model.spec.architecture.pixel_gain
    record = torch.load(out, weights_only=True)["training"]  # no code, plain data
    start_mae = record["validation"]["dlstfm start"]["mae_k"]
    assert record["validation"]["dlstfm adapted"]["mae_k"] <= start_mae + 1e-9


def test_a_reference_s_modis_in_adapt_is_what_a_run_hiding_the_target_reads(stack_8day):
    from lst_pipeline.fusion.block import read_block_inputs
    from lst_pipeline.fusion.engine import plan_run
    from lst_pipeline.fusion.overpass import planned_overpass
    from lst_pipeline.grid import Window
    from lst_pipeline.training import load_region

    _, config = stack_8day
    assert config.fusion.reference_offset_days == 32  # the default
    task = plan_run(config, log=lambda _: None).task
    overpass, _ = planned_overpass(config.inputs.stack, config.fusion.overpass_correction)
    region = load_region(config.inputs.stack, overpass=overpass, reference_offset_days=32)
    raw = load_region(config.inputs.stack, overpass=overpass)
    ny, nx = region.fine.shape[1:]
    j = len(region.days) // 2  # a target date in the middle of the series
    inputs = read_block_inputs(task, int(region.days[j] - task.first_day),
                               int(region.days[j] - task.first_day) + 1, Window(0, ny, 0, nx),
                               hide_day=int(region.days[j]))
    assert len(inputs.landsat_days) >= 2
    whole = slice(0, ny), slice(0, nx)
    changed = []
    for k, day in enumerate(inputs.landsat_days):
        i = int(np.flatnonzero(region.days == day)[0])
        np.testing.assert_allclose(region.reference_coarse(j)[i], inputs.landsat_modis[k],
                                   atol=1e-4)
        np.testing.assert_allclose(region.reference_up(i, j, *whole),
                                   upsample_bilinear(inputs.landsat_modis[k],
                                                     region.coarse_factor), atol=1e-4)
        # a window upsamples as the whole image does
        np.testing.assert_array_equal(region.reference_up(i, j, slice(32, 96), slice(64, 128)),
                                      region.reference_up(i, j, *whole)[32:96, 64:128])
        changed.append(np.nanmax(np.abs(region.reference_up(i, j, *whole)
                                        - raw.coarse_up[i])))
    # it differs from the references' MODIS as observed (where their Landsat sees cells)
    assert max(changed) > 0.1
    assert raw.reference_coarse(j) is None
