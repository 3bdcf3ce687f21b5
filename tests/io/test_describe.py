"""Gaps in the record, as `lst-pipeline inspect` reports them."""

import numpy as np

from lst_pipeline.io.describe import record_gaps


def test_record_gaps_between_usable_dates_longest_first():
    dates = np.array(["2021-01-01", "2021-01-17", "2021-02-02", "2021-03-06", "2021-03-22"],
                     dtype="datetime64[D]")
    usable = np.array([True, True, False, True, True])
    gaps = record_gaps(dates, usable, longest=2)
    # 2021-02-02 is cloudy: the record jumps from 01-17 to 03-06 (48 days)
    assert gaps[0] == (np.datetime64("2021-01-17"), np.datetime64("2021-03-06"), 48)
    assert gaps[1][2] == 16
    assert record_gaps(dates[:1], usable[:1]) == []
