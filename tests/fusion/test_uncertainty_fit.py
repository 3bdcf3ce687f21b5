"""Which held-out dates the error model of lst_uncertainty is fitted on."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from lst_pipeline.errors import InputError
from lst_pipeline.fusion import uncertainty_fit
from lst_pipeline.fusion.holdout import AUTO_MIN_CLEAR, predict_auto_held_out
from lst_pipeline.fusion.uncertainty_fit import UNCERTAINTY_MIN_CLEAR, fit_uncertainty
from lst_pipeline.io.stack import StackReader


def _in_run(config) -> tuple[np.ndarray, np.ndarray]:
    """The stack's Landsat dates within the run's days and their clear fractions."""
    reader = StackReader(config.inputs.stack)
    days = reader.landsat_dates.astype("datetime64[D]")
    start, end = (np.datetime64(config.dates.start, "D"), np.datetime64(config.dates.end, "D"))
    inside = (days >= start) & (days <= end)
    return days[inside], np.asarray(reader.landsat_clear_fraction)[inside]


def test_every_date_clear_enough_is_held_out_more_than_auto_scores(simulated_tiny):
    config = dataclasses.replace(simulated_tiny, fusion=dataclasses.replace(
        simulated_tiny.fusion, method="reference_change"))
    days, clear = _in_run(config)
    expected = sorted(str(d) for d in days[clear >= UNCERTAINTY_MIN_CLEAR])
    model = fit_uncertainty(config, "reference_change", log=lambda _: None)
    assert model.fitted["held_out_dates"] == expected
    auto = sorted({str(d) for d in predict_auto_held_out(config, ("reference_change",)).days})
    assert auto == sorted(str(d) for d in days[clear >= AUTO_MIN_CLEAR])
    assert set(auto) < set(expected)  # this stack has a date 5-30 % clear
    # the fit is deterministic: same dates, same coefficients
    again = fit_uncertainty(config, "reference_change", log=lambda _: None)
    assert again.coefficients == model.coefficients and again.scale == model.scale


def test_at_most_the_cap_spread_over_the_run(simulated_tiny, monkeypatch):
    config = dataclasses.replace(simulated_tiny, fusion=dataclasses.replace(
        simulated_tiny.fusion, method="reference_change"))
    days, clear = _in_run(config)
    usable = days[clear >= UNCERTAINTY_MIN_CLEAR]
    assert len(usable) >= 3
    monkeypatch.setattr(uncertainty_fit, "UNCERTAINTY_MAX_DATES", 2)
    model = fit_uncertainty(config, "reference_change", log=lambda _: None)
    assert model.fitted["held_out_dates"] == [str(usable[0]), str(usable[-1])]


def test_a_stack_without_dates_to_hold_out_names_the_way_out(simulated_tiny):
    days, _ = _in_run(simulated_tiny)
    config = dataclasses.replace(simulated_tiny, dates=dataclasses.replace(
        simulated_tiny.dates, start=(days[0] + 1).item(), end=(days[1] - 1).item()))
    with pytest.raises(InputError, match=r"output\.uncertainty: false"):
        fit_uncertainty(config, "reference_change", log=lambda _: None)
