"""``lst-pipeline inspect``: what an input stack or an output cube holds, in a few lines.

Only metadata and the small per-date arrays are read, never a whole image.
"""

from __future__ import annotations

import numpy as np

from lst_pipeline.config.locations import StorePath, as_store_path
from lst_pipeline.errors import InputError
from lst_pipeline.grid import crs_name
from lst_pipeline.io.stack import (
    LANDSAT_CLEAR,
    MODIS_CLEAR,
    RECORD_PATH,
    IngestRecord,
    stack_dates,
)
from lst_pipeline.io.zarr_store import (
    STATUS_ATTR,
    grid_from_attrs,
    open_group,
)

#: A Landsat date with at least this clear fraction counts as a usable reference in gaps.
USABLE_CLEAR_FRACTION = 0.2


def describe_grid(path: StorePath, attrs: dict) -> list[str]:
    """Grid lines: CRS, shape, pixel size, bounds, coarse grid."""
    grid = grid_from_attrs(attrs, path)
    box = grid.fine
    crs = crs_name(box.crs)
    left, bottom, right, top = box.boundingbox
    res = abs(box.affine.a)
    return [f"grid: {crs}, {box.shape[0]} x {box.shape[1]} px of {res:g} "
            f"(coarse {grid.coarse_shape[0]} x {grid.coarse_shape[1]} px of "
            f"{res * grid.coarse_factor:g}, factor {grid.coarse_factor})",
            f"bounds: left {left:.12g}, bottom {bottom:.12g}, right {right:.12g}, top {top:.12g}"]


def record_gaps(dates: np.ndarray, usable: np.ndarray, *, longest: int = 3
                ) -> list[tuple[np.datetime64, np.datetime64, int]]:
    """The ``longest`` runs of days between consecutive usable dates, longest first.

    Returns
    -------
    list of (after, before, days)
        Consecutive usable dates and the number of days between them.
    """
    good = np.sort(np.asarray(dates, "datetime64[D]")[np.asarray(usable, bool)])
    if len(good) < 2:
        return []
    gaps = np.diff(good).astype(int)
    order = np.argsort(-gaps, kind="stable")[:longest]
    return [(good[i], good[i + 1], int(gaps[i])) for i in order]


def _stack_lines(path: StorePath, group, dates: bool) -> list[str]:
    lines = []
    record = IngestRecord.load(path) if (path / RECORD_PATH).is_file() else None
    for sensor, clear_name in (("landsat", LANDSAT_CLEAR), ("modis", MODIS_CLEAR)):
        days = stack_dates(path, sensor)
        if not len(days):
            lines.append(f"{sensor}: no dates")
            continue
        clear = group[clear_name][:] if clear_name in group.array_keys() else \
            np.full(len(days), np.nan)
        span = int((days[-1] - days[0]).astype(int)) + 1
        lines.append(f"{sensor}: {len(days)} date(s), {days[0]} .. {days[-1]} "
                     f"({span} days), clear fraction mean {np.nanmean(clear):.1%}, "
                     f"min {np.nanmin(clear):.1%}, {int(np.sum(clear == 0))} with none clear")
        if sensor == "landsat":
            usable = clear >= USABLE_CLEAR_FRACTION
            gaps = record_gaps(days, usable)
            if gaps:
                text = ", ".join(f"{a} -> {b} ({n} d)" for a, b, n in gaps)
                lines.append(f"  longest gaps between dates >= "
                             f"{USABLE_CLEAR_FRACTION:.0%} clear: {text}")
        else:
            missing = span - len(days)
            lines.append(f"  missing days in the record: {missing}")
        if dates:
            entries = (record.dates.get(sensor, {}) if record else {})
            for day, frac in zip(days, clear, strict=True):
                entry = entries.get(str(day), {})
                sources = ", ".join(entry.get("sources", [])) or "-"
                lines.append(f"    {day}  clear {frac:6.1%}  {entry.get('platform', '')}  "
                             f"{sources}")
    platform = group.attrs.get("lst_pipeline:modis_platform")
    if platform:
        lines.append(f"MODIS platform: {platform}")
    return lines


def _cube_lines(path: StorePath, group) -> list[str]:
    from lst_pipeline.io.cube import open_cube

    ds = open_cube(path)
    attrs = dict(group.attrs)
    days = ds["time"].values.astype("datetime64[D]")
    chunks = dict(zip(ds["lst"].dims, ds["lst"].encoding.get("chunks", ()), strict=False))
    lines = [f"days: {len(days)}, {days[0]} .. {days[-1]}",
             f"variables: {', '.join(sorted(ds.data_vars))}",
             f"chunks: {chunks}"]
    for key in ("lst_pipeline:method", "lst_pipeline:checkpoint",
                "lst_pipeline:checkpoint_sha256", "lst_pipeline:input_stack",
                "lst_pipeline:version"):
        if key in attrs:
            lines.append(f"{key.split(':', 1)[1]}: {attrs[key]}")
    model = attrs.get("lst_pipeline:uncertainty")
    if model:
        fitted = model.get("fitted", {})
        lines.append(f"uncertainty: error model of {model.get('method')} fitted on "
                     f"{fitted.get('residuals', '?')} residuals of "
                     f"{len(fitted.get('held_out_dates', []))} held-out Landsat dates "
                     f"(within 1 sigma there {fitted.get('within_1_sigma', '?')})")
    return lines


def describe_store(path: StorePath | str, *, dates: bool = False) -> str:
    """Describe an input stack or output cube.

    Parameters
    ----------
    path
        The store.
    dates
        List every date of a stack with its clear fraction and sources.

    Raises
    ------
    InputError
        No store at ``path``, or a store not written by lst_pipeline.
    """
    path = as_store_path(path)
    if not path.exists():
        raise InputError(f"{path}: no such store")
    group = open_group(path)
    attrs = dict(group.attrs)
    arrays = set(group.array_keys())
    if "lst" in arrays and "qa" in arrays:
        kind, body = "output cube", _cube_lines
    elif "landsat_lst" in arrays:
        kind, body = "input stack", None
    else:
        raise InputError(f"{path}: neither an lst_pipeline input stack nor an output cube "
                         f"(arrays: {', '.join(sorted(arrays)) or 'none'})")
    lines = [f"{path}: {kind}, status {attrs.get(STATUS_ATTR, 'unknown')}",
             *describe_grid(path, attrs)]
    lines += body(path, group) if body else _stack_lines(path, group, dates)
    return "\n".join(lines)
