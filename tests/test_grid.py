import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lst_pipeline.chunks import ChunkPlan, plan_chunks
from lst_pipeline.config import GridConfig
from lst_pipeline.errors import ConfigError, GridError
from lst_pipeline.grid import TargetGrid, Window, spread_windows


def make_grid(ny=128, nx=192, res=30.0, factor=16):
    return TargetGrid.from_config(GridConfig(
        crs="EPSG:32755", resolution=res, coarse_factor=factor,
        bounds=(400000.0, 6200000.0, 400000.0 + nx * res, 6200000.0 + ny * res)))


def test_fine_and_coarse_grids_align():
    grid = make_grid()
    assert grid.shape == (128, 192)
    assert grid.coarse_shape == (8, 12)
    assert tuple(grid.coarse.shape) == (8, 12)
    fine, coarse = grid.fine.affine, grid.coarse.affine
    assert (coarse.c, coarse.f) == (fine.c, fine.f)  # same upper-left corner
    assert coarse.a == 16 * fine.a and coarse.e == 16 * fine.e
    # Coarse pixel centre (0, 0) is the mean of the fine centres it covers.
    xs = grid.fine.coords["x"].values[:16]
    assert grid.coarse.coords["x"].values[0] == pytest.approx(xs.mean())


def test_geographic_or_invalid_crs_rejected():
    with pytest.raises(GridError, match="geographic"):
        TargetGrid.from_config(GridConfig("EPSG:4326", 0.001, (0, 0, 0.128, 0.128), 16))
    with pytest.raises(ConfigError, match=r"grid\.crs: 'EPSG:999999' is not a valid CRS"):
        GridConfig("EPSG:999999", 30, (0, 0, 480, 480), 16)  # caught with the config


def test_window_coarse_requires_alignment():
    assert Window(16, 48, 0, 32).coarse(16) == Window(1, 3, 0, 2)
    with pytest.raises(GridError, match="not aligned"):
        Window(8, 48, 0, 32).coarse(16)


@st.composite
def plans(draw):
    align = draw(st.sampled_from([1, 2, 4, 8, 16]))
    ny = align * draw(st.integers(1, 12))
    nx = align * draw(st.integers(1, 12))
    nt = draw(st.integers(1, 40))
    cy = align * draw(st.integers(1, 6))
    cx = align * draw(st.integers(1, 6))
    ct = draw(st.integers(1, 16))
    halo = draw(st.integers(0, 3 * align))
    return ChunkPlan(shape=(nt, ny, nx), chunks=(ct, cy, cx), halo=halo, alignment=align)


@settings(max_examples=150, deadline=None)
@given(plans())
def test_every_output_pixel_covered_exactly_once(plan):
    cover = np.zeros(plan.shape, dtype=np.int32)
    for chunk in plan:
        ys, xs = chunk.window.slices
        cover[chunk.t0:chunk.t1, ys, xs] += 1
    assert (cover == 1).all()
    assert len(list(plan)) == len(plan)


@settings(max_examples=150, deadline=None)
@given(plans())
def test_halos_stay_inside_scene_and_contain_chunk(plan):
    _, ny, nx = plan.shape
    for chunk in plan:
        r, w = chunk.read_window, chunk.window
        assert 0 <= r.y0 <= w.y0 < w.y1 <= r.y1 <= ny
        assert 0 <= r.x0 <= w.x0 < w.x1 <= r.x1 <= nx
        # halo is at least the requested one unless clipped by the scene edge
        assert w.y0 - r.y0 >= min(plan.halo, w.y0)
        assert r.y1 - w.y1 >= min(plan.halo, ny - w.y1)
        assert w.x0 - r.x0 >= min(plan.halo, w.x0)
        assert r.x1 - w.x1 >= min(plan.halo, nx - w.x1)
        # all edges aligned so coarse windows are exact
        for v in (r.y0, r.y1, r.x0, r.x1, w.y0, w.y1, w.x0, w.x1):
            assert v % plan.alignment == 0
        assert chunk.window.relative_to(r).shape == w.shape


@settings(max_examples=50, deadline=None)
@given(plans())
def test_plans_are_deterministic(plan):
    again = ChunkPlan(shape=plan.shape, chunks=plan.chunks, halo=plan.halo,
                      alignment=plan.alignment)
    assert list(plan) == list(again)
    assert plan == again and hash(plan) == hash(again)


def test_plan_from_grid_rounds_halo_to_coarse_pixels():
    plan = plan_chunks(make_grid(), 100, (32, 64, 64), halo=5)
    assert plan.halo_aligned == 16
    assert plan.n_chunks == (4, 2, 3)
    middle = plan.chunk(1, 1, 1)
    assert (middle.t0, middle.t1) == (32, 64)
    assert middle.window == Window(64, 128, 64, 128)
    assert middle.read_window == Window(48, 128, 48, 144)


def test_plan_for_ten_years_of_a_landsat_scene_is_instant():
    grid = make_grid(ny=7008, nx=7008, factor=32)
    plan = plan_chunks(grid, 3653, (32, 1024, 1024), halo=32)
    assert len(plan) == 115 * 7 * 7
    assert plan.chunk(114, 6, 6).window == Window(6144, 7008, 6144, 7008)


def test_misaligned_chunks_rejected():
    with pytest.raises(GridError, match="not multiples of the alignment"):
        ChunkPlan(shape=(10, 64, 64), chunks=(5, 24, 32), halo=0, alignment=16)


# --------------------------------------------------------------------------------------
# Bounds that need not be exact, and chunks chosen for the user.


def test_bounds_widen_to_whole_coarse_pixels_and_say_so():
    from lst_pipeline.grid import resolve_grid

    grid, notes = resolve_grid(GridConfig("EPSG:32755", 30, (400000, 6200000, 418000,
                                                             6218000), 32))
    assert grid.shape == (608, 608)
    assert grid.fine.affine.c == 400000 and grid.fine.affine.f == 6218000  # left, top kept
    assert notes == ["grid.bounds: widened from 600 x 600 to 608 x 608 px to whole coarse "
                     "pixels of 960 (coarse factor 32): right 418240, bottom 6199760 "
                     "(grid.snap: exact refuses instead)"]
    same, none = resolve_grid(GridConfig("EPSG:32755", 30, (400000, 6200000, 418000,
                                                            6218000), 30))
    assert same.shape == (600, 600) and none == []
    with pytest.raises(ConfigError, match="width 18000 is not a whole number"):
        GridConfig("EPSG:32755", 30, (400000, 6200000, 418000, 6218000), 32, snap="exact")


def test_utm_zone_and_lonlat_bounds_as_odc_geo_users_expect():
    from lst_pipeline.grid import resolve_grid

    grid, notes = resolve_grid(GridConfig("utm", 30, (146.0, -35.2, 146.4, -34.8), 32))
    assert grid.fine.crs.epsg == 32755  # UTM 55 S at 146.2 E, 35 S
    assert notes[0] == "grid.crs: utm -> EPSG:32755 (the zone of the bounds' centre)"
    # the grid covers the whole lon/lat box
    from odc.geo.geom import box as geo_box

    wanted = geo_box(146.0, -35.2, 146.4, -34.8, "EPSG:4326").to_crs(grid.fine.crs)
    assert grid.fine.extent.contains(wanted)
    north, _ = resolve_grid(GridConfig("EPSG:32632", 30, (9.0, 45.0, 9.2, 45.1), 10,
                                       bounds_crs="EPSG:4326"))
    assert north.fine.crs.epsg == 32632 and north.fine.affine.c % 30 == 0
    with pytest.raises(ConfigError, match=r"grid\.snap: exact needs the bounds in the grid"):
        GridConfig("utm", 30, (146.0, -35.2, 146.4, -34.8), 32, snap="exact")


def test_computed_ratio_counts_every_read_window():
    plan = ChunkPlan((10, 300, 200), (5, 120, 120), halo=50, alignment=30)
    brute = sum((c.read_window.shape[0] + -c.read_window.shape[0] % 30)
                * (c.read_window.shape[1] + -c.read_window.shape[1] % 30)
                for c in plan if c.index[0] == 0) / (300 * 200)
    assert plan.computed_ratio == pytest.approx(brute)


@st.composite
def chunk_requests(draw):
    f = draw(st.integers(8, 40))
    align = f * draw(st.sampled_from([1, 2, 4]))
    ny, nx = f * draw(st.integers(1, 120)), f * draw(st.integers(1, 120))
    halo, days = draw(st.integers(0, 4 * f)), draw(st.integers(1, 800))
    return make_grid(ny, nx, factor=f), align, halo, days


@given(chunk_requests(), st.integers(1, 16))
@settings(max_examples=60, deadline=None)
def test_chosen_chunks_are_aligned_fit_the_budget_and_feed_the_workers(request, workers):
    import math

    from lst_pipeline.chunks import MAX_SPATIAL_CHUNK, TASK_MEMORY_BUDGET, choose_chunks

    grid, align, halo, days = request
    choice = choose_chunks(grid, days, halo=halo, alignment=align, n_workers=workers)
    t, cy, cx = choice.chunks
    assert cy % align == 0 and cx % align == 0 and cy <= max(MAX_SPATIAL_CHUNK, align)
    assert 1 <= t <= days
    ny, nx = grid.shape
    tasks = math.ceil(ny / cy) * math.ceil(nx / cx) * math.ceil(days / t)
    if choice.task_bytes <= TASK_MEMORY_BUDGET:  # feasible: then it is kept
        smallest = choose_chunks(grid, days, halo=halo, alignment=align,
                                 requested=(min(8, days), align, align))
        if smallest.task_bytes <= TASK_MEMORY_BUDGET:
            max_tasks = math.ceil(ny / align) * math.ceil(nx / align) * math.ceil(
                days / min(8, days))
            assert tasks >= min(workers, max_tasks)
    plan = ChunkPlan((days, ny, nx), choice.chunks, halo, align)
    assert plan.computed_ratio == pytest.approx(choice.computed_ratio)


def test_small_grids_are_one_tile_and_large_ones_keep_the_halo_small():
    from lst_pipeline.chunks import choose_chunks

    demo = choose_chunks(make_grid(512, 512, factor=32), 365, halo=127, alignment=32, n_workers=2)
    assert demo.chunks[1:] == (512, 512) and demo.computed_ratio == 1.0
    big = choose_chunks(make_grid(2048, 2048, factor=32), 365, halo=60, alignment=32, n_workers=2)
    assert big.computed_ratio <= 1.3


def test_windows_spread_over_large_grids_and_cover_small_ones():
    assert spread_windows((300, 200), 32, size=512, most=4) == [Window(0, 300, 0, 200)]
    windows = spread_windows((2000, 3000), 96, size=512, most=4)
    assert len(windows) == 4
    assert all(w.y0 % 96 == 0 and w.x0 % 96 == 0 and w.shape == (480, 480) for w in windows)
    assert windows[0].y0 == 0 and windows[-1].x1 > 2400  # from one corner to the other
