import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from lst_pipeline.fusion.pairs import candidate_references


def test_nearest_first_earlier_wins_ties_and_gap_limit():
    landsat = np.array([0, 16, 32, 100])
    ranked = candidate_references(np.array([8, 16, 20, 60]), landsat, max_gap_days=20,
                                  max_references=3)
    assert ranked[0].tolist() == [0, 1, -1]      # 0 and 16 both 8 days away: earlier first
    assert ranked[1].tolist() == [0, 2, -1]      # same day excluded by default
    assert ranked[2].tolist() == [1, 2, 0]
    assert ranked[3].tolist() == [-1, -1, -1]    # nothing within 20 days
    same = candidate_references(np.array([16]), landsat, max_gap_days=20, max_references=2,
                                include_same_day=True)
    assert same[0].tolist() == [1, 0]


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(0, 400), min_size=0, max_size=30, unique=True),
       st.lists(st.integers(0, 400), min_size=1, max_size=20),
       st.integers(0, 100), st.integers(1, 5))
def test_candidates_sorted_by_distance_within_gap(landsat, targets, gap, k):
    landsat = np.sort(np.array(landsat, dtype=np.int64))
    targets = np.array(targets, dtype=np.int64)
    ranked = candidate_references(targets, landsat, max_gap_days=gap, max_references=k)
    assert ranked.shape == (len(targets), k)
    for t, row in zip(targets, ranked):
        valid = row[row >= 0]
        assert (row[len(valid):] == -1).all()  # -1 only at the end
        dist = np.abs(landsat[valid] - t)
        assert (dist <= gap).all() and (dist > 0).all()
        assert (np.diff(dist) >= 0).all()
        expected = np.sum((np.abs(landsat - t) <= gap) & (landsat != t))
        assert len(valid) == min(k, expected)


def test_sides():
    landsat = np.array([0, 16, 32])
    before = candidate_references(np.array([20]), landsat, max_gap_days=40, max_references=3,
                                  side="before")
    after = candidate_references(np.array([20]), landsat, max_gap_days=40, max_references=3,
                                 side="after")
    assert before[0].tolist() == [1, 0, -1] and after[0].tolist() == [2, -1, -1]
