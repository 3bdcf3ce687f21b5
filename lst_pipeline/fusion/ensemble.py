"""An ensemble's weights, fitted on the stack's own held-out Landsat dates (planning).

``fusion.method: ensemble`` averages its members' predictions
(:class:`~lst_pipeline.fusion.methods.EnsembleMethod`); unless the configuration gives the
weights, :func:`fit_ensemble` fits them per run by the leave-one-date-out computation of
``fusion.method: auto`` (:func:`~lst_pipeline.fusion.holdout.predict_held_out`, the same
dates and windows) and :mod:`lst_pipeline.fusion.stacking`. No truth enters.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from lst_pipeline.errors import InputError
from lst_pipeline.fusion.holdout import predict_auto_held_out
from lst_pipeline.fusion.registry import ENSEMBLE


@dataclass(frozen=True)
class EnsembleFit:
    """An ensemble's fitted weights and what they were fitted on.

    Attributes
    ----------
    members, weights
        The members and their weights (summing to 1).
    mae_k
        Held-out MAE (K) of each member and of the ``ensemble``, the latter with each
        date's weights fitted on the other dates (NaN with a single date).
    dates
        The held-out Landsat dates.
    pixels
        Held-out pixels every member predicted.
    """

    members: tuple[str, ...]
    weights: tuple[float, ...]
    mae_k: dict[str, float]
    dates: list[str]
    pixels: int

    def describe(self) -> str:
        """The weights and the held-out scores, in one line."""
        parts = ", ".join(f"{m} {w:.3f}" for m, w in zip(self.members, self.weights))
        scores = ", ".join(f"{m} {v:.3f} K" for m, v in self.mae_k.items())
        return (f"fusion.method ensemble: weights {parts} (fitted on {len(self.dates)} "
                f"held-out Landsat date(s), {self.pixels:,} pixels; leave-one-date-out MAE "
                f"{scores}, the ensemble's with each date's weights fitted without it)")

    def as_attrs(self) -> dict[str, Any]:
        """The fit as cube attributes (plain JSON data)."""
        return {"members": list(self.members), "weights": list(self.weights),
                "held_out_mae_k": self.mae_k, "held_out_dates": self.dates,
                "pixels": self.pixels, "fit": "least squares on the simplex "
                "(lst_pipeline.fusion.stacking)"}


def fit_ensemble(config: Any, *, log=print) -> EnsembleFit:
    """Fit ``fusion.ensemble``'s weights on the stack's own clear Landsat dates.

    Up to :data:`~lst_pipeline.fusion.holdout.AUTO_MAX_DATES` dates are held out one at a
    time on windows spread over the grid (as ``auto`` does), every member predicts them,
    and the weights minimising the squared error on the simplex are fitted
    (:func:`~lst_pipeline.fusion.stacking.simplex_weights`). The ensemble's own held-out
    MAE is reported with each date's weights fitted on the other dates.

    Raises
    ------
    InputError
        If no Landsat date can be held out, or no held-out pixel was predicted by every
        member, naming the way out (``fusion.ensemble.weights``).
    """
    members = tuple(config.fusion.ensemble.members)
    try:
        held = predict_auto_held_out(config, (*members, ENSEMBLE))
    except InputError as exc:
        raise InputError(f"{exc}; fusion.method ensemble fits its weights on held-out "
                         "Landsat dates (or give them in fusion.ensemble.weights)") from exc
    if not held.mask.any():
        raise InputError(f"{config.inputs.stack}: no held-out pixel was predicted by every "
                         f"member of the ensemble ({', '.join(members)}); give the weights in "
                         "fusion.ensemble.weights or choose another method")
    mae = {m: float(np.abs(p - held.truth)[held.mask].mean())
           for m, p in held.predictions.items()}
    mae.setdefault(ENSEMBLE, float("nan"))
    fit = EnsembleFit(members, held.ensemble_weights, mae,
                      sorted({str(d) for d in held.days}), int(held.mask.sum()))
    log(fit.describe())
    return fit

