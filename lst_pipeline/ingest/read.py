"""Reading planned dates onto the target grid: scenes, granules or pre-gridded files.

Several scenes (Landsat) or tiles (MODIS) of one date are mosaicked; MODIS tiles meeting
inside a coarse cell are weighted by the area each covers. :func:`read_dates` writes a run
of dates into a staging store, in this process or on a worker.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from lst_pipeline.config.locations import input_path, input_size
from lst_pipeline.errors import InputWarning
from lst_pipeline.ingest.plan import (
    DateSources,
    IngestPlan,
    landsat_options,
    modis_options,
    source_name,
)
from lst_pipeline.io import landsat, modis, pregridded
from lst_pipeline.io.stack_writer import COMMIT_BLOCK_BYTES
from lst_pipeline.model.runtime import trim_heap
from lst_pipeline.resample import block_mean

if TYPE_CHECKING:
    from lst_pipeline.io.stack_writer import StackWriter


@dataclass
class DateOnGrid:
    """One date read onto the target grid (fine for Landsat, coarse for MODIS)."""

    lst: np.ndarray
    bits: np.ndarray                      # QA_PIXEL (Landsat) or QC (MODIS)
    valid_fraction: np.ndarray | None     # MODIS only
    time_h: float                         # Landsat: hour UTC; MODIS: local solar view time
    platform: str
    sources: list[str]
    bytes_read: int
    st_uncertainty: np.ndarray | None = None  # Landsat ST_QA (K), when every scene had it


def _file_bytes(source: Any) -> int:
    paths = []
    if isinstance(source, landsat.Scene):
        paths = [source.st_b10, source.qa_pixel, source.st_qa]
    elif isinstance(source, modis.Granule):
        paths = list(source.layers.values()) if source.layers else [source.path]
    else:
        paths = [source]
    return sum(input_size(input_path(p)) or 0 for p in paths if p)


def read_date(item: DateSources, plan: IngestPlan) -> DateOnGrid | None:
    """Read and mosaic one date's sources onto the grid (``None``: nothing overlaps)."""
    ingest = plan.config.ingest
    assert ingest is not None  # plan_ingest refuses a configuration without an ingest section
    grid = plan.grid
    lst_parts, bits_parts, frac_parts, times, platforms, used = [], [], [], [], [], []
    sigma_parts: list[np.ndarray | None] = []
    nbytes = 0
    for source in item.sources:
        nbytes += _file_bytes(source)
        if item.kind == "scene":
            ls_opts = landsat_options(ingest)
            scene = landsat.read_scene(
                source, grid.fine, mask_snow=ls_opts.mask_snow,
                max_st_uncertainty_k=ls_opts.max_st_uncertainty_k,
                require_qa_pixel=ls_opts.require_qa_pixel,
                georeference_from_mtl=ls_opts.georeference_from_mtl)
            if scene is None:
                _skip(f"{source.st_b10}: does not overlap the target grid", plan)
                continue
            lst_parts.append(scene[0])
            bits_parts.append(scene[1])
            sigma_parts.append(scene[2])
            acquired = source.metadata.acquired
            times.append(acquired.hour + acquired.minute / 60 + acquired.second / 3600)
            platforms.append(source.metadata.spacecraft)
        elif item.kind == "granule":
            md_opts = modis_options(ingest)
            granule = modis.read_granule(
                source, grid.coarse, overpass=md_opts.overpass,
                max_lst_error_class=md_opts.max_lst_error_class,
                min_valid_fraction=0.0)  # applied after the mosaic of the day's tiles
            if granule is None:
                _skip(f"{source.path}: does not overlap the target grid", plan)
                continue
            lst_parts.append(granule.lst)
            bits_parts.append(granule.qc)
            frac_parts.append(granule.valid_fraction)
            times.append(granule.view_time_h)
            platforms.append(source.platform)
        else:
            pg_lst, pg_bits, pg_frac = _read_pregridded(item, source, plan)
            lst_parts.append(pg_lst)
            bits_parts.append(pg_bits)
            if pg_frac is not None:
                frac_parts.append(pg_frac)
            times.append(np.nan)
            platforms.append("pregridded")
        used.append(source_name(source))
    if not lst_parts:
        return None
    frac = None
    if item.kind == "granule":
        # tiles meeting inside a coarse cell: area-weighted mean, fractions add up
        lst, frac = _mosaic_weighted(lst_parts, frac_parts)
        lst = np.where(frac >= modis_options(ingest).min_valid_fraction, lst, np.nan)
        bits = _mosaic(lst_parts, bits_parts)[1]
    else:
        lst, bits = _mosaic(lst_parts, bits_parts)
        if frac_parts:
            frac = np.clip(np.sum(frac_parts, axis=0), 0, 1).astype(np.float32)
    finite = [t for t in times if np.isfinite(t)]
    sigma = None
    if sigma_parts and all(s is not None for s in sigma_parts):
        sigma = _mosaic([s for s in sigma_parts if s is not None], bits_parts)[0]
    return DateOnGrid(lst, bits, frac, float(np.mean(finite)) if finite else float("nan"),
                      "+".join(sorted(set(platforms))), used, nbytes, sigma)


def _skip(message: str, plan: IngestPlan) -> None:
    plan.skipped.append(message)
    warnings.warn(message, InputWarning, stacklevel=3)


def _mosaic(lst_parts: list[np.ndarray], bits_parts: list[np.ndarray]
            ) -> tuple[np.ndarray, np.ndarray]:
    """Mean of the valid values where scenes overlap; bits of the first valid scene."""
    if len(lst_parts) == 1:
        return lst_parts[0], bits_parts[0]
    stack = np.stack(lst_parts)
    valid = np.isfinite(stack)
    count = valid.sum(axis=0)
    total = np.where(valid, stack, 0).sum(axis=0, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        lst = np.where(count > 0, total / count, np.nan).astype(np.float32)
    first_valid = np.argmax(valid, axis=0)
    bits = np.take_along_axis(np.stack(bits_parts), first_valid[None], axis=0)[0]
    return lst, bits


def _mosaic_weighted(lst_parts: list[np.ndarray], frac_parts: list[np.ndarray]
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Mean of the parts weighted by the area each covers, and the summed area."""
    lst = np.stack(lst_parts).astype(np.float64)
    weight = np.where(np.isfinite(lst), np.stack(frac_parts), 0.0)
    total = weight.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(total > 0, (np.nan_to_num(lst) * weight).sum(axis=0) / total, np.nan)
    return mean.astype(np.float32), np.clip(total, 0, 1).astype(np.float32)


def _read_pregridded(item: DateSources, path: str, plan: IngestPlan
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    ingest = plan.config.ingest
    assert ingest is not None  # plan_ingest refuses a configuration without an ingest section
    pg = ingest.pregridded
    assert pg is not None  # plan_ingest plans pre-gridded dates only from this section
    grid = plan.grid
    if item.sensor == "landsat":
        lst, _ = pregridded.read_on_grid(path, grid.fine, scale=pg.scale, offset=pg.offset)
        qa = np.where(np.isfinite(lst), landsat.QA_VALUE_CLEAR_LAND, landsat.QA_VALUE_FILL)
        return lst, qa.astype(np.uint16), None
    values, which = pregridded.read_on_grid(path, grid.coarse, alternatives=(grid.fine,),
                                            scale=pg.scale, offset=pg.offset)
    if which == 1:  # on the fine grid: average each coarse cell
        values, frac = block_mean(values, grid.coarse_factor)
        values = np.where(frac >= 0.5, values, np.nan).astype(np.float32)
    else:
        frac = np.isfinite(values).astype(np.float32)
    qc = np.where(np.isfinite(values), modis.make_qc(modis.MANDATORY_GOOD),
                  modis.make_qc(modis.MANDATORY_NOT_PRODUCED))
    return values, qc.astype(np.uint8), frac


#: What reading dates gives: record entries per sensor and date, and the bytes read.
Updates = dict[str, dict[str, dict[str, Any]]]


def _valid_fraction(read: DateOnGrid) -> np.ndarray:
    """The valid fraction of a MODIS date (:func:`read_date` always gives MODIS dates one)."""
    assert read.valid_fraction is not None  # granules and pre-gridded MODIS files carry one
    return read.valid_fraction


def read_dates(plan: IngestPlan, writer: StackWriter, landsat: range, modis: range, *,
               tick: Callable[[int], object] = lambda n: None) -> tuple[Updates, int]:
    """Read the planned dates at positions ``landsat`` and ``modis`` into ``writer``.

    Landsat dates are written one by one (each is a full fine-grid image); MODIS days,
    small coarse images, are written in consecutive blocks of up to
    :data:`COMMIT_BLOCK_BYTES` (one Zarr write per block instead of per day).

    Parameters
    ----------
    plan
        The ingest plan.
    writer
        The staging store's writer.
    landsat, modis
        Positions in ``plan.landsat`` and ``plan.modis`` (= in the staging store).
    tick
        Called with the number of files of each date read (a progress bar's update).

    Returns
    -------
    (record updates per sensor and date, bytes of files read)
    """
    updates: Updates = {"landsat": {}, "modis": {}}
    bytes_read = 0
    block: list[tuple[int, DateSources, DateOnGrid]] = []
    per_day = 4 * 4 * int(np.prod(plan.grid.coarse_shape))  # lst, valid, qc, ... per day

    def record(item: DateSources, read: DateOnGrid, clear: float) -> None:
        updates[item.sensor][str(item.date)] = {
            "platform": read.platform, "clear_fraction": round(clear, 6),
            "time_h": None if not np.isfinite(read.time_h) else round(read.time_h, 4),
            "sources": read.sources, "kind": item.kind}

    def flush() -> None:
        if not block:
            return
        clear = writer.write_modis(
            block[0][0], np.stack([r.bits for _, _, r in block]),
            np.stack([r.lst for _, _, r in block]), masked=True,
            valid_fraction=np.stack([_valid_fraction(r) for _, _, r in block]),
            view_time_h=np.array([r.time_h for _, _, r in block]))
        for (_, item, read), c in zip(block, clear, strict=True):
            record(item, read, float(c))
        block.clear()

    for index in landsat:
        item = plan.landsat[index]
        read = read_date(item, plan)
        tick(len(item.sources))
        if read is not None:
            bytes_read += read.bytes_read
            record(item, read, writer.write_landsat(
                index, read.bits, read.lst, masked=True, hour_utc=read.time_h,
                st_uncertainty=read.st_uncertainty))
        trim_heap()  # keep the peak that of one fine-grid date
    for index in modis:
        item = plan.modis[index]
        read = read_date(item, plan)
        tick(len(item.sources))
        if read is None or (block and block[-1][0] != index - 1):
            flush()  # a block must stay consecutive
        if read is None:
            continue
        bytes_read += read.bytes_read
        block.append((index, item, read))
        if len(block) * per_day >= COMMIT_BLOCK_BYTES:
            flush()
    flush()
    return updates, bytes_read
