import numpy as np
import pytest

from lst_pipeline.evaluate import Scores, scores


def test_scores_against_hand_computed_values():
    prediction = np.array([301.0, 299.0, 302.0, np.nan, 300.0])
    reference = np.array([300.0, 300.0, 300.0, 300.0, np.nan])
    s = scores(prediction, reference)  # errors +1, -1, +2 over 3 pixels
    assert s.n == 3
    assert s.mae_k == pytest.approx(4 / 3)
    assert s.rmse_k == pytest.approx(np.sqrt(6 / 3))
    assert s.bias_k == pytest.approx(2 / 3)
    masked = scores(prediction, reference, mask=np.array([True, True, False, True, True]))
    assert (masked.n, masked.mae_k, masked.bias_k) == (2, 1.0, 0.0)
    empty = Scores.from_sums(0, 0, 0, 0)
    assert empty.n == 0 and np.isnan(empty.mae_k)
    assert "MAE 1.33 K" in str(s)
