"""Chunk plans: how the output cube is cut into tasks, and the chunks chosen for a run.

A :class:`ChunkPlan` is pure arithmetic on the grid shape: each output chunk with the input
window (chunk plus halo, clipped at the scene edge) its task must read.
:func:`choose_chunks` picks the chunks a user did not give, from the method's halo,
alignment and memory model (:class:`TaskCost`), so nobody does chunk arithmetic by hand.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from lst_pipeline.errors import GridError
from lst_pipeline.grid import Window

if TYPE_CHECKING:
    from lst_pipeline.grid import TargetGrid


@dataclass(frozen=True)
class OutputChunk:
    """One unit of work: a block of output days and pixels, and the input window it reads.

    Attributes
    ----------
    index
        Chunk index ``(it, iy, ix)`` in the plan.
    t0, t1
        Output day range ``[t0, t1)`` as indices into the plan's days.
    window
        Output pixels, aligned to the Zarr chunks of the cube.
    read_window
        ``window`` grown by the halo and clipped at the scene edge; what the task reads.
    """

    index: tuple[int, int, int]
    t0: int
    t1: int
    window: Window
    read_window: Window

    @property
    def n_days(self) -> int:
        """Days in the chunk."""
        return self.t1 - self.t0


@dataclass(frozen=True)
class ChunkPlan:
    """How the output cube is cut into chunks.

    The plan is pure arithmetic on the grid shape: deterministic, cheap, and iterated
    lazily so that a plan for ten years over a whole Landsat scene costs nothing to build.
    """

    shape: tuple[int, int, int]
    chunks: tuple[int, int, int]
    halo: int
    alignment: int

    def __post_init__(self) -> None:
        _, cy, cx = self.chunks
        if min(self.shape) < 1 or min(self.chunks) < 1:
            raise GridError(f"empty plan: shape {self.shape}, chunks {self.chunks}")
        if self.halo < 0:
            raise GridError(f"halo must be >= 0, got {self.halo}")
        if self.alignment < 1 or cy % self.alignment or cx % self.alignment:
            raise GridError(
                f"chunks.y/chunks.x: spatial chunks {cy}x{cx} are not multiples of the "
                f"alignment {self.alignment} (coarse factor and the method's pooling windows); "
                "leave chunks out to have them chosen, or see `run --plan-only`")

    @property
    def n_chunks(self) -> tuple[int, int, int]:
        """Number of chunks along ``(time, y, x)``."""
        (nt, ny, nx), (ct, cy, cx) = self.shape, self.chunks
        return math.ceil(nt / ct), math.ceil(ny / cy), math.ceil(nx / cx)

    def __len__(self) -> int:
        nt, ny, nx = self.n_chunks
        return nt * ny * nx

    @property
    def halo_aligned(self) -> int:
        """The halo rounded up to the alignment, so read windows stay aligned."""
        return math.ceil(self.halo / self.alignment) * self.alignment

    @property
    def computed_ratio(self) -> float:
        """Pixels computed (read windows, padded to the alignment) per output pixel."""
        _, ny, nx = self.shape
        return (_computed_pixels(ny, self.chunks[1], self.halo_aligned, self.alignment)
                * _computed_pixels(nx, self.chunks[2], self.halo_aligned, self.alignment)
                / (ny * nx))

    def chunk(self, it: int, iy: int, ix: int) -> OutputChunk:
        """The chunk with index ``(it, iy, ix)``."""
        nt, ny, nx = self.shape
        ct, cy, cx = self.chunks
        for i, n in zip((it, iy, ix), self.n_chunks):
            if not 0 <= i < n:
                raise IndexError(f"chunk index {(it, iy, ix)} outside {self.n_chunks}")
        window = Window(iy * cy, min((iy + 1) * cy, ny), ix * cx, min((ix + 1) * cx, nx))
        h = self.halo_aligned
        read = Window(max(window.y0 - h, 0), min(window.y1 + h, ny),
                      max(window.x0 - h, 0), min(window.x1 + h, nx))
        return OutputChunk((it, iy, ix), it * ct, min((it + 1) * ct, nt), window, read)

    def __iter__(self) -> Iterator[OutputChunk]:
        """Chunks in time-major order (all tiles of the first days first)."""
        nt, ny, nx = self.n_chunks
        for it in range(nt):
            for iy in range(ny):
                for ix in range(nx):
                    yield self.chunk(it, iy, ix)


def plan_chunks(
    grid: TargetGrid, n_days: int, chunks: tuple[int, int, int], *, halo: int,
    alignment: int | None = None,
) -> ChunkPlan:
    """Cut a daily cube on ``grid`` into output chunks.

    Parameters
    ----------
    grid
        The target grid; chunk edges are aligned to its coarse pixels.
    n_days
        Number of output days.
    chunks
        Output chunk shape ``(time, y, x)``, equal to the cube's Zarr chunks.
    halo
        Fine pixels each task must read beyond its chunk (the method's receptive field);
        rounded up to the alignment.
    alignment
        Chunk and read-window edges fall on multiples of this; a multiple of the coarse
        factor (default: the coarse factor).
    """
    alignment = alignment or grid.coarse_factor
    if alignment % grid.coarse_factor:
        raise GridError(f"alignment {alignment} is not a multiple of the coarse factor "
                        f"{grid.coarse_factor}")
    ny, nx = grid.shape
    ct, cy, cx = chunks
    return ChunkPlan(shape=(n_days, ny, nx), chunks=(ct, cy, cx), halo=halo,
                     alignment=alignment)


def _computed_pixels(n: int, chunk: int, halo: int, alignment: int) -> int:
    """Along one axis: pixels computed by all chunks (read window, padded to ``alignment``)."""
    total = 0
    for start in range(0, n, chunk):
        lo, hi = max(start - halo, 0), min(start + chunk + halo, n)
        total += math.ceil((hi - lo) / alignment) * alignment
    return total


# --------------------------------------------------------------------------------------
# Choosing chunks for the user.

#: Memory one fusion task may use by default (bytes): 1.5 GiB, so a worker of 2 threads
#: fits in 4 GiB with room for Dask itself.
TASK_MEMORY_BUDGET = int(1.5 * 2**30)
#: Largest spatial chunk chosen (px): keeps a Zarr chunk of the cube at a reasonable size.
MAX_SPATIAL_CHUNK = 2048
#: Days per chunk preferred (a month of maps per chunk) and the fewest chosen.
PREFERRED_TIME_CHUNK = 32
MIN_TIME_CHUNK = 8


@dataclass(frozen=True)
class TaskCost:
    """Memory model of one fusion task, per pixel of its read window.

    ``bytes = read_pixels * (days * per_pixel_day + references * per_pixel_reference)
    + per_forward_pixel * max(read_pixels, forward_pixels) + fixed``: the days' MODIS
    upsampled, the composite references of both sides, the predictions and the outputs grow
    with the days; the candidate references with their number; a network's activations with
    the pixels of one forward pass (a whole day of the read window at least, or a batch of
    ``forward_pixels``); ``fixed`` is the worker process itself (Python, NumPy, torch, the
    model). Fitted to measured peaks of real tasks by ``benchmarks/bench_chunks.py``.
    """

    per_pixel_day: float = 70.0
    per_pixel_reference: float = 0.0
    per_forward_pixel: float = 0.0
    forward_pixels: int = 0
    fixed: float = 380 * 2**20

    def bytes(self, read_pixels: int, days: int, references: int) -> float:
        """Estimated peak bytes of a task reading ``read_pixels`` over ``days`` days."""
        return (read_pixels * (days * self.per_pixel_day + references * self.per_pixel_reference)
                + self.per_forward_pixel * max(read_pixels, self.forward_pixels) + self.fixed)


@dataclass(frozen=True)
class ChunkChoice:
    """The chunks of a run and why: what was chosen or rounded, the cost it implies."""

    chunks: tuple[int, int, int]
    notes: tuple[str, ...]
    computed_ratio: float
    task_bytes: float


def _round_to(size: int, alignment: int) -> int:
    return max(alignment, round(size / alignment) * alignment)


def choose_chunks(
    grid: TargetGrid, n_days: int, *, halo: int, alignment: int,
    requested: tuple[int | None, int | None, int | None] = (None, None, None),
    n_workers: int = 1, references: Callable[[int], int] | None = None,
    cost: TaskCost | None = None, budget: float = TASK_MEMORY_BUDGET,
) -> ChunkChoice:
    """Chunks for a run: given ones rounded to the alignment, missing ones chosen.

    Spatial chunks are square multiples of ``alignment`` (at most
    :data:`MAX_SPATIAL_CHUNK`); the time depth is the largest up to
    :data:`PREFERRED_TIME_CHUNK` days (at least :data:`MIN_TIME_CHUNK`) whose task fits
    ``budget``. Among the sizes that fit and give at least ``n_workers`` tasks, the one that
    computes the fewest pixels per output pixel (the halo's recomputation) wins; within 5 %
    of the best, more days per chunk, then smaller chunks.

    Parameters
    ----------
    grid
        The target grid.
    n_days
        Output days.
    halo, alignment
        The method's halo (fine pixels) and alignment at the grid's coarse factor.
    requested
        ``(time, y, x)`` from the configuration, None where not given.
    n_workers
        Worker threads the run will have: at least as many tasks are made where possible.
    references
        Landsat dates a block of ``n`` days reads, at most (default: one per 8 days plus 2).
    cost
        The method's memory model.
    budget
        Bytes one task may use.

    Returns
    -------
    ChunkChoice
    """
    search = _ChunkSearch(grid, n_days, halo, alignment, cost or TaskCost(),
                          references or (lambda n: n // 8 + 2), budget)
    t_req, y_req, x_req = requested
    notes: list[str] = []
    fixed_spatial = None
    if y_req is not None or x_req is not None:
        fixed_spatial = _rounded_spatial(y_req, x_req, grid, alignment, notes)
    candidates = search.candidates(fixed_spatial, t_req, n_workers)
    if not candidates:  # nothing fits the budget: the smallest chunks, said so
        cy = cx = alignment if fixed_spatial is None else fixed_spatial[0]
        t = min(MIN_TIME_CHUNK, n_days) if t_req is None else min(t_req, n_days)
        notes.append(f"chunks: even {t} x {cy} x {cx} needs about "
                     f"{search.task_bytes(t, cy, cx) / 2**30:.1f} GiB "
                     f"per task, more than the budget of {budget / 2**30:.1f} GiB")
        candidates.append((search.ratio(t, cy, cx), t, cy, cx, 1))
    enough = [c for c in candidates if c[4] >= n_workers] or [max(candidates, key=lambda c: c[4])]
    deep = [c for c in enough if c[1] >= min(MIN_TIME_CHUNK, n_days)]
    enough = deep or enough  # fewer days than the minimum only if nothing else fits
    best = min(c[0] for c in enough)
    ratio, t, cy, cx, _ = max((c for c in enough if c[0] <= best * 1.05),
                              key=lambda c: (c[1], -c[2] * c[3]))
    if t_req is None or fixed_spatial is None:
        notes.append(f"chunks: {t} days x {cy} x {cx} px chosen (halo {search.halo_aligned} "
                     f"px, {ratio:.2f} pixels computed per output pixel, about "
                     f"{search.task_bytes(t, cy, cx) / 2**30:.2f} GiB per task)")
    return ChunkChoice((t, cy, cx), tuple(notes), ratio, search.task_bytes(t, cy, cx))


def _rounded_spatial(y_req: int | None, x_req: int | None, grid: TargetGrid,
                     alignment: int, notes: list[str]) -> tuple[int, int]:
    """The requested spatial chunks rounded to the alignment (a note for each rounding)."""
    y_size, x_size = y_req or x_req, x_req or y_req
    assert y_size is not None and x_size is not None  # called only when one of them is given
    cy = _round_to(y_size, alignment)
    cx = _round_to(x_size, alignment)
    for name, asked, got in (("y", y_req, cy), ("x", x_req, cx)):
        if asked is not None and asked != got:
            notes.append(f"chunks.{name}: {asked} rounded to {got}, a multiple of "
                         f"{alignment} (coarse factor {grid.coarse_factor} and the "
                         "method's pooling windows)")
    return cy, cx


@dataclass(frozen=True)
class _ChunkSearch:
    """The quantities :func:`choose_chunks` weighs for each candidate chunk shape."""

    grid: TargetGrid
    n_days: int
    halo: int
    alignment: int
    cost: TaskCost
    references: Callable[[int], int]
    budget: float

    @property
    def halo_aligned(self) -> int:
        return math.ceil(self.halo / self.alignment) * self.alignment

    def read_pixels(self, cy: int, cx: int) -> int:
        """The largest read window of the plan (chunk and halo, clipped, padded)."""
        ny, nx = self.grid.shape

        def extent(c: int, n: int) -> int:
            return math.ceil(min(c + 2 * self.halo_aligned, n) / self.alignment) * self.alignment
        return extent(cy, ny) * extent(cx, nx)

    def task_bytes(self, t: int, cy: int, cx: int) -> float:
        return self.cost.bytes(self.read_pixels(cy, cx), t, self.references(t))

    def ratio(self, t: int, cy: int, cx: int) -> float:
        ny, nx = self.grid.shape
        return ChunkPlan((self.n_days, ny, nx), (t, cy, cx), self.halo,
                         self.alignment).computed_ratio

    def depths(self, cy: int, cx: int, t_req: int | None) -> list[int]:
        """Time depths that fit the budget, longest first."""
        if t_req is not None:
            return [min(t_req, self.n_days)]
        top = min(PREFERRED_TIME_CHUNK, self.n_days)
        return [t for t in range(top, 0, -1) if self.task_bytes(t, cy, cx) <= self.budget]

    def candidates(self, fixed_spatial: tuple[int, int] | None, t_req: int | None,
                   n_workers: int) -> list[tuple[float, int, int, int, int]]:
        """``(ratio, days, cy, cx, tasks)`` of every shape that fits the budget.

        Depths below :data:`MIN_TIME_CHUNK` are kept only while they add tasks needed to
        feed ``n_workers``.
        """
        ny, nx = self.grid.shape
        a = self.alignment
        if fixed_spatial is not None:
            sizes = [fixed_spatial]
        else:
            top = min(max(MAX_SPATIAL_CHUNK // a, 1) * a, math.ceil(max(ny, nx) / a) * a)
            sizes = [(s, s) for s in range(top, a - 1, -a)]
        found = []
        for cy, cx in sizes:
            depths = self.depths(cy, cx, t_req)
            if not depths:
                continue
            ratio = self.ratio(depths[0], cy, cx)
            tiles = math.ceil(ny / cy) * math.ceil(nx / cx)
            for t in depths:
                if t < min(MIN_TIME_CHUNK, self.n_days) and t != depths[0] and \
                        tiles * math.ceil(self.n_days / (t + 1)) >= n_workers:
                    break  # shorter than the minimum only while it adds needed tasks
                found.append((ratio, t, cy, cx, tiles * math.ceil(self.n_days / t)))
        return found
