"""Accuracy of a cube against a reference (simulated truth).

:func:`scores` is the numpy kernel; :func:`compare_with_truth` streams a whole cube and its
truth through Dask chunk by chunk and reports the same scores per ``qa`` class.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Scores:
    """Error statistics of predictions against a reference, in Kelvin.

    Attributes
    ----------
    n
        Pixels compared (both values finite).
    mae_k, rmse_k, bias_k
        Mean absolute error, root-mean-square error, mean(prediction - reference).
    """

    n: int
    mae_k: float
    rmse_k: float
    bias_k: float

    @classmethod
    def from_sums(cls, n: float, err: float, abs_err: float, sq_err: float) -> Scores:
        if n == 0:
            return cls(0, float("nan"), float("nan"), float("nan"))
        return cls(int(n), abs_err / n, float(np.sqrt(sq_err / n)), err / n)

    def __str__(self) -> str:
        return (f"MAE {self.mae_k:.2f} K, RMSE {self.rmse_k:.2f} K, bias {self.bias_k:+.2f} K "
                f"over {self.n:,} pixel-days")


def scores(prediction: np.ndarray, reference: np.ndarray,
           mask: np.ndarray | None = None) -> Scores:
    """Scores over pixels where both arrays are finite (and ``mask`` is true)."""
    err = np.asarray(prediction, dtype=np.float64) - np.asarray(reference, dtype=np.float64)
    ok = np.isfinite(err) if mask is None else np.isfinite(err) & mask
    e = err[ok]
    return Scores.from_sums(e.size, e.sum(), np.abs(e).sum(), (e * e).sum())


def compare_with_truth(cube: Path | str, truth: Path | str) -> dict[str, Scores]:
    """Scores of a cube against a truth cube on the same grid and days.

    Returns scores for ``fused`` pixels, ``observed`` pixels and ``all`` valid pixels.
    """
    import dask
    import xarray as xr

    from lst_pipeline.io.cube import Flag, open_cube

    out = open_cube(cube)
    ref = xr.open_zarr(truth, consolidated=False)["lst"].sel(time=out.time)
    err = out["lst"].astype("f8") - ref.astype("f8").data
    valid = np.isfinite(err)
    classes = {"fused": Flag.fused(out["qa"]), "observed": out["qa"] == Flag.OBSERVED,
               "all": valid}
    sums = {}
    for name, sel in classes.items():
        e = err.where(valid & sel)
        sums[name] = (
            (valid & sel).sum(), e.sum(), abs(e).sum(), (e * e).sum(),
        )
    (computed,) = dask.compute(sums)
    return {name: Scores.from_sums(*(float(v) for v in vals)) for name, vals in computed.items()}
