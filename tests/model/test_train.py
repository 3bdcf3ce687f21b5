"""Training on tiny simulated stacks: loss goes down, runs are deterministic and resumable."""

import numpy as np
import pytest
import torch

from lst_pipeline.errors import ConfigError
from lst_pipeline.model.checkpoint import load_checkpoint
from lst_pipeline.model.data import make_pairs, sample_batch
from lst_pipeline.model.dlstfm import DLSTFM
from lst_pipeline.model.train import load_train_config
from lst_pipeline.testing import TINY_SPEC
from lst_pipeline.training import load_region, run_training, simulate_training_region

REGION = {"seed": 11, "size": 128, "end": "2021-04-30"}


def tiny_train_config(tmp_path, **optim):
    arch = TINY_SPEC.architecture
    return load_train_config({
        "name": "tiny", "workdir": str(tmp_path), "checkpoint": str(tmp_path / "tiny.pt"),
        "regions": [REGION], "validation_regions": [{**REGION, "seed": 12}],
        "model": {"width": arch.width, "blocks": arch.blocks, "scales": list(arch.scales),
                  "ffn_expansion": arch.ffn_expansion, "anomaly_radius": arch.anomaly_radius,
                  "tcm_hidden": arch.tcm_hidden},
        "optim": {"steps": 12, "batch_size": 2, "patch": 64, "loss_margin": 8,
                  "validate_every": 6, "validation_pairs": 3, **optim},
        "device": "cpu",
    })


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("train")


def test_config_errors_name_the_field(tmp_path):
    with pytest.raises(ConfigError, match=r"optim\.steps: expected an integer"):
        tiny_train_config(tmp_path, steps="many")
    with pytest.raises(ConfigError, match=r"regions\[0\]\.size: expected an integer"):
        load_train_config({"name": "x", "workdir": "w", "checkpoint": "c.pt",
                           "regions": [{"seed": 1, "size": "big"}]})
    with pytest.raises(ConfigError, match="no training data"):
        load_train_config({"name": "x", "workdir": "w", "checkpoint": "c.pt"})
    with pytest.raises(ConfigError, match="reference_offset_days: must be 0"):
        load_train_config({"name": "x", "workdir": "w", "checkpoint": "c.pt",
                           "regions": [REGION], "reference_offset_days": -1})


def test_pairs_split_by_date_and_samples_are_clean(workdir):
    region = load_region(simulate_training_region(tiny_train_config(workdir).regions[0],
                                                  workdir))
    train_pairs, val_pairs = make_pairs([region], max_gap_days=48, min_clear=0.2,
                                        validation_fraction=0.25)
    assert train_pairs and val_pairs
    cut = region.days.min() + 0.75 * (region.days.max() - region.days.min() + 1)
    assert all(region.days[j] < cut and region.days[i] < cut for _, i, j in train_pairs)
    assert all(region.days[j] >= cut for _, _, j in val_pairs)
    assert all(0 < abs(region.days[i] - region.days[j]) <= 48 for _, i, j in train_pairs)
    batch = sample_batch(np.random.default_rng(0), [region], train_pairs, 4, 64)
    assert len(batch) == 5 and all(b.shape == (4, 1, 64, 64) for b in batch)
    assert np.isfinite(batch[0]).mean() > 0.3


def test_a_few_steps_reduce_the_loss(workdir):
    region = load_region(simulate_training_region(tiny_train_config(workdir).regions[0],
                                                  workdir))
    pairs, _ = make_pairs([region], max_gap_days=48, min_clear=0.2, validation_fraction=0.0)
    ref, ref_c, tgt_c, tgt, gain = (torch.from_numpy(np.ascontiguousarray(a)) for a in
                                    sample_batch(np.random.default_rng(1), [region], pairs, 4, 64))
    assert torch.all(gain == 1.0)  # a region without gains
    torch.manual_seed(0)
    model = DLSTFM(TINY_SPEC)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)

    def loss():
        pred = model(ref, ref_c, tgt_c)
        ok = torch.isfinite(pred) & torch.isfinite(tgt)
        return (pred[ok] - tgt[ok]).abs().mean()

    start = loss().item()
    for _ in range(40):
        opt.zero_grad()
        value = loss()
        value.backward()
        opt.step()
    assert loss().item() < 0.8 * start


def test_training_is_deterministic_keeps_best_and_resumes_exactly(workdir):
    config = tiny_train_config(workdir)
    record = run_training(config, progress=False, log=lambda *_: None)
    assert [h["step"] for h in record["history"]] == [6, 12]
    _, meta = load_checkpoint(config.checkpoint)
    assert meta["training"]["name"] == "tiny"
    assert meta["training"]["best"]["validation_regions"]["pixels"] > 1000
    last_a, _ = load_checkpoint(workdir / "tiny.state.last.pt")

    # the same run, stopped after step 6 and resumed, ends with identical weights
    run_training(config, progress=False, stop_at_step=6, log=lambda *_: None)
    run_training(config, progress=False, resume=True, log=lambda *_: None)
    last_b, _ = load_checkpoint(workdir / "tiny.state.last.pt")
    for (k, va), (_, vb) in zip(last_a.state_dict().items(), last_b.state_dict().items()):
        assert torch.equal(va, vb), k


def test_architecture_errors_name_the_model_field(tmp_path):
    with pytest.raises(ConfigError, match=r"model\.width: 10 must be a multiple of 4"):
        load_train_config({"name": "x", "workdir": "w", "checkpoint": "c.pt",
                           "regions": [REGION], "model": {"width": 10}})


def test_the_shipped_recipe_describes_the_shipped_network():
    """train_dlstfm.yaml must build the architecture of the checkpoint it claims to make."""
    import dataclasses
    from pathlib import Path

    import lst_pipeline
    from lst_pipeline.model.checkpoint import DEFAULT_CHECKPOINT, V1_CHECKPOINT

    pipelines = Path(lst_pipeline.__file__).parent / "pipelines"
    shipped = load_train_config(pipelines / "train_dlstfm.yaml")
    model, meta = load_checkpoint(V1_CHECKPOINT)
    assert dataclasses.asdict(shipped.model) == dataclasses.asdict(model.spec.architecture)
    assert meta["training"]["name"] == shipped.name
    assert meta["training"]["optim"]["steps"] == shipped.optim.steps
    randomised = load_train_config(pipelines / "train_dlstfm_randomised.yaml")
    assert randomised.model.safm == "atrous" and randomised.name != shipped.name
    # the default, the pixel-gain network: its recipe, from the first network's weights
    gain = load_train_config(pipelines / "train_dlstfm_gain.yaml")
    default, meta = load_checkpoint(DEFAULT_CHECKPOINT)
    assert dataclasses.asdict(gain.model) == dataclasses.asdict(default.spec.architecture)
    assert default.spec.architecture.pixel_gain and meta["training"]["name"] == gain.name
    assert Path(gain.init_checkpoint).name == V1_CHECKPOINT.name
    # the candidate trained on rebuilt references starts from the default, same tensors
    offset = load_train_config(pipelines / "train_dlstfm_offset.yaml")
    assert Path(offset.init_checkpoint).name == DEFAULT_CHECKPOINT.name
    assert offset.model == gain.model and offset.regions == gain.regions
    assert offset.reference_offset_days == 32 and gain.reference_offset_days == 0
    # the snow candidate: the default's regions and weights, plus cold regions with snow
    snow = load_train_config(pipelines / "train_dlstfm_snow.yaml")
    assert Path(snow.init_checkpoint).name == DEFAULT_CHECKPOINT.name
    assert snow.model == gain.model and snow.regions[:len(gain.regions)] == gain.regions
    snowy = [r for r in snow.regions if r.snow_events_per_year > 0]
    assert len(snowy) == 4 and len(snow.regions) == len(gain.regions) + 4


def test_a_snowy_region_reaches_the_simulator_plain_or_randomised():
    from lst_pipeline.model.train import RegionSpec, realise

    _, params = realise(RegionSpec(seed=5, climate_shift_k=-15.0, snow_events_per_year=25))
    assert params["snow_events_per_year"] == 25 and params["climate_shift_k"] == -15.0
    _, drawn = realise(RegionSpec(seed=5, size=448, randomise=True, snow_events_per_year=25))
    assert drawn["snow_events_per_year"] == 25 and -12 <= drawn["climate_shift_k"] <= 8
    _, none = realise(RegionSpec(seed=5))  # the regions of every shipped recipe: no snow
    assert none["snow_events_per_year"] == 0 and none["climate_shift_k"] == 0
    with pytest.raises(ConfigError, match="climate_shift_k needs randomise off"):
        RegionSpec(seed=5, randomise=True, climate_shift_k=-15.0)  # would be ignored


def test_gains_leave_out_the_date_itself_and_the_held_out_dates(workdir):
    import dataclasses

    from lst_pipeline.model.data import with_gains

    region = load_region(simulate_training_region(tiny_train_config(workdir).regions[0],
                                                  workdir))
    gained = with_gains(region, max_gap_days=48)
    assert gained.gain.shape == region.fine.shape
    assert np.isfinite(gained.gain).all() and gained.gain.std() > 0.05
    # a date's gain does not change when its own image does
    changed = region.fine.copy()
    changed[2] += 5.0
    again = with_gains(dataclasses.replace(region, fine=changed), max_gap_days=48)
    np.testing.assert_array_equal(again.gain[2], gained.gain[2])
    assert not np.array_equal(again.gain[1], gained.gain[1])
    # with fit, only those dates enter: the others' images change nothing
    fit = np.array([0, 1, 3])
    a = with_gains(region, max_gap_days=48, fit=fit)
    b = with_gains(dataclasses.replace(region, fine=changed), max_gap_days=48, fit=fit)
    np.testing.assert_array_equal(a.gain, b.gain)
    batch = sample_batch(np.random.default_rng(0), [gained],
                         make_pairs([gained], max_gap_days=48, min_clear=0.2,
                                    validation_fraction=0.0)[0], 2, 64)
    assert len(batch) == 5 and not np.all(batch[4] == 1.0)
    # with the references' MODIS rebuilt from their Landsat, the same holds, and the
    # rebuilt MODIS changes the gains
    rebuilt = dataclasses.replace(region, offset_timescale_days=32)
    with_offset = with_gains(rebuilt, max_gap_days=48)
    assert np.isfinite(with_offset.gain).all()
    assert np.abs(with_offset.gain - gained.gain).max() > 0.01
    moved = dataclasses.replace(rebuilt, fine=changed)
    np.testing.assert_array_equal(with_gains(moved, max_gap_days=48).gain[2],
                                  with_offset.gain[2])
    np.testing.assert_array_equal(with_gains(rebuilt, max_gap_days=48, fit=fit).gain,
                                  with_gains(moved, max_gap_days=48, fit=fit).gain)


def test_a_pixel_gain_network_trains_from_an_initial_checkpoint(workdir, tmp_path):
    import dataclasses

    from lst_pipeline.model.checkpoint import save_checkpoint
    from lst_pipeline.testing import randomised_model

    start = save_checkpoint(tmp_path / "start.pt", randomised_model(), training={"name": "s"})
    base = tiny_train_config(workdir, steps=2, validate_every=2)
    config = dataclasses.replace(
        base, checkpoint=tmp_path / "gain.pt", init_checkpoint=start, name="gain",
        model=dataclasses.replace(TINY_SPEC.architecture, pixel_gain=True),
        reference_offset_days=32)
    record = run_training(config, progress=False, log=lambda *_: None)
    assert record["history"][-1]["step"] == 2
    model, meta = load_checkpoint(config.checkpoint)
    assert model.spec.architecture.pixel_gain
    assert meta["training"]["init_checkpoint"] == str(start)
    assert len(meta["training"]["init_checkpoint_sha256"]) == 64
    assert meta["training"]["reference_offset_days"] == 32
    with pytest.raises(ConfigError, match="init_checkpoint"):
        other = dataclasses.replace(config, model=dataclasses.replace(config.model, width=16))
        run_training(other, progress=False, log=lambda *_: None)


def test_validation_crops_a_region_to_whole_tiles_of_a_strided_network():
    """A strided network at factor 29 takes tiles of lcm(8, 29) = 232 px: a 435 px region
    stopped training at its first validation before."""
    import dataclasses

    from lst_pipeline.model.data import RegionData
    from lst_pipeline.model.train import evaluate_pairs
    from lst_pipeline.testing import randomised_model

    spec = dataclasses.replace(TINY_SPEC, architecture=dataclasses.replace(
        TINY_SPEC.architecture, safm="strided"))
    rng = np.random.default_rng(0)
    fine = (300 + rng.normal(0, 2, (2, 290, 290))).astype(np.float32)
    region = RegionData("r", fine, np.full_like(fine, 300.0), np.array([0, 16]), np.ones(2), 29)
    model = randomised_model(spec)
    assert model.alignment_at(29) == 232
    scores = evaluate_pairs(model, [region], [(0, 0, 1)], "cpu")
    assert scores["pixels"] == 232 * 232
    assert scores["reference_change_mae_k"] > 1.0 and np.isfinite(scores["mae_k"])


def test_without_held_out_regions_the_log_says_none(workdir, tmp_path):
    """Training on the user's own regions only: the held-out score is 'none', not 0 K."""
    import dataclasses

    base = tiny_train_config(workdir, steps=2, validate_every=2)
    config = dataclasses.replace(base, checkpoint=tmp_path / "own.pt", validation_regions=())
    lines: list[str] = []
    record = run_training(config, progress=False, log=lines.append)
    step = next(line for line in lines if line.startswith("step 2:"))
    assert step.endswith("held-out regions none")
    assert "validation MAE by date none" not in step
    assert record["history"][-1]["validation_regions"]["pixels"] == 0
