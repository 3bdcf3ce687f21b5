"""The sections of a pipeline YAML: grid, dates, stores, chunks, fusion, simulation.

Each is a frozen dataclass validated on construction; :class:`PipelineConfig` gathers them
(the ``ingest`` sources are in :mod:`lst_pipeline.config.sources`).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from upath import UPath

from lst_pipeline.config.sources import IngestConfig
from lst_pipeline.errors import ConfigError, require_config
from lst_pipeline.fusion.registry import (
    ENSEMBLE,
    EnsembleParams,
    FusionMethodName,
    StarfmParams,
    UbestarfmParams,
    method_info,
)

#: Longest reference gap accepted (LST changes far too much over longer gaps to fuse).
MAX_REFERENCE_GAP_DAYS = 366

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
        require_config(self.resolution > 0, "grid.resolution", "must be positive")
        require_config(self.coarse_factor >= 1, "grid.coarse_factor", "must be >= 1")
        left, bottom, right, top = self.bounds
        require_config(right > left and top > bottom, "grid.bounds",
                       "must be [left, bottom, right, top] with right > left and top > bottom")
        if self.crs.lower() != "utm":
            _check_crs(self.crs, "grid.crs")
        if self.bounds_crs is not None:
            _check_crs(self.bounds_crs, "grid.bounds_crs")
        require_config(self.snap != "exact" or self.bounds_in_grid_crs, "grid.snap",
                       "exact needs the bounds in the grid's own CRS (no bounds_crs, no crs: utm)")
        if self.snap == "exact":
            step = self.resolution * self.coarse_factor
            for name, extent in (("width", right - left), ("height", top - bottom)):
                n = extent / step
                require_config(abs(n - round(n)) < 1e-6, "grid.bounds",
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
        require_config(self.end >= self.start, "dates.end",
                       f"{self.end} is before dates.start {self.start}")

    @property
    def n_days(self) -> int:
        """Number of days in the range, both ends included."""
        return (self.end - self.start).days + 1


@dataclass(frozen=True)
class InputsConfig:
    """Where the input stack (Landsat + MODIS on the target grid) lives."""

    stack: Path | UPath = field(metadata={"store": True})


@dataclass(frozen=True)
class OutputConfig:
    """The output cube.

    ``dtype: int16`` stores CF-packed Kelvin (0.01 K steps, compact); ``float32`` stores
    the fused values unrounded. ``uncertainty`` adds ``lst_uncertainty``, the estimated
    1-sigma error of every value, from an error model fitted by leave-one-date-out on the
    stack (:mod:`lst_pipeline.fusion.error_model`): ``auto`` (default) whenever the stack
    has enough clear Landsat dates to fit it (otherwise the plan says why it is left out),
    ``true`` always (a stack too short is an error), ``false`` never.
    """

    cube: Path | UPath = field(metadata={"store": True})
    dtype: OutputDtype = "int16"
    uncertainty: Literal["auto", True, False] = "auto"


@dataclass(frozen=True)
class ChunkConfig:
    """Output chunk shape: the unit of work and of writing (one Zarr chunk per task).

    Every field is optional: what is left out is chosen by the planner
    (:func:`~lst_pipeline.chunks.choose_chunks`) from the grid, the method's halo and a memory
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
            require_config(value is None or value >= 1, f"chunks.{name}", "must be >= 1")
        require_config(self.task_memory_gib > 0, "chunks.task_memory_gib", "must be > 0")


@dataclass(frozen=True)
class FusionConfig:
    """Fusion method and reference selection.

    Attributes
    ----------
    method
        ``dlstfm`` (default): the DLSTFM network; ``reference_change``: reference Landsat +
        upsampled (target MODIS - reference MODIS); ``gain_change``: the same change
        scaled by each pixel's gain over the nearby Landsat dates; ``modis_only``: the
        target MODIS upsampled (bilinear); ``starfm``: STARFM (see ``starfm``);
        ``ubestarfm``: ESTARFM with local bias correction from the references before and
        after (see ``ubestarfm``; needs ``two_references: true``); ``auto``: the best of ``dlstfm``
        (with ``checkpoint``), ``starfm``, ``gain_change`` and ``reference_change`` by
        leave-one-date-out on the stack's own clear Landsat dates, chosen per run and
        recorded in the cube (``ensemble`` among them, scored with weights fitted on
        the other held-out dates); ``ensemble``: a weighted mean of other methods'
        predictions (see ``ensemble``).
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
        Two predictions closer than this are blended fully by temporal distance; from this
        to twice this apart the blend fades linearly to the nearer one alone (so a value
        never jumps with its disagreement); further apart, the nearer one is kept.
    modis_gaps
        ``keep``: a cloud gap in the target day's MODIS stays a gap; ``interpolate``: fill it
        by linear interpolation between the nearest clear MODIS days (within
        ``max_modis_interpolation_days`` on each side) and flag the result (``qa`` 4).
    max_modis_interpolation_days
        Furthest clear MODIS day used on each side of a gap.
    landsat_days
        ``observe``: on a day with a clear Landsat pixel, keep the observation (``qa`` 1);
        ``fuse``: fuse it from the other dates like any day (e.g. to validate).
    overpass_correction
        ``auto``: bring every MODIS image to the Landsat overpass time with the warming
        rate measured on the stack's own clear Landsat dates (MODIS minus Landsat against
        MODIS view time; :mod:`lst_pipeline.fusion.overpass`), when the stack records view
        times that vary; recorded in the cube. ``off``: use MODIS as observed.
    modis_registration
        ``auto``: measure each day's MODIS geolocation shift against the nearest clear
        Landsat date (up to half a cell each way, kept if a test against no shift passes)
        and move the day's MODIS back onto its cells
        (:mod:`lst_pipeline.fusion.registration`); recorded in the cube. ``off``
        (default): MODIS cells as gridded.
    reference_offset_days
        A reference date's MODIS is rebuilt, in each coarse cell its Landsat sees clearly,
        as the cell's Landsat mean plus the cell's MODIS-minus-Landsat offset averaged over
        the stack's Landsat dates with weights ``exp(-days apart / this)`` (within twice
        this), instead of that one date's noisy offset
        (:mod:`lst_pipeline.fusion.reference_offset`). ``0``: the reference date's MODIS as
        observed.
    starfm, ubestarfm, ensemble
        Parameters of those methods (ignored by the others; an ensemble's members take
        theirs from their own sections).
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
    overpass_correction: Literal["auto", "off"] = "auto"
    modis_registration: Literal["auto", "off"] = "off"
    reference_offset_days: int = 32
    starfm: StarfmParams = field(default_factory=StarfmParams)
    ubestarfm: UbestarfmParams = field(default_factory=UbestarfmParams)
    ensemble: EnsembleParams = field(default_factory=EnsembleParams)

    def __post_init__(self) -> None:
        require_config(0 <= self.max_reference_gap_days <= MAX_REFERENCE_GAP_DAYS,
                       "fusion.max_reference_gap_days",
                       f"must be between 0 and {MAX_REFERENCE_GAP_DAYS} days, got "
                       f"{self.max_reference_gap_days}")
        require_config(0.0 <= self.min_clear_fraction <= 1.0, "fusion.min_clear_fraction",
                       "must be between 0 and 1")
        require_config(self.max_references >= 1, "fusion.max_references", "must be >= 1")
        require_config(self.batch_pixels >= 1, "fusion.batch_pixels", "must be >= 1")
        require_config(self.max_disagreement_k > 0, "fusion.max_disagreement_k", "must be > 0")
        require_config(0 <= self.reference_offset_days <= 366,
                       "fusion.reference_offset_days",
                       f"must be between 0 (off) and 366 days, got {self.reference_offset_days}")
        require_config(self.max_modis_interpolation_days >= 1,
                       "fusion.max_modis_interpolation_days", "must be >= 1")
        two_pair = self.method != "auto" and method_info(self.method).pairs(
            getattr(self, self.method, None)) == 2
        require_config(self.two_references or not two_pair, "fusion.two_references",
                       f"method {self.method} predicts from a reference before and one after the "
                       "day; set two_references: true (or use a one-pair method)")
        require_config(self.method != ENSEMBLE or self.starfm.pairs == 1
                       or "starfm" not in self.ensemble.members, "fusion.starfm.pairs",
                       "an ensemble's members predict from one reference each; set it to 1 "
                       "or leave starfm out of fusion.ensemble.members")

    def method_params(self, name: str | None = None) -> tuple[tuple[str, Any], ...]:
        """A method's own parameters (default: the selected one's), hashable.

        Empty for methods without; an ensemble's are its members, each with its own
        parameters, and its weights.
        """
        name = name or self.method
        if name == ENSEMBLE:
            return (("members", tuple((m, self.method_params(m)) for m in self.ensemble.members)),
                    ("weights", self.ensemble.weights))
        if name == "auto" or method_info(name).params is None:
            return ()
        return tuple(sorted(dataclasses.asdict(getattr(self, name)).items()))

    def method_sections(self) -> dict[str, Any]:
        """Every method's parameter section by method name (an ensemble's members' too)."""
        return {"starfm": self.starfm, "ubestarfm": self.ubestarfm, ENSEMBLE: self.ensemble}


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
    snow_events_per_year
        Mean number of snowfall events a year; snow settles, covers, cools and melts as in
        :mod:`lst_pipeline.simulate.snow`. 0 (the default) for none. Snow needs a cold
        season: the default climate never falls below about 290 K, so combine it with a
        ``climate_shift_k`` of about -15 K and winter dates.
    """

    truth: Path | UPath = field(metadata={"store": True})
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
    snow_events_per_year: float = 0.0
    day_batch: int = 16

    def __post_init__(self) -> None:
        for name in ("landsat_cloud_fraction", "modis_cloud_fraction"):
            require_config(0.0 <= getattr(self, name) < 1.0, f"simulation.{name}",
                           "must be in [0, 1)")
        for name in ("landsat_noise_k", "modis_noise_k", "modis_psf_sigma",
                     "modis_date_offset_sd_k", "modis_class_offset_sd_k",
                     "modis_geolocation_sd_px", "landsat_offset_sd_k", "landsat_psf_sigma_px",
                     "snow_events_per_year"):
            require_config(getattr(self, name) >= 0.0, f"simulation.{name}", "must be >= 0")
        require_config(self.climate_amp_scale > 0, "simulation.climate_amp_scale", "must be > 0")
        require_config(self.day_batch >= 1, "simulation.day_batch", "must be >= 1")


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
    #: fsspec options of the stores at URLs (endpoint, credentials, ...); never printed or
    #: written into a store. Without it fsspec reads the standard environment variables.
    storage_options: dict[str, Any] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if self.storage_options:
            _apply_storage_options(self)
        stores = {"inputs.stack": self.inputs.stack, "output.cube": self.output.cube}
        if self.simulation is not None:
            stores["simulation.truth"] = self.simulation.truth
        _require_apart(stores)


def _apply_storage_options(config: PipelineConfig) -> None:
    """Give the stores at URLs the configuration's ``storage_options`` (in place, once)."""
    from lst_pipeline.config.locations import is_remote, store_url

    def with_options(p: Path | UPath, where: str) -> Path | UPath:
        return store_url(str(p), where, config.storage_options) if is_remote(p) else p

    object.__setattr__(config, "inputs", dataclasses.replace(
        config.inputs, stack=with_options(config.inputs.stack, "inputs.stack")))
    object.__setattr__(config, "output", dataclasses.replace(
        config.output, cube=with_options(config.output.cube, "output.cube")))
    if config.simulation is not None:
        object.__setattr__(config, "simulation", dataclasses.replace(
            config.simulation, truth=with_options(config.simulation.truth, "simulation.truth")))


def _require_apart(stores: dict[str, Path | UPath]) -> None:
    """No store path may equal another or lie inside another (one would destroy the other)."""
    from lst_pipeline.config.locations import overlap

    names = list(stores)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            relation = overlap(stores[a], stores[b])
            if relation == "same":
                raise ConfigError(f"{b}: {stores[b]} is the same store as {a}; give each store "
                                  "its own path")
            if relation is not None:
                inner, outer = (a, b) if relation == "inside" else (b, a)
                raise ConfigError(f"{inner}: {stores[inner]} lies inside {outer} "
                                  f"({stores[outer]}); give each store its own path, side by "
                                  "side")


