"""lst-pipeline adapt: fine-tuning on the region's own stack, validated on held-out dates."""

import numpy as np
import pytest
import torch
import yaml

from conftest import config_dict
from lst_pipeline.cli import main
from lst_pipeline.model.adapt import time_block_split
from lst_pipeline.model.checkpoint import load_checkpoint


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
