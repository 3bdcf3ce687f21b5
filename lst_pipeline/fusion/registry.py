"""Every fusion method in one table: its name, parameters, pairs and halo (a leaf module).

Neither torch nor dask is imported here: the configuration takes its choices and sections
from :data:`METHODS`, ``evaluate`` its default list, and planning a run its halo and
alignment (:func:`method_geometry`), for DLSTFM from the checkpoint's metadata without
building the network. The computations live in :mod:`lst_pipeline.fusion.methods`; adding
a method is one entry here and one class there.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
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


#: ``fusion.method`` that averages other methods' predictions with weights fitted per run.
ENSEMBLE = "ensemble"


@dataclass(frozen=True)
class EnsembleParams:
    """An ensemble of fusion methods: a weighted mean of their predictions.

    Attributes
    ----------
    members
        The methods averaged (one-reference methods: each member predicts from the same
        reference pair; the engine then blends the references before and after as for
        every method). Their own settings come from their sections (``fusion.starfm``,
        ``fusion.checkpoint`` for ``dlstfm``).
    weights
        One non-negative weight per member, summing to 1; empty (the default): fitted per
        run by leave-one-date-out on the stack's own clear Landsat dates (least squares on
        the simplex, :mod:`lst_pipeline.fusion.stacking`) and recorded in the cube.
    """

    members: tuple[str, ...] = ("dlstfm", "starfm", "reference_change")
    weights: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        members = self.members
        require_config(len(members) >= 2 and len(set(members)) == len(members),
                       "fusion.ensemble.members",
                       f"must name at least two different methods, got {list(members)}")
        for name in members:
            require_config(name in METHODS and name != ENSEMBLE and METHODS[name].pairs() == 1,
                           "fusion.ensemble.members",
                           f"{name!r} is not a one-reference fusion method; choose from "
                           f"{', '.join(m for m in METHODS if m not in (ENSEMBLE, 'ubestarfm'))}")
        if self.weights:
            require_config(len(self.weights) == len(members), "fusion.ensemble.weights",
                           f"needs one weight per member ({len(members)}), got "
                           f"{len(self.weights)}")
            require_config(min(self.weights) >= 0 and abs(sum(self.weights) - 1) <= 1e-6,
                           "fusion.ensemble.weights",
                           f"must be >= 0 and sum to 1, got {list(self.weights)}; leave it "
                           "empty to fit them on the stack")


def with_ensemble_weights(config: Any, weights: tuple[float, ...]) -> Any:
    """``config`` (a pipeline configuration) with ``fusion.ensemble.weights`` replaced.

    Empty weights: to be fitted by the run (``auto`` scores its candidate so).
    """
    import dataclasses

    fusion = config.fusion
    return dataclasses.replace(config, fusion=dataclasses.replace(
        fusion, ensemble=dataclasses.replace(fusion.ensemble,
                                             weights=tuple(float(w) for w in weights))))


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
    MethodInfo(ENSEMBLE, "a weighted mean of other methods' predictions (default dlstfm, "
               "starfm and reference_change), weights fitted on the stack's own held-out "
               "Landsat dates", "lst_pipeline.fusion.methods:EnsembleMethod", EnsembleParams),
)}

FusionMethodName = Literal["dlstfm", "reference_change", "gain_change", "starfm", "ubestarfm",
                           "modis_only", "ensemble", "auto"]

#: Methods ``auto`` chooses among (``ensemble`` with its default members, scored from their
#: held-out predictions with weights fitted on the other dates).
AUTO_CANDIDATES: tuple[FusionMethodName, ...] = ("dlstfm", "starfm", "gain_change",
                                                 "reference_change", "ensemble")


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
                    checkpoint: str | None = None, batch_pixels: int = 1 << 17,
                    sections: Mapping[str, Any] | None = None) -> tuple[int, int, Any]:
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
    sections
        An ensemble's members' own parameters by name (``fusion.starfm``...).

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
    if name == ENSEMBLE:
        return _ensemble_geometry(params or EnsembleParams(), f, checkpoint=checkpoint,
                                  batch_pixels=batch_pixels, sections=sections or {})
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


def _ensemble_geometry(params: EnsembleParams, f: int, *, checkpoint: str | None,
                       batch_pixels: int, sections: Mapping[str, Any]) -> tuple[int, int, Any]:
    """An ensemble's halo, alignment and memory model, from its members'.

    The widest halo, every alignment; the costliest member's memory plus each member's
    prediction held until they are averaged (4 B per pixel-day each).
    """
    import dataclasses

    from lst_pipeline.chunks import TaskCost

    members = [method_geometry(m, f, params=sections.get(m), checkpoint=checkpoint,
                               batch_pixels=batch_pixels) for m in params.members]
    costs = [c or TaskCost() for _, _, c in members]
    top = max(costs, key=lambda c: c.bytes(1 << 20, 32, 8))
    cost = dataclasses.replace(top, per_pixel_day=max(c.per_pixel_day for c in costs)
                               + 4.0 * len(costs))
    return (max(h for h, _, _ in members), math.lcm(*(a for _, a, _ in members)), cost)


#: What the measured per-pixel gain adds to a task's memory per pixel-day, counted from
#: the arrays of :mod:`lst_pipeline.fusion.gain`: each day's float32 gain for the references
#: before and after, 8 B, plus the fit's seven float64 accumulators per read pixel (56 B),
#: under 2 B per pixel-day over a block of 32 days or more. tracemalloc's peak for a
#: 32-day block was 8.6 B per pixel-day (tests/fusion/test_gain.py checks the bound).
GAIN_BYTES_PER_PIXEL_DAY = 10.0
