"""Fusing one block of a stack: read its window plus halo and the dates it needs, fuse.

The one public way a block is fused from an input stack (:func:`read_and_fuse`, or
:func:`read_block_inputs` then :func:`fuse_inputs`): the executor's tasks, the whole-scene
reference :func:`fuse_scene`, the leave-one-date-out of :mod:`lst_pipeline.fusion.holdout`
and ``evaluate`` all go through it, so every path computes the same numbers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np

from lst_pipeline.config.locations import StorePath
from lst_pipeline.errors import InputError, LSTPipelineError
from lst_pipeline.fusion.error_model import ErrorInputs
from lst_pipeline.fusion.kernel import FusedBlock, fuse_block
from lst_pipeline.fusion.modis_gaps import interpolate_modis_gaps
from lst_pipeline.fusion.overpass import correct_modis
from lst_pipeline.fusion.reference_offset import cell_means, horizon_days, smoothed_reference_modis
from lst_pipeline.fusion.registration import register_modis
from lst_pipeline.grid import Window
from lst_pipeline.io.stack import StackReader

if TYPE_CHECKING:
    from lst_pipeline.fusion.methods import FusionMethod
    from lst_pipeline.fusion.plan import FusionTask, RunPlan


@lru_cache(maxsize=4)
def _reader(path: StorePath) -> StackReader:
    """One stack reader per worker process and store (metadata read once)."""
    return StackReader(path)


@dataclass(frozen=True)
class BlockInputs:
    """What one block reads: candidate references and MODIS over its read window."""

    landsat_lst: np.ndarray
    landsat_days: np.ndarray
    landsat_modis: np.ndarray
    target_modis: np.ndarray
    target_days: np.ndarray
    target_modis_filled: np.ndarray | None = None
    error_inputs: ErrorInputs | None = None


def read_block_inputs(task: FusionTask, t0: int, t1: int, read_window: Window, *,
                      hide_day: int | None = None) -> BlockInputs:
    """Read the inputs of output days ``[t0, t1)`` over ``read_window`` (needed dates only).

    ``hide_day`` (days since 1970-01-01) leaves that Landsat date out as if the stack had
    none (leave-one-date-out): no reference, no part of another reference's MODIS offset.

    Raises
    ------
    InputError
        Naming the stack, if a chunk file is corrupt or unreadable.
    """
    try:
        reader = _reader(task.stack)
        target_days = task.first_day + np.arange(t0, t1, dtype=np.int64)
        ldays = reader.landsat_dates.astype(np.int64)
        gap = task.max_gap_days
        usable = (reader.landsat_clear_fraction > 0) & (ldays != hide_day)
        wanted = np.nonzero((ldays >= target_days[0] - gap) & (ldays <= target_days[-1] + gap)
                            & usable)[0]
        coarse_read = read_window.coarse(task.coarse_factor)

        registration_references: dict[int, np.ndarray] = {}  # read once per block

        def modis_on(days: np.ndarray) -> np.ndarray:  # at Landsat's hour, on its own cells
            dates = days.astype("datetime64[D]")
            modis = register_modis(reader.read_modis(dates, coarse_read), days,
                                   task.registration, reader, read_window,
                                   registration_references)
            return correct_modis(modis, reader.modis_view_time_on(dates), task.overpass)

        filled = None
        if task.modis_gap_days:
            m = task.modis_gap_days
            around = np.arange(target_days[0] - m, target_days[-1] + m + 1)
            target_modis, filled = interpolate_modis_gaps(modis_on(around), around,
                                                          target_days, m)
        else:
            target_modis = modis_on(target_days)
        error_inputs = _error_inputs(reader, task, target_days, ldays[wanted], wanted,
                                     read_window, coarse_read) if task.uncertainty else None
        landsat = reader.read_landsat(wanted, read_window)
        landsat_modis = _reference_modis(reader, task, landsat, wanted, usable, read_window,
                                         modis_on) if task.reference_offset_days and \
            len(wanted) else modis_on(ldays[wanted])
        return BlockInputs(
            landsat_lst=landsat,
            landsat_days=ldays[wanted],
            landsat_modis=landsat_modis,
            target_modis=target_modis, target_days=target_days, target_modis_filled=filled,
            error_inputs=error_inputs,
        )
    except LSTPipelineError:
        raise
    except Exception as exc:  # a corrupt or truncated chunk file, an I/O error ...
        raise InputError(
            f"{task.stack}: cannot read inputs of days {t0}..{t1 - 1}, window {read_window} "
            f"({type(exc).__name__}: {exc}); check or rebuild the input stack"
        ) from exc


def _reference_modis(reader: StackReader, task: FusionTask, landsat: np.ndarray,
                     wanted: np.ndarray, usable: np.ndarray, read_window: Window,
                     modis_on: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """MODIS of the reference dates ``wanted`` rebuilt from their Landsat and the cell offsets.

    The offsets come from every usable Landsat date within the horizon of a reference, so
    a reference's value does not depend on which block reads it (chunked equals whole
    scene). Dates beyond ``wanted`` are read one at a time and kept as cell means only.
    """
    ldays = reader.landsat_dates.astype(np.int64)
    horizon = horizon_days(task.reference_offset_days)
    near = np.nonzero(usable & (ldays >= ldays[wanted].min() - horizon)
                      & (ldays <= ldays[wanted].max() + horizon))[0]
    position = {int(i): k for k, i in enumerate(wanted)}

    def fine(i: int) -> np.ndarray:
        if i in position:
            return landsat[position[i]]
        return reader.read_landsat(np.array([i]), read_window)[0]

    means = np.stack([cell_means(fine(int(i)), task.coarse_factor) for i in near])
    rebuilt = smoothed_reference_modis(means, modis_on(ldays[near]), ldays[near],
                                       task.reference_offset_days)
    return rebuilt[np.searchsorted(near, wanted)]


def _error_inputs(reader: StackReader, task: FusionTask, target_days: np.ndarray,
                  landsat_days: np.ndarray, landsat_index: np.ndarray, read_window: Window,
                  coarse_read: Window) -> ErrorInputs:
    """The MODIS QC of the target days and the ST_QA of the Landsat dates among them."""
    same = np.isin(landsat_days, target_days) if task.keep_observations else \
        np.zeros(len(landsat_days), bool)
    st_qa = reader.read_landsat_uncertainty(landsat_index[same], read_window)
    observed = {} if st_qa is None else dict(zip(landsat_days[same].tolist(), st_qa))
    return ErrorInputs(
        modis_error_class=reader.read_modis_error_class(target_days.astype("datetime64[D]"),
                                                        coarse_read),
        observed_sigma=observed)


def read_and_fuse(task: FusionTask, t0: int, t1: int, window: Window,
                  read_window: Window) -> FusedBlock:
    """Read the inputs of one block (window plus halo) and fuse it."""
    return fuse_inputs(task, read_block_inputs(task, t0, t1, read_window), window, read_window)


def fuse_inputs(task: FusionTask, inputs: BlockInputs, window: Window, read_window: Window,
                *, method: FusionMethod | None = None, return_features: bool = False
                ) -> FusedBlock:
    """Fuse inputs already read (:func:`read_block_inputs`) over ``window`` of ``read_window``.

    The one way a block of a stack is fused: the executor's tasks, ``fuse_scene``, the
    leave-one-date-out of :mod:`lst_pipeline.fusion.holdout` and ``evaluate`` call it.
    ``method`` defaults to the task's, built in this process. With the task's error model
    the block carries ``uncertainty_k``; ``return_features`` adds the raw error features.
    """
    return fuse_block(
        inputs.landsat_lst, inputs.landsat_days, inputs.landsat_modis, inputs.target_modis,
        inputs.target_days, method=method or task.fusion_method(),
        coarse_factor=task.coarse_factor,
        out_window=window.relative_to(read_window), max_gap_days=task.max_gap_days,
        min_clear_fraction=task.min_clear_fraction, max_references=task.max_references,
        two_references=task.two_references, max_disagreement_k=task.max_disagreement_k,
        keep_observations=task.keep_observations,
        target_modis_filled=inputs.target_modis_filled, alignment=task.alignment,
        error_model=task.error_model, return_features=return_features,
        error_inputs=inputs.error_inputs,
    )


def fuse_scene(plan: RunPlan) -> FusedBlock:
    """The same computation in this process, unchunked: the whole scene and all days at once.

    For tests and small scenes: it holds the whole stack and cube in memory.
    """
    ny, nx = plan.grid.shape
    whole = Window(0, ny, 0, nx)
    return read_and_fuse(plan.task, 0, len(plan.days), whole, whole)
