"""DLSTFM checkpoints: weights + architecture + normalisation + receptive field + record.

Checkpoints are written with ``torch.save`` and read with ``torch.load(weights_only=True)``:
a file from elsewhere can hold only tensors and plain Python data, never code. Loading
validates the format, rebuilds the architecture from the stored spec, loads the weights
strictly and checks the stored receptive field, so a checkpoint of another architecture, a
truncated file or a missing file fails with a message naming the file.
"""

from __future__ import annotations

import hashlib
import os
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch

from lst_pipeline._version import __version__
from lst_pipeline.errors import InputError
from lst_pipeline.model.dlstfm import DLSTFM, ModelSpec

FORMAT = "lst_pipeline.dlstfm/1"

#: The checkpoint used when ``fusion.checkpoint`` is empty: the pixel-gain network (its
#: recipe is ``pipelines/train_dlstfm_gain.yaml``; why it is the default:
#: ``benchmarks/README.md``).
DEFAULT_CHECKPOINT = Path(__file__).parent / "weights" / "dlstfm_gain.pt"
#: The first shipped network (the default until 2026-12-04; ``pipelines/train_dlstfm.yaml``),
#: the starting point of the pixel-gain network. Cubes made with it resume with
#: ``fusion.checkpoint`` set to this file.
V1_CHECKPOINT = Path(__file__).parent / "weights" / "dlstfm_v1.pt"


def save_checkpoint(path: Path, model: DLSTFM, *, training: dict[str, Any]) -> Path:
    """Write a checkpoint atomically (a partial file never replaces a good one).

    Parameters
    ----------
    path
        Destination file.
    model
        The network (its spec and weights are stored).
    training
        Training record: data, seeds, validation metrics ... (plain JSON-like data).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": FORMAT,
        "spec": model.spec.to_dict(),
        "state_dict": {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()},
        "receptive_radius": model.receptive_radius,
        "alignment": model.alignment,
        "training": training,
        "lst_pipeline_version": __version__,
    }
    tmp = path.with_name(path.name + ".partial")
    torch.save(payload, tmp)
    os.replace(tmp, path)
    return path


def load_checkpoint(path: Path | str | None = None, *,
                    map_location: str | torch.device = "cpu") -> tuple[DLSTFM, dict[str, Any]]:
    """Load and validate a checkpoint.

    Parameters
    ----------
    path
        Checkpoint file; ``None`` for the shipped default.
    map_location
        Device the weights are loaded to.

    Returns
    -------
    model : DLSTFM
        In eval mode.
    payload : dict
        The stored metadata (``spec``, ``training``, ``receptive_radius`` ...), without weights.

    Raises
    ------
    InputError
        Missing, unreadable or truncated file; unknown format; another architecture.
    """
    path = Path(path) if path is not None else DEFAULT_CHECKPOINT
    payload = _read_payload(path, map_location)
    try:
        spec = ModelSpec.from_dict(payload["spec"])
        model = DLSTFM(spec)
        model.load_state_dict(payload["state_dict"], strict=True)
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise InputError(
            f"{path}: checkpoint does not match the DLSTFM architecture it declares: {exc}"
        ) from exc
    if payload.get("receptive_radius") != model.receptive_radius:
        raise InputError(
            f"{path}: stored receptive radius {payload.get('receptive_radius')} differs from "
            f"the architecture's {model.receptive_radius}; the checkpoint is inconsistent"
        )
    model.to(map_location).eval()
    meta = {k: v for k, v in payload.items() if k != "state_dict"}
    return model, meta


@lru_cache(maxsize=16)
def _cached_spec(path: str, mtime_ns: int) -> ModelSpec:
    payload = _read_payload(Path(path), "cpu")
    try:
        return ModelSpec.from_dict(payload["spec"])
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"{path}: checkpoint has no valid architecture ({exc})") from exc


def read_spec(path: Path | str | None = None) -> ModelSpec:
    """The architecture a checkpoint declares, validated without building the network.

    Planning needs only this: the receptive radius and the alignment.

    Raises
    ------
    InputError
        As :func:`load_checkpoint`.
    """
    path = Path(path) if path is not None else DEFAULT_CHECKPOINT
    if not path.is_file():
        raise InputError(f"{path}: checkpoint not found")
    return _cached_spec(str(path.resolve()), path.stat().st_mtime_ns)


def _read_payload(path: Path, map_location: str | torch.device) -> dict[str, Any]:
    """The checkpoint's contents, loaded safely (tensors and plain data only) and checked."""
    if not path.is_file():
        raise InputError(f"{path}: checkpoint not found")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # truncated zip, pickle with code, random bytes ...
        # torch's own text suggests weights_only=False, which would let the file run code:
        # never pass that advice on
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        detail = "" if "weights_only" in str(exc) or "Weights only" in first else f": {first}"
        raise InputError(
            f"{path}: not a readable lst_pipeline checkpoint (truncated, corrupt, or it "
            "contains objects other than tensors and plain data, which are never loaded "
            f"because they could run code){detail}"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
        raise InputError(f"{path}: not a DLSTFM checkpoint of format {FORMAT} (found {found!r})")
    return payload


def file_sha256(path: Path | str) -> str:
    """Hex SHA-256 of a file (checkpoint provenance and per-worker model cache key)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
