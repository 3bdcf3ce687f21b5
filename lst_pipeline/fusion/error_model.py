"""The per-pixel error model behind the cube's ``lst_uncertainty`` (numpy only, no I/O).

A fused value's error depends on what it was made from, so the model predicts a 1-sigma
error from what the fusion kernel knows about each pixel-day (:data:`FEATURES`):

- the reference's age (days between the target day and the Landsat date used);
- the MODIS change between the reference date and the target day at the pixel (K);
- the spread of the reference's fine LST within the pixel's MODIS cell (land-cover edges
  and mixed cells, K);
- the cloud fraction of that cell on the reference date;
- the disagreement between the predictions from the references before and after the day
  (K), where there are two, and whether there were;
- the MODIS QC LST-error class of the target day, and whether its MODIS was interpolated
  over a cloud gap;
- the MODIS departure (K): how far the target day's MODIS at the pixel lies from the
  references' MODIS blended with the weights of the fused value,
  ``|w (C_t - C_before) + (1 - w) (C_t - C_after)|`` (the MODIS change itself where one
  reference made the value). A day on the trend between two references is what their
  blend can follow; a day that breaks it (a cold front, a rain event, a bad MODIS retrieval)
  changed in a way neither reference shows at the fine scale. Unlike the MODIS change, it
  does not grow with a steady seasonal trend. Kept on the simulator's dev seeds 201-203
  (summed deviation from the calibration bands 10.5 -> 7.1, Spearman of sigma and |error|
  >= 0.3 in 9 of 9 region-method pairs instead of 7); on the independent test world, whose
  errors are mostly the target day's own MODIS error, it changes little
  (benchmarks/README.md).

The model is a log-linear scale, ``log s^2 = X @ beta``, fitted per run and method by
maximum Student-t likelihood (:data:`TAIL_DOF` degrees of freedom) on leave-one-date-out
residuals of the user's own stack
(:mod:`lst_pipeline.fusion.holdout`): each clear Landsat date is hidden and predicted from
the others by the production kernel, and the hidden observation is the truth. No simulated
truth enters. Two safeguards make that transfer to the days a run fuses:

- an older reference is never allowed to be better (the age coefficient is at least 0);
- features are clamped to the range they were fitted on: held-out dates never have a
  reference younger than the revisit interval, and a log-linear model must not extrapolate
  an age slope towards sigma = 0 on days next to a Landsat date.

Two corrections then turn the fit on held-out residuals into the sigma of a fused value:

- **the held-out observation's own error is taken out.** A held-out residual is the fused
  value's error minus the hidden observation's, so its variance is the fused value's plus
  the observation's (ST_QA squared). Taking the typical ST_QA of the held-out observations
  (:attr:`ErrorModel.observation_k`, their median) out of the fitted variance, after the fit,
  gives the fused value's; it never goes below ``observation_k`` itself, since a fused value
  carries its reference's own observation error. Taking it out inside the fit (fitting
  ``sigma^2 + ST_QA^2``) was tried and made sigma too small on a held-out simulator region
  (seed 902: 64 % instead of 75 % of the errors within 1 sigma): the log-linear model then
  drives easy pixels towards 0. Without ST_QA in the stack nothing is taken out.
- **one scale factor** matches the fraction of residuals within 1 and 2 sigma to a normal
  distribution's (0.683 and 0.954), turning the fitted scale ``s`` into a 1-sigma error.
  (With the Gaussian fit of earlier versions, one factor per reference-age class, up to
  :data:`AGE_SPLIT_DAYS` and older, made up for heavier tails with older references; cubes
  made so keep both factors and are read with them.)

Why Student-t and not Gaussian: fusion errors have heavy tails, and the few held-out dates
make them heavier still (one date with a local event carries much of the squared error). A
Gaussian fit let those residuals set the coefficients; the tail scales then had to shrink
sigma by up to a third for the rest (factors 0.65-0.90), by how much depending on which dates
happened to be held out, and that did not carry over to the days fused. The t likelihood
weighs a residual by ``(nu + 1) / (nu + e^2 / s^2)``, so outliers count less; fitted per
age class, the tail scales then come out alike (about 1.2 with 4 degrees of freedom), and one
factor for all ages calibrates the simulator's dev regions better than two (summed deviation
9.2 against 9.8, below).

All of this was chosen on simulator regions used neither to train DLSTFM nor to score
``lst_uncertainty`` (seeds 201-204; Student-t against Gaussian there: summed deviation from
the bands' centres 9.8 against 11.5, 4 of 8 region-method pairs inside every band against 3;
8 degrees of freedom 9.9); ``benchmarks/bench_uncertainty.py`` scores them on
held-out simulator seeds and on the independent test world. Observed pixels take the
Landsat ST_QA uncertainty where the stack holds it.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import numpy as np

from lst_pipeline.resample import upsample_nearest

#: Columns of the design matrix (after the intercept), in order.
FEATURES = ("log_age", "log_modis_change", "log_subcell_std", "cloud_fraction",
            "log_disagreement", "single_reference", "modis_error_class", "modis_gap_filled",
            "log_modis_departure")
#: The raw per-pixel quantities the kernel measures, in order (see :func:`design`).
RAW = ("age_days", "modis_change_k", "subcell_std_k", "cloud_fraction", "disagreement_k",
       "modis_error_class", "modis_gap_filled", "modis_departure_k")
#: Sigma is clipped to this range (K).
SIGMA_RANGE_K = (0.05, 50.0)
#: What a normal distribution puts within 1 and 2 sigma.
NORMAL_WITHIN = (0.6827, 0.9545)
#: Earlier versions: references up to this age (days) had one tail scale, older ones another.
AGE_SPLIT_DAYS = 16.0
#: Degrees of freedom of the Student-t likelihood the model is fitted by (see module notes).
TAIL_DOF = 4.0
#: Landsat observed pixels without ST_QA in the stack: the typical Collection 2 ST error (K).
DEFAULT_OBSERVED_K = 1.5


def _columns(raw, dtype) -> list:
    """The design's columns after the intercept, as functions of ``raw`` (evaluated lazily).

    A missing disagreement (NaN: one reference only) enters as 0 with ``single_reference``
    set. The one definition of the features' transforms, for fitting and for predicting.
    """
    age, change, std, cloud, disagree, qc_class, filled, departure = raw

    def f(a):
        return np.asarray(a, dtype)

    return [lambda: np.log1p(f(age)), lambda: np.log1p(np.abs(f(change))),
            lambda: np.log1p(np.nan_to_num(f(std))), lambda: np.nan_to_num(f(cloud)),
            lambda: np.log1p(np.nan_to_num(np.abs(f(disagree)))),
            lambda: (~np.isfinite(f(disagree))).astype(dtype),
            lambda: np.nan_to_num(f(qc_class)), lambda: np.nan_to_num(f(filled)),
            lambda: np.log1p(np.nan_to_num(np.abs(f(departure))))]


def design(raw: np.ndarray) -> np.ndarray:
    """The design matrix ``(n, 1 + len(FEATURES))`` from raw features ``(len(RAW), n)``."""
    columns = [c() for c in _columns(raw, np.float64)]
    return np.stack([np.ones_like(columns[0]), *columns], axis=1)


@dataclass(frozen=True)
class ErrorModel:
    """A fitted error model: sigma of a fused value from its features.

    Attributes
    ----------
    method
        The fusion method it was fitted for.
    coefficients
        ``beta`` of ``log s^2 = X @ beta`` (intercept first, then :data:`FEATURES`); sigma
        is ``s`` times the tail scale.
    scale
        Factor on ``s`` that calibrates the tails (see the module notes); in models of
        earlier versions, for references up to :data:`AGE_SPLIT_DAYS` old only.
    scale_old
        Earlier versions: the factor for older references (None: ``scale``).
    observation_k
        Typical error of the held-out Landsat observations (K, their ST_QA), taken out of
        the fitted variance; 0 without ST_QA.
    ranges
        ``(low, high)`` of each feature column over the residuals it was fitted on; a
        feature outside is clamped to it, so that the log-linear model never extrapolates
        (leave-one-date-out never sees a reference younger than the revisit interval, and
        an age slope fitted on 16 to 48 days must not shrink sigma towards 0 at 1 day).
    observed_k
        Sigma of an observed pixel where the stack has no ST_QA uncertainty.
    fitted
        How it was fitted: residuals, held-out dates, and the fraction of residuals within
        1 and 2 sigma on them (plain JSON data, recorded in the cube).
    """

    method: str
    coefficients: tuple[float, ...]
    scale: float = 1.0
    observed_k: float = DEFAULT_OBSERVED_K
    ranges: tuple[tuple[float, float], ...] = ()
    fitted: dict = field(default_factory=dict, compare=False, hash=False)
    scale_old: float | None = None
    observation_k: float = 0.0

    def sigma(self, raw) -> np.ndarray:
        """Sigma (K, float32) of fused values with raw features ``raw``.

        ``raw`` is ``len(RAW)`` arrays of one shape. NaN where the age or the MODIS change
        is NaN (no fused value).
        """
        age = np.asarray(raw[0])
        log_var = np.full(age.shape, self.coefficients[0], np.float32)
        ranges = self.ranges or ((-np.inf, np.inf),) * len(FEATURES)
        for coef, column, (lo, hi) in zip(self.coefficients[1:], _columns(raw, np.float32),
                                          ranges):
            if coef:
                log_var += np.float32(coef) * np.clip(column(), np.float32(lo), np.float32(hi))
        log_var *= np.float32(0.5)
        sigma = np.exp(log_var, out=log_var)
        if self.old_scale == self.scale:
            sigma *= np.float32(self.scale)
        else:
            sigma *= np.where(age > AGE_SPLIT_DAYS, np.float32(self.old_scale),
                              np.float32(self.scale))
        if self.observation_k > 0:  # in place: this runs on every fused pixel-day
            q2 = np.float32(self.observation_k) ** 2
            np.square(sigma, out=sigma)
            sigma -= q2
            np.maximum(sigma, q2, out=sigma)
            np.sqrt(sigma, out=sigma)
        np.clip(sigma, *SIGMA_RANGE_K, out=sigma)
        sigma[~(np.isfinite(age) & np.isfinite(raw[1]))] = np.nan
        return sigma

    @property
    def old_scale(self) -> float:
        """The scale of references older than :data:`AGE_SPLIT_DAYS`."""
        return self.scale if self.scale_old is None else self.scale_old

    def residual_sigma(self, raw) -> np.ndarray:
        """Sigma (K) of held-out residuals: a fused value's error and the observation's."""
        sigma = self.sigma(raw)
        return np.sqrt(sigma * sigma + np.float32(self.observation_k) ** 2)

    def as_attrs(self) -> dict:
        """The model as cube attributes (plain JSON data)."""
        return {"method": self.method, "features": ["intercept", *FEATURES],
                "coefficients": [float(c) for c in self.coefficients],
                "scale": float(self.scale), "scale_old": float(self.old_scale),
                "age_split_days": AGE_SPLIT_DAYS,
                "observation_k": float(self.observation_k),
                "observed_k": float(self.observed_k),
                "ranges": [[float(lo), float(hi)] for lo, hi in self.ranges],
                "fitted": self.fitted}

    @classmethod
    def from_attrs(cls, attrs: dict) -> ErrorModel:
        """Inverse of :meth:`as_attrs`."""
        return cls(method=str(attrs["method"]),
                   coefficients=tuple(float(c) for c in attrs["coefficients"]),
                   scale=float(attrs["scale"]), observed_k=float(attrs["observed_k"]),
                   ranges=tuple((float(lo), float(hi)) for lo, hi in attrs.get("ranges", [])),
                   fitted=dict(attrs.get("fitted", {})),
                   scale_old=float(attrs.get("scale_old", attrs["scale"])),
                   observation_k=float(attrs.get("observation_k", 0.0)))


@dataclass(frozen=True)
class ErrorInputs:
    """What the kernel reads for ``lst_uncertainty`` besides the fusion inputs.

    Attributes
    ----------
    modis_error_class
        ``(T, Y/f, X/f)`` MOD11A1 QC LST-error class (0-3) of the target days, or None (0).
    observed_sigma
        Landsat ST_QA uncertainty (K, NaN unknown) over the read window, per Landsat day
        (days since 1970-01-01) that is also a target day: the sigma of observed pixels.
    """

    modis_error_class: np.ndarray | None = None
    observed_sigma: dict[int, np.ndarray] = field(default_factory=dict)


def within(errors: np.ndarray, sigma: np.ndarray, k: float = 1.0) -> float:
    """Fraction of ``|errors| <= k * sigma`` (NaN when empty)."""
    e, s = np.asarray(errors, np.float64), np.asarray(sigma, np.float64)
    return float(np.mean(np.abs(e) <= k * s)) if e.size else math.nan


def fit_error_model(raw: np.ndarray, errors: np.ndarray, method: str, *,
                    ridge: float = 1e-2, iterations: int = 50,
                    observed_k: float = DEFAULT_OBSERVED_K, observation_k: float = 0.0,
                    info: dict | None = None) -> ErrorModel:
    """Fit :class:`ErrorModel` to residuals by maximum Student-t likelihood, then calibrate.

    Parameters
    ----------
    raw
        ``(len(RAW), n)`` raw features of the residuals.
    errors
        ``(n,)`` prediction minus held-out observation (K).
    method
        The fusion method.
    ridge
        L2 penalty on the standardised coefficients (not the intercept): it keeps features
        that do not vary in the residuals (no gap-filled MODIS, say) at zero.
    iterations
        Most Newton steps (it stops earlier once converged).
    observed_k
        Sigma of observed pixels without ST_QA.
    observation_k
        Typical error of the held-out observations (K, their median ST_QA; 0 unknown).
    info
        Extra JSON data for :attr:`ErrorModel.fitted`.

    Returns
    -------
    ErrorModel
        Deterministic for the same inputs.

    Raises
    ------
    ValueError
        With fewer than 100 residuals.
    """
    x = design(raw)
    e2 = np.asarray(errors, np.float64) ** 2
    if len(e2) < 100:
        raise ValueError(f"{len(e2)} residuals are too few to fit an error model")
    e2 = np.maximum(e2, 1e-6)  # an exact zero residual must not pull log sigma to -inf
    varies = x.std(axis=0) > 1e-9
    varies[0] = True
    coef = _newton(x, e2, varies, ridge, iterations)
    age = 1 + FEATURES.index("log_age")
    if coef[age] < 0:  # an older reference is never better, all else equal
        varies[age] = False
        coef = _newton(x, e2, varies, ridge, iterations)
    ranges = tuple((float(lo), float(hi)) for lo, hi in zip(x[:, 1:].min(axis=0),
                                                              x[:, 1:].max(axis=0)))
    model = ErrorModel(method, tuple(float(c) for c in coef), observed_k=observed_k,
                       ranges=ranges)
    errors = np.asarray(errors)
    sigma = model.sigma(raw)
    scale = calibration_scale(errors, sigma)
    calibrated = dataclasses.replace(model, scale=scale, scale_old=scale,
                                     observation_k=float(observation_k))
    sigma = calibrated.residual_sigma(raw)
    fitted = {"residuals": len(e2), **(info or {}),
              "within_1_sigma": round(within(errors, sigma), 4),
              "within_2_sigma": round(within(errors, sigma, 2.0), 4)}
    return dataclasses.replace(calibrated, fitted=fitted)


def _newton(x: np.ndarray, e2: np.ndarray, use: np.ndarray, ridge: float, iterations: int
            ) -> np.ndarray:
    """Coefficients of ``log s^2 = x @ beta`` minimising the Student-t NLL (``use`` only).

    Per residual, up to constants, ``v / 2 + (nu + 1) / 2 * log(1 + e^2 / (nu e^v))`` with
    ``v = x @ beta`` and ``nu`` = :data:`TAIL_DOF`: convex in ``beta``, so Newton's method
    converges. Columns are
    standardised for the penalty and the steps; the rest stay 0.
    """
    mean, std = x.mean(axis=0), x.std(axis=0)
    mean[0], std[0] = 0.0, 1.0
    z = np.where(use, (x - mean) / np.where(use & (std > 0), std, 1.0), 0.0)
    z[:, 0] = 1.0
    beta = np.zeros(x.shape[1])
    beta[0] = math.log(float(np.median(e2)))
    penalty = np.where(use, ridge * len(e2), 1.0)
    penalty[0] = 0.0
    for _ in range(iterations):
        r = e2 * np.exp(-(z @ beta)) / TAIL_DOF
        grad = z.T @ (0.5 - 0.5 * (TAIL_DOF + 1) * r / (1 + r)) + penalty * beta
        curvature = 0.5 * (TAIL_DOF + 1) * r / (1 + r) ** 2
        hess = (z * curvature[:, None]).T @ z + np.diag(penalty) + 1e-9 * np.eye(len(beta))
        step = np.linalg.solve(hess, grad)
        beta -= np.clip(step, -2.0, 2.0)
        if np.abs(step).max() < 1e-8:
            break
    coef = np.where(use, beta / np.where(use & (std > 0), std, 1.0), 0.0)
    coef[0] = beta[0] - float((coef[1:] * mean[1:]).sum())
    return coef


def calibration_scale(errors: np.ndarray, sigma: np.ndarray) -> float:
    """The factor on ``sigma`` whose 1- and 2-sigma coverage is closest to a normal's.

    The squared misses are weighed by 0.05 at 1 sigma and 0.025 at 2 sigma (the tails are
    where a user's alert thresholds sit), scanned over factors 0.5 to 3 in steps of 0.5 %.
    """
    ratio = np.sort(np.abs(np.asarray(errors, np.float64)) / np.asarray(sigma, np.float64))
    scales = np.exp(np.arange(math.log(0.5), math.log(3.0), 0.005))
    cover1 = np.searchsorted(ratio, scales, side="right") / len(ratio)
    cover2 = np.searchsorted(ratio, 2 * scales, side="right") / len(ratio)
    loss = (((cover1 - NORMAL_WITHIN[0]) / 0.05) ** 2
            + ((cover2 - NORMAL_WITHIN[1]) / 0.025) ** 2)
    return float(scales[int(np.argmin(loss))])


def departure(weight_before: np.ndarray, change_before: np.ndarray,
              change_after: np.ndarray) -> np.ndarray:
    """How far the target day's MODIS departs from the references' MODIS blended (K).

    ``|w C_before + (1 - w) C_after|`` of the signed MODIS changes since each reference, with
    the weight ``w`` of the reference before: 0 where the day's MODIS lies on the line
    between the references' (the change the references' blend follows), large on a day that
    breaks the trend, which no reference shows at the fine scale (an error feature of
    :data:`FEATURES`).
    """
    away = np.subtract(change_before, change_after, dtype=np.float32)
    away *= np.asarray(weight_before, np.float32)
    away += change_after  # w (C_b - C_a) + C_a
    return np.abs(away, out=away)


def reference_cell_stats(fine: np.ndarray, clear: np.ndarray, factor: int
                         ) -> tuple[np.ndarray, np.ndarray]:
    """Per reference, the spread of clear fine LST in each coarse cell and its cloud fraction.

    Parameters
    ----------
    fine
        ``(R, Y, X)`` reference Landsat LST (K, NaN unusable), ``Y`` and ``X`` multiples of
        ``factor`` (the kernel pads them so).
    clear
        ``(R, Y, X)`` its clear pixels.
    factor
        Fine pixels per coarse cell.

    Returns
    -------
    subcell_std : numpy.ndarray
        ``(R, Y, X)`` float32 standard deviation of the cell's clear pixels (K, NaN if none).
    cloud_fraction : numpy.ndarray
        ``(R, Y, X)`` float32 fraction of the cell not clear.
    """
    r, ny, nx = fine.shape
    cells = np.where(clear, fine, 0.0).astype(np.float64).reshape(
        r, ny // factor, factor, nx // factor, factor)
    count = clear.reshape(cells.shape).sum(axis=(2, 4))
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = cells.sum(axis=(2, 4)) / count
        var = (cells ** 2).sum(axis=(2, 4)) / count - mean ** 2
    std = np.sqrt(np.maximum(var, 0.0)).astype(np.float32)
    cloud = (1.0 - count / factor ** 2).astype(np.float32)
    return upsample_nearest(std, factor), upsample_nearest(cloud, factor)
