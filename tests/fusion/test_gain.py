import tracemalloc

import numpy as np
import pytest

from lst_pipeline.chunks import ChunkPlan, TaskCost
from lst_pipeline.fusion.gain import GAIN_RANGE, DayGains, gain_members, pixel_gain
from lst_pipeline.fusion.kernel import fuse_block
from lst_pipeline.fusion.methods import GainChangeMethod, ReferenceChangeMethod
from lst_pipeline.fusion.registry import GAIN_BYTES_PER_PIXEL_DAY, method_geometry
from lst_pipeline.grid import Window
from lst_pipeline.io.cube import Flag
from lst_pipeline.model.checkpoint import V1_CHECKPOINT
from lst_pipeline.resample import upsample_bilinear

F = 8


def linear_world(rng, n_days=40, ny=48, nx=64, revisit=8, noise_k=0.0):
    """Every fine pixel follows its cell as ``offset + gain * (cell - 300)``, exactly.

    MODIS is constant over each coarse cell (so upsampling is exact inside the cells away
    from edges) and Landsat comes every ``revisit`` days.
    """
    days = 18628 + np.arange(n_days)
    landsat_index = np.arange(2, n_days, revisit)
    gain = rng.uniform(0.4, 1.8, (ny, nx)).astype(np.float32)
    offset = rng.normal(0, 3, (ny, nx)).astype(np.float32)
    cells = 300 + np.cumsum(rng.normal(0, 2.5, (n_days, 1, 1)), 0) + rng.normal(
        0, 1.0, (n_days, ny // F, nx // F))
    modis = cells.astype(np.float32)
    fine_coarse = upsample_bilinear(modis, F)
    truth = 300 + offset + gain * (fine_coarse - 300)
    landsat = truth[landsat_index] + rng.normal(0, noise_k, (len(landsat_index), ny, nx)
                                                ).astype(np.float32) * (noise_k > 0)
    return {"days": days, "landsat_days": days[landsat_index], "landsat": landsat,
            "landsat_modis": modis[landsat_index], "modis": modis, "truth": truth,
            "gain": gain}


def fuse(world, method, out_window, read_window=None, t=slice(None), gap=24):
    landsat, ldays, lmodis = world["landsat"], world["landsat_days"], world["landsat_modis"]
    tmodis, tdays = world["modis"][t], world["days"][t]
    # what the engine reads for these days: the Landsat dates within the gap
    keep = (ldays >= tdays[0] - gap) & (ldays <= tdays[-1] + gap)
    landsat, ldays, lmodis = landsat[keep], ldays[keep], lmodis[keep]
    if read_window is not None:
        ys, xs = read_window.slices
        cy, cx = read_window.coarse(F).slices
        landsat, lmodis, tmodis = landsat[:, ys, xs], lmodis[:, cy, cx], tmodis[:, cy, cx]
        out_window = out_window.relative_to(read_window)
    return fuse_block(landsat, ldays, lmodis, tmodis, tdays, method=method, coarse_factor=F,
                      out_window=out_window, max_gap_days=gap, min_clear_fraction=0.3,
                      max_references=4, two_references=True)


def test_pixel_gain_recovers_each_pixels_slope_and_shrinks_towards_one():
    rng = np.random.default_rng(1)
    w = linear_world(rng)
    fine_coarse = upsample_bilinear(w["landsat_modis"], F)
    usable = np.ones(w["landsat"].shape, bool)
    members = np.ones(len(w["landsat_days"]), bool)
    exact = pixel_gain(w["landsat"], fine_coarse, usable, members, prior_k2=0.0)
    np.testing.assert_allclose(exact, w["gain"], atol=1e-3)
    shrunk = pixel_gain(w["landsat"], fine_coarse, usable, members)
    # shrinkage moves every gain towards 1, never past it
    assert np.all(np.abs(shrunk - 1) <= np.abs(w["gain"] - 1) + 1e-5)
    assert np.abs(shrunk - w["gain"]).mean() < 0.1
    # a pixel with one usable date, or none, keeps gain 1; gains stay in range
    usable[:, 0, 0] = False
    usable[1:, 0, 1] = False
    sparse = pixel_gain(w["landsat"] * 5, fine_coarse * 5, usable, members)
    assert sparse[0, 0] == sparse[0, 1] == 1.0
    assert sparse.min() >= GAIN_RANGE[0] and sparse.max() <= GAIN_RANGE[1]


def test_gain_members_exclude_the_day_and_far_dates():
    landsat_days = np.array([0, 8, 16, 40])
    sets, index = gain_members(np.array([8, 9, 10, 30]), landsat_days, max_gap_days=10)
    members = sets[index]
    np.testing.assert_array_equal(members[0], [True, False, True, False])  # not day 8 itself
    np.testing.assert_array_equal(members[1], [True, True, True, False])
    np.testing.assert_array_equal(members[3], [False, False, False, True])
    assert index[1] == index[2] and len(sets) == 3  # days with the same dates share a fit


def test_gain_change_follows_each_pixels_own_amplitude():
    rng = np.random.default_rng(2)
    w = linear_world(rng, noise_k=0.3)
    whole = Window(0, 48, 0, 64)
    gain = fuse(w, GainChangeMethod(), whole)
    plain = fuse(w, ReferenceChangeMethod(), whole)
    fused = Flag.fused(gain.qa)
    assert fused.mean() > 0.5
    # the same pixel-days fused (blending may differ: the two predictions agree more)
    np.testing.assert_array_equal(Flag.fused(plain.qa), fused)
    inner = np.zeros(fused.shape, bool)
    inner[:, F:-F, F:-F] = True  # away from the scene edge, where upsampling extrapolates
    sel = fused & inner
    err_gain = np.abs(gain.lst_k - w["truth"])[sel].mean()
    err_plain = np.abs(plain.lst_k - w["truth"])[sel].mean()
    assert err_gain < 0.4 < 1.0 < err_plain  # K: noise-level error against the cell's change


@pytest.mark.parametrize("chunks", [(40, 16, 32), (7, 48, 64), (9, 24, 16)])
def test_gain_change_chunked_equals_whole_scene(chunks):
    rng = np.random.default_rng(3)
    w = linear_world(rng, noise_k=0.3)
    w["landsat"][1, :20, :30] = np.nan  # a cloud
    whole = fuse(w, GainChangeMethod(), Window(0, 48, 0, 64))
    plan = ChunkPlan(shape=(40, 48, 64), chunks=chunks, halo=GainChangeMethod().halo(F),
                     alignment=F)
    lst = np.full_like(whole.lst_k, -1.0)
    for chunk in plan:
        ts = slice(chunk.t0, chunk.t1)
        part = fuse(w, GainChangeMethod(), chunk.window, chunk.read_window, t=ts)
        ys, xs = chunk.window.slices
        lst[ts, ys, xs] = part.lst_k
    np.testing.assert_allclose(lst, whole.lst_k, atol=1e-4, equal_nan=True)
    assert Flag.fused(whole.qa).mean() > 0.5


def test_a_network_built_for_the_gain_receives_it_and_chunks_equal_whole(tmp_path):
    import dataclasses

    from lst_pipeline.fusion.methods import DLSTFMMethod
    from lst_pipeline.model.checkpoint import save_checkpoint
    from lst_pipeline.testing import TINY_SPEC, randomised_model

    spec = dataclasses.replace(TINY_SPEC, architecture=dataclasses.replace(
        TINY_SPEC.architecture, pixel_gain=True, context_scale=F))
    path = save_checkpoint(tmp_path / "gain.pt", randomised_model(spec), training={"name": "g"})
    method = DLSTFMMethod(str(path), "cpu")
    plain_spec = dataclasses.replace(spec, architecture=dataclasses.replace(
        spec.architecture, pixel_gain=False))
    plain = DLSTFMMethod(str(save_checkpoint(tmp_path / "plain.pt", randomised_model(plain_spec),
                                             training={"name": "p"})), "cpu")
    assert method.uses_gain and not plain.uses_gain
    rng = np.random.default_rng(4)
    w = linear_world(rng, n_days=20, ny=64, nx=64, noise_k=0.3)
    whole = fuse(w, method, Window(0, 64, 0, 64))
    without = fuse(w, plain, Window(0, 64, 0, 64))  # the same weights, no gain
    fused = Flag.fused(whole.qa)
    assert fused.mean() > 0.5
    assert np.abs(whole.lst_k - without.lst_k)[fused].mean() > 0.05  # the gain went in
    halo = method.halo(F)
    plan = ChunkPlan(shape=(20, 64, 64), chunks=(6, 32, 32), halo=halo,
                     alignment=method.alignment * F)
    lst = np.full_like(whole.lst_k, -1.0)
    for chunk in plan:
        ts = slice(chunk.t0, chunk.t1)
        part = fuse(w, method, chunk.window, chunk.read_window, t=ts)
        ys, xs = chunk.window.slices
        lst[ts, ys, xs] = part.lst_k
    np.testing.assert_allclose(lst, whole.lst_k, atol=1e-3, equal_nan=True)


def test_the_memory_model_counts_the_gain_of_a_block():
    # A block asks for every day's gain twice (references before and after) and holds both.
    rng = np.random.default_rng(0)
    n_dates, size, n_days = 6, 128, 32
    fine = (300 + rng.normal(size=(n_dates, size, size))).astype(np.float32)
    usable = np.ones(fine.shape, bool)
    landsat_days, target_days = np.arange(0, 96, 16), np.arange(20, 20 + n_days)
    tracemalloc.start()
    try:
        gains = DayGains(fine, fine + 0.1, usable, target_days, landsat_days, 48)
        before, after = gains(range(n_days)), gains(range(n_days))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert before.shape == after.shape == (n_days, size, size)
    assert peak / (n_days * size * size) <= GAIN_BYTES_PER_PIXEL_DAY
    ref = method_geometry("reference_change", 16)[2]
    gain = method_geometry("gain_change", 16)[2]
    assert (gain or TaskCost()).per_pixel_day - (ref or TaskCost()).per_pixel_day == \
        GAIN_BYTES_PER_PIXEL_DAY
    first = method_geometry("dlstfm", 16, checkpoint=str(V1_CHECKPOINT))[2]
    default = method_geometry("dlstfm", 16)[2]  # the pixel-gain network
    assert default.per_pixel_day - first.per_pixel_day == GAIN_BYTES_PER_PIXEL_DAY
