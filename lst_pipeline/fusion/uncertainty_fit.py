"""Fitting the error model of ``lst_uncertainty`` on a stack's own held-out dates (planning).

The model itself and its fit are numpy (:mod:`lst_pipeline.fusion.error_model`); this
module chooses which Landsat dates to hold out, predicts them with the production kernel
(:func:`lst_pipeline.fusion.holdout.predict_held_out`) and fits the model on the residuals.

Which dates: every Landsat date of the run with at least :data:`UNCERTAINTY_MIN_CLEAR`
clear sky, up to :data:`UNCERTAINTY_MAX_DATES` spread over the run, each date's residuals
sampled alike. More than ``fusion.method: auto`` uses (8 dates at least 30 % clear), because
what limits the error model is how many dates it sees, not how many pixels: a date's
errors share that day's conditions (the MODIS image, its view time, the weather since the
reference), so the error level of the days between Landsat dates is estimated from a sample
of dates, and the spread of a variance estimated from ``D`` dates shrinks like
``sqrt(2 / D)``. Measured on the independent test world (``lst_pipeline.worlds``, the four
regions of ``benchmarks/bench_worlds.py``, 11-13 dates instead of 7-8; ``reference_change``,
``starfm`` and ``dlstfm``, fused values against the truth): the factor on sigma that would
put 68.3 % of the errors within 1 sigma moved from 0.73-1.31 to 0.82-1.26, and the summed
deviation from the calibration bands fell by a sixth (benchmarks/README.md). The
simulator's regions have at most one more date to give (one every 16 days).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lst_pipeline.errors import InputError
from lst_pipeline.grid import spread_windows

if TYPE_CHECKING:
    from lst_pipeline.fusion.error_model import ErrorModel

#: The error model is fitted on up to this many windows of at most this size (px): few and
#: large, since each is read with the method's halo (DLSTFM's is over 100 px).
UNCERTAINTY_WINDOWS = 2
UNCERTAINTY_WINDOW = 512
#: Held-out Landsat dates: at most this many, each at least this clear (see module notes).
UNCERTAINTY_MAX_DATES = 24
UNCERTAINTY_MIN_CLEAR = 0.05
#: Fewest residuals an error model is fitted from.
UNCERTAINTY_MIN_RESIDUALS = 1000


def fit_uncertainty(config: Any, method: str, *, log=print) -> ErrorModel:
    """Fit the error model of ``lst_uncertainty`` for ``method`` on the stack's own dates.

    Up to :data:`UNCERTAINTY_MAX_DATES` Landsat dates at least
    :data:`UNCERTAINTY_MIN_CLEAR` clear are held out one at a time on up to
    :data:`UNCERTAINTY_WINDOWS` windows spread over the grid, predicted by the production
    kernel, and the residuals against the hidden observations fit
    :func:`~lst_pipeline.fusion.error_model.fit_error_model`.

    Raises
    ------
    InputError
        If the stack has too few clear Landsat dates to hold out, naming the way out
        (``output.uncertainty: false``).
    """
    from lst_pipeline.fusion.error_model import fit_error_model
    from lst_pipeline.fusion.holdout import predict_held_out
    from lst_pipeline.grid import resolve_grid

    grid, _ = resolve_grid(config.grid)
    windows = spread_windows(grid.shape, grid.coarse_factor * 8,
                             size=UNCERTAINTY_WINDOW, most=UNCERTAINTY_WINDOWS)
    try:
        held = predict_held_out(config, (method,), min_clear_fraction=UNCERTAINTY_MIN_CLEAR,
                                max_dates=UNCERTAINTY_MAX_DATES, windows=windows,
                                features=True, log=lambda _: None)
    except InputError as exc:
        raise InputError(f"{exc}; lst_uncertainty needs held-out Landsat dates to fit "
                         "its error model (or set output.uncertainty: false)") from exc
    residuals = held.samples.get(method)
    n = 0 if residuals is None else len(residuals)
    dates = sorted({str(d) for d in held.days})
    if residuals is None or n < UNCERTAINTY_MIN_RESIDUALS:
        raise InputError(
            f"{config.inputs.stack}: only {n} held-out pixels were fused by "
            f"{method} on {len(dates)} Landsat date(s), too few to fit the error model of "
            "lst_uncertainty; use a stack with more clear Landsat dates, or set "
            "output.uncertainty: false")
    model = fit_error_model(residuals.raw, residuals.errors, method,
                            observation_k=residuals.observation_k,
                            info={"held_out_dates": dates, "windows": len(held.windows)})
    log(f"uncertainty: error model for {method} fitted on {n:,} residuals of "
        f"{len(dates)} held-out Landsat date(s); within 1 sigma "
        f"{model.fitted['within_1_sigma']:.2f}, within 2 sigma "
        f"{model.fitted['within_2_sigma']:.2f}")
    return model
