import numpy as np
import pytest

from lst_pipeline.chunks import ChunkPlan
from lst_pipeline.errors import ConfigError
from lst_pipeline.fusion.kernel import (
    coarse_cell_fraction,
    fuse_block,
    upsample_bilinear,
)
from lst_pipeline.fusion.methods import ReferenceChangeMethod, get_method
from lst_pipeline.fusion.modis_gaps import interpolate_modis_gaps
from lst_pipeline.grid import Window
from lst_pipeline.io.cube import REFERENCE_DATE_FILL, Flag

F = 8


def test_upsample_constant_and_linear_fields_exactly():
    assert np.allclose(upsample_bilinear(np.full((1, 3, 4), 290.0), F), 290.0)
    ramp = np.arange(5, dtype=np.float32)[None, :].repeat(3, 0)  # 1 K per coarse px in x
    up = upsample_bilinear(ramp, F)
    x_fine = (np.arange(5 * F) + 0.5) / F - 0.5
    expected = np.clip(x_fine, 0, 4)
    np.testing.assert_allclose(up, np.broadcast_to(expected, (3 * F, 5 * F)), atol=1e-6)
    # block means of the upsampled field reproduce interior coarse values
    assert up[:, 2 * F:3 * F].mean() == pytest.approx(2.0)


def test_upsample_gaps_stay_gaps_and_neighbours_renormalise():
    c = np.full((4, 4), 300.0, np.float32)
    c[1, 2] = np.nan
    c[2, 2] = 310.0
    up = upsample_bilinear(c, F)
    assert np.isnan(up[F:2 * F, 2 * F:3 * F]).all()
    assert np.isfinite(up).sum() == up.size - F * F
    # next to the gap only valid neighbours contribute: values stay within their range
    assert np.nanmin(up) >= 300 and np.nanmax(up) <= 310


def test_coarse_cell_fraction():
    valid = np.zeros((16, 16), bool)
    valid[:4, :8] = True
    frac = coarse_cell_fraction(valid, F)
    assert frac[0, 0] == 0.5 and frac[0, 8] == 0 and frac.shape == (16, 16)


def synthetic_block(rng, n_days=12, ny=64, nx=96, clouds=True):
    """Landsat every 8 days, MODIS daily, smooth-ish fields with gaps."""
    ny_c, nx_c = ny // F, nx // F
    target_days = 18628 + np.arange(n_days)
    landsat_days = 18628 + np.array([-5, 3, 11, 19])
    base = 300 + rng.normal(0, 3, (ny, nx)).astype(np.float32)
    landsat = base[None] + rng.normal(0, 0.5, (4, ny, nx)).astype(np.float32)
    landsat_modis = 300 + rng.normal(0, 1, (4, ny_c, nx_c)).astype(np.float32)
    target_modis = 300 + rng.normal(0, 2, (n_days, ny_c, nx_c)).astype(np.float32)
    if clouds:
        landsat[landsat > 302] = np.nan
        landsat[1, :20, :30] = np.nan
        landsat_modis[0, 0, 0] = np.nan
        target_modis[target_modis < 297.5] = np.nan
        target_modis[5] = np.nan
    return landsat, landsat_days, landsat_modis, target_modis, target_days


def run_block(inputs, out_window, read_window=None, **kw):
    landsat, ldays, lmodis, tmodis, tdays = inputs
    if read_window is not None:
        ys, xs = read_window.slices
        cy, cx = read_window.coarse(F).slices
        landsat, lmodis, tmodis = landsat[:, ys, xs], lmodis[:, cy, cx], tmodis[:, cy, cx]
        out_window = out_window.relative_to(read_window)
    params = {"max_gap_days": 16, "min_clear_fraction": 0.3, "max_references": 3, **kw}
    return fuse_block(landsat, ldays, lmodis, tmodis, tdays, method=ReferenceChangeMethod(),
                      coarse_factor=F, out_window=out_window, **params)


def test_chunked_equals_whole_scene():
    rng = np.random.default_rng(3)
    inputs = synthetic_block(rng)
    n_days = len(inputs[4])
    whole = run_block(inputs, Window(0, 64, 0, 96))
    plan = ChunkPlan(shape=(n_days, 64, 96), chunks=(n_days, 16, 32),
                     halo=ReferenceChangeMethod().halo(F), alignment=F)
    lst = np.full_like(whole.lst_k, -1.0)
    qa = np.full_like(whole.qa, 99)
    for chunk in plan:
        part = run_block(inputs, chunk.window, chunk.read_window)
        ys, xs = chunk.window.slices
        lst[:, ys, xs], qa[:, ys, xs] = part.lst_k, part.qa
    np.testing.assert_array_equal(qa, whole.qa)
    np.testing.assert_allclose(lst, whole.lst_k, atol=1e-4, equal_nan=True)
    assert (whole.qa == Flag.FUSED).mean() > 0.3  # the test exercises real fusion


def test_reference_change_physics_and_flags():
    rng = np.random.default_rng(4)
    landsat, ldays, lmodis, tmodis, tdays = synthetic_block(rng, clouds=False)
    out = run_block((landsat, ldays, lmodis, tmodis, tdays), Window(0, 64, 0, 96))
    # day index 3 is a Landsat date: observed, equal to the observation
    assert (out.qa[3] == Flag.OBSERVED).all()
    np.testing.assert_array_equal(out.lst_k[3], landsat[1])
    # day 0: nearest reference is day index -5 (5 days before) vs 3 (3 days after) -> after
    assert (out.reference_day[0] == ldays[1]).all()
    expected = landsat[1] + upsample_bilinear(tmodis[0], F) - upsample_bilinear(lmodis[1], F)
    np.testing.assert_allclose(out.lst_k[0], expected, atol=1e-4)


def test_gaps_stay_gaps_and_fall_back_to_next_reference():
    rng = np.random.default_rng(5)
    inputs = synthetic_block(rng)
    _, ldays, _, tmodis, tdays = inputs
    out = run_block(inputs, Window(0, 64, 0, 96))
    # a fully cloudy MODIS day yields no numbers at all (except Landsat observations)
    assert (out.qa[5] == Flag.NO_DATA).all() and np.isnan(out.lst_k[5]).all()
    assert (out.reference_day[5] == REFERENCE_DATE_FILL).all()
    # wherever target MODIS is a gap, the fused pixel is a gap unless observed
    gap = np.repeat(np.repeat(np.isnan(tmodis), F, 1), F, 2)
    assert not ((out.qa == Flag.FUSED) & gap).any()
    # pixels cloudy in the nearest reference used a farther one
    day = 0  # nearest reference index 1 has a cloud box at [:20, :30]
    box = out.reference_day[day, :16, :24]
    fused = out.qa[day, :16, :24] == Flag.FUSED
    assert fused.any() and (box[fused] != ldays[1]).all()
    # no value without a reference within the gap; every value has a reference date
    has_value = np.isfinite(out.lst_k)
    np.testing.assert_array_equal(has_value, out.qa != Flag.NO_DATA)
    np.testing.assert_array_equal(has_value, out.reference_day != REFERENCE_DATE_FILL)
    assert (np.abs(out.reference_day[has_value] - np.broadcast_to(
        tdays[:, None, None], out.qa.shape)[has_value]) <= 16).all()


def test_min_clear_fraction_rejects_mostly_cloudy_cells():
    rng = np.random.default_rng(6)
    landsat, ldays, lmodis, tmodis, tdays = synthetic_block(rng, clouds=False)
    landsat[:, :F, :F] = np.nan
    landsat[:, 0, 0] = 300.0  # 1 clear pixel of 64 in that cell on every date
    out = run_block((landsat, ldays, lmodis, tmodis, tdays), Window(0, 64, 0, 96),
                    min_clear_fraction=0.5)
    fused = out.qa[:, 0, 0] == Flag.FUSED
    assert not fused.any()


def test_unknown_method():
    with pytest.raises(ConfigError, match="unknown method 'nope'"):
        get_method("nope")


def test_two_references_blend_by_distance_where_they_agree():
    rng = np.random.default_rng(7)
    landsat, ldays, lmodis, tmodis, tdays = synthetic_block(rng, clouds=False)
    one = run_block((landsat, ldays, lmodis, tmodis, tdays), Window(0, 64, 0, 96))
    two = run_block((landsat, ldays, lmodis, tmodis, tdays), Window(0, 64, 0, 96),
                    two_references=True, max_disagreement_k=100.0)
    # day 0 (18628): before = 18623 (5 days), after = 18631 (3 days) -> weights 3/8, 5/8
    target_up = upsample_bilinear(tmodis[0], F)
    before = landsat[0] + target_up - upsample_bilinear(lmodis[0], F)
    after = landsat[1] + target_up - upsample_bilinear(lmodis[1], F)
    np.testing.assert_allclose(two.lst_k[0], 3 / 8 * before + 5 / 8 * after, atol=1e-4)
    assert (two.qa[0] == Flag.FUSED_TWO).all()
    assert (two.reference_day[0] == ldays[1]).all()  # the nearer reference is recorded
    assert (two.qa[3] == Flag.OBSERVED).all()  # observations are kept
    np.testing.assert_array_equal(one.lst_k[3], two.lst_k[3])
    # predictions that disagree by twice the threshold or more are not blended: nearer wins;
    # between once and twice it, the blend fades linearly towards the nearer one
    strict = run_block((landsat, ldays, lmodis, tmodis, tdays), Window(0, 64, 0, 96),
                       two_references=True, max_disagreement_k=1.0)
    d = np.abs(before - after)
    apart, fading = d >= 2.0, (d > 1.0) & (d < 2.0)
    assert apart.any() and (strict.qa[0][apart] == Flag.FUSED).all()
    np.testing.assert_allclose(strict.lst_k[0][apart], after[apart], atol=1e-4)
    assert fading.any() and (strict.qa[0][fading] == Flag.FUSED_TWO).all()
    w = (2.0 - d) * 3 / 8  # the weight of the farther reference (before), faded
    np.testing.assert_allclose(strict.lst_k[0][fading],
                               (w * before + (1 - w) * after)[fading], atol=1e-4)


def test_modis_departure_is_zero_on_the_references_trend_and_the_break_off_it():
    from lst_pipeline.fusion.error_model import RAW

    rng = np.random.default_rng(11)
    landsat, ldays, lmodis, tmodis, tdays = synthetic_block(rng, clouds=False)
    # day 0 (18628) lies 5 days after 18623 and 3 before 18631: weights 3/8 and 5/8
    on_trend = 3 / 8 * lmodis[0] + 5 / 8 * lmodis[1]
    tmodis[0], tmodis[1] = on_trend, on_trend + 2.0  # day 1: 2 K off the trend
    inputs = (landsat, ldays, lmodis, tmodis, tdays)
    two = run_block(inputs, Window(0, 64, 0, 96), two_references=True,
                    max_disagreement_k=100.0, return_features=True)
    departure = two.features[RAW.index("modis_departure_k")]
    change = two.features[RAW.index("modis_change_k")]
    assert (two.qa[:2] == Flag.FUSED_TWO).all()
    np.testing.assert_allclose(departure[0], 0.0, atol=1e-4)
    assert change[0].mean() > 0.2  # the day changed since each reference, on the trend
    # day 1 (weights 2/8, 6/8 for 18623, 18631): the trend moved on by an eighth of the
    # references' difference, the day stayed 2 K above day 0
    expected = np.abs(2.0 + upsample_bilinear((lmodis[0] - lmodis[1]) / 8, F))
    np.testing.assert_allclose(departure[1], expected, atol=1e-3)
    one = run_block(inputs, Window(0, 64, 0, 96), return_features=True)
    fused = Flag.fused(one.qa)
    np.testing.assert_array_equal(  # one reference: the departure is the change
        one.features[RAW.index("modis_departure_k")][fused],
        one.features[RAW.index("modis_change_k")][fused])
    # a two-pair method (ubESTARFM) weighs its references by time: the same departure
    pairs = fuse_block(*inputs, method=get_method("ubestarfm"), coarse_factor=F,
                       out_window=Window(0, 64, 0, 96), max_gap_days=16,
                       min_clear_fraction=0.3, max_references=3, return_features=True)
    assert (pairs.qa[:2] == Flag.FUSED_TWO).all()
    away = pairs.features[RAW.index("modis_departure_k")]
    np.testing.assert_allclose(away[0], 0.0, atol=1e-4)
    np.testing.assert_allclose(away[1], expected, atol=1e-3)


def test_a_tiny_change_in_a_prediction_never_moves_a_value_far():
    """Blending is continuous in the predictions: 1e-3 K more in one reference moves no
    value by more than a few times that (a hard threshold moved some by ~half of it)."""
    rng = np.random.default_rng(7)
    landsat, ldays, lmodis, tmodis, tdays = synthetic_block(rng, clouds=False)
    kw = {"two_references": True, "max_disagreement_k": 1.0}
    base = run_block((landsat, ldays, lmodis, tmodis, tdays), Window(0, 64, 0, 96), **kw)
    nudged = landsat.copy()
    nudged[0] += 1e-3
    moved = run_block((nudged, ldays, lmodis, tmodis, tdays), Window(0, 64, 0, 96), **kw)
    fused = np.isfinite(base.lst_k) & (base.qa != Flag.OBSERVED)
    assert fused.any()
    assert np.abs(moved.lst_k - base.lst_k)[fused].max() < 5e-3


def test_two_references_chunked_equals_whole_scene():
    rng = np.random.default_rng(8)
    inputs = synthetic_block(rng)
    kw = {"two_references": True}
    whole = run_block(inputs, Window(0, 64, 0, 96), **kw)
    plan = ChunkPlan(shape=(len(inputs[4]), 64, 96), chunks=(5, 32, 32),
                     halo=ReferenceChangeMethod().halo(F), alignment=F)
    lst = np.full_like(whole.lst_k, -1.0)
    for chunk in plan:
        ts = slice(chunk.t0, chunk.t1)
        part_inputs = (inputs[0], inputs[1], inputs[2], inputs[3][ts], inputs[4][ts])
        part = run_block(part_inputs, chunk.window, chunk.read_window, **kw)
        ys, xs = chunk.window.slices
        lst[ts, ys, xs] = part.lst_k
    np.testing.assert_allclose(lst, whole.lst_k, atol=1e-4, equal_nan=True)
    assert (whole.qa == Flag.FUSED_TWO).mean() > 0.2


def test_modis_gap_interpolation_in_time():
    days = np.arange(10)
    modis = np.full((10, 2, 2), np.nan, np.float32)
    modis[2], modis[6] = 300.0, 308.0
    modis[8, 0, 0] = 310.0
    filled, was = interpolate_modis_gaps(modis, days, np.array([3, 4, 6, 7, 9]), max_days=4)
    np.testing.assert_allclose(filled[0], 302.0)  # 1/4 of the way from day 2 to day 6
    np.testing.assert_allclose(filled[1], 304.0)
    assert was[0].all() and was[1].all()
    assert not was[2].any() and (filled[2] == 308.0).all()  # clear days untouched
    assert filled[3, 0, 0] == 309.0 and np.isnan(filled[3, 1, 1])  # day 8 only at (0, 0)
    assert np.isnan(filled[4]).all()  # no clear day after: never extrapolated
    short, _ = interpolate_modis_gaps(modis, days, np.array([4]), max_days=1)
    assert np.isnan(short).all()


def test_gap_filled_days_are_flagged_and_landsat_days_can_be_fused():
    rng = np.random.default_rng(9)
    landsat, ldays, lmodis, tmodis, tdays = synthetic_block(rng, clouds=False)
    filled = np.zeros(tmodis.shape, bool)
    filled[0, 0, 0] = True
    out = run_block((landsat, ldays, lmodis, tmodis, tdays), Window(0, 64, 0, 96),
                    target_modis_filled=filled)
    assert (out.qa[0, :F, :F] == Flag.MODIS_GAP_FILLED).all()
    assert (out.qa[0, F:, F:] == Flag.FUSED).all()
    fused_day = run_block((landsat, ldays, lmodis, tmodis, tdays), Window(0, 64, 0, 96),
                          keep_observations=False)
    assert (fused_day.qa[3] == Flag.FUSED).all()  # day 3 is a Landsat date
    assert (fused_day.reference_day[3] != ldays[1]).all()  # never its own observation
