"""Registering each day's MODIS to the Landsat grid (``fusion.modis_registration``).

A MOD11A1 cell does not see exactly the square of fine pixels it is gridded over: the
gridding of swath footprints, geolocation errors and the footprint's growth with view
angle move the area it averages by a fraction of a cell, differently every day. Where the
land is uniform this does not matter; across a lake shore, a town edge or a valley side a
cell then reports its neighbour's temperature by a kelvin or more, and every fusion method
takes that for a change of the surface.

A run measures each day's shift on its own stack (:func:`fit_registration`, planning): the
day's MODIS is regressed on the cell means of the nearest clear Landsat date (on a Landsat
date, its own), with the cells moved by ``(dy, dx)`` fine pixels, and the shift with the
smallest residual is kept, searched over half a cell each way, if it beats no shift by a
likelihood-ratio test (:func:`fit_shift`). The fit against the next nearest date is kept
too: leave-one-date-out takes it for the days whose nearest date it hides, the held-out
date among them, so no held-out Landsat corrects the MODIS its prediction reads. Every
MODIS image the run reads is then corrected by the difference the shift makes to that
reference's cell means, scaled by the fitted gain (:func:`shift_correction`)::

    M'(cell) = M(cell) + gain * (mean_L(cell) - mean_L(cell + shift))

so a cell reports the temperature of its own square, at the pattern of the reference.
Where the reference is cloudy or the moved cell leaves the grid, MODIS is left as it is.

Layers: :func:`cell_means_moved`, :func:`fit_shift` and :func:`shift_correction` are numpy
kernels; :func:`fit_registration` reads the stack (planning, once per run) and
:func:`register_modis` the block's reference (per block, from the executor's tasks).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from lst_pipeline.config.locations import StorePath
from lst_pipeline.errors import InputError
from lst_pipeline.grid import Window

#: Fewest cells seen by both the day's MODIS and the moved reference to fit a shift.
MIN_CELLS = 20
#: A reference Landsat date must be at least this clear (whole scene).
MIN_REFERENCE_CLEAR = 0.5
#: Fitted gains outside (0, MAX_GAIN) mean the reference does not explain the day: no
#: correction.
MAX_GAIN = 3.0
#: Level of the test a shift must pass against no shift (:func:`fit_shift`).
SHIFT_TEST_LEVEL = 0.05
#: At most this many windows of at most this size (px) are read per Landsat date to fit.
FIT_WINDOWS = 9
FIT_WINDOW_PX = 1024


_NO_SHIFT = np.zeros(1, np.int64)


def _integral(fine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ok = np.isfinite(fine)
    sums = np.zeros((fine.shape[0] + 1, fine.shape[1] + 1))
    sums[1:, 1:] = np.where(ok, fine, 0.0).cumsum(0).cumsum(1)
    counts = np.zeros(sums.shape)
    counts[1:, 1:] = ok.cumsum(0).cumsum(1)
    return sums, counts


def _box_means(integral: tuple[np.ndarray, np.ndarray], f: int, y0: np.ndarray,
               x0: np.ndarray, dys: np.ndarray = _NO_SHIFT, dxs: np.ndarray = _NO_SHIFT
               ) -> np.ndarray:
    """Means of the ``f`` x ``f`` boxes at origins ``y0 + dy`` x ``x0 + dx``, every shift.

    Returns ``(len(dys), len(y0), len(dxs), len(x0))``; NaN where a box is not wholly inside
    or not wholly clear.
    """
    sums, counts = integral
    ny, nx = sums.shape[0] - 1, sums.shape[1] - 1
    ys = np.asarray(dys)[:, None] + y0[None, :]
    xs = np.asarray(dxs)[:, None] + x0[None, :]
    inside = (((ys >= 0) & (ys + f <= ny))[:, :, None, None]
              & ((xs >= 0) & (xs + f <= nx))[None, None])
    yy = np.clip(ys, 0, max(ny - f, 0))[:, :, None, None]
    xx = np.clip(xs, 0, max(nx - f, 0))[None, None]

    def box(a: np.ndarray) -> np.ndarray:
        return a[yy + f, xx + f] - a[yy, xx + f] - a[yy + f, xx] + a[yy, xx]

    n = box(counts)
    out = box(sums) / np.maximum(n, 1)
    out[(n < f * f) | ~inside] = np.nan
    return out


def cell_means_moved(fine: np.ndarray, f: int, dy: int, dx: int) -> np.ndarray:
    """Means of each coarse cell of ``fine`` moved by ``(dy, dx)`` fine pixels.

    NaN where the moved cell is not wholly clear or leaves ``fine``.
    """
    ny, nx = fine.shape
    return _box_means(_integral(fine), f, np.arange(ny // f) * f + dy,
                      np.arange(nx // f) * f + dx)[0, :, 0, :]


def fit_shift(modis: list[np.ndarray], fine: list[np.ndarray], f: int
              ) -> tuple[int, int, float] | None:
    """The day's shift ``(dy, dx)`` in fine pixels and its gain, from paired windows.

    ``modis[k]`` is the day's MODIS over window ``k`` and ``fine[k]`` the reference's Landsat
    over the same window (a multiple of ``f``). For each shift the day's MODIS is regressed
    on the moved cell means, pooled over the windows; the smallest mean squared residual
    wins, searched on a grid of ``f // 16`` px over half a cell, then to the pixel around the
    best. A shift is kept only if it beats no shift by a likelihood-ratio test at
    :data:`SHIFT_TEST_LEVEL`, Bonferroni-corrected for the shifts tried:
    ``n ln(mse(0, 0) / mse(shift)) > 2 ln(tried / level)`` (the bound of the largest of
    ``tried`` chi-squared variables of 2 degrees of freedom); otherwise ``(0, 0)``, so a day
    that shows no shift is left as it is. None with fewer than :data:`MIN_CELLS` cells or a
    gain outside ``(0, MAX_GAIN)``.
    """
    integrals = [_integral(a) for a in fine]
    starts = [(np.arange(m.shape[0]) * f, np.arange(m.shape[1]) * f) for m in modis]
    day = np.concatenate([m.ravel() for m in modis]).astype(np.float64)
    tried: dict[tuple[int, int], tuple[float, float, int]] = {}

    def score(dys: np.ndarray, dxs: np.ndarray) -> None:
        """Regress the day on the moved cell means for every shift of ``dys x dxs``."""
        moved = np.concatenate([
            _box_means(i, f, y0, x0, dys, dxs).transpose(0, 2, 1, 3).reshape(
                len(dys), len(dxs), -1) for i, (y0, x0) in zip(integrals, starts)], axis=-1)
        ok = np.isfinite(moved) & np.isfinite(day)
        n = ok.sum(axis=-1)
        a = np.where(ok, moved, 0.0)
        m = np.where(ok, day, 0.0)
        with np.errstate(invalid="ignore", divide="ignore"):
            a = np.where(ok, a - a.sum(-1, keepdims=True) / n[..., None], 0.0)
            m = np.where(ok, m - m.sum(-1, keepdims=True) / n[..., None], 0.0)
            saa, sam, smm = (a * a).sum(-1), (a * m).sum(-1), (m * m).sum(-1)
            gain = sam / saa
            mse = (smm - gain * sam) / n
        for (i, j), good in np.ndenumerate((n >= MIN_CELLS) & (saa > 0)):
            if good:
                tried[(int(dys[i]), int(dxs[j]))] = (float(mse[i, j]), float(gain[i, j]),
                                                     int(n[i, j]))

    half, step = f // 2, max(1, f // 16)
    grid = np.arange(-half, half + 1, step)
    score(_NO_SHIFT, _NO_SHIFT)
    score(grid, grid)
    if (0, 0) not in tried:
        return None
    by, bx = min(tried, key=lambda k: tried[k][0])
    score(np.arange(max(-half, by - step + 1), min(half, by + step - 1) + 1),
          np.arange(max(-half, bx - step + 1), min(half, bx + step - 1) + 1))
    by, bx = min(tried, key=lambda k: tried[k][0])
    mse, gain, n = tried[(by, bx)]
    if n * np.log(tried[(0, 0)][0] / max(mse, 1e-12)) <= 2 * np.log(len(tried) / SHIFT_TEST_LEVEL):
        by, bx, gain = 0, 0, tried[(0, 0)][1]
    if not 0.0 < gain < MAX_GAIN:
        return None
    return by, bx, gain


def _exact_box_means(fine: np.ndarray, f: int, y0: np.ndarray, x0: np.ndarray) -> np.ndarray:
    """:func:`_box_means` summed box by box, so a value does not depend on the window read.

    Each box is gathered into a row of its own and summed in the same order wherever it lies
    (an integral image's differences depend on where the window starts, in the last bits).
    """
    ny, nx = fine.shape
    inside_y = (y0 >= 0) & (y0 + f <= ny)
    inside_x = (x0 >= 0) & (x0 + f <= nx)
    out = np.full((len(y0), len(x0)), np.nan)
    if not inside_y.any() or not inside_x.any():
        return out
    rows = y0[inside_y][:, None] + np.arange(f)
    cols = x0[inside_x][:, None] + np.arange(f)
    boxes = fine[rows[:, None, :, None], cols[None, :, None, :]].astype(np.float64)
    boxes = np.ascontiguousarray(boxes.reshape(-1, f * f))
    means = boxes.sum(axis=1) / (f * f)  # NaN if any pixel of the box is
    out[np.ix_(inside_y, inside_x)] = means.reshape(rows.shape[0], cols.shape[0])
    return out


def shift_correction(fine: np.ndarray, f: int, dy: int, dx: int, gain: float,
                     origin: tuple[int, int], shape: tuple[int, int]) -> np.ndarray:
    """``gain * (mean_L(cell) - mean_L(cell + shift))`` for ``shape`` cells, 0 where unknown.

    ``fine`` is the reference over a window that holds the cells (starting ``origin`` fine
    pixels into it) and, where the grid has them, the ``f // 2`` pixels around them, so a
    block computes what the whole scene computes, to the bit.
    """
    y0 = origin[0] + np.arange(shape[0]) * f
    x0 = origin[1] + np.arange(shape[1]) * f
    diff = _exact_box_means(fine, f, y0, x0) - _exact_box_means(fine, f, y0 + dy, x0 + dx)
    return np.where(np.isfinite(diff), gain * diff, 0.0).astype(np.float32)


#: One day's fit: ``(reference_day, dy, dx, gain)``.
Fit = tuple[int, int, int, float]


@dataclass(frozen=True)
class ModisRegistration:
    """The per-day MODIS shifts of one run (:func:`fit_registration`).

    Attributes
    ----------
    days
        Days with a shift (days since 1970-01-01); other days are read as they are.
    fits
        Per day, the fit against the nearest clear Landsat date (the day's own, on a Landsat
        date) and the fit against the next nearest, or None: each ``(reference_day, dy, dx,
        gain)``, the shift in fine pixels (rows down, columns right: the day's cell saw the
        square that far away) and the fitted MODIS-on-Landsat gain.
    """

    days: tuple[int, ...]
    fits: tuple[tuple[Fit, Fit | None], ...]

    def describe(self) -> str:
        """One line for the plan."""
        if not self.days:
            return "MODIS registration: no day could be measured; MODIS read as it is"
        d = np.hypot([f[0][1] for f in self.fits], [f[0][2] for f in self.fits])
        return (f"MODIS registered to Landsat on {len(self.days)} day(s): shift median "
                f"{np.median(d):.1f} px, 90th percentile {np.quantile(d, 0.9):.1f} px "
                "(fusion.modis_registration: off to read MODIS as it is)")

    def as_attrs(self) -> dict[str, Any]:
        """JSON-able record for the cube's attributes."""
        return asdict(self)

    @classmethod
    def from_attrs(cls, attrs: dict[str, Any]) -> ModisRegistration:
        """The registration recorded by :meth:`as_attrs` (JSON lists back to tuples)."""
        def fit(v: Any) -> Fit:
            return int(v[0]), int(v[1]), int(v[2]), float(v[3])

        return cls(tuple(int(d) for d in attrs["days"]),
                   tuple((fit(a), None if b is None else fit(b)) for a, b in attrs["fits"]))

    def without(self, day: int) -> ModisRegistration:
        """The registration with no day measured against Landsat date ``day``.

        Leave-one-date-out hides a date: its own MODIS and every day measured against it
        take their next-nearest fit (or none), so that its Landsat corrects no MODIS the
        held-out prediction reads, and the held-out date is registered as a day without
        Landsat is.
        """
        days, fits = [], []
        for d, (first, second) in zip(self.days, self.fits):
            if first[0] != int(day):
                days.append(d)
                fits.append((first, second))
            elif second is not None and second[0] != int(day):
                days.append(d)
                fits.append((second, None))
        return ModisRegistration(tuple(days), tuple(fits))

    def on(self, day: int) -> Fit | None:
        """``(reference_day, dy, dx, gain)`` of ``day``, or None."""
        try:
            return self.fits[self.days.index(int(day))][0]
        except ValueError:
            return None


def _nearest(day: int, ldays: np.ndarray, usable: np.ndarray, max_gap: int) -> list[int]:
    """The two nearest usable Landsat dates (indices) within ``max_gap`` days, nearest first."""
    gap = np.abs(ldays - day).astype(np.float64)
    gap[~usable] = np.inf
    order = np.argsort(gap, kind="stable")[:2]
    return [int(k) for k in order if gap[k] <= max_gap]


def fit_registration(stack: StorePath, days: np.ndarray, max_gap_days: int
                     ) -> ModisRegistration:
    """Measure the shift of every day in ``days`` on the stack (cached per content)."""
    from lst_pipeline.io.stack import StackReader

    reader = StackReader(stack)
    key = tuple(int(d) for d in days)
    if reader.content is None:
        return _measure(reader, key, max_gap_days)
    return _measured(stack, repr(reader.content), key, max_gap_days)


@lru_cache(maxsize=8)
def _measured(stack: StorePath, content: str, days: tuple[int, ...], max_gap_days: int
              ) -> ModisRegistration:
    from lst_pipeline.io.stack import StackReader

    return _measure(StackReader(stack), days, max_gap_days)


def _measure(reader: Any, days: tuple[int, ...], max_gap_days: int) -> ModisRegistration:
    from lst_pipeline.grid import spread_windows

    grid = reader.grid
    f = grid.coarse_factor
    windows = spread_windows(grid.shape, f, size=FIT_WINDOW_PX, most=FIT_WINDOWS)
    ldays = reader.landsat_dates.astype(np.int64)
    usable = reader.landsat_clear_fraction >= MIN_REFERENCE_CLEAR
    days_fitted: list[int] = []
    fits: list[tuple[Fit, Fit | None]] = []
    references: dict[int, list[np.ndarray]] = {}
    try:
        modis = [reader.read_modis(np.asarray(days).astype("datetime64[D]"), w.coarse(f))
                 for w in windows]
        for t, day in enumerate(days):  # in time order: older references are not needed
            for k in [k for k in references if ldays[k] < day - max_gap_days]:
                del references[k]
            found: list[Fit] = []
            for k in _nearest(day, ldays, usable, max_gap_days):
                if k not in references:
                    references[k] = [reader.read_landsat(np.array([k]), w)[0] for w in windows]
                shift = fit_shift([m[t] for m in modis], references[k], f)
                if shift is not None:
                    found.append((int(ldays[k]), shift[0], shift[1], round(shift[2], 6)))
            if found:
                days_fitted.append(int(day))
                fits.append((found[0], found[1] if len(found) > 1 else None))
    except Exception as exc:  # a corrupt chunk file, an I/O error ...
        raise InputError(f"{reader.path}: cannot read the MODIS and Landsat images to register "
                         f"MODIS to Landsat ({type(exc).__name__}: {exc}); check or rebuild "
                         "the input stack, or set fusion.modis_registration: off") from exc
    return ModisRegistration(tuple(days_fitted), tuple(fits))


def planned_registration(reader: Any, fusion: Any, days: np.ndarray
                         ) -> tuple[ModisRegistration | None, list[str]]:
    """The run's registration for its ``fusion`` section, and the plan's note.

    Every stack MODIS day a run over output ``days`` may read is measured: the days, the
    MODIS days a gap is interpolated from and the Landsat dates whose MODIS rebuilds a
    reference's.
    """
    from lst_pipeline.fusion.reference_offset import horizon_days

    if fusion.modis_registration != "auto":
        return None, []
    reach = (fusion.max_reference_gap_days + horizon_days(fusion.reference_offset_days)
             + fusion.max_modis_interpolation_days)
    first, last = int(days[0].astype(np.int64)), int(days[-1].astype(np.int64))
    stack_days = reader.modis_dates.astype("datetime64[D]").astype(np.int64)
    wanted = stack_days[(stack_days >= first - reach) & (stack_days <= last + reach)]
    fitted = fit_registration(reader.path, wanted, fusion.max_reference_gap_days)
    return fitted, [fitted.describe()]


def register_modis(modis: np.ndarray, days: np.ndarray, registration: ModisRegistration | None,
                   reader: Any, read_window: Window,
                   references: dict[int, np.ndarray] | None = None) -> np.ndarray:
    """``(n, wyc, wxc)`` MODIS of ``days`` over ``read_window`` moved back onto its cells.

    ``references`` keeps the reference Landsat read (by day) between calls for one block,
    which reads MODIS for its target days and for its references' dates separately.
    """
    if registration is None or not registration.days:
        return modis
    f = reader.grid.coarse_factor
    ny, nx = reader.grid.shape
    pad = f // 2
    outer = Window(max(0, read_window.y0 - pad), min(ny, read_window.y1 + pad),
                   max(0, read_window.x0 - pad), min(nx, read_window.x1 + pad))
    origin = (read_window.y0 - outer.y0, read_window.x0 - outer.x0)
    ldays = reader.landsat_dates.astype(np.int64)
    out = modis.copy()
    references = {} if references is None else references
    for t, day in enumerate(np.asarray(days, np.int64)):
        found = registration.on(int(day))
        if found is None:
            continue
        reference_day, dy, dx, gain = found
        if dy == dx == 0:
            continue
        if reference_day not in references:
            k = np.flatnonzero(ldays == reference_day)
            references[reference_day] = reader.read_landsat(k[:1], outer)[0]
        out[t] += shift_correction(references[reference_day], f, dy, dx, gain, origin,
                                   modis.shape[1:])
    return out
