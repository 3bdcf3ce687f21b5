import pytest
import torch

from lst_pipeline.errors import InputError
from lst_pipeline.model.checkpoint import (
    DEFAULT_CHECKPOINT,
    file_sha256,
    load_checkpoint,
    save_checkpoint,
)
from lst_pipeline.model.dlstfm import ArchitectureConfig, ModelSpec
from lst_pipeline.testing import TINY_SPEC, random_lst_inputs, randomised_model


@pytest.fixture
def saved(tmp_path):
    model = randomised_model(TINY_SPEC)
    path = save_checkpoint(tmp_path / "m.pt", model, training={"seed": 3, "mae_k": [1.5, 1.2]})
    return model, path


def test_round_trip_is_bit_exact(saved):
    model, path = saved
    loaded, meta = load_checkpoint(path)
    assert meta["spec"] == model.spec.to_dict()
    assert meta["training"] == {"seed": 3, "mae_k": [1.5, 1.2]}
    assert meta["receptive_radius"] == model.receptive_radius
    for (k1, v1), (k2, v2) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert k1 == k2 and torch.equal(v1, v2)
    f1, c1, c2 = random_lst_inputs(n=1, h=32, w=32)
    with torch.no_grad():
        assert torch.equal(model(f1, c1, c2), loaded(f1, c1, c2))
    assert not path.with_name("m.pt.partial").exists()


def test_missing_truncated_and_garbage_files(saved, tmp_path):
    _, path = saved
    with pytest.raises(InputError, match=r"nope\.pt: checkpoint not found"):
        load_checkpoint(tmp_path / "nope.pt")
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(InputError, match=r"truncated\.pt: not a readable lst_pipeline checkpoint"):
        load_checkpoint(truncated)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"\x00" * 1000)
    with pytest.raises(InputError, match="not a readable"):
        load_checkpoint(garbage)


class _Exploit:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_checkpoint_with_code_is_refused(tmp_path, capsys):
    path = tmp_path / "evil.pt"
    torch.save({"format": "lst_pipeline.dlstfm/1", "payload": _Exploit()}, path)
    with pytest.raises(InputError, match="not a readable"):
        load_checkpoint(path)
    assert "this must never run" not in capsys.readouterr().out


def test_other_architecture_or_format_refused(saved, tmp_path):
    _, path = saved
    payload = torch.load(path, weights_only=True)
    payload["spec"]["architecture"]["width"] = 16  # weights are of width 8
    torch.save(payload, tmp_path / "other.pt")
    with pytest.raises(InputError, match="does not match the DLSTFM architecture"):
        load_checkpoint(tmp_path / "other.pt")
    payload = torch.load(path, weights_only=True)
    payload["format"] = "someone-else/3"
    torch.save(payload, tmp_path / "fmt.pt")
    with pytest.raises(InputError, match="not a DLSTFM checkpoint of format"):
        load_checkpoint(tmp_path / "fmt.pt")
    payload = torch.load(path, weights_only=True)
    payload["receptive_radius"] = 3
    torch.save(payload, tmp_path / "rf.pt")
    with pytest.raises(InputError, match="stored receptive radius 3 differs"):
        load_checkpoint(tmp_path / "rf.pt")


def test_shipped_default_checkpoint_loads_and_is_small():
    model, meta = load_checkpoint()
    assert DEFAULT_CHECKPOINT.stat().st_size < 3 * 2**20
    assert meta["training"]["name"] == "dlstfm_gain" and model.spec.architecture.pixel_gain
    assert isinstance(model.spec.architecture, ArchitectureConfig)
    assert len(file_sha256(DEFAULT_CHECKPOINT)) == 64
    assert ModelSpec.from_dict(meta["spec"]) == model.spec
