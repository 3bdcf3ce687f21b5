"""Fusion methods: predict fine LST of a target day from one (or two) reference pairs.

Every method implements :class:`FusionMethod`; the engine and
:func:`~lst_pipeline.fusion.kernel.fuse_block` do everything else. What a method is
(name, parameters, pairs, halo) is declared once, in :mod:`lst_pipeline.fusion.registry`;
this module holds the computations.

Methods are built once per process by :func:`get_method` (cached on its arguments), so a
Dask worker loads the DLSTFM checkpoint once and reuses it for every task.
"""

from __future__ import annotations

import dataclasses
import importlib
import math
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from lst_pipeline.errors import InputError
from lst_pipeline.fusion.registry import (
    EnsembleParams,
    StarfmParams,
    UbestarfmParams,
    method_geometry,
    method_info,
)
from lst_pipeline.fusion.timing import timed
from lst_pipeline.resample import upsample_bilinear


class FusionMethod(Protocol):
    """Everything callers use of a fusion method.

    Attributes
    ----------
    name
        Its registry name.
    alignment
        Read windows start on multiples of this on the fine grid (with the coarse factor).
    pairs
        1: each reference predicts alone (:meth:`predict`); 2: a reference before and one
        after the day enter one prediction (:meth:`predict_pairs`).
    """

    name: str
    pairs: int

    @property
    def uses_gain(self) -> bool:
        """Whether :meth:`predict` needs the per-pixel gain (the kernel fits it only then)."""

    @property
    def alignment(self) -> int:
        """Read windows start on multiples of this (read-only: a class value or a property)."""

    def halo(self, coarse_factor: int) -> int:
        """Fine pixels of context needed on each side of an output block."""

    def predict(self, reference_fine: np.ndarray, reference_coarse_up: np.ndarray,
                target_coarse: np.ndarray, *, coarse_factor: int,
                gain: np.ndarray | None = None) -> np.ndarray:
        """Predict ``(N, Y, X)`` fine LST (K) for ``N`` (reference, target) pairs.

        ``reference_fine`` and ``reference_coarse_up`` (the reference MODIS already upsampled
        to the fine grid; per pixel it matches the date of ``reference_fine``, which may be a
        composite of several dates) are ``(N, Y, X)``, ``target_coarse`` is ``(N, Y/f, X/f)``;
        NaN marks unusable pixels on input and pixels without a prediction on output.
        ``gain`` is ``(N, Y, X)`` each pixel's gain of fine on coarse LST over the nearby
        Landsat dates (:mod:`lst_pipeline.fusion.gain`), given to methods whose
        ``uses_gain`` is true and None otherwise.
        """

    def predict_pairs(self, reference_fine: np.ndarray, reference_coarse_up: np.ndarray,
                      target_coarse: np.ndarray, *, coarse_factor: int) -> np.ndarray:
        """Predict ``(N, Y, X)`` from ``(N, P, Y, X)`` references (``P`` pairs each)."""

    def describe(self) -> dict:
        """Provenance attributes for the output cube."""


class _Method:
    """Defaults shared by the methods: one pair, no network time, halo from the registry."""

    name = ""
    alignment = 1
    pairs = 1
    uses_gain = False
    params: Any = None

    def halo(self, coarse_factor: int) -> int:
        """Fine pixels of context needed on each side (:func:`method_geometry`)."""
        return method_geometry(self.name, coarse_factor, params=self.params)[0]

    def predict_pairs(self, reference_fine: np.ndarray, reference_coarse_up: np.ndarray,
                      target_coarse: np.ndarray, *, coarse_factor: int) -> np.ndarray:
        """Single-pair methods predict from the first pair only."""
        return self.predict(reference_fine[:, 0], reference_coarse_up[:, 0], target_coarse,
                            coarse_factor=coarse_factor)

    def predict(self, reference_fine: np.ndarray, reference_coarse_up: np.ndarray,
                target_coarse: np.ndarray, *, coarse_factor: int,
                gain: np.ndarray | None = None) -> np.ndarray:
        raise NotImplementedError

    def describe(self) -> dict:
        """The method's name (and parameters) for the cube's provenance."""
        out: dict[str, Any] = {"lst_pipeline:method": self.name}
        if self.params is not None:
            out["lst_pipeline:method_params"] = dataclasses.asdict(self.params)
        return out


class ReferenceChangeMethod(_Method):
    """Reference Landsat plus the MODIS change since the reference date.

    ``F2 = F1 + up(C2) - up(C1)``, with ``up`` the NaN-aware bilinear upsampling of
    :func:`~lst_pipeline.resample.upsample_bilinear`. The physically simplest method:
    it keeps the reference's spatial detail and assumes every pixel of a coarse cell warmed
    or cooled by the same amount.
    """

    name = "reference_change"

    def predict(self, reference_fine: np.ndarray, reference_coarse_up: np.ndarray,
                target_coarse: np.ndarray, *, coarse_factor: int,
                gain: np.ndarray | None = None) -> np.ndarray:
        """Reference plus the MODIS change, upsampled bilinearly."""
        target_up = upsample_bilinear(target_coarse, coarse_factor)
        return (reference_fine + (target_up - reference_coarse_up)).astype(np.float32)


class GainChangeMethod(_Method):
    """Reference Landsat plus the MODIS change, scaled by each pixel's own gain.

    ``F2 = F1 + g * (up(C2) - up(C1))``, with ``g`` the pixel's least-squares slope of
    Landsat on MODIS LST over the stack's Landsat dates near the day, shrunk towards 1
    (:func:`~lst_pipeline.fusion.gain.pixel_gain`). Where the pixel's history is short, ``g``
    is near 1 and this is ``reference_change``. It learns nothing from any training world:
    the gains come from the user's own stack.
    """

    name = "gain_change"
    uses_gain = True

    def predict(self, reference_fine: np.ndarray, reference_coarse_up: np.ndarray,
                target_coarse: np.ndarray, *, coarse_factor: int,
                gain: np.ndarray | None = None) -> np.ndarray:
        """Reference plus the gain times the MODIS change, upsampled bilinearly."""
        if gain is None:
            raise ValueError("gain_change needs the per-pixel gain (fuse_block fits it)")
        target_up = upsample_bilinear(target_coarse, coarse_factor)
        change = target_up - reference_coarse_up
        return (reference_fine + gain * change).astype(np.float32)


class ModisOnlyMethod(_Method):
    """The target day's MODIS upsampled (bilinear, NaN-aware) onto the fine grid.

    The floor every fusion method must beat: no fine detail at all. It is computed only
    where the other methods predict (a usable reference exists), so that all methods are
    scored on the same pixels.
    """

    name = "modis_only"

    def predict(self, reference_fine: np.ndarray, reference_coarse_up: np.ndarray,
                target_coarse: np.ndarray, *, coarse_factor: int,
                gain: np.ndarray | None = None) -> np.ndarray:
        """The target day's MODIS upsampled bilinearly, where the reference is usable."""
        target_up = upsample_bilinear(target_coarse, coarse_factor)
        return np.where(np.isfinite(reference_fine), target_up, np.float32(np.nan))


class STARFMMethod(_Method):
    """STARFM (Gao et al., 2006); see :func:`~lst_pipeline.fusion.baselines.starfm`.

    With ``pairs=2`` the nearest usable references before and after the day enter one
    weighted sum (:meth:`predict_pairs`); with ``pairs=1`` each reference predicts alone.
    Parameters as :class:`~lst_pipeline.fusion.registry.StarfmParams`.
    """

    name = "starfm"

    def __init__(self, **params: Any) -> None:
        self.params = StarfmParams(**params)
        self.pairs = self.params.pairs

    def predict(self, reference_fine: np.ndarray, reference_coarse_up: np.ndarray,
                target_coarse: np.ndarray, *, coarse_factor: int,
                gain: np.ndarray | None = None) -> np.ndarray:
        """STARFM from the single reference pair."""
        return self.predict_pairs(reference_fine[:, None], reference_coarse_up[:, None],
                                  target_coarse, coarse_factor=coarse_factor)

    def predict_pairs(self, reference_fine: np.ndarray, reference_coarse_up: np.ndarray,
                      target_coarse: np.ndarray, *, coarse_factor: int) -> np.ndarray:
        """``(N, P, Y, X)`` references (``P`` pairs per prediction) -> ``(N, Y, X)``."""
        from lst_pipeline.fusion.baselines import starfm

        kernel = {k: v for k, v in dataclasses.asdict(self.params).items() if k != "pairs"}
        target_up = upsample_bilinear(target_coarse, coarse_factor)
        return np.stack([starfm(reference_fine[i], reference_coarse_up[i], target_up[i],
                                **kernel) for i in range(len(target_up))])


class UBESTARFMMethod(_Method):
    """ESTARFM with ubESTARFM's local bias correction, from a reference before and after.

    See :func:`~lst_pipeline.fusion.baselines.ubestarfm`. Only :meth:`predict_pairs` is
    meaningful; :meth:`predict` (one reference) raises. Parameters as
    :class:`~lst_pipeline.fusion.registry.UbestarfmParams`.
    """

    name = "ubestarfm"
    pairs = 2

    def __init__(self, **params: Any) -> None:
        self.params = UbestarfmParams(**params)

    def predict(self, reference_fine: np.ndarray, reference_coarse_up: np.ndarray,
                target_coarse: np.ndarray, *, coarse_factor: int,
                gain: np.ndarray | None = None) -> np.ndarray:
        """Refused: ubESTARFM needs two reference pairs (see :meth:`predict_pairs`)."""
        raise InputError("ubestarfm needs a reference pair before and one after the target "
                         "day, got one reference; use predict_pairs (the engine does so "
                         "with fusion.two_references: true)")

    def predict_pairs(self, reference_fine: np.ndarray, reference_coarse_up: np.ndarray,
                      target_coarse: np.ndarray, *, coarse_factor: int) -> np.ndarray:
        """``(N, 2, Y, X)`` references (before, after) -> ``(N, Y, X)``."""
        from lst_pipeline.fusion.baselines import ubestarfm

        if reference_fine.ndim != 4 or reference_fine.shape[1] != 2:
            raise InputError("ubestarfm needs exactly two reference pairs (before, after) per "
                             f"prediction, got references of shape {reference_fine.shape}")
        target_up = upsample_bilinear(target_coarse, coarse_factor)
        kernel = dataclasses.asdict(self.params)
        return np.stack([ubestarfm(reference_fine[i, 0], reference_coarse_up[i, 0],
                                   reference_fine[i, 1], reference_coarse_up[i, 1],
                                   target_up[i], **kernel)
                         for i in range(len(target_up))])


class DLSTFMMethod(_Method):
    """The DLSTFM network as a fusion method.

    The checkpoint is loaded once when the method is built (once per worker process, see
    :func:`get_method`). On a Dask worker, the executor passes the worker's threads, so
    worker processes do not oversubscribe the cores; on a GPU worker the network runs on the
    worker's own (visible) GPU with optional bf16 autocast.

    Parameters
    ----------
    checkpoint
        Checkpoint file; ``None`` for the one shipped with the package.
    device
        ``auto``, ``cpu`` or ``cuda``.
    mixed_precision
        bf16 autocast on GPU.
    batch_pixels
        Pixels per forward pass; the days of a chunk are batched up to this.
    threads
        CPU threads torch may use (None: unchanged).
    """

    name = "dlstfm"
    loads = 0  # checkpoints loaded in this process (once per worker and checkpoint)

    def __init__(self, checkpoint: str | None = None, device: str = "auto",
                 mixed_precision: bool = False, batch_pixels: int = 1 << 17,
                 threads: int | None = None) -> None:
        import torch

        from lst_pipeline.devices import limit_cpu_threads, resolve_device
        from lst_pipeline.model.checkpoint import DEFAULT_CHECKPOINT, file_sha256, load_checkpoint
        from lst_pipeline.model.runtime import exact_float32_on_gpu, tune_allocator

        self.device = resolve_device(device)
        limit_cpu_threads(threads)
        tune_allocator()
        if self.device == "cuda":
            exact_float32_on_gpu()
        path = Path(checkpoint) if checkpoint else DEFAULT_CHECKPOINT
        self.model, self.meta = load_checkpoint(path, map_location=self.device)
        DLSTFMMethod.loads += 1
        # Module.to accepts memory_format at runtime; torch's overload stubs omit it
        self.model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        self.checkpoint = path
        self.checkpoint_sha256 = file_sha256(path)
        self.mixed_precision = bool(mixed_precision) and self.device == "cuda"
        self.batch_pixels, self.threads = int(batch_pixels), threads

    @property
    def alignment(self) -> int:  # type: ignore[override]
        """The fine path's alignment; the context branch follows the coarse grid itself."""
        return self.model.fine_alignment

    @property
    def uses_gain(self) -> bool:  # type: ignore[override]
        """Whether the network was built to take each pixel's gain (``pixel_gain``)."""
        return self.model.spec.architecture.pixel_gain

    def halo(self, coarse_factor: int) -> int:
        """The network's receptive radius at this factor plus one coarse pixel."""
        return method_geometry(self.name, coarse_factor, checkpoint=str(self.checkpoint))[0]

    def predict(self, reference_fine: np.ndarray, reference_coarse_up: np.ndarray,
                target_coarse: np.ndarray, *, coarse_factor: int,
                gain: np.ndarray | None = None) -> np.ndarray:
        """The network's prediction, in batches of ``batch_pixels`` on the pinned device."""
        import torch

        from lst_pipeline.devices import limit_cpu_threads

        limit_cpu_threads(self.threads)  # a numba kernel (STARFM) may have reset them
        c1 = reference_coarse_up
        c2 = upsample_bilinear(target_coarse, coarse_factor)
        n, h, w = reference_fine.shape
        per_batch = max(1, self.batch_pixels // (h * w))
        out = np.empty((n, h, w), dtype=np.float32)
        cuda = self.device == "cuda"
        with torch.inference_mode(), torch.autocast(device_type="cuda", dtype=torch.bfloat16,
                                                     enabled=self.mixed_precision):
            for s in range(0, n, per_batch):
                batch = []
                with timed("host_to_device"):  # on CPU: only the channels-last layout copy
                    inputs = (reference_fine, c1, c2) if gain is None else (
                        reference_fine, c1, c2, gain)
                    for a in inputs:
                        t = torch.from_numpy(np.ascontiguousarray(a[s:s + per_batch, None]))
                        if cuda:
                            t = t.pin_memory().to(self.device, non_blocking=True)
                        batch.append(t.contiguous(memory_format=torch.channels_last))
                    if cuda:  # separate the copies from the forward pass in the timings
                        torch.cuda.synchronize(self.device)
                with timed("forward"):
                    result = self.model(*batch[:3], coarse_factor=coarse_factor,
                                        pixel_gain=batch[3] if len(batch) > 3 else None)[:, 0]
                    if cuda:
                        torch.cuda.synchronize(self.device)
                with timed("device_to_host"):
                    out[s:s + per_batch] = result.float().cpu().numpy()
        return out

    def describe(self) -> dict:
        """Name, checkpoint and its hash, receptive radius."""
        return {"lst_pipeline:method": self.name,
                "lst_pipeline:checkpoint": str(self.checkpoint),
                "lst_pipeline:checkpoint_sha256": self.checkpoint_sha256,
                "lst_pipeline:model_receptive_radius": self.model.receptive_radius}


class EnsembleMethod(_Method):
    """A weighted mean of other methods' predictions from the same reference pair.

    ``F2 = sum_i w_i F2_i`` over the members (each from the reference the kernel chose); no
    value where a member with a weight above 0 has none. Weights: fitted per run on held-out
    Landsat dates (:mod:`lst_pipeline.fusion.ensemble`) or ``fusion.ensemble.weights``.
    Members with weight 0 are not run; halo and alignment cover them all (chunks do not
    depend on the weights).

    Parameters
    ----------
    members
        The member methods, built (:func:`get_method`).
    params
        Their names and weights (:class:`~lst_pipeline.fusion.registry.EnsembleParams`).
    """

    name = "ensemble"

    def __init__(self, members: list[FusionMethod], params: EnsembleParams) -> None:
        if not params.weights:
            raise InputError("fusion.ensemble.weights: not fitted; plan the run with "
                             "lst_pipeline.fusion.engine.plan_run, which fits them on the "
                             "stack's held-out Landsat dates")
        self.params, self.members = params, members
        self.weights = np.asarray(params.weights, dtype=np.float64)

    @property
    def uses_gain(self) -> bool:  # type: ignore[override]
        """Whether a member with a weight above 0 needs the per-pixel gain."""
        return any(m.uses_gain for m, w in zip(self.members, self.weights) if w > 0)

    @property
    def alignment(self) -> int:  # type: ignore[override]
        """Every member's alignment."""
        return math.lcm(*(int(m.alignment) for m in self.members))

    def halo(self, coarse_factor: int) -> int:
        """The widest member halo."""
        return max(m.halo(coarse_factor) for m in self.members)

    def predict(self, reference_fine: np.ndarray, reference_coarse_up: np.ndarray,
                target_coarse: np.ndarray, *, coarse_factor: int,
                gain: np.ndarray | None = None) -> np.ndarray:
        """The weighted mean of the members' predictions."""
        from lst_pipeline.fusion.stacking import combine

        predictions = [m.predict(reference_fine, reference_coarse_up, target_coarse,
                                 coarse_factor=coarse_factor,
                                 gain=gain if m.uses_gain else None) if w > 0 else None
                       for m, w in zip(self.members, self.weights)]
        return combine(predictions, self.weights)

    def describe(self) -> dict:
        """Name, members and weights, and a network member's checkpoint and its hash."""
        out = super().describe()
        for member in self.members:
            out.update({k: v for k, v in member.describe().items()
                        if k.startswith(("lst_pipeline:checkpoint", "lst_pipeline:model_"))})
        return out


@lru_cache(maxsize=8)
def get_method(name: str, checkpoint: str | None = None, device: str = "auto",
               mixed_precision: bool = False, batch_pixels: int = 1 << 17,
               params: tuple[tuple[str, object], ...] = (),
               threads: int | None = None) -> FusionMethod:
    """The fusion method registered as ``name``, built once per process and options.

    ``params`` are the method's own parameters as ``(name, value)`` pairs (see
    :meth:`~lst_pipeline.config.FusionConfig.method_params`).

    Raises
    ------
    ConfigError
        Unknown method (naming the available ones).
    """
    info = method_info(name)
    module, cls = info.implementation.split(":")
    method = getattr(importlib.import_module(module), cls)
    if name == DLSTFMMethod.name:
        return DLSTFMMethod(checkpoint, device, mixed_precision, batch_pixels, threads)
    if name == EnsembleMethod.name:
        spec: dict[str, Any] = dict(params)
        members = [get_method(m, checkpoint, device, mixed_precision, batch_pixels, p, threads)
                   for m, p in spec["members"]]
        return EnsembleMethod(members, EnsembleParams(tuple(m for m, _ in spec["members"]),
                                                      tuple(spec["weights"])))
    return method(**dict(params))


def method_alignment(method: FusionMethod, coarse_factor: int) -> int:
    """Read windows must start on multiples of both the coarse factor and the method's."""
    return math.lcm(coarse_factor, method.alignment)
