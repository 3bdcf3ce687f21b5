"""Planning an ingest: find and check every input, group it by sensor and date.

Only headers are read and nothing is written, so ``ingest --plan-only`` is cheap and every
bad file is reported before a byte of the stack changes.
"""

from __future__ import annotations

import datetime as dt
import glob
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lst_pipeline.config import (
    IngestConfig,
    LandsatSourceConfig,
    ModisSourceConfig,
    PipelineConfig,
)
from lst_pipeline.config.locations import StorePath
from lst_pipeline.errors import ConfigError, InputError
from lst_pipeline.grid import TargetGrid, resolve_grid
from lst_pipeline.io import landsat, modis, pregridded, stac
from lst_pipeline.io.ownership import check_replaceable
from lst_pipeline.io.zarr_store import (
    grid_from_attrs,
    open_group,
)

#: Root attribute naming the MODIS platform a stack holds (Terra and Aqua are kept apart).
PLATFORM_ATTR = "lst_pipeline:modis_platform"


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
        """File names of the sources, for records and messages."""
        return [s if isinstance(s, str) else s.name for s in self.sources]


@dataclass
class IngestPlan:
    """What an ingest will read and where it will write."""

    config: PipelineConfig
    grid: TargetGrid
    stack: StorePath
    landsat: list[DateSources]
    modis: list[DateSources]
    skipped: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def n_files(self) -> int:
        """Number of files to read."""
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


def _expand(patterns: tuple[str, ...], field_path: str) -> list[Any]:
    """Files named by glob patterns or ``http(s)://`` URLs; the same file twice counts once.

    A pattern that is an existing path is taken literally (so ``[`` and ``]`` in real
    directory names work); a URL is always literal.
    """
    from lst_pipeline.config.locations import input_path, is_remote

    paths: list[Any] = []
    for k, pattern in enumerate(patterns):
        literal = input_path(pattern, f"{field_path}[{k}]")
        if is_remote(literal):  # a URL names one file: web servers cannot be globbed
            paths.append(literal)
            continue
        matches = [str(literal)] if literal.exists() else sorted(glob.glob(str(literal)))
        if not matches:
            hint = (" ('[' and ']' are glob characters: write [[] and []] for literal ones)"
                    if "[" in pattern or "]" in pattern else "")
            raise InputError(f"{field_path}: no file matches {pattern!r}{hint} (relative paths "
                             f"are taken from the working directory {Path.cwd()})")
        paths.extend(Path(m) for m in matches)
    def key(p: Any) -> str:
        return str(p) if is_remote(p) else str(p.resolve())

    unique = {key(p): p for p in reversed(paths)}
    return [p for p in paths if unique[key(p)] is p]


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


def _window(config: PipelineConfig, *, horizon: bool = False) -> tuple[dt.date, dt.date]:
    """The dates a run can use: its own widened by the largest reference gap.

    With ``horizon``, widened further by the reference-offset horizon: Landsat dates (and
    MODIS on those dates) that far out enter the offsets averaged into the references'
    MODIS (:mod:`lst_pipeline.fusion.reference_offset`).
    """
    from lst_pipeline.fusion.reference_offset import horizon_days

    days = config.fusion.max_reference_gap_days
    if horizon:
        days += horizon_days(config.fusion.reference_offset_days)
    gap = dt.timedelta(days=days)
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
    outer = _window(config, horizon=True)
    scenes, granules = _find_sources(ingest, outer, skipped)
    by_date: dict[tuple[str, dt.date, str], list[Any]] = defaultdict(list)
    for scene in scenes:
        by_date[("landsat", scene.metadata.date, "scene")].append(scene)
    for g in granules:
        by_date[("modis", g.date, "granule")].append(g)
    if ingest.pregridded is not None:
        pg = ingest.pregridded
        for sensor, patterns in (("landsat", pg.landsat), ("modis", pg.modis)):
            for p in _expand(patterns, f"ingest.pregridded.{sensor}") if patterns else []:
                day = pregridded.file_date(p, pg.date_regex, pg.date_format)
                by_date[(sensor, day, "pregridded")].append(str(p))
    items = _date_items(by_date, _window(config), outer, skipped)
    plan = IngestPlan(config, grid, config.inputs.stack, items["landsat"],
                      items["modis"], skipped, grid_notes)
    check_existing_stack(plan, modis_options(ingest).platform)
    return plan


def _find_sources(ingest: IngestConfig, window: tuple[dt.date, dt.date], skipped: list[str]
                  ) -> tuple[list[landsat.Scene], list[modis.Granule]]:
    """Every Landsat scene and MODIS granule named by globs or STAC, checked and deduplicated.

    Granules of the other MODIS platform are skipped (with a reason in ``skipped``); within
    ``window`` each scene and granule is checked and kept once (the latest processing).
    """
    scenes: list[landsat.Scene] = []
    granules: list[modis.Granule] = []
    overpass = modis_options(ingest).overpass
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
    platform = modis_options(ingest).platform
    kept = []
    for g in granules:
        if g.platform != platform:
            skipped.append(f"{g.path}: {g.product} is {g.platform}, this stack holds "
                           f"{platform} (ingest.modis.platform); Terra and Aqua are kept apart")
        else:
            kept.append(g)
    first, last = window
    in_dates = [s for s in scenes if first <= s.metadata.date <= last]
    scenes = _unique_scenes(in_dates, landsat_options(ingest), skipped) + \
        [s for s in scenes if not first <= s.metadata.date <= last]
    kept = _unique_granules([g for g in kept if first <= g.date <= last], overpass, skipped) + \
        [g for g in kept if not first <= g.date <= last]
    return scenes, kept


def _date_items(by_date: dict[tuple[str, dt.date, str], list[Any]],
                window: tuple[dt.date, dt.date], outer: tuple[dt.date, dt.date],
                skipped: list[str]) -> dict[str, list[DateSources]]:
    """One :class:`DateSources` per sensor and date a run can use, in date order.

    Every date inside ``window``; between it and ``outer`` (the reference-offset horizon),
    Landsat dates and the MODIS of those dates only.

    Raises
    ------
    InputError
        A date given both as files and pre-gridded, two pre-gridded files for one date, or
        no input inside the window at all.
    """
    first, last = outer
    items: dict[str, list[DateSources]] = {"landsat": [], "modis": []}
    seen: dict[tuple[str, dt.date], str] = {}
    # Landsat sorts before MODIS, so a MODIS date knows whether Landsat has that day
    for (sensor, day, kind), sources in sorted(by_date.items(), key=lambda kv: kv[0][:2]):
        if not first <= day <= last:
            skipped += [f"{source_name(s)}: {day} is outside the dates this pipeline can use "
                        f"({first} .. {last})" for s in sources]
            continue
        if (sensor == "modis" and not window[0] <= day <= window[1]
                and ("landsat", day) not in seen):
            skipped += [f"{source_name(s)}: {day} is beyond the run's dates widened by "
                        f"fusion.max_reference_gap_days ({window[0]} .. {window[1]}) and no "
                        "Landsat date is on that day; further out only MODIS on Landsat "
                        "dates is read (for fusion.reference_offset_days)" for s in sources]
            continue
        if (sensor, day) in seen:
            raise InputError(f"{source_name(sources[0])}: {sensor} {day} is given both as "
                             f"{kind} and as {seen[(sensor, day)]} input; keep one")
        if kind == "pregridded" and len(sources) > 1:
            raise InputError(f"{sources[1]}: second pre-gridded {sensor} file for {day} "
                             f"(first: {sources[0]}); one file per date")
        seen[(sensor, day)] = kind
        items[sensor].append(DateSources(sensor, day, kind, tuple(sources)))
    if not items["landsat"] and not items["modis"]:
        raise InputError(f"no input falls within {first} .. {last} (dates widened by "
                         "fusion.max_reference_gap_days and the reference-offset horizon); "
                         "check dates: and the file dates"
                         + (f"; skipped: {skipped[0]}" if skipped else ""))
    return items


def landsat_options(ingest: IngestConfig) -> LandsatSourceConfig:
    """The Landsat options, defaults when the section is absent (STAC-only ingests)."""
    return ingest.landsat or LandsatSourceConfig()


def modis_options(ingest: IngestConfig) -> ModisSourceConfig:
    """The MODIS options, defaults when the section is absent."""
    return ingest.modis or ModisSourceConfig()


def source_name(source: Any) -> str:
    """A file name for messages (paths as given, scenes and granules by their name)."""
    return source if isinstance(source, str) else getattr(source, "name", str(source))


def check_existing_stack(plan: IngestPlan, platform: str) -> None:
    """Refuse an existing stack on another grid or holding the other MODIS platform.

    An absent path, an empty directory (made by the user, or left by a removed stack) and
    one that is not a stack of ours are told apart by the ownership check.
    """
    if not check_replaceable(plan.stack, "stack", field="inputs.stack"):
        return
    attrs = dict(open_group(plan.stack).attrs)
    existing = grid_from_attrs(attrs, plan.stack)
    if existing != plan.grid:
        raise InputError(f"{plan.stack}: existing stack is on another grid than the "
                         "configuration's; ingest into a new inputs.stack path")
    stored = attrs.get(PLATFORM_ATTR)
    if stored is not None and stored != platform:
        raise InputError(f"{plan.stack}: holds MODIS {stored} data, not {platform}; Terra and "
                         "Aqua are kept apart, ingest them into separate stacks")
