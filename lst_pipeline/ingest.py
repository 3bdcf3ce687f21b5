"""Real inputs -> input stack: plan what to read, then read it onto the grid and commit.

:func:`plan_ingest` finds the files (globs, STAC items, pre-gridded series), reads only
their headers, checks every one of them (product, collection, grid name, band files and
their registration, MTL, completeness) and groups them by sensor and date; the same scene
or granule given twice is read once (the latest processing); nothing is written.
:func:`execute_ingest` locks the stack, reads each date onto the target grid into a staging
store inside the stack (``_lst_pipeline/staging.zarr``), stages the stored dates that must
move to make room (``tail.zarr``), writes a commit journal and applies it: new dates are
inserted in order, dates already present are replaced (ingest is idempotent). A failure
before the commit leaves the stack exactly as it was (a stack created by this ingest is
removed); a crash during the commit leaves it marked incomplete, which readers refuse, and
the next ingest into it finishes the commit from the journal first, whatever its inputs.

Memory is bounded by one date of the fine grid (read, masked, resampled) and the commit's
copy blocks (:data:`COMMIT_BLOCK_BYTES`), whatever the number of dates.
"""

from __future__ import annotations

import datetime as dt
import glob
import time
import warnings
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lst_pipeline.config import (
    IngestConfig,
    LandsatSourceConfig,
    ModisSourceConfig,
    PipelineConfig,
)
from lst_pipeline.errors import ConfigError, InputError, InputWarning
from lst_pipeline.grid import TargetGrid, resolve_grid
from lst_pipeline.io import landsat, modis, pregridded, stac
from lst_pipeline.io.stack import (
    RECORD_PATH,
    IngestRecord,
    StackWriter,
    create_stack,
    stack_dates,
)
from lst_pipeline.io.zarr_store import (
    LOCK_FILES,
    PRIVATE_GROUP,
    delete_json,
    discard_unborn,
    grid_from_attrs,
    lock_store,
    open_group,
    private_dir,
    read_json,
    remove_store,
    write_json,
)
from lst_pipeline.model.runtime import trim_heap
from lst_pipeline.resample import block_mean

#: Staging stores and the commit journal, inside the stack's private group.
STAGING = "staging.zarr"
TAIL = "tail.zarr"
JOURNAL = "commit.json"
INGEST_SOURCE = "lst_pipeline.ingest"
PLATFORM_ATTR = "lst_pipeline:modis_platform"
#: Most bytes of one array copied at once by the commit (bounds its memory).
COMMIT_BLOCK_BYTES = 16 << 20


@dataclass(frozen=True)
class DateSources:
    """Everything to read for one sensor on one date.

    ``kind`` is ``scene`` (Landsat Level-2 scenes, mosaicked), ``granule`` (MODIS tiles or
    exports, mosaicked) or ``pregridded`` (one file already on the grid).
    """

    sensor: str
    date: dt.date
    kind: str
    sources: tuple[Any, ...]

    @property
    def names(self) -> list[str]:
        return [s if isinstance(s, str) else s.name for s in self.sources]


@dataclass
class IngestPlan:
    """What an ingest will read and where it will write."""

    config: PipelineConfig
    grid: TargetGrid
    stack: Path
    landsat: list[DateSources]
    modis: list[DateSources]
    skipped: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def n_files(self) -> int:
        return sum(len(d.sources) for d in (*self.landsat, *self.modis))

    def describe(self) -> str:
        """A few lines for the terminal."""
        lines = [f"note: {n}" for n in self.notes]
        lines.append(f"ingest into {self.stack}: grid {self.grid.shape[0]} x "
                     f"{self.grid.shape[1]} px, coarse {self.grid.coarse_shape[0]} x "
                     f"{self.grid.coarse_shape[1]}")
        for name, items in (("landsat", self.landsat), ("modis", self.modis)):
            if items:
                n = sum(len(d.sources) for d in items)
                lines.append(f"  {name}: {n} file(s) on {len(items)} date(s), "
                             f"{items[0].date} .. {items[-1].date}")
        if self.skipped:
            lines.append(f"  skipped {len(self.skipped)} file(s) (reasons below)")
        return "\n".join(lines)


@dataclass
class IngestSummary:
    """What an ingest did."""

    stack: Path
    landsat_dates: int
    modis_dates: int
    files: int
    bytes_read: int
    seconds: float
    landsat_clear: dict[str, float]
    modis_clear: dict[str, float]
    skipped: list[str]

    def __str__(self) -> str:
        rate = self.bytes_read / 1e6 / max(self.seconds, 1e-9)

        def mean(clear: dict[str, float]) -> str:
            return f"{np.mean(list(clear.values())):.1%}" if clear else "-"

        return (f"ingested {self.landsat_dates} Landsat and {self.modis_dates} MODIS date(s) "
                f"from {self.files} file(s) in {self.seconds:.1f} s "
                f"({self.bytes_read / 1e6:.0f} MB, {rate:.0f} MB/s) into {self.stack}\n"
                f"  mean clear fraction: Landsat {mean(self.landsat_clear)}, "
                f"MODIS {mean(self.modis_clear)}")


# --------------------------------------------------------------------------------------
# Planning: metadata only.


def _expand(patterns: tuple[str, ...], field_path: str) -> list[Path]:
    """Files named by glob patterns; a pattern that is an existing path is taken literally
    (so ``[`` and ``]`` in real directory names work). The same file twice counts once."""
    paths: list[Path] = []
    for pattern in patterns:
        literal = Path(pattern).expanduser()
        matches = [str(literal)] if literal.exists() else sorted(glob.glob(str(literal)))
        if not matches:
            hint = (" ('[' and ']' are glob characters: write [[] and []] for literal ones)"
                    if "[" in pattern or "]" in pattern else "")
            raise InputError(f"{field_path}: no file matches {pattern!r}{hint} (relative paths "
                             f"are taken from the working directory {Path.cwd()})")
        paths.extend(Path(m) for m in matches)
    unique = {p.resolve(): p for p in reversed(paths)}
    return [p for p in paths if unique[p.resolve()] is p]


def _unique_scenes(scenes: list[landsat.Scene], opts: LandsatSourceConfig,
                   skipped: list[str]) -> list[landsat.Scene]:
    """Check every scene's bands; of the same scene processed more than once keep the latest."""
    groups: dict[tuple[str, str], list[landsat.Scene]] = defaultdict(list)
    for scene in scenes:
        landsat.check_scene(scene, require_qa_pixel=opts.require_qa_pixel,
                            max_st_uncertainty_k=opts.max_st_uncertainty_k,
                            georeference_from_mtl=opts.georeference_from_mtl)
        groups[landsat.scene_key(scene)].append(scene)
    kept = []
    for (path_row, day), group in groups.items():
        group.sort(key=lambda s: (landsat.processed(s), s.name), reverse=True)
        kept.append(group[0])
        skipped += [f"{s.metadata.mtl}: same scene as {group[0].name} (path/row {path_row}, "
                    f"{day}) processed earlier ({landsat.processed(s)}); the latest processing "
                    "is used, not both" for s in group[1:]]
    return kept


def _unique_granules(granules: list[modis.Granule], overpass: str,
                     skipped: list[str]) -> list[modis.Granule]:
    """Check every granule's header; of one tile and day produced twice keep the latest."""
    groups: dict[tuple, list[modis.Granule]] = defaultdict(list)
    for g in granules:
        box = modis.check_granule(g, overpass)
        where = g.tile or tuple(round(v, 1) for v in box.boundingbox)
        groups[(g.product, g.date, where)].append(g)
    kept = []
    for (product, day, _), group in groups.items():
        group.sort(key=lambda g: (g.production or "", g.name), reverse=True)
        kept.append(group[0])
        skipped += [f"{g.path}: same {product} granule as {group[0].name} ({day}, same tile), "
                    "an earlier production; the latest is used, not both" for g in group[1:]]
    return kept


def _window(config: PipelineConfig) -> tuple[dt.date, dt.date]:
    gap = dt.timedelta(days=config.fusion.max_reference_gap_days)
    return config.dates.start - gap, config.dates.end + gap


def plan_ingest(config: PipelineConfig) -> IngestPlan:
    """Find and check every input named by ``config.ingest``; read metadata only.

    Raises
    ------
    ConfigError
        The configuration has no ``ingest`` section.
    InputError
        A pattern matching nothing, a file of an unknown or unsupported product, a scene
        whose band or MTL is missing or does not match, an existing stack on another grid
        or holding another MODIS platform.
    """
    ingest: IngestConfig | None = config.ingest
    if ingest is None:
        raise ConfigError("ingest: section missing; name the landsat, modis, stac or "
                          "pregridded sources to read (see README, 'Real inputs')")
    grid, grid_notes = resolve_grid(config.grid)
    skipped: list[str] = []
    scenes: list[landsat.Scene] = []
    granules: list[modis.Granule] = []
    overpass = _modis_options(ingest).overpass
    if ingest.landsat is not None and ingest.landsat.paths:
        scenes += [landsat.find_scene(p)
                   for p in _expand(ingest.landsat.paths, "ingest.landsat.paths")]
    if ingest.modis is not None and ingest.modis.paths:
        granules += [modis.find_granule(p, overpass)
                     for p in _expand(ingest.modis.paths, "ingest.modis.paths")]
    if ingest.stac is not None:
        stac_scenes, stac_granules, ignored = stac.split_items(
            stac.load_items(ingest.stac), ingest.stac, overpass)
        scenes += stac_scenes
        granules += stac_granules
        skipped += ignored
    platform = _modis_options(ingest).platform
    kept = []
    for g in granules:
        if g.platform != platform:
            skipped.append(f"{g.path}: {g.product} is {g.platform}, this stack holds "
                           f"{platform} (ingest.modis.platform); Terra and Aqua are kept apart")
        else:
            kept.append(g)
    first, last = _window(config)
    in_dates = [s for s in scenes if first <= s.metadata.date <= last]
    scenes = _unique_scenes(in_dates, _landsat_options(ingest), skipped) + \
        [s for s in scenes if not first <= s.metadata.date <= last]
    kept = _unique_granules([g for g in kept if first <= g.date <= last], overpass, skipped) + \
        [g for g in kept if not first <= g.date <= last]

    by_date: dict[tuple[str, dt.date, str], list[Any]] = defaultdict(list)
    for scene in scenes:
        by_date[("landsat", scene.metadata.date, "scene")].append(scene)
    for g in kept:
        by_date[("modis", g.date, "granule")].append(g)
    if ingest.pregridded is not None:
        pg = ingest.pregridded
        for sensor, patterns in (("landsat", pg.landsat), ("modis", pg.modis)):
            for p in _expand(patterns, f"ingest.pregridded.{sensor}") if patterns else []:
                day = pregridded.file_date(p, pg.date_regex, pg.date_format)
                by_date[(sensor, day, "pregridded")].append(str(p))

    items: dict[str, list[DateSources]] = {"landsat": [], "modis": []}
    seen: dict[tuple[str, dt.date], str] = {}
    for (sensor, day, kind), sources in sorted(by_date.items(), key=lambda kv: kv[0][:2]):
        if not first <= day <= last:
            skipped += [f"{_name(s)}: {day} is outside the dates this pipeline can use "
                        f"({first} .. {last})" for s in sources]
            continue
        if (sensor, day) in seen:
            raise InputError(f"{_name(sources[0])}: {sensor} {day} is given both as {kind} and "
                             f"as {seen[(sensor, day)]} input; keep one")
        if kind == "pregridded" and len(sources) > 1:
            raise InputError(f"{sources[1]}: second pre-gridded {sensor} file for {day} "
                             f"(first: {sources[0]}); one file per date")
        seen[(sensor, day)] = kind
        items[sensor].append(DateSources(sensor, day, kind, tuple(sources)))
    if not items["landsat"] and not items["modis"]:
        raise InputError(f"no input falls within {first} .. {last} (dates widened by "
                         "fusion.max_reference_gap_days); check dates: and the file dates"
                         + (f"; skipped: {skipped[0]}" if skipped else ""))
    plan = IngestPlan(config, grid, Path(config.inputs.stack), items["landsat"],
                      items["modis"], skipped, grid_notes)
    _check_existing_stack(plan, platform)
    return plan


def _landsat_options(ingest: IngestConfig) -> LandsatSourceConfig:
    """The Landsat options, defaults when the section is absent (STAC-only ingests)."""
    return ingest.landsat or LandsatSourceConfig()


def _modis_options(ingest: IngestConfig) -> ModisSourceConfig:
    """The MODIS options, defaults when the section is absent."""
    return ingest.modis or ModisSourceConfig()


def _name(source: Any) -> str:
    return source if isinstance(source, str) else getattr(source, "name", str(source))


def _check_existing_stack(plan: IngestPlan, platform: str) -> None:
    if not plan.stack.exists():
        return
    group = open_group(plan.stack)
    existing = grid_from_attrs(dict(group.attrs), plan.stack)
    if existing != plan.grid:
        raise InputError(f"{plan.stack}: existing stack is on another grid than the "
                         "configuration's; ingest into a new inputs.stack path")
    stored = group.attrs.get(PLATFORM_ATTR)
    if stored is not None and stored != platform:
        raise InputError(f"{plan.stack}: holds MODIS {stored} data, not {platform}; Terra and "
                         "Aqua are kept apart, ingest them into separate stacks")


# --------------------------------------------------------------------------------------
# Reading one date onto the grid.


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


def _file_bytes(source: Any) -> int:
    paths = []
    if isinstance(source, landsat.Scene):
        paths = [source.st_b10, source.qa_pixel, source.st_qa]
    elif isinstance(source, modis.Granule):
        paths = list(source.layers.values()) if source.layers else [source.path]
    else:
        paths = [source]
    return sum(Path(p).stat().st_size for p in paths if p and Path(p).is_file())


def read_date(item: DateSources, plan: IngestPlan) -> DateOnGrid | None:
    """Read and mosaic one date's sources onto the grid (``None``: nothing overlaps)."""
    ingest = plan.config.ingest
    grid = plan.grid
    lst_parts, bits_parts, frac_parts, times, platforms, used = [], [], [], [], [], []
    nbytes = 0
    for source in item.sources:
        nbytes += _file_bytes(source)
        if item.kind == "scene":
            opts = _landsat_options(ingest)
            read = landsat.read_scene(
                source, grid.fine, mask_snow=opts.mask_snow,
                max_st_uncertainty_k=opts.max_st_uncertainty_k,
                require_qa_pixel=opts.require_qa_pixel,
                georeference_from_mtl=opts.georeference_from_mtl)
            if read is None:
                _skip(f"{source.st_b10}: does not overlap the target grid", plan)
                continue
            lst_parts.append(read[0])
            bits_parts.append(read[1])
            acquired = source.metadata.acquired
            times.append(acquired.hour + acquired.minute / 60 + acquired.second / 3600)
            platforms.append(source.metadata.spacecraft)
        elif item.kind == "granule":
            opts = _modis_options(ingest)
            read = modis.read_granule(
                source, grid.coarse, overpass=opts.overpass,
                max_lst_error_class=opts.max_lst_error_class,
                min_valid_fraction=0.0)  # applied after the mosaic of the day's tiles
            if read is None:
                _skip(f"{source.path}: does not overlap the target grid", plan)
                continue
            lst_parts.append(read.lst)
            bits_parts.append(read.qc)
            frac_parts.append(read.valid_fraction)
            times.append(read.view_time_h)
            platforms.append(source.platform)
        else:
            read = _read_pregridded(item, source, plan)
            lst_parts.append(read[0])
            bits_parts.append(read[1])
            if read[2] is not None:
                frac_parts.append(read[2])
            times.append(np.nan)
            platforms.append("pregridded")
        used.append(_name(source))
    if not lst_parts:
        return None
    frac = None
    if item.kind == "granule":
        # tiles meeting inside a coarse cell: area-weighted mean, fractions add up
        lst, frac = _mosaic_weighted(lst_parts, frac_parts)
        lst = np.where(frac >= _modis_options(ingest).min_valid_fraction, lst, np.nan)
        bits = _mosaic(lst_parts, bits_parts)[1]
    else:
        lst, bits = _mosaic(lst_parts, bits_parts)
        if frac_parts:
            frac = np.clip(np.sum(frac_parts, axis=0), 0, 1).astype(np.float32)
    finite = [t for t in times if np.isfinite(t)]
    return DateOnGrid(lst, bits, frac, float(np.mean(finite)) if finite else float("nan"),
                      "+".join(sorted(set(platforms))), used, nbytes)


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
    pg = plan.config.ingest.pregridded
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


# --------------------------------------------------------------------------------------
# Executing: stage every date, then commit.


def execute_ingest(plan: IngestPlan, *, progress: bool = True, log=print) -> IngestSummary:
    """Read every planned date onto the grid and commit them into the stack.

    The stack is locked for the whole ingest (a second ingest into it is refused). Dates are
    read into staging stores inside the stack; only when all are read is a commit journal
    written and the commit applied. The commit copies only from the staging stores, so
    it can be repeated: an ingest killed during its commit is finished by the next
    ``lst-pipeline ingest`` into the same stack, whatever that one's inputs.

    Parameters
    ----------
    plan
        From :func:`plan_ingest`.
    progress
        Show a progress bar over the files.
    log
        Where notes (a finished interrupted commit) go.

    Returns
    -------
    IngestSummary
    """
    started = time.perf_counter()
    stack = plan.stack
    platform = _modis_options(plan.config.ingest).platform
    lock, made_dir = lock_store(stack, "stack", field="inputs.stack",
                                what="another ingest is writing into this stack")
    created = not (stack / "zarr.json").exists()
    committing = False
    try:
        if created:
            create_stack(stack, plan.grid, np.array([], "datetime64[D]"),
                         np.array([], "datetime64[D]"), spatial_chunk=_stack_chunk(plan),
                         attrs={"source": INGEST_SOURCE, PLATFORM_ATTR: platform})
            StackWriter(stack).finish()  # an empty, complete stack until the commit
        else:
            _check_existing_stack(plan, platform)
            journal = read_json(stack, JOURNAL)
            if journal is not None:
                log(f"{stack}: finishing the commit of an interrupted ingest first")
                _apply_commit(stack, journal)
            _remove_staging(stack)
        journal, bytes_read = _stage(plan, progress)
        committing = True
        write_json(stack, JOURNAL, journal)
        _apply_commit(stack, journal)
    except BaseException:
        if created:
            remove_store(stack, "stack", field="inputs.stack", keep=LOCK_FILES)
        elif not committing:
            _remove_staging(stack)
        raise
    finally:
        lock.release()
        if made_dir:
            discard_unborn(stack)
    updates = journal["record"]
    return IngestSummary(
        stack=stack,
        landsat_dates=len(updates["landsat"]), modis_dates=len(updates["modis"]),
        files=plan.n_files, bytes_read=bytes_read, seconds=time.perf_counter() - started,
        landsat_clear={d: r["clear_fraction"] for d, r in updates["landsat"].items()},
        modis_clear={d: r["clear_fraction"] for d, r in updates["modis"].items()},
        skipped=list(plan.skipped))


def _stack_chunk(plan: IngestPlan) -> int:
    """Spatial chunk edge of the stack: the run's chunks when given, else 512 px."""
    return plan.config.chunks.y or plan.config.chunks.x or 512


def _staging(stack: Path, name: str) -> Path:
    return private_dir(stack) / name


def _remove_staging(stack: Path) -> None:
    """Delete staging stores left by an ingest that died before its commit."""
    for name in (STAGING, TAIL):
        path = stack / PRIVATE_GROUP / name
        if path.exists():
            remove_store(path, "stack", field=f"{stack} staging")
            path.rmdir()


def _stage(plan: IngestPlan, progress: bool) -> tuple[dict[str, Any], int]:
    """Read every planned date into the staging store, then stage the dates they displace.

    New dates are read in date order into ``staging.zarr``. Dates already in the stack that
    must move to make room for earlier new dates are copied into ``tail.zarr``. The commit
    then only copies from these two stores, never from the stack into itself.

    Returns
    -------
    (journal, bytes of files read)
        The journal describes the whole commit: the stack's new dates per sensor, where each
        staged date goes, the record entries and the content digests.
    """
    stack = plan.stack
    planned = {s: np.array([d.date for d in getattr(plan, s)], "datetime64[D]")
               for s in ("landsat", "modis")}
    staging = _staging(stack, STAGING)
    create_stack(staging, plan.grid, planned["landsat"], planned["modis"],
                 spatial_chunk=_stack_chunk(plan), attrs={"source": INGEST_SOURCE})
    writer = StackWriter(staging)
    updates, bytes_read = _read_into(plan, writer, progress)
    old = {s: stack_dates(stack, s) for s in ("landsat", "modis")}
    journal: dict[str, Any] = {"record": updates, "content": writer.content, "sensors": {}}
    tails = {}
    for sensor in ("landsat", "modis"):
        read = np.array(sorted(updates[sensor]), "datetime64[D]")
        union = np.union1d(old[sensor], read)
        fresh = np.setdiff1d(read, old[sensor])
        # stored dates after the first new one shift up: they are staged too
        moved = old[sensor][old[sensor] > fresh[0]] if len(fresh) else old[sensor][:0]
        moved = np.setdiff1d(moved, read)  # replaced dates come from the staging store
        tails[sensor] = moved
        journal["sensors"][sensor] = {
            "dates": [str(d) for d in union],
            "new": [[int(np.searchsorted(planned[sensor], d)), int(np.searchsorted(union, d))]
                    for d in read],
            "tail": [[k, int(np.searchsorted(union, d))] for k, d in enumerate(moved)],
        }
    if any(len(t) for t in tails.values()):
        tail = _staging(stack, TAIL)
        create_stack(tail, plan.grid, tails["landsat"], tails["modis"],
                     spatial_chunk=_stack_chunk(plan), attrs={"source": INGEST_SOURCE})
        source = open_group(stack)
        tail_writer = StackWriter(tail)
        for sensor, dates in tails.items():
            tail_writer.copy_dates(source, sensor, np.searchsorted(old[sensor], dates),
                                   np.arange(len(dates)), block_bytes=COMMIT_BLOCK_BYTES)
    return journal, bytes_read


def _apply_commit(stack: Path, journal: dict[str, Any]) -> None:
    """Apply a commit journal to the stack (idempotent: safe to repeat after a crash).

    Only the staging stores are read, so repeating a partly applied commit gives the same
    stack. The journal and the staging stores are removed once the stack is complete.
    """
    writer = StackWriter(stack)
    writer.set_status("writing")
    sources = {name: open_group(stack / PRIVATE_GROUP / name)
               for name in (STAGING, TAIL) if (stack / PRIVATE_GROUP / name).exists()}
    for sensor, entry in journal["sensors"].items():
        writer.set_dates(sensor, np.array(entry["dates"], "datetime64[D]"))
        for key, name in (("new", STAGING), ("tail", TAIL)):
            pairs = np.array(entry[key], dtype=np.int64).reshape(-1, 2)
            if len(pairs):
                writer.copy_dates(sources[name], sensor, pairs[:, 0], pairs[:, 1],
                                  block_bytes=COMMIT_BLOCK_BYTES)
    record = IngestRecord.load(stack)
    for sensor, entries in journal["record"].items():
        record.dates.setdefault(sensor, {}).update(entries)
    record.save()
    writer.content = journal["content"]
    writer.finish()
    delete_json(stack, JOURNAL)
    _remove_staging(stack)


def _read_into(plan: IngestPlan, writer: StackWriter, progress: bool
               ) -> tuple[dict[str, dict[str, dict[str, Any]]], int]:
    """Read every planned date onto the grid into the staging store (plan order).

    Landsat dates are written one by one (each is a full fine-grid image); MODIS days,
    small coarse images, are written in consecutive blocks of up to
    :data:`COMMIT_BLOCK_BYTES` (one Zarr write per block instead of per day).

    Returns
    -------
    (record updates per sensor and date, bytes of files read)
    """
    from tqdm.auto import tqdm

    updates: dict[str, dict[str, dict[str, Any]]] = {"landsat": {}, "modis": {}}
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
            valid_fraction=np.stack([r.valid_fraction for _, _, r in block]),
            view_time_h=np.array([r.time_h for _, _, r in block]))
        for (_, item, read), c in zip(block, clear, strict=True):
            record(item, read, float(c))
        block.clear()

    with tqdm(total=plan.n_files, unit="file", desc="ingest", disable=not progress) as bar:
        for index, item in enumerate(plan.landsat):
            read = read_date(item, plan)
            bar.update(len(item.sources))
            if read is not None:
                bytes_read += read.bytes_read
                record(item, read, writer.write_landsat(index, read.bits, read.lst,
                                                        masked=True, hour_utc=read.time_h))
            trim_heap()  # keep the peak that of one fine-grid date
        for index, item in enumerate(plan.modis):
            read = read_date(item, plan)
            bar.update(len(item.sources))
            if read is None:
                flush()  # the block must stay consecutive
                continue
            bytes_read += read.bytes_read
            block.append((index, item, read))
            if len(block) * per_day >= COMMIT_BLOCK_BYTES:
                flush()
        flush()
    return updates, bytes_read


def ingest(config: PipelineConfig, *, progress: bool = True) -> IngestSummary:
    """Plan and execute an ingest (what ``lst-pipeline ingest CONFIG`` does)."""
    return execute_ingest(plan_ingest(config), progress=progress)


__all__ = [
    "RECORD_PATH",
    "DateSources",
    "IngestPlan",
    "IngestSummary",
    "execute_ingest",
    "ingest",
    "plan_ingest",
    "read_date",
]
