"""Fusion methods: predict fine LST of a target day from one reference pair.

A method is any object with a ``name``, a ``halo(coarse_factor)`` (fine pixels of context
it needs around each output pixel), an ``alignment`` (read windows must start on multiples
of it) and a vectorised ``predict``. The engine and
:func:`~lst_pipeline.fusion.kernel.fuse_block` do everything else, so a new method plugs in by
implementing this protocol and registering in :data:`METHODS`.

Methods are built once per process by :func:`get_method` (cached on its arguments), so a
Dask worker loads the DLSTFM checkpoint once and reuses it for every task.
"""

from __future__ import annotations

import math
import time
from functools import lru_cache
from pathlib import Path
from typing import Protocol

import numpy as np

from lst_pipeline.errors import ConfigError, InputError
from lst_pipeline.fusion.timing import timed
from lst_pipeline.grid import TaskCost
from lst_pipeline.resample import upsample_bilinear


class FusionMethod(Protocol):
    """What the engine needs from a fusion method."""

    name: str
    alignment: int

    def halo(self, coarse_factor: int) -> int:
        """Fine pixels of context needed on each side of an output block."""

    def predict(self, reference_fine: np.ndarray, reference_coarse_up: np.ndarray,
                target_coarse: np.ndarray, *, coarse_factor: int) -> np.ndarray:
        """Predict ``(N, Y, X)`` fine LST (K) for ``N`` (reference, target) pairs.

        ``reference_fine`` and ``reference_coarse_up`` (the reference MODIS already upsampled
        to the fine grid; per pixel it matches the date of ``reference_fine``, which may be a
        composite of several dates) are ``(N, Y, X)``, ``target_coarse`` is ``(N, Y/f, X/f)``;
        NaN marks unusable pixels on input and pixels without a prediction on output.
        """

    def describe(self) -> dict:
        """Provenance attributes for the output cube."""


class ReferenceChange:
    """Reference Landsat plus the MODIS change since the reference date.

    ``F2 = F1 + up(C2) - up(C1)``, with ``up`` the NaN-aware bilinear upsampling of
    :func:`~lst_pipeline.resample.upsample_bilinear`. The physically simplest method:
    it keeps the reference's spatial detail and assumes every pixel of a coarse cell warmed
    or cooled by the same amount.
    """

    name = "reference_change"
    alignment = 1

    def halo(self, coarse_factor: int) -> int:
        return coarse_factor  # bilinear upsampling reaches one coarse pixel away

    def predict(self, reference_fine: np.ndarray, reference_coarse_up: np.ndarray,
                target_coarse: np.ndarray, *, coarse_factor: int) -> np.ndarray:
        target_up = upsample_bilinear(target_coarse, coarse_factor)
        return (reference_fine + (target_up - reference_coarse_up)).astype(np.float32)

    def describe(self) -> dict:
        return {"lst_pipeline:method": self.name}


class ModisOnly:
    """The target day's MODIS upsampled (bilinear, NaN-aware) onto the fine grid.

    The floor every fusion method must beat: no fine detail at all. It is computed only
    where the other methods predict (a usable reference exists), so that all methods are
    scored on the same pixels.
    """

    name = "modis_only"
    alignment = 1

    def halo(self, coarse_factor: int) -> int:
        return coarse_factor

    def predict(self, reference_fine: np.ndarray, reference_coarse_up: np.ndarray,
                target_coarse: np.ndarray, *, coarse_factor: int) -> np.ndarray:
        target_up = upsample_bilinear(target_coarse, coarse_factor)
        return np.where(np.isfinite(reference_fine), target_up, np.float32(np.nan))

    def describe(self) -> dict:
        return {"lst_pipeline:method": self.name}


class Starfm:
    """STARFM (Gao et al., 2006); see :func:`~lst_pipeline.fusion.baselines.starfm`.

    With ``pairs=2`` the nearest usable references before and after the day enter one
    weighted sum (:meth:`predict_pairs`); with ``pairs=1`` each reference predicts alone.
    """

    name = "starfm"
    alignment = 1

    def __init__(self, window: int = 31, classes: int = 4, landsat_uncertainty_k: float = 0.5,
                 modis_uncertainty_k: float = 1.0, pairs: int = 1) -> None:
        self.params = {"window": window, "classes": classes,
                       "landsat_uncertainty_k": landsat_uncertainty_k,
                       "modis_uncertainty_k": modis_uncertainty_k}
        self.pairs = pairs

    def halo(self, coarse_factor: int) -> int:
        # the window's neighbours need their upsampled coarse values, which reach one
        # coarse pixel further
        return self.params["window"] // 2 + coarse_factor

    def predict(self, reference_fine: np.ndarray, reference_coarse_up: np.ndarray,
                target_coarse: np.ndarray, *, coarse_factor: int) -> np.ndarray:
        return self.predict_pairs(reference_fine[:, None], reference_coarse_up[:, None],
                                  target_coarse, coarse_factor=coarse_factor)

    def predict_pairs(self, reference_fine: np.ndarray, reference_coarse_up: np.ndarray,
                      target_coarse: np.ndarray, *, coarse_factor: int) -> np.ndarray:
        """``(N, P, Y, X)`` references (``P`` pairs per prediction) -> ``(N, Y, X)``."""
        from lst_pipeline.fusion.baselines import starfm

        target_up = upsample_bilinear(target_coarse, coarse_factor)
        return np.stack([starfm(reference_fine[i], reference_coarse_up[i], target_up[i],
                                **self.params) for i in range(len(target_up))])

    def describe(self) -> dict:
        return {"lst_pipeline:method": self.name,
                "lst_pipeline:method_params": {**self.params, "pairs": self.pairs}}


class Ubestarfm:
    """ESTARFM with ubESTARFM's local bias correction, from a reference before and after.

    See :func:`~lst_pipeline.fusion.baselines.ubestarfm`. Only :meth:`predict_pairs` is
    meaningful; :meth:`predict` (one reference) raises.
    """

    name = "ubestarfm"
    alignment = 1
    pairs = 2

    def __init__(self, window: int = 31, classes: int = 2, conversion: str = "regression",
                 min_k: float = 250.0, max_k: float = 350.0) -> None:
        self.params = {"window": window, "classes": classes, "conversion": conversion,
                       "min_k": min_k, "max_k": max_k}

    def halo(self, coarse_factor: int) -> int:
        return self.params["window"] // 2 + coarse_factor

    def predict(self, reference_fine: np.ndarray, reference_coarse_up: np.ndarray,
                target_coarse: np.ndarray, *, coarse_factor: int) -> np.ndarray:
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
        return np.stack([ubestarfm(reference_fine[i, 0], reference_coarse_up[i, 0],
                                   reference_fine[i, 1], reference_coarse_up[i, 1],
                                   target_up[i], **self.params)
                         for i in range(len(target_up))])

    def describe(self) -> dict:
        return {"lst_pipeline:method": self.name, "lst_pipeline:method_params": self.params}


class DLSTFMMethod:
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
        from lst_pipeline.model.runtime import tune_allocator

        self.device = resolve_device(device)
        limit_cpu_threads(threads)
        tune_allocator()
        path = Path(checkpoint) if checkpoint else DEFAULT_CHECKPOINT
        self.model, self.meta = load_checkpoint(path, map_location=self.device)
        DLSTFMMethod.loads += 1
        self.model.to(memory_format=torch.channels_last)
        self.checkpoint = path
        self.checkpoint_sha256 = file_sha256(path)
        self.mixed_precision = bool(mixed_precision) and self.device == "cuda"
        self.batch_pixels = int(batch_pixels)
        self.seconds = 0.0  # cumulative time in the network (host<->device included)

    @property
    def alignment(self) -> int:
        """The fine path's alignment; the context branch follows the coarse grid itself."""
        return self.model.fine_alignment

    @property
    def cost(self) -> TaskCost:
        """Memory of a task (fitted by ``benchmarks/bench_chunks.py``): about 0.8 kB of
        activations per pixel of a forward pass dominates."""
        return TaskCost(per_pixel_day=66.0, per_forward_pixel=800.0,
                        forward_pixels=self.batch_pixels, fixed=420 * 2**20)

    def halo(self, coarse_factor: int) -> int:
        # The network's receptive radius at this factor, plus one coarse pixel because the
        # upsampled coarse images are only exact one coarse pixel inside the read window.
        return self.model.receptive_radius_at(coarse_factor) + coarse_factor

    def predict(self, reference_fine: np.ndarray, reference_coarse_up: np.ndarray,
                target_coarse: np.ndarray, *, coarse_factor: int) -> np.ndarray:
        import torch

        c1 = reference_coarse_up
        c2 = upsample_bilinear(target_coarse, coarse_factor)
        n, h, w = reference_fine.shape
        per_batch = max(1, self.batch_pixels // (h * w))
        out = np.empty((n, h, w), dtype=np.float32)
        cuda = self.device == "cuda"
        start = time.perf_counter()
        with torch.inference_mode(), torch.autocast(device_type="cuda", dtype=torch.bfloat16,
                                                     enabled=self.mixed_precision):
            for s in range(0, n, per_batch):
                batch = []
                with timed("host_to_device"):  # on CPU: only the channels-last layout copy
                    for a in (reference_fine, c1, c2):
                        t = torch.from_numpy(np.ascontiguousarray(a[s:s + per_batch, None]))
                        if cuda:
                            t = t.pin_memory().to(self.device, non_blocking=True)
                        batch.append(t.contiguous(memory_format=torch.channels_last))
                    if cuda:  # separate the copies from the forward pass in the timings
                        torch.cuda.synchronize(self.device)
                with timed("forward"):
                    result = self.model(*batch, coarse_factor=coarse_factor)[:, 0]
                    if cuda:
                        torch.cuda.synchronize(self.device)
                with timed("device_to_host"):
                    out[s:s + per_batch] = result.float().cpu().numpy()
        self.seconds += time.perf_counter() - start
        return out

    def describe(self) -> dict:
        return {"lst_pipeline:method": self.name,
                "lst_pipeline:checkpoint": str(self.checkpoint),
                "lst_pipeline:checkpoint_sha256": self.checkpoint_sha256,
                "lst_pipeline:model_receptive_radius": self.model.receptive_radius}


METHODS: dict[str, type] = {ReferenceChange.name: ReferenceChange,
                            DLSTFMMethod.name: DLSTFMMethod,
                            ModisOnly.name: ModisOnly,
                            Starfm.name: Starfm,
                            Ubestarfm.name: Ubestarfm}


@lru_cache(maxsize=8)
def get_method(name: str, checkpoint: str | None = None, device: str = "auto",
               mixed_precision: bool = False, batch_pixels: int = 1 << 17,
               params: tuple[tuple[str, object], ...] = (),
               threads: int | None = None) -> FusionMethod:
    """The fusion method registered as ``name``, built once per process and options.

    ``params`` are the method's own parameters as ``(name, value)`` pairs (see
    :meth:`~lst_pipeline.config.FusionConfig.method_params`).
    """
    if name not in METHODS:
        raise ConfigError(
            f"fusion.method: unknown method {name!r}; available: {', '.join(METHODS)}")
    if name == DLSTFMMethod.name:
        return DLSTFMMethod(checkpoint, device, mixed_precision, batch_pixels, threads)
    return METHODS[name](**dict(params))


def method_pairs(method: FusionMethod) -> int:
    """Reference pairs per prediction: 1, or 2 for methods with ``predict_pairs``."""
    return int(getattr(method, "pairs", 1))


def method_alignment(method: FusionMethod, coarse_factor: int) -> int:
    """Read windows must start on multiples of both the coarse factor and the method's."""
    return math.lcm(coarse_factor, method.alignment)
