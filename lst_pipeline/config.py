"""Pipeline configuration: YAML in, typed, frozen, validated dataclasses out.

A pipeline YAML names the grid, the dates, the stores, the chunking, the fusion method,
the simulation (for synthetic regions) and the cluster profile. Every section is a frozen
dataclass; :func:`load_pipeline` reads the file with ``yaml.safe_load`` and validates every
field, failing with one :class:`~lst_pipeline.errors.ConfigError` that names the field
(``grid.coarse_factor: expected an integer, got 31.5``).

Relative paths are resolved against the current working directory, as with most
command-line tools, so ``lst-pipeline run pipelines/demo.yaml`` writes under ``./demo_output``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from lst_pipeline.errors import ConfigError

#: Longest reference gap accepted (LST changes far too much over longer gaps to fuse).
MAX_REFERENCE_GAP_DAYS = 366

FusionMethodName = Literal["dlstfm", "reference_change", "modis_only", "starfm", "ubestarfm",
                           "auto"]
Device = Literal["auto", "cpu", "cuda"]
OutputDtype = Literal["int16", "float32"]


@dataclass(frozen=True)
class GridConfig:
    """The fine target grid and its coarse companion.

    Attributes
    ----------
    crs
        Any CRS string understood by pyproj (``"EPSG:32755"``), usually projected in metres;
        or ``utm``: the UTM zone (WGS 84, north or south) of the centre of ``bounds``, which
        are then given in longitude/latitude unless ``bounds_crs`` says otherwise.
    resolution
        Fine pixel size in CRS units (metres, or degrees for a geographic CRS), square
        pixels.
    bounds
        ``(left, bottom, right, top)`` in ``bounds_crs`` (default: the grid's CRS).
    coarse_factor
        Fine pixels per coarse pixel along each axis (32 x 30 m = 960 m, MODIS-like; any
        integer from 1, typically 8 to 40).
    allow_geographic
        Accept a geographic (lon/lat) CRS, whose pixels are not square on the ground; for
        series already prepared on such a grid (the Yanco sample). Default: refuse.
    snap
        ``out`` (default): the grid starts at the left/top bounds and is widened right and
        down to whole coarse pixels (the command says so); ``exact``: width and height must
        be whole coarse pixels, otherwise an error.
    bounds_crs
        CRS of ``bounds`` when it is not the grid's (``EPSG:4326`` for longitude/latitude);
        the grid then covers the transformed bounds, its origin on whole fine pixels.
    """

    crs: str
    resolution: float
    bounds: tuple[float, float, float, float]
    coarse_factor: int
    allow_geographic: bool = False
    snap: Literal["out", "exact"] = "out"
    bounds_crs: str | None = None

    def __post_init__(self) -> None:
        _require(self.resolution > 0, "grid.resolution", "must be positive")
        _require(self.coarse_factor >= 1, "grid.coarse_factor", "must be >= 1")
        left, bottom, right, top = self.bounds
        _require(right > left and top > bottom, "grid.bounds",
                 "must be [left, bottom, right, top] with right > left and top > bottom")
        if self.crs.lower() != "utm":
            _check_crs(self.crs, "grid.crs")
        if self.bounds_crs is not None:
            _check_crs(self.bounds_crs, "grid.bounds_crs")
        _require(self.snap != "exact" or self.bounds_in_grid_crs, "grid.snap",
                 "exact needs the bounds in the grid's own CRS (no bounds_crs, no crs: utm)")
        if self.snap == "exact":
            step = self.resolution * self.coarse_factor
            for name, extent in (("width", right - left), ("height", top - bottom)):
                n = extent / step
                _require(abs(n - round(n)) < 1e-6, "grid.bounds",
                         f"{name} {extent:g} is not a whole number of coarse pixels "
                         f"({self.resolution:g} x {self.coarse_factor} = {step:g}); adjust "
                         "the bounds or the coarse factor, or set grid.snap: out to widen "
                         "them")

    @property
    def bounds_in_grid_crs(self) -> bool:
        """Whether ``bounds`` are in the grid's own CRS (no transformation needed)."""
        return self.bounds_crs is None and self.crs.lower() != "utm"


def _check_crs(crs: str, field_path: str) -> None:
    from pyproj import CRS
    from pyproj.exceptions import CRSError

    try:
        CRS.from_user_input(crs)
    except CRSError as exc:
        reason = str(exc).splitlines()[0] if str(exc) else "unknown CRS"
        raise ConfigError(f"{field_path}: {crs!r} is not a valid CRS ({reason}); give an EPSG "
                          "code such as EPSG:32755, a PROJ/WKT string, or (grid.crs) utm"
                          ) from None


@dataclass(frozen=True)
class DateRange:
    """Inclusive range of output days."""

    start: dt.date
    end: dt.date

    def __post_init__(self) -> None:
        _require(self.end >= self.start, "dates.end",
                 f"{self.end} is before dates.start {self.start}")

    @property
    def n_days(self) -> int:
        """Number of days in the range, both ends included."""
        return (self.end - self.start).days + 1


@dataclass(frozen=True)
class InputsConfig:
    """Where the input stack (Landsat + MODIS on the target grid) lives."""

    stack: Path


@dataclass(frozen=True)
class OutputConfig:
    """The output cube.

    ``dtype: int16`` stores CF-packed Kelvin (0.01 K steps, compact); ``float32`` stores
    the fused values unrounded.
    """

    cube: Path
    dtype: OutputDtype = "int16"


@dataclass(frozen=True)
class ChunkConfig:
    """Output chunk shape: the unit of work and of writing (one Zarr chunk per task).

    Every field is optional: what is left out is chosen by the planner
    (:func:`~lst_pipeline.grid.choose_chunks`) from the grid, the method's halo and a memory
    budget per task; spatial sizes that do not fit the method's alignment are rounded to
    the nearest that does, with a note. ``y`` alone means square chunks.
    """

    time: int | None = None
    y: int | None = None
    x: int | None = None
    #: Estimated peak memory one task may use (GiB) when chunks are chosen (worker included).
    task_memory_gib: float = 1.5

    def __post_init__(self) -> None:
        for name in ("time", "y", "x"):
            value = getattr(self, name)
            _require(value is None or value >= 1, f"chunks.{name}", "must be >= 1")
        _require(self.task_memory_gib > 0, "chunks.task_memory_gib", "must be > 0")


@dataclass(frozen=True)
class StarfmConfig:
    """STARFM parameters (Gao et al., 2006), defaults for LST in Kelvin.

    Attributes
    ----------
    window
        Odd moving-window width in fine pixels (31 x 30 m = 930 m, about one MODIS pixel).
    classes
        ``m`` of the similarity threshold ``2 sigma / m`` (``sigma``: standard deviation of
        the fine reference in the window).
    landsat_uncertainty_k, modis_uncertainty_k
        Uncertainty of fine and coarse LST (K); they bound the sample filter and keep the
        weights finite.
    pairs
        ``1``: each reference predicts alone (the engine blends the references before and
        after as for every method); ``2``: the nearest references before and after enter one
        weighted sum (Gao's multi-pair STARFM); days without both stay gaps.
    """

    window: int = 31
    classes: int = 4
    landsat_uncertainty_k: float = 0.5
    modis_uncertainty_k: float = 1.0
    pairs: Literal[1, 2] = 1

    def __post_init__(self) -> None:
        _require(self.window >= 1 and self.window % 2 == 1, "fusion.starfm.window",
                 f"must be an odd number >= 1, got {self.window}")
        _require(self.classes >= 1, "fusion.starfm.classes", "must be >= 1")
        for name in ("landsat_uncertainty_k", "modis_uncertainty_k"):
            _require(getattr(self, name) > 0, f"fusion.starfm.{name}", "must be > 0")


@dataclass(frozen=True)
class UbestarfmConfig:
    """ubESTARFM parameters (ESTARFM, Zhu et al. 2010, with the local bias correction of
    Yu et al. 2023), defaults for LST in Kelvin.

    Attributes
    ----------
    window
        Odd moving-window width in fine pixels.
    classes
        ``m`` of the similarity threshold ``2 sigma / m`` (2: one standard deviation, as
        the ubESTARFM authors use).
    conversion
        ``regression``: ESTARFM's conversion coefficient, the slope of the similar pixels'
        fine on coarse LST pooled over both pairs (1 where unreliable); ``unit``: 1, as the
        ubESTARFM authors' code.
    min_k, max_k
        A prediction outside this range (K) is replaced by the weighted mean of the similar
        pixels (the authors' ``DN_min``/``DN_max``).
    """

    window: int = 31
    classes: int = 2
    conversion: Literal["regression", "unit"] = "regression"
    min_k: float = 250.0
    max_k: float = 350.0

    def __post_init__(self) -> None:
        _require(self.window >= 3 and self.window % 2 == 1, "fusion.ubestarfm.window",
                 f"must be an odd number >= 3, got {self.window}")
        _require(self.classes >= 1, "fusion.ubestarfm.classes", "must be >= 1")
        _require(self.max_k > self.min_k, "fusion.ubestarfm.max_k", "must be > min_k")


@dataclass(frozen=True)
class FusionConfig:
    """Fusion method and reference selection.

    Attributes
    ----------
    method
        ``dlstfm`` (default): the DLSTFM network; ``reference_change``: reference Landsat +
        upsampled (target MODIS - reference MODIS); ``modis_only``: the target MODIS
        upsampled (bilinear); ``starfm``: STARFM (see ``starfm``); ``ubestarfm``: ESTARFM
        with local bias correction from the references before and after (see
        ``ubestarfm``; needs ``two_references: true``); ``auto``: the best of ``dlstfm``
        (with ``checkpoint``), ``starfm`` and ``reference_change`` by leave-one-date-out on
        the stack's own clear Landsat dates, chosen per run and recorded in the cube.
    max_reference_gap_days
        A Landsat date further than this from the target day is never used as reference.
    min_clear_fraction
        A Landsat date is a usable reference for a pixel only if at least this fraction
        of the pixel's coarse cell is clear on that date (partly cloudy cells carry
        undetected cloud edges and a contaminated coarse reference).
    max_references
        How many candidate reference dates per target day are tried, nearest first,
        before a pixel is left as no data.
    checkpoint
        DLSTFM checkpoint; empty for the one shipped with the package.
    device
        ``auto`` (the worker's GPU if it has one, else CPU), ``cpu`` or ``cuda``.
    mixed_precision
        bf16 autocast on GPU (ignored on CPU).
    batch_pixels
        Pixels per network forward pass (days of a chunk are batched up to this).
    two_references
        Predict from the nearest usable reference before and after each day and blend the
        two by temporal distance where they agree (``qa`` 3); otherwise use the nearest one.
    max_disagreement_k
        Two predictions further apart than this are not blended (the nearer one is kept).
    modis_gaps
        ``keep``: a cloud gap in the target day's MODIS stays a gap; ``interpolate``: fill it
        by linear interpolation between the nearest clear MODIS days (within
        ``max_modis_interpolation_days`` on each side) and flag the result (``qa`` 4).
    max_modis_interpolation_days
        Furthest clear MODIS day used on each side of a gap.
    landsat_days
        ``observe``: on a day with a clear Landsat pixel, keep the observation (``qa`` 1);
        ``fuse``: fuse it from the other dates like any day (e.g. to validate).
    starfm, ubestarfm
        Parameters of those methods (ignored by the others).
    """

    method: FusionMethodName = "dlstfm"
    max_reference_gap_days: int = 48
    min_clear_fraction: float = 0.5
    max_references: int = 4
    checkpoint: Path | None = None
    device: Device = "auto"
    mixed_precision: bool = False
    batch_pixels: int = 1 << 17
    two_references: bool = True
    max_disagreement_k: float = 3.0
    modis_gaps: Literal["keep", "interpolate"] = "keep"
    max_modis_interpolation_days: int = 4
    landsat_days: Literal["observe", "fuse"] = "observe"
    starfm: StarfmConfig = field(default_factory=StarfmConfig)
    ubestarfm: UbestarfmConfig = field(default_factory=UbestarfmConfig)

    def __post_init__(self) -> None:
        _require(0 <= self.max_reference_gap_days <= MAX_REFERENCE_GAP_DAYS,
                 "fusion.max_reference_gap_days",
                 f"must be between 0 and {MAX_REFERENCE_GAP_DAYS} days, got "
                 f"{self.max_reference_gap_days}")
        _require(0.0 <= self.min_clear_fraction <= 1.0, "fusion.min_clear_fraction",
                 "must be between 0 and 1")
        _require(self.max_references >= 1, "fusion.max_references", "must be >= 1")
        _require(self.batch_pixels >= 1, "fusion.batch_pixels", "must be >= 1")
        _require(self.max_disagreement_k > 0, "fusion.max_disagreement_k", "must be > 0")
        _require(self.max_modis_interpolation_days >= 1, "fusion.max_modis_interpolation_days",
                 "must be >= 1")
        two_pair = self.method == "ubestarfm" or (self.method == "starfm"
                                                  and self.starfm.pairs == 2)
        _require(self.two_references or not two_pair, "fusion.two_references",
                 f"method {self.method} predicts from a reference before and one after the "
                 "day; set two_references: true (or use a one-pair method)")

    def method_params(self) -> tuple[tuple[str, Any], ...]:
        """The selected method's own parameters, hashable (empty for methods without)."""
        section = getattr(self, self.method, None)
        if not dataclasses.is_dataclass(section):
            return ()
        return tuple(sorted(dataclasses.asdict(section).items()))


@dataclass(frozen=True)
class SimulationConfig:
    """A synthetic region with known truth (see :mod:`lst_pipeline.simulate`).

    Temperatures and noise levels are in Kelvin; fractions in [0, 1]. The fields after
    ``modis_psf_sigma`` vary the world and its sensors for training (their defaults leave
    the simulator as it always was).

    Attributes
    ----------
    modis_date_offset_sd_k
        A random MODIS offset per date (overpass time, atmosphere).
    modis_class_offset_sd_k
        A MODIS offset per land-cover class (emissivity), scaled per date by a random view
        factor between 0.3 and 1.7.
    modis_geolocation_sd_px
        A random shift of each day's MODIS footprints (coarse pixels).
    landsat_offset_sd_k
        A random Landsat calibration offset per date.
    landsat_psf_sigma_px
        Gaussian thermal footprint of Landsat (fine pixels).
    climate_shift_k, climate_amp_scale
        Every class's seasonal mean shifted, seasonal range scaled.
    """

    truth: Path
    seed: int = 0
    landsat_revisit_days: Literal[8, 16] = 16
    landsat_noise_k: float = 0.4
    landsat_cloud_fraction: float = 0.3
    modis_noise_k: float = 0.7
    modis_offset_k: float = -1.2
    modis_cloud_fraction: float = 0.25
    modis_psf_sigma: float = 0.5
    modis_date_offset_sd_k: float = 0.0
    modis_class_offset_sd_k: float = 0.0
    modis_geolocation_sd_px: float = 0.0
    landsat_offset_sd_k: float = 0.0
    landsat_psf_sigma_px: float = 0.0
    climate_shift_k: float = 0.0
    climate_amp_scale: float = 1.0
    day_batch: int = 16

    def __post_init__(self) -> None:
        for name in ("landsat_cloud_fraction", "modis_cloud_fraction"):
            _require(0.0 <= getattr(self, name) < 1.0, f"simulation.{name}",
                     "must be in [0, 1)")
        for name in ("landsat_noise_k", "modis_noise_k", "modis_psf_sigma",
                     "modis_date_offset_sd_k", "modis_class_offset_sd_k",
                     "modis_geolocation_sd_px", "landsat_offset_sd_k", "landsat_psf_sigma_px"):
            _require(getattr(self, name) >= 0.0, f"simulation.{name}", "must be >= 0")
        _require(self.climate_amp_scale > 0, "simulation.climate_amp_scale", "must be > 0")
        _require(self.day_batch >= 1, "simulation.day_batch", "must be >= 1")


@dataclass(frozen=True)
class LandsatSourceConfig:
    """Landsat 8/9 Collection 2 Level-2 scenes on disk.

    Attributes
    ----------
    paths
        Glob patterns of scene directories, ``*_MTL.txt``/``*_MTL.xml`` or ``*_ST_B10.TIF``
        files (``downloads/landsat/LC0*_L2SP_*``).
    mask_snow
        Also reject snow/ice pixels (QA_PIXEL bit 5).
    max_st_uncertainty_k
        Reject pixels whose ST_QA uncertainty is above this (Kelvin); unset keeps all.
    require_qa_pixel
        Refuse scenes without a QA_PIXEL band (clouds could not be masked); ``false``
        masks fill only.
    georeference_from_mtl
        Place band files without GeoTIFF georeference by the MTL's UTM zone and corners.
    """

    paths: tuple[str, ...] = ()
    mask_snow: bool = False
    max_st_uncertainty_k: float | None = None
    require_qa_pixel: bool = True
    georeference_from_mtl: bool = False

    def __post_init__(self) -> None:
        if self.max_st_uncertainty_k is not None:
            _require(self.max_st_uncertainty_k > 0, "ingest.landsat.max_st_uncertainty_k",
                     "must be positive (Kelvin)")


@dataclass(frozen=True)
class ModisSourceConfig:
    """MOD11A1 / MYD11A1 v061 daily LST: HDF4-EOS tiles or GeoTIFF/COG exports.

    Attributes
    ----------
    paths
        Glob patterns of ``.hdf`` tiles or of the ``LST_Day_1km`` GeoTIFFs (their
        ``QC_Day`` companions are found beside them).
    platform
        ``terra`` (MOD11A1, the Landsat-like morning overpass) or ``aqua`` (MYD11A1).
        A stack holds one platform: the two are never mixed.
    overpass
        ``day`` or ``night`` layers.
    max_lst_error_k
        Highest accepted QC LST error: 1, 2 (default: produced with error <= 2 K) or 3 K;
        unset accepts every produced pixel.
    min_valid_fraction
        A coarse cell keeps a value only if at least this fraction of it is covered by
        usable MODIS pixels.
    """

    paths: tuple[str, ...] = ()
    platform: Literal["terra", "aqua"] = "terra"
    overpass: Literal["day", "night"] = "day"
    max_lst_error_k: Literal[1, 2, 3] | None = 2
    min_valid_fraction: float = 0.5

    def __post_init__(self) -> None:
        _require(0.0 < self.min_valid_fraction <= 1.0, "ingest.modis.min_valid_fraction",
                 "must be in (0, 1]")

    @property
    def max_lst_error_class(self) -> int:
        """The QC LST-error class matching :attr:`max_lst_error_k` (3: any)."""
        return 3 if self.max_lst_error_k is None else self.max_lst_error_k - 1


@dataclass(frozen=True)
class StacSourceConfig:
    """STAC items for ``landsat-c2-l2`` and ``modis-11A1-061``-style collections.

    Attributes
    ----------
    catalog
        A static catalog (``catalog.json``), read with pystac.
    items
        A saved ItemCollection / FeatureCollection JSON (e.g. the result of a STAC API
        search). One of ``catalog`` or ``items`` is required.
    landsat_collection, modis_collection
        Collection ids of the Landsat and MODIS items.

    Landsat options (masking) come from ``ingest.landsat`` and MODIS options from
    ``ingest.modis`` when those sections are present (their ``paths`` may be empty lists).
    """

    catalog: Path | None = None
    items: Path | None = None
    landsat_collection: str = "landsat-c2-l2"
    modis_collection: str = "modis-11A1-061"

    def __post_init__(self) -> None:
        _require((self.catalog is None) != (self.items is None), "ingest.stac",
                 "give exactly one of catalog or items")


@dataclass(frozen=True)
class PregriddedConfig:
    """A series already on the target grid, one GeoTIFF per date (own preparation).

    Attributes
    ----------
    landsat, modis
        Glob patterns of the fine-resolution LST files and of the MODIS files (either on
        the coarse grid, or on the fine grid: then averaged over each coarse cell).
    date_regex
        Regular expression whose first group is the date in a file name.
    date_format
        ``strptime`` format of that group.
    scale, offset
        Kelvin = value * scale + offset (for example ``offset: 273.15`` for Celsius).
    """

    landsat: tuple[str, ...] = ()
    modis: tuple[str, ...] = ()
    date_regex: str = r"(\d{8})"
    date_format: str = "%Y%m%d"
    scale: float = 1.0
    offset: float = 0.0

    def __post_init__(self) -> None:
        import re

        _require(bool(self.landsat or self.modis), "ingest.pregridded",
                 "list landsat and/or modis glob patterns")
        try:
            groups = re.compile(self.date_regex).groups
        except re.error as exc:
            raise ConfigError(f"ingest.pregridded.date_regex: invalid: {exc}") from None
        _require(groups >= 1, "ingest.pregridded.date_regex", "needs one (group) for the date")


@dataclass(frozen=True)
class IngestConfig:
    """What ``lst-pipeline ingest`` reads into the input stack (``inputs.stack``).

    Only dates within ``dates`` widened by ``fusion.max_reference_gap_days`` on each side
    are ingested (the references the run can use).
    """

    landsat: LandsatSourceConfig | None = None
    modis: ModisSourceConfig | None = None
    stac: StacSourceConfig | None = None
    pregridded: PregriddedConfig | None = None

    def __post_init__(self) -> None:
        _require(any(getattr(self, n) is not None for n in ("landsat", "modis", "stac",
                                                             "pregridded")),
                 "ingest", "name at least one source: landsat, modis, stac or pregridded")
        for name in ("landsat", "modis"):
            source = getattr(self, name)
            _require(source is None or bool(source.paths) or self.stac is not None,
                     f"ingest.{name}.paths", "list at least one glob pattern (or use stac)")


@dataclass(frozen=True)
class PipelineConfig:
    """A whole pipeline: what to compute, where, and on which cluster profile."""

    name: str
    grid: GridConfig
    dates: DateRange
    inputs: InputsConfig
    output: OutputConfig
    chunks: ChunkConfig = field(default_factory=ChunkConfig)
    fusion: FusionConfig = field(default_factory=FusionConfig)
    simulation: SimulationConfig | None = None
    ingest: IngestConfig | None = None
    cluster: str = "local"

    def __post_init__(self) -> None:
        stores = {"inputs.stack": self.inputs.stack, "output.cube": self.output.cube}
        if self.simulation is not None:
            stores["simulation.truth"] = self.simulation.truth
        _require_apart(stores)


def _require_apart(stores: dict[str, Path]) -> None:
    """No store path may equal another or lie inside another (one would destroy the other)."""
    resolved = {name: Path(p).resolve() for name, p in stores.items()}
    names = list(resolved)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            pa, pb = resolved[a], resolved[b]
            if pa == pb:
                raise ConfigError(f"{b}: {stores[b]} is the same store as {a}; give each store "
                                  "its own path")
            if pa in pb.parents or pb in pa.parents:
                inner, outer = (b, a) if pa in pb.parents else (a, b)
                raise ConfigError(f"{inner}: {stores[inner]} lies inside {outer} "
                                  f"({stores[outer]}); give each store its own path, side by "
                                  "side")


def _require(condition: bool, field_path: str, message: str) -> None:
    if not condition:
        raise ConfigError(f"{field_path}: {message}")


# --------------------------------------------------------------------------------------
# Generic, strict conversion of plain YAML data into the dataclasses above.


def from_mapping(cls: type, data: Any, path: str = "") -> Any:
    """Build dataclass ``cls`` from a mapping, checking keys and types field by field.

    Parameters
    ----------
    cls
        A (frozen) dataclass type whose annotations drive the validation.
    data
        Plain data as produced by ``yaml.safe_load``.
    path
        Dotted location of ``data`` in the document, used in error messages.

    Raises
    ------
    ConfigError
        Naming the first offending field: unknown key, missing key, wrong type or value.
    """
    where = path or "top level"
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: expected a mapping of fields, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"{_join(path, str(unknown[0]))}: unknown field; "
                          f"allowed fields are {', '.join(fields)}")
    kwargs = {}
    for name, f in fields.items():
        field_path = _join(path, name)
        if name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ConfigError(f"{field_path}: required field is missing")
            continue
        kwargs[name] = _convert(hints[name], data[name], field_path)
    return cls(**kwargs)


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _convert(tp: Any, value: Any, path: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        non_none = [a for a in args if a is not type(None)]
        return _convert(non_none[0], value, path)
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{path}: {value!r} is not one of {', '.join(map(repr, args))}")
        return value
    if dataclasses.is_dataclass(tp):
        return from_mapping(tp, value, path)
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{path}: expected a list, got {value!r}")
        return tuple(_convert(args[0], v, f"{path}[{i}]") for i, v in enumerate(value))
    if origin is tuple:
        if not isinstance(value, list | tuple) or len(value) != len(args):
            raise ConfigError(f"{path}: expected a list of {len(args)} values, got {value!r}")
        return tuple(_convert(a, v, f"{path}[{i}]") for i, (a, v) in enumerate(zip(args, value)))
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{path}: expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value):
            raise ConfigError(f"{path}: expected an integer, got {value!r}")
        return int(value)
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{path}: expected a number, got {value!r}")
        if not math.isfinite(value):
            raise ConfigError(f"{path}: expected a finite number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{path}: expected a string, got {value!r}")
        return value
    if tp is Path:
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{path}: expected a path, got {value!r}")
        return Path(value).expanduser()
    if tp is dt.date:
        if isinstance(value, dt.datetime):
            return value.date()
        if isinstance(value, dt.date):
            return value
        if isinstance(value, str):
            try:
                return dt.date.fromisoformat(value)
            except ValueError:
                pass
        raise ConfigError(f"{path}: expected a date as YYYY-MM-DD, got {value!r}")
    raise TypeError(f"unsupported annotation {tp!r} at {path}")  # programming error


def load_pipeline(source: str | Path | Mapping[str, Any]) -> PipelineConfig:
    """Read and validate a pipeline configuration.

    Parameters
    ----------
    source
        Path to a YAML file, or an already parsed mapping.

    Returns
    -------
    PipelineConfig

    Raises
    ------
    ConfigError
        If the file is missing, is not valid YAML, or any field is invalid; the message
        names the file and the field.
    """
    if isinstance(source, Mapping):
        return from_mapping(PipelineConfig, source)
    import yaml

    path = Path(source)
    if not path.is_file():
        raise ConfigError(f"{path}: pipeline configuration file not found")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    try:
        return from_mapping(PipelineConfig, data)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def replace_paths(config: PipelineConfig, workdir: Path) -> PipelineConfig:
    """Return ``config`` with every relative store path placed under ``workdir``."""

    def under(p: Path) -> Path:
        return p if p.is_absolute() else workdir / p.name

    sim = config.simulation
    return dataclasses.replace(
        config,
        inputs=dataclasses.replace(config.inputs, stack=under(config.inputs.stack)),
        output=dataclasses.replace(config.output, cube=under(config.output.cube)),
        simulation=None if sim is None else dataclasses.replace(sim, truth=under(sim.truth)),
    )


def bundled_pipeline(name: str) -> Path:
    """Path of a pipeline YAML shipped inside the package (``pipelines/<name>.yaml``)."""
    path = Path(__file__).parent / "pipelines" / f"{name}.yaml"
    if not path.is_file():
        available = sorted(p.stem for p in path.parent.glob("*.yaml"))
        raise ConfigError(f"no bundled pipeline named {name!r}; available: {available}")
    return path
