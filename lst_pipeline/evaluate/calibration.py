"""Is ``lst_uncertainty`` calibrated? Coverage, rank correlation and reliability of sigma.

A 1-sigma error is calibrated when about 68 % of the errors lie within 1 sigma and 95 %
within 2 sigma, overall and within every reference-age class, and when a larger sigma goes
with a larger error (rank correlation). ``evaluate`` scores it against the simulated truth,
or, on a real stack, by leave-one-date-out with the error model itself cross-validated by
date (:func:`cross_validated_sigma`): each held-out date's sigma comes from a model fitted
on the other dates' residuals only.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np

from lst_pipeline.flags import Flag
from lst_pipeline.fusion.error_model import fit_error_model, within

#: Reference-age classes (days, inclusive) of the calibration tables.
AGE_CLASSES: tuple[tuple[int, int], ...] = ((0, 4), (5, 8), (9, 16), (17, 48), (49, 10_000))
#: Sigma bins (K) of the reliability diagram.
SIGMA_BINS_K = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 10.0, 50.0)
#: The rank correlation is computed on at most this many evenly spaced pixel-days.
SPEARMAN_SAMPLE = 200_000


@dataclass(frozen=True)
class Coverage:
    """Coverage of one group of pixel-days."""

    n: int
    within_1: float
    within_2: float
    mean_sigma_k: float
    rmse_k: float
    spearman: float

    def as_dict(self) -> dict:
        """Plain JSON data."""
        return {"n": self.n, "within_1_sigma": round(self.within_1, 4),
                "within_2_sigma": round(self.within_2, 4),
                "mean_sigma_k": round(self.mean_sigma_k, 3), "rmse_k": round(self.rmse_k, 3),
                "spearman": round(self.spearman, 3)}


@dataclass(frozen=True)
class Calibration:
    """Calibration of one method's sigma: overall, by reference age, and reliability bins."""

    overall: Coverage
    by_age: dict[str, Coverage] = field(default_factory=dict)
    #: ``(sigma_low, sigma_high, mean sigma, observed RMSE, n)`` per non-empty sigma bin
    reliability: list[tuple[float, float, float, float, int]] = field(default_factory=list)

    def as_dict(self) -> dict:
        """Plain JSON data."""
        return {"overall": self.overall.as_dict(),
                "by_reference_age_days": {k: v.as_dict() for k, v in self.by_age.items()},
                "reliability": [{"sigma_k": [lo, hi], "mean_sigma_k": round(s, 3),
                                 "rmse_k": round(r, 3), "n": n}
                                for lo, hi, s, r, n in self.reliability]}


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rank correlation on at most :data:`SPEARMAN_SAMPLE` evenly spaced pairs."""
    from scipy.stats import spearmanr

    if a.size < 3:
        return float("nan")
    index = np.linspace(0, a.size - 1, min(a.size, SPEARMAN_SAMPLE)).astype(np.int64)
    return float(spearmanr(a[index], b[index])[0])


def coverage(errors: np.ndarray, sigma: np.ndarray) -> Coverage:
    """Coverage of ``|errors|`` by ``sigma`` (1-D, finite)."""
    e, s = np.asarray(errors, np.float64), np.asarray(sigma, np.float64)
    if not e.size:
        nan = float("nan")
        return Coverage(0, nan, nan, nan, nan, nan)
    return Coverage(int(e.size), within(e, s), within(e, s, 2.0), float(s.mean()),
                    float(np.sqrt((e * e).mean())), spearman(s, np.abs(e)))


def calibration(errors: np.ndarray, sigma: np.ndarray, age_days: np.ndarray) -> Calibration:
    """Calibration of sigma over the pixel-days where errors, sigma and age are finite.

    Parameters
    ----------
    errors
        Prediction minus truth (K), any shape.
    sigma
        The predicted 1-sigma errors (K), same shape.
    age_days
        Reference age of each value (days), same shape.
    """
    e, s, a = (np.asarray(v, np.float64).ravel() for v in (errors, sigma, age_days))
    ok = np.isfinite(e) & np.isfinite(s) & np.isfinite(a)
    e, s, a = e[ok], s[ok], a[ok]
    by_age = {f"{lo}-{hi}" if hi < 10_000 else f">={lo}": coverage(e[sel], s[sel])
              for lo, hi in AGE_CLASSES
              if (sel := (a >= lo) & (a <= hi)).any()}
    bins = []
    for lo, hi in itertools.pairwise(SIGMA_BINS_K):
        sel = (s >= lo) & (s < hi)
        if sel.any():
            bins.append((lo, hi, float(s[sel].mean()), float(np.sqrt((e[sel] ** 2).mean())),
                         int(sel.sum())))
    return Calibration(coverage(e, s), by_age, bins)


class CalibrationSample:
    """Pixel-days gathered block by block for :func:`calibration_by_flag`.

    Every ``every``-th pixel-day with a value, a sigma and a truth is kept, counted across
    blocks, so memory stays bounded on long cubes and every pixel-day has the same chance
    to enter, whichever block it is in. (A cap per block would not: a block with few
    values, cloudy days or the short last block, would weigh as much as a full one.)

    Parameters
    ----------
    every
        Keep one in this many pixel-days (1: all); :meth:`for_size` chooses it.
    """

    #: The most pixel-days :meth:`for_size` lets a sample hold.
    MOST = 4_000_000

    def __init__(self, every: int = 1) -> None:
        if every < 1:
            raise ValueError(f"every must be at least 1, not {every}")
        self.every = int(every)
        self._seen = 0
        self._parts: list[tuple[np.ndarray, ...]] = []

    @classmethod
    def for_size(cls, pixel_days: int, most: int | None = None) -> CalibrationSample:
        """A sample that keeps at most ``most`` (:attr:`MOST`) of ``pixel_days``."""
        most = most or cls.MOST
        return cls(max(1, -(-int(pixel_days) // most)))

    def add(self, errors: np.ndarray, sigma: np.ndarray, age_days: np.ndarray,
            qa: np.ndarray) -> None:
        """Add one block: errors (K), sigma (K), reference age (days) and ``qa`` codes."""
        ok = np.flatnonzero(np.isfinite(errors) & np.isfinite(sigma))
        start = -self._seen % self.every  # continue the stride of the previous blocks
        self._seen += len(ok)
        ok = ok[start::self.every]
        self._parts.append(tuple(np.asarray(a).ravel()[ok]
                                 for a in (errors, sigma, age_days, qa)))

    def calibration(self) -> dict[str, Calibration]:
        """:class:`Calibration` of ``all``, ``fused`` and ``observed`` pixel-days (present ones)."""
        if not self._parts:
            return {}
        errors, sigma, age, qa = (np.concatenate(p) for p in zip(*self._parts))
        groups = {"all": np.ones(errors.shape, bool), "fused": Flag.fused(qa),
                  "observed": qa == Flag.OBSERVED}
        return {k: calibration(errors[g], sigma[g], age[g]) for k, g in groups.items()
                if g.any()}


def cross_validated_sigma(raw: np.ndarray, errors: np.ndarray, groups: np.ndarray,
                          method: str, observation_k: float = 0.0) -> np.ndarray:
    """Sigma of each residual from an error model fitted on the other groups only.

    A residual's sigma includes the held-out observation's own error (``observation_k``),
    which a fused value's does not (:meth:`ErrorModel.residual_sigma`).

    Parameters
    ----------
    raw
        ``(len(RAW), n)`` raw error features.
    errors
        ``(n,)`` residuals (K).
    groups
        ``(n,)`` group of each residual (its held-out date): a group never sees its own
        residuals.
    method
        The fusion method.
    observation_k
        Typical error of the held-out observations (K, 0 unknown).

    Returns
    -------
    numpy.ndarray
        ``(n,)`` sigma (K); NaN for a group whose complement has too few residuals.
    """
    out = np.full(len(errors), np.nan, np.float32)
    for g in np.unique(groups):
        own = groups == g
        if (~own).sum() < 100:
            continue
        model = fit_error_model(raw[:, ~own], errors[~own], method,
                                observation_k=observation_k)
        out[own] = model.residual_sigma(raw[:, own])
    return out


def calibration_table(calibrations: dict[str, Calibration]) -> str:
    """Markdown: per method, coverage overall and by reference age (1 sigma / 2 sigma)."""
    ages = sorted({k for c in calibrations.values() for k in c.by_age},
                  key=lambda k: int(k.lstrip(">=").split("-")[0]))
    head = ["method", "n", "within 1 sigma", "within 2 sigma", "Spearman",
            *(f"age {k} d (share)" for k in ages)]
    lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    for method, c in calibrations.items():
        o = c.overall
        cells = [f"`{method}`", f"{o.n:,}", f"{o.within_1:.3f}", f"{o.within_2:.3f}",
                 f"{o.spearman:.2f}"]
        for k in ages:
            g = c.by_age.get(k)
            cells.append("" if g is None else
                         f"{g.within_1:.2f} / {g.within_2:.2f} ({g.n / max(o.n, 1):.0%})")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
