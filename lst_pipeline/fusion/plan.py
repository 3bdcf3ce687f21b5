"""Planning a fusion run: chunks, halos, what is already done; no cluster, no pixels.

:func:`plan_run` opens the input stack's metadata, checks it against the configuration,
takes the method's halo and alignment from the registry (DLSTFM's from its checkpoint's
metadata, without building the network), cuts the output cube into chunks and, for an
existing cube of the same run, reads its completion records and compares the stack's
content with what the cube was computed from, so ``run --plan-only`` says what is left to
do. The result is a :class:`RunPlan`, executed by :mod:`lst_pipeline.fusion.executor`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from lst_pipeline.chunks import ChunkPlan, TaskCost, choose_chunks, plan_chunks
from lst_pipeline.config.locations import StorePath
from lst_pipeline.errors import GridError, InputError
from lst_pipeline.fusion import reference_offset
from lst_pipeline.fusion.methods import FusionMethod, get_method
from lst_pipeline.fusion.overpass import OverpassCorrection, planned_overpass
from lst_pipeline.fusion.registration import ModisRegistration, planned_registration
from lst_pipeline.fusion.registry import method_geometry, with_ensemble_weights
from lst_pipeline.grid import TargetGrid, resolve_grid
from lst_pipeline.io.cube_store import CubeStore
from lst_pipeline.io.stack import StackReader
from lst_pipeline.io.zarr_store import grid_attrs

if TYPE_CHECKING:
    from lst_pipeline.config import PipelineConfig
    from lst_pipeline.fusion.error_model import ErrorModel


@dataclass(frozen=True)
class FusionTask:
    """Everything a chunk task needs besides its chunk; small and picklable."""

    stack: StorePath
    cube: StorePath
    method: str
    checkpoint: str | None
    device: str
    mixed_precision: bool
    batch_pixels: int
    coarse_factor: int
    first_day: int  # output day 0, days since 1970-01-01
    max_gap_days: int
    min_clear_fraction: float
    max_references: int
    two_references: bool
    max_disagreement_k: float
    modis_gap_days: int  # 0: keep gaps; n: interpolate over at most n days each side
    keep_observations: bool
    method_params: tuple = ()
    #: read windows start on multiples of this (coarse factor and the method's pooling grid)
    alignment: int | None = None
    #: write ``lst_uncertainty`` (``output.uncertainty``) and read what it needs
    uncertainty: bool = False
    #: the fitted error model of ``lst_uncertainty`` (None until fitted, or switched off)
    error_model: ErrorModel | None = None
    #: MODIS view-time correction (``fusion.overpass_correction``; None: MODIS as observed)
    overpass: OverpassCorrection | None = None
    #: timescale (days) of the reference dates' averaged MODIS offset (0: MODIS as observed;
    #: ``fusion.reference_offset_days``, :mod:`lst_pipeline.fusion.reference_offset`)
    reference_offset_days: int = 0
    #: per-day MODIS shifts (``fusion.modis_registration``; None: MODIS cells as gridded)
    registration: ModisRegistration | None = None

    def fusion_method(self, threads: int | None = None) -> FusionMethod:
        """The method, built once per process and ``threads``.

        A worker loads its model once; torch is limited to ``threads`` CPU threads when given.
        """
        return get_method(self.method, self.checkpoint, self.device, self.mixed_precision,
                          self.batch_pixels, self.method_params, threads)


@dataclass(frozen=True)
class RunPlan:
    """A fusion run, fully decided but not started."""

    config: PipelineConfig
    grid: TargetGrid
    days: np.ndarray
    chunks: ChunkPlan
    task: FusionTask
    n_landsat_dates: int
    #: digests of the input stack's dates (:attr:`StackReader.content`), None if unrecorded
    stack_content: dict | None = None

    #: what the planner adjusted or chose (grid widened, chunks chosen or rounded)
    notes: tuple[str, ...] = ()
    #: estimated peak memory of one task (bytes)
    task_bytes: float = 0.0
    #: what ``fusion.method: auto`` chose (None when a method was named)
    auto: Any = None
    #: ``fusion.method: ensemble``'s weights fitted by this run (None: given or recorded)
    ensemble: Any = None
    #: what an existing cube of this run already holds (None: no cube, or not resumable)
    resume: ResumeState | None = None

    @property
    def n_pixel_days(self) -> int:
        """Pixel-days of the output cube."""
        nt, ny, nx = self.chunks.shape
        return nt * ny * nx

    def describe(self) -> str:
        """A human-readable summary of the plan."""
        nt, ny, nx = self.chunks.shape
        ct, cy, cx = self.chunks.chunks
        lines = [f"note: {n}" for n in self.notes]
        lines.append(
            f"plan: {nt} days ({self.days[0]} .. {self.days[-1]}) x {ny} x {nx} px, "
            f"method {self.task.method}, {len(self.chunks)} chunks of {ct} x {cy} x {cx} "
            f"(halo {self.chunks.halo_aligned} px, {self.chunks.computed_ratio:.2f} pixels "
            f"computed per output pixel, about {self.task_bytes / 2**30:.2f} GiB per task), "
            f"{self.n_landsat_dates} Landsat dates, output {self.task.cube}")
        if self.resume is not None:
            lines.append(self.resume.describe(len(self.chunks)))
        return "\n".join(lines)


@dataclass(frozen=True)
class ResumeState:
    """What an existing cube of the same run holds, read at planning.

    Attributes
    ----------
    done
        Chunks recorded as written.
    stale
        Of those, the chunks that read a date whose content changed in the stack since.
    changed
        The changed dates per sensor.
    inputs_known
        Whether the stack and the cube both record content digests (otherwise a resume
        cannot verify the inputs and is refused).
    """

    done: frozenset
    stale: frozenset
    changed: dict
    inputs_known: bool

    @property
    def remaining(self) -> int:
        """Chunks finished and still valid."""
        return len(self.done - self.stale)

    def describe(self, total: int) -> str:
        """One line for the plan."""
        text = (f"resume: {self.remaining} of {total} chunks already done, "
                f"{total - self.remaining} to compute")
        if self.stale:
            text += (f" ({len(self.stale)} finished chunk(s) read dates changed in the stack: "
                     f"{summarise_changes(self.changed)})")
        return text


def resume_state(plan: RunPlan) -> ResumeState | None:
    """Compare an existing cube with the plan: None unless it is a cube of this very run."""
    store = CubeStore(plan.task.cube)
    if not store.is_cube or store.fingerprint != fingerprint(plan):
        return None
    done = frozenset(store.done())
    recorded = store.inputs()
    known = plan.stack_content is not None and recorded is not None
    changed = changed_dates(recorded, plan.stack_content)
    stale: frozenset[tuple[int, int, int]] = frozenset()
    if any(changed.values()):
        dates = set((recorded or {}).get("landsat", {})) | set(
            (plan.stack_content or {}).get("landsat", {}))
        stale = frozenset(stale_chunks(plan, set(done), changed, dates))
    return ResumeState(done, stale, changed, known)


def output_days(config: PipelineConfig) -> np.ndarray:
    """Every output day of a pipeline, ``datetime64[D]``."""
    start = np.datetime64(config.dates.start, "D")
    return start + np.arange(config.dates.n_days)


def _check_inputs(config: PipelineConfig, reader: StackReader, grid: TargetGrid,
                  days: np.ndarray) -> np.ndarray:
    """Refuse a stack on another grid or without inputs for ``days``; the usable Landsat dates.

    Returns the mask of Landsat dates with clear pixels within the reference gap of the days.
    """
    if reader.grid != grid:
        raise GridError(
            f"{config.inputs.stack}: the stack's grid ({reader.grid.describe()}) differs from "
            f"the configured grid ({grid.describe()}); fix `grid:` in the config or rebuild "
            "the stack")
    gap = config.fusion.max_reference_gap_days
    ldays = reader.landsat_dates
    near = (ldays >= days[0] - gap) & (ldays <= days[-1] + gap)
    near &= reader.landsat_clear_fraction > 0
    if not near.any():
        raise InputError(
            f"{config.inputs.stack}: no Landsat date with clear pixels within "
            f"{gap} days of {days[0]} .. {days[-1]}; widen fusion.max_reference_gap_days "
            "or add Landsat scenes"
        )
    mdays = reader.modis_dates
    if not np.any((mdays >= days[0]) & (mdays <= days[-1])):
        raise InputError(
            f"{config.inputs.stack}: no MODIS day between {days[0]} and {days[-1]} (the stack "
            f"holds {len(mdays)} MODIS date(s)); ingest the MOD11A1/MYD11A1 tiles of these "
            "days (ingest.modis) before `run`")
    return near


def _task(config: PipelineConfig, grid: TargetGrid, days: np.ndarray) -> FusionTask:
    """What every chunk task of the run needs, from the configuration."""
    fusion = config.fusion
    return FusionTask(
        stack=config.inputs.stack, cube=config.output.cube, method=fusion.method,
        checkpoint=None if fusion.checkpoint is None else str(fusion.checkpoint),
        device=fusion.device, mixed_precision=fusion.mixed_precision,
        batch_pixels=fusion.batch_pixels, coarse_factor=grid.coarse_factor,
        first_day=int(days[0].astype(np.int64)), max_gap_days=fusion.max_reference_gap_days,
        min_clear_fraction=fusion.min_clear_fraction, max_references=fusion.max_references,
        two_references=fusion.two_references, max_disagreement_k=fusion.max_disagreement_k,
        modis_gap_days=(fusion.max_modis_interpolation_days
                        if fusion.modis_gaps == "interpolate" else 0),
        keep_observations=fusion.landsat_days == "observe",
        method_params=fusion.method_params(),
        uncertainty=config.output.uncertainty is not False,
        reference_offset_days=fusion.reference_offset_days,
    )


def plan_run(config: PipelineConfig, *, n_workers: int = 2, choice: Any = None) -> RunPlan:
    """Check the inputs against the configuration and cut the run into chunks.

    Chunks missing from the configuration are chosen (:func:`~lst_pipeline.chunks.choose_chunks`)
    for ``n_workers`` worker threads, or taken from the existing cube of this run so that a
    resume on another cluster keeps them. ``fusion.method: auto`` needs ``choice``, the
    method chosen by :func:`lst_pipeline.fusion.holdout.choose_method` (the engine's
    :func:`lst_pipeline.fusion.engine.plan_run` makes it); it is recorded in the cube.

    Raises
    ------
    InputError
        If the stack is missing or incomplete, or holds no Landsat date that can serve as
        a reference for the requested days.
    GridError
        If the stack's grid differs from the configured grid.
    """
    if config.fusion.method == "auto":
        if choice is None:
            raise ValueError("fusion.method auto: choose the method first "
                             "(lst_pipeline.fusion.engine.plan_run does)")
        config = with_ensemble_weights(dataclasses.replace(config, fusion=dataclasses.replace(
            config.fusion, method=choice.method)), choice.ensemble_weights)
    grid, grid_notes = resolve_grid(config.grid)
    reader = StackReader(config.inputs.stack)
    days = output_days(config)
    near = _check_inputs(config, reader, grid, days)
    task = _task(config, grid, days)
    fusion = config.fusion
    overpass, overpass_notes = planned_overpass(config.inputs.stack, fusion.overpass_correction)
    registration, registration_notes = planned_registration(reader, fusion, days)
    task = dataclasses.replace(task, overpass=overpass, registration=registration)
    overpass_notes += registration_notes
    if fusion.reference_offset_days:
        overpass_notes.append(reference_offset.describe(fusion.reference_offset_days))
    gap = fusion.max_reference_gap_days
    ldays = reader.landsat_dates
    halo, alignment, cost = method_geometry(
        fusion.method, grid.coarse_factor, params=fusion.method_sections().get(fusion.method),
        checkpoint=task.checkpoint, batch_pixels=fusion.batch_pixels,
        sections=fusion.method_sections())
    usable_days = ldays[reader.landsat_clear_fraction > 0].astype(np.int64)
    if task.uncertainty:  # the error features and sigma of every pixel-day
        cost = dataclasses.replace(cost or TaskCost(), per_pixel_day=(
            cost or TaskCost()).per_pixel_day + UNCERTAINTY_BYTES_PER_PIXEL_DAY)

    def references(n: int) -> int:  # most Landsat dates one block of n days reads
        starts = days[::n].astype(np.int64)
        lo = np.searchsorted(usable_days, starts - gap)
        hi = np.searchsorted(usable_days, starts + n - 1 + gap, side="right")
        return int((hi - lo).max()) if len(starts) else 0

    requested = (config.chunks.time, config.chunks.y, config.chunks.x)
    store = CubeStore(config.output.cube)
    existing = store.planned_chunks
    notes = list(grid_notes) + ([choice.describe()] if choice is not None else []) \
        + overpass_notes
    if existing is not None and requested == (None, None, None):
        requested = existing
        notes.append(f"chunks: {existing[0]} x {existing[1]} x {existing[2]} of the existing "
                     f"cube {config.output.cube}")
    chosen = choose_chunks(grid, len(days), halo=halo, alignment=alignment,
                           requested=requested, n_workers=n_workers, references=references,
                           cost=cost,
                           budget=config.chunks.task_memory_gib * 2**30)
    chunks = plan_chunks(grid, len(days), chosen.chunks, halo=halo, alignment=alignment)
    plan = RunPlan(config=config, grid=grid, days=days, chunks=chunks,
                   task=dataclasses.replace(task, alignment=alignment),
                   n_landsat_dates=int(near.sum()), stack_content=reader.content,
                   notes=(*notes, *chosen.notes), task_bytes=chosen.task_bytes,
                   auto=choice)
    return dataclasses.replace(plan, resume=resume_state(plan))


#: What ``lst_uncertainty`` adds to a task's memory per pixel-day: the peak numpy
#: allocation of one 32-day 512 x 512 block grew from 86 to 136 B per pixel-day (tracemalloc).
UNCERTAINTY_BYTES_PER_PIXEL_DAY = 50.0

def _task_fingerprint(task: FusionTask) -> dict[str, Any]:
    """The task's fields that decide the cube's bytes (paths left out).

    ``alignment`` follows from the method and the grid, both in the fingerprint already; it
    is left out so that cubes written before the field existed still resume.
    """
    fields = dataclasses.asdict(task) | {"cube": None, "checkpoint": None, "stack": None}
    fields.pop("alignment")
    fields.pop("error_model")  # recorded in the cube and reused on resume
    for name in ("uncertainty", "reference_offset_days"):  # off: as before they existed
        if not fields[name]:
            fields.pop(name)
    for name in ("overpass", "registration"):  # whether, not how much: the cube records it
        if fields.pop(name) is not None:
            fields[name] = True
    return fields


def fingerprint(plan: RunPlan) -> str:
    """Hash of everything that determines the cube's bytes but the input stack's content.

    That is the grid, days, chunks, method, model, fusion parameters and dtype; the stack's
    content is compared date by date on resume (:func:`stale_chunks`). A resume must match it.
    The stack's path is left out on purpose: a moved stack with the same content resumes,
    another stack on the same grid is caught by its content digests.
    """
    cfg = plan.config
    method = plan.task.fusion_method().describe()
    method.pop("lst_pipeline:checkpoint", None)  # the path may move; the hash may not
    payload = {
        "grid": grid_attrs(plan.grid), "days": [str(plan.days[0]), str(plan.days[-1])],
        "chunks": list(plan.chunks.chunks), "halo": plan.chunks.halo_aligned,
        "method": method, "task": _task_fingerprint(plan.task),
        "dtype": cfg.output.dtype,
    }
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def changed_dates(old: dict | None, new: dict | None) -> dict[str, list[str]]:
    """Dates (per sensor) whose content digest differs between two stack content records."""
    old, new = old or {}, new or {}
    out = {}
    for sensor in ("landsat", "modis"):
        a, b = old.get(sensor, {}), new.get(sensor, {})
        out[sensor] = sorted(d for d in set(a) | set(b) if a.get(d) != b.get(d))
    return out


def stale_chunks(plan: RunPlan, done: set[tuple[int, int, int]],
                 changed: dict[str, list[str]], landsat_dates: set[str]
                 ) -> set[tuple[int, int, int]]:
    """The finished chunks whose inputs include a changed date (they must be recomputed).

    A chunk of days ``[first, last]`` reads the Landsat dates within ``max_reference_gap_days``
    of them plus the horizon of ``reference_offset_days``, the MODIS of its days (widened by
    the interpolation window) and the MODIS of those Landsat dates.

    Parameters
    ----------
    plan
        The run.
    done
        Chunks recorded as finished.
    changed
        From :func:`changed_dates`.
    landsat_dates
        Every Landsat date before or after the change (ISO strings): their MODIS is read.
    """
    task, ct, n_days = plan.task, plan.chunks.chunks[0], len(plan.days)

    def days(dates: list[str]) -> np.ndarray:
        return np.array(dates, "datetime64[D]").astype(np.int64)

    landsat = days(changed["landsat"])
    modis = days(changed["modis"])
    modis_as_reference = modis[np.isin(modis, days(sorted(landsat_dates)))]
    reach = task.max_gap_days + reference_offset.horizon_days(task.reference_offset_days)
    stale_times = set()
    for it in range(plan.chunks.n_chunks[0]):
        first = task.first_day + it * ct
        last = task.first_day + min((it + 1) * ct, n_days) - 1
        lo, hi = first - reach, last + reach
        m = task.modis_gap_days
        if (np.any((landsat >= lo) & (landsat <= hi))
                or np.any((modis >= first - m) & (modis <= last + m))
                or np.any((modis_as_reference >= lo) & (modis_as_reference <= hi))):
            stale_times.add(it)
    return {c for c in done if c[0] in stale_times}


def summarise_changes(changed: dict[str, list[str]], most: int = 4) -> str:
    """The changed dates per sensor, at most ``most`` named each, in one line."""
    parts = []
    for sensor, dates in changed.items():
        if dates:
            shown = ", ".join(dates[:most]) + (" ..." if len(dates) > most else "")
            parts.append(f"{sensor} {shown}")
    return "; ".join(parts)
