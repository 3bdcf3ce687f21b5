"""Target grids and windows.

The fine target grid (an odc-geo :class:`~odc.geo.geobox.GeoBox`), the coarse grid that is
exactly the fine grid coarsened by an integer factor, and pixel windows of them. How the
output cube is cut into chunks is :mod:`lst_pipeline.chunks`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

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
        """``(rows, columns)`` of the window."""
        return self.y1 - self.y0, self.x1 - self.x0

    @property
    def slices(self) -> tuple[slice, slice]:
        """The window as numpy slices."""
        return slice(self.y0, self.y1), slice(self.x0, self.x1)

    def coarse(self, factor: int) -> Window:
        """The same rectangle on the coarse grid; edges must be multiples of ``factor``."""
        if any(v % factor for v in (self.y0, self.y1, self.x0, self.x1)):
            raise GridError(f"{self} is not aligned to the coarse factor {factor}")
        return Window(self.y0 // factor, self.y1 // factor, self.x0 // factor, self.x1 // factor)

    def relative_to(self, outer: Window) -> Window:
        """The window in the pixel coordinates of ``outer`` (which must contain it)."""
        return Window(self.y0 - outer.y0, self.y1 - outer.y0,
                      self.x0 - outer.x0, self.x1 - outer.x0)


def spread_windows(shape: tuple[int, int], alignment: int, *, size: int, most: int
                   ) -> list[Window]:
    """Up to ``most`` square windows of at most ``size`` px, aligned, spread over a grid.

    A grid no larger than ``size`` is one window (the whole grid).
    """
    ny, nx = shape
    edge = max(alignment, (size // alignment) * alignment)
    if ny <= edge and nx <= edge:
        return [Window(0, ny, 0, nx)]
    edge_y, edge_x = min(edge, ny), min(edge, nx)
    per_axis = max(1, int(np.floor(np.sqrt(most))))

    def starts(n: int, e: int) -> list[int]:
        if n <= e:
            return [0]
        pos = np.linspace(0, n - e, per_axis)
        return sorted({int(p // alignment) * alignment for p in pos})

    return [Window(y, min(y + edge_y, ny), x, min(x + edge_x, nx))
            for y in starts(ny, edge_y) for x in starts(nx, edge_x)][:most]
