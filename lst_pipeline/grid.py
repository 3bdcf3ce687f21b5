"""Target grids and chunk plans.

All grid arithmetic of the package lives here: the fine target grid (an odc-geo
:class:`~odc.geo.geobox.GeoBox`), the coarse grid that is exactly the fine grid coarsened by
an integer factor, and the plan that cuts the output cube into chunks, each with the input
window (chunk plus halo, clipped at the scene edge) its task must read.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
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
            f"origin ({a.c:g}, {a.f:g})")


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
        """Build the grid described by a :class:`~lst_pipeline.config.GridConfig`."""
        from odc.geo.geobox import GeoBox
        from odc.geo.geom import CRS
        from pyproj.exceptions import CRSError

        left, bottom, right, top = grid.bounds
        try:
            crs = CRS(grid.crs)
        except (CRSError, ValueError) as exc:
            raise GridError(f"grid.crs: {grid.crs!r} is not a valid CRS ({exc})") from exc
        if crs.geographic and not grid.allow_geographic:
            raise GridError(
                f"grid.crs: {grid.crs!r} is geographic; use a projected CRS in metres "
                "(for example the scene's UTM zone, EPSG:326xx), or set "
                "grid.allow_geographic: true for a series already prepared on a lon/lat grid"
            )
        res = grid.resolution
        shape = (round((top - bottom) / res), round((right - left) / res))
        from affine import Affine

        fine = GeoBox(shape, Affine(res, 0.0, left, 0.0, -res, top), crs)
        return cls(fine=fine, coarse_factor=grid.coarse_factor)

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
        _, ny, nx = self.shape
        _, cy, cx = self.chunks
        if min(self.shape) < 1 or min(self.chunks) < 1:
            raise GridError(f"empty plan: shape {self.shape}, chunks {self.chunks}")
        if self.halo < 0:
            raise GridError(f"halo must be >= 0, got {self.halo}")
        if self.alignment < 1 or cy % self.alignment or cx % self.alignment:
            raise GridError(
                f"chunks.y/chunks.x: spatial chunks {cy}x{cx} are not multiples of the "
                f"alignment {self.alignment} (coarse factor and the method's pooling windows)"
            )
        if ny % self.alignment or nx % self.alignment:
            raise GridError(f"grid {ny}x{nx} is not a multiple of the alignment {self.alignment}")

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
