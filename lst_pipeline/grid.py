"""Target grids and chunk plans.

All grid arithmetic of the package lives here: the fine target grid (an odc-geo
:class:`~odc.geo.geobox.GeoBox`), the coarse grid that is exactly the fine grid coarsened by
an integer factor, and the plan that cuts the output cube into chunks, each with the input
window (chunk plus halo, clipped at the scene edge) its task must read.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from lst_pipeline.errors import GridError

if TYPE_CHECKING:
    from odc.geo.geobox import GeoBox

    from lst_pipeline.config import GridConfig


def crs_name(crs) -> str:
    """``EPSG:32755``, or the CRS's own name when it has no EPSG code (never the full WKT)."""
    epsg = getattr(crs, "epsg", None)
    if epsg:
        return f"EPSG:{epsg}"
    name = getattr(getattr(crs, "_crs", None), "name", None) or str(crs)
    return name if len(name) <= 60 else name[:57] + "..."


def describe_geobox(box: GeoBox) -> str:
    """``EPSG:4326, 400 x 400 px of 0.001, origin (146, -34.8)`` for messages."""
    a = box.affine
    return (f"{crs_name(box.crs)}, {box.shape[0]} x {box.shape[1]} px of {abs(a.a):g}, "
            f"origin ({a.c:.12g}, {a.f:.12g})")


@dataclass(frozen=True)
class TargetGrid:
    """A fine grid and its aligned coarse grid.

    Attributes
    ----------
    fine
        The fine target grid (Landsat-like pixels).
    coarse_factor
        Fine pixels per coarse pixel along each axis.
    """

    fine: GeoBox
    coarse_factor: int

    def __post_init__(self) -> None:
        ny, nx = self.fine.shape
        f = self.coarse_factor
        if ny % f or nx % f:
            raise GridError(
                f"fine grid shape {ny}x{nx} is not a multiple of the coarse factor {f}"
            )

    @classmethod
    def from_config(cls, grid: GridConfig) -> TargetGrid:
        """Build the grid described by a :class:`~lst_pipeline.config.GridConfig`.

        See :func:`resolve_grid` for how bounds are transformed and widened.
        """
        return resolve_grid(grid)[0]

    def describe(self) -> str:
        """One line for messages: CRS, size, pixel size and origin (never the full WKT)."""
        return f"{describe_geobox(self.fine)}, coarse factor {self.coarse_factor}"

    @property
    def shape(self) -> tuple[int, int]:
        """Fine grid shape ``(ny, nx)``."""
        return tuple(self.fine.shape)

    @property
    def coarse(self) -> GeoBox:
        """The coarse grid: same origin, pixels ``coarse_factor`` times larger."""
        return self.fine.zoom_out(self.coarse_factor)

    @property
    def coarse_shape(self) -> tuple[int, int]:
        """Coarse grid shape ``(nyc, nxc)``."""
        ny, nx = self.shape
        return ny // self.coarse_factor, nx // self.coarse_factor


def _whole(n: float) -> int:
    """``n`` pixels rounded up, unless it is whole to floating-point accuracy."""
    return round(n) if abs(n - round(n)) < 1e-6 else math.ceil(n)


def resolve_grid(grid: GridConfig) -> tuple[TargetGrid, list[str]]:
    """The target grid of a configuration, and notes on what was adjusted to make it.

    ``crs: utm`` takes the UTM zone of the centre of the bounds; ``bounds_crs`` bounds are
    transformed to the grid's CRS (the envelope of the densified outline) and their origin
    moved out to whole fine pixels. With ``snap: out`` the grid then starts at the left/top
    bound and is widened right and down to whole fine and coarse pixels.

    Returns
    -------
    (grid, notes)
        The grid, and one line per adjustment for the user (empty when the bounds were
        used as given).

    Raises
    ------
    GridError
        An invalid or (without ``allow_geographic``) geographic CRS.
    """
    from affine import Affine
    from odc.geo.crs import CRS
    from odc.geo.geobox import GeoBox
    from odc.geo.geom import BoundingBox
    from pyproj.exceptions import CRSError

    notes: list[str] = []
    left, bottom, right, top = grid.bounds
    source_crs = grid.bounds_crs or ("EPSG:4326" if grid.crs.lower() == "utm" else None)
    try:
        if grid.crs.lower() == "utm":
            if source_crs is None or not CRS(source_crs).geographic:
                raise GridError("grid.crs: utm picks the zone from longitude/latitude bounds; "
                                "give bounds in degrees (grid.bounds_crs: EPSG:4326)")
            box = BoundingBox(left, bottom, right, top, source_crs).to_crs("EPSG:4326")
            crs = CRS.utm((box.left + box.right) / 2, (box.bottom + box.top) / 2)
            notes.append(f"grid.crs: utm -> {crs_name(crs)} (the zone of the bounds' centre)")
        else:
            crs = CRS(grid.crs)
    except (CRSError, ValueError) as exc:
        raise GridError(f"grid.crs: {grid.crs!r} is not a valid CRS ({exc})") from exc
    if crs.geographic and not grid.allow_geographic:
        raise GridError(
            f"grid.crs: {grid.crs!r} is geographic; use a projected CRS in metres "
            "(for example the scene's UTM zone, EPSG:326xx, or crs: utm), or set "
            "grid.allow_geographic: true for a series already prepared on a lon/lat grid"
        )
    res = grid.resolution
    if source_crs is not None and CRS(source_crs) != crs:
        box = BoundingBox(left, bottom, right, top, source_crs).to_crs(crs)
        left = math.floor(box.left / res) * res
        top = math.ceil(box.top / res) * res
        right, bottom = box.right, box.bottom
        notes.append(f"grid.bounds: from {crs_name(CRS(source_crs))} to {crs_name(crs)}: "
                     f"left {left:.12g}, top {top:.12g} (whole {res:g} pixels)")
    f = grid.coarse_factor
    wanted = (_whole((top - bottom) / res), _whole((right - left) / res))
    shape = tuple(math.ceil(n / f) * f for n in wanted)
    if shape != wanted:
        notes.append(
            f"grid.bounds: widened from {wanted[0]} x {wanted[1]} to {shape[0]} x {shape[1]} px "
            f"to whole coarse pixels of {res * f:.12g} (coarse factor {f}): right "
            f"{left + shape[1] * res:.12g}, bottom {top - shape[0] * res:.12g} (grid.snap: "
            "exact refuses instead)")
    fine = GeoBox(shape, Affine(res, 0.0, left, 0.0, -res, top), crs)
    return TargetGrid(fine=fine, coarse_factor=f), notes


@dataclass(frozen=True)
class Window:
    """A rectangle of the fine grid as half-open pixel ranges ``[y0, y1) x [x0, x1)``."""

    y0: int
    y1: int
    x0: int
    x1: int

    @property
    def shape(self) -> tuple[int, int]:
        return self.y1 - self.y0, self.x1 - self.x0

    @property
    def slices(self) -> tuple[slice, slice]:
        return slice(self.y0, self.y1), slice(self.x0, self.x1)

    def coarse(self, factor: int) -> Window:
        """The same rectangle on the coarse grid; edges must be multiples of ``factor``."""
        if any(v % factor for v in (self.y0, self.y1, self.x0, self.x1)):
            raise GridError(f"{self} is not aligned to the coarse factor {factor}")
        return Window(self.y0 // factor, self.y1 // factor, self.x0 // factor, self.x1 // factor)

    def relative_to(self, outer: Window) -> Window:
        """This window in the pixel coordinates of ``outer`` (which must contain it)."""
        return Window(self.y0 - outer.y0, self.y1 - outer.y0,
                      self.x0 - outer.x0, self.x1 - outer.x0)


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
        return tuple(math.ceil(n / c) for n, c in zip(self.shape, self.chunks))

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
    return ChunkPlan(shape=(n_days, ny, nx), chunks=tuple(chunks), halo=halo,
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
    cost = cost or TaskCost()
    references = references or (lambda n: n // 8 + 2)
    ny, nx = grid.shape
    h = math.ceil(halo / alignment) * alignment
    notes: list[str] = []
    t_req, y_req, x_req = requested
    fixed_spatial = None
    if y_req is not None or x_req is not None:
        cy = _round_to(y_req or x_req, alignment)
        cx = _round_to(x_req or y_req, alignment)
        for name, asked, got in (("y", y_req, cy), ("x", x_req, cx)):
            if asked is not None and asked != got:
                notes.append(f"chunks.{name}: {asked} rounded to {got}, a multiple of "
                             f"{alignment} (coarse factor {grid.coarse_factor} and the "
                             "method's pooling windows)")
        fixed_spatial = (cy, cx)

    def read_pixels(cy: int, cx: int) -> int:
        """The largest read window of the plan (chunk and halo, clipped, padded)."""
        def extent(c: int, n: int) -> int:
            return math.ceil(min(c + 2 * h, n) / alignment) * alignment
        return extent(cy, ny) * extent(cx, nx)

    def days_for(cy: int, cx: int) -> list[int]:
        """Time depths that fit the budget, longest first (below the minimum only to feed
        more workers)."""
        if t_req is not None:
            return [min(t_req, n_days)]
        top = min(PREFERRED_TIME_CHUNK, n_days)
        return [t for t in range(top, 0, -1)
                if cost.bytes(read_pixels(cy, cx), t, references(t)) <= budget]

    if fixed_spatial is not None:
        sizes = [fixed_spatial]
    else:
        top = min(max(MAX_SPATIAL_CHUNK // alignment, 1) * alignment,
                  math.ceil(max(ny, nx) / alignment) * alignment)
        sizes = [(s, s) for s in range(top, alignment - 1, -alignment)]
    candidates = []
    for cy, cx in sizes:
        depths = days_for(cy, cx)
        if not depths:
            continue
        ratio = ChunkPlan((n_days, ny, nx), (depths[0], cy, cx), halo, alignment).computed_ratio
        tiles = math.ceil(ny / cy) * math.ceil(nx / cx)
        for t in depths:
            if t < min(MIN_TIME_CHUNK, n_days) and t != depths[0] and \
                    tiles * math.ceil(n_days / (t + 1)) >= n_workers:
                break  # shorter than the minimum only while it adds needed tasks
            candidates.append((ratio, t, cy, cx, tiles * math.ceil(n_days / t)))
    if not candidates:  # nothing fits the budget: the smallest chunks, said so
        cy = cx = alignment if fixed_spatial is None else fixed_spatial[0]
        t = min(MIN_TIME_CHUNK, n_days) if t_req is None else min(t_req, n_days)
        ratio = ChunkPlan((n_days, ny, nx), (t, cy, cx), halo, alignment).computed_ratio
        notes.append(f"chunks: even {t} x {cy} x {cx} needs about "
                     f"{cost.bytes(read_pixels(cy, cx), t, references(t)) / 2**30:.1f} GiB "
                     f"per task, more than the budget of {budget / 2**30:.1f} GiB")
        candidates.append((ratio, t, cy, cx, 1))
    enough = [c for c in candidates if c[4] >= n_workers] or [max(candidates, key=lambda c: c[4])]
    deep = [c for c in enough if c[1] >= min(MIN_TIME_CHUNK, n_days)]
    enough = deep or enough  # fewer days than the minimum only if nothing else fits
    best = min(c[0] for c in enough)
    ratio, t, cy, cx, _ = max((c for c in enough if c[0] <= best * 1.05),
                              key=lambda c: (c[1], -c[2] * c[3]))
    if t_req is None or fixed_spatial is None:
        notes.append(f"chunks: {t} days x {cy} x {cx} px chosen (halo {h} px, "
                     f"{ratio:.2f} pixels computed per output pixel, about "
                     f"{cost.bytes(read_pixels(cy, cx), t, references(t)) / 2**30:.2f} GiB "
                     "per task)")
    return ChunkChoice((t, cy, cx), tuple(notes), ratio,
                       cost.bytes(read_pixels(cy, cx), t, references(t)))
