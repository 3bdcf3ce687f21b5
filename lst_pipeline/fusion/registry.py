"""Every fusion method in one table: its name, parameters, pairs and halo (a leaf module).

Neither torch nor dask is imported here: the configuration takes its choices and sections
from :data:`METHODS`, ``evaluate`` its default list, and planning a run its halo and
alignment (:func:`method_geometry`), for DLSTFM from the checkpoint's metadata without
building the network. The computations live in :mod:`lst_pipeline.fusion.methods`; adding
a method is one entry here and one class there.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

from lst_pipeline.errors import ConfigError

#: ``fusion.method`` that picks one of :data:`AUTO_CANDIDATES` per run.
AUTO = "auto"


def require_config(condition: bool, field_path: str, message: str) -> None:
    """Raise :class:`ConfigError` naming ``field_path`` unless ``condition`` holds."""
    if not condition:
        raise ConfigError(f"{field_path}: {message}")


@dataclass(frozen=True)
class StarfmParams:
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
        require_config(self.window >= 1 and self.window % 2 == 1, "fusion.starfm.window",
                       f"must be an odd number >= 1, got {self.window}")
        require_config(self.classes >= 1, "fusion.starfm.classes", "must be >= 1")
        for name in ("landsat_uncertainty_k", "modis_uncertainty_k"):
            require_config(getattr(self, name) > 0, f"fusion.starfm.{name}", "must be > 0")


@dataclass(frozen=True)
class UbestarfmParams:
    """ubESTARFM parameters, defaults for LST in Kelvin.

    ESTARFM (Zhu et al. 2010) with the local bias correction of Yu et al. (2023).

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
        require_config(self.window >= 3 and self.window % 2 == 1, "fusion.ubestarfm.window",
                       f"must be an odd number >= 3, got {self.window}")
        require_config(self.classes >= 1, "fusion.ubestarfm.classes", "must be >= 1")
        require_config(self.max_k > self.min_k, "fusion.ubestarfm.max_k", "must be > min_k")


@dataclass(frozen=True)
class MethodInfo:
    """What callers need to know of a fusion method before running it.

    Attributes
    ----------
    name
        ``fusion.method`` value.
    summary
        One line for the documentation and ``--help``.
    implementation
        ``module:Class`` of the method (imported when the method is built).
    params
        Its parameter dataclass (the ``fusion.<name>`` section), or None.
    window_halo
        Whether its halo includes half its moving window (``params.window``).
    """

    name: str
    summary: str
    implementation: str
    params: type | None = None
    window_halo: bool = False

    def pairs(self, params: Any = None) -> int:
        """Reference pairs one prediction uses: 1, or 2 (before and after the day)."""
        if self.name == "ubestarfm":
            return 2
        return int(getattr(params, "pairs", 1))


METHODS: dict[str, MethodInfo] = {m.name: m for m in (
    MethodInfo("dlstfm", "the DLSTFM network", "lst_pipeline.fusion.methods:DLSTFMMethod"),
    MethodInfo("reference_change", "reference Landsat + upsampled MODIS change",
               "lst_pipeline.fusion.methods:ReferenceChangeMethod"),
    MethodInfo("gain_change", "reference_change with each pixel's own gain on the MODIS "
               "change, fitted on the stack's nearby Landsat dates",
               "lst_pipeline.fusion.methods:GainChangeMethod"),
    MethodInfo("starfm", "STARFM (Gao et al. 2006)", "lst_pipeline.fusion.methods:STARFMMethod",
               StarfmParams, window_halo=True),
    MethodInfo("ubestarfm", "ESTARFM with ubESTARFM's local bias correction",
               "lst_pipeline.fusion.methods:UBESTARFMMethod", UbestarfmParams, window_halo=True),
    MethodInfo("modis_only", "the target MODIS upsampled (the floor to beat)",
               "lst_pipeline.fusion.methods:ModisOnlyMethod"),
)}

FusionMethodName = Literal["dlstfm", "reference_change", "gain_change", "starfm", "ubestarfm",
                           "modis_only", "auto"]

#: Methods ``auto`` chooses among.
AUTO_CANDIDATES: tuple[FusionMethodName, ...] = ("dlstfm", "starfm", "gain_change",
                                                 "reference_change")


def method_info(name: str) -> MethodInfo:
    """The :class:`MethodInfo` of ``name``.

    Raises
    ------
    ConfigError
        Naming the available methods.
    """
    if name not in METHODS:
        raise ConfigError(f"fusion.method: unknown method {name!r}; available: "
                          f"{', '.join(METHODS)}")
    return METHODS[name]


def method_geometry(name: str, coarse_factor: int, *, params: Any = None,
                    checkpoint: str | None = None, batch_pixels: int = 1 << 17
                    ) -> tuple[int, int, Any]:
    """``(halo, alignment, memory model)`` of a method on a grid, without building it.

    Parameters
    ----------
    name
        The method.
    coarse_factor
        Fine pixels per coarse pixel of the grid.
    params
        Its parameter dataclass (``window`` sets a moving-window method's halo).
    checkpoint
        DLSTFM: the checkpoint whose metadata gives the network's shape (None: shipped).
    batch_pixels
        DLSTFM: pixels of one forward pass (the memory model's activations).

    Notes
    -----
    The halo is what a block must read beyond its output pixels: one coarse pixel for the
    bilinear upsampling of the coarse images, plus half the moving window of STARFM-like
    methods or the network's receptive radius. Reading windows start on multiples of the
    alignment (the coarse factor, and the network's own pooling grid).
    """
    from lst_pipeline.chunks import TaskCost

    info = method_info(name)
    f = int(coarse_factor)
    if name == "dlstfm":
        from lst_pipeline.model.checkpoint import read_spec
        from lst_pipeline.model.spec import network_geometry

        architecture = read_spec(checkpoint).architecture
        radius, align = network_geometry(architecture, f)
        gain = GAIN_BYTES_PER_PIXEL_DAY if architecture.pixel_gain else 0.0
        cost = TaskCost(per_pixel_day=66.0 + gain, per_forward_pixel=800.0,
                        forward_pixels=batch_pixels, fixed=420 * 2**20)
        return radius + f, math.lcm(f, align), cost
    window = getattr(params or (info.params() if info.params else None), "window", 0)
    halo = (window // 2 if info.window_halo else 0) + f
    if name == "gain_change":
        base = TaskCost()
        return halo, f, TaskCost(per_pixel_day=base.per_pixel_day + GAIN_BYTES_PER_PIXEL_DAY)
    return halo, f, None


#: What the measured per-pixel gain adds to a task's memory per pixel-day, counted from
#: the arrays of :mod:`lst_pipeline.fusion.gain`: each day's float32 gain for the references
#: before and after, 8 B, plus the fit's seven float64 accumulators per read pixel (56 B),
#: under 2 B per pixel-day over a block of 32 days or more. tracemalloc's peak for a
#: 32-day block was 8.6 B per pixel-day (tests/fusion/test_gain.py checks the bound).
GAIN_BYTES_PER_PIXEL_DAY = 10.0
