"""Tests of lst_pipeline.simulate: the synthetic region, its sensors and its stores.

The main scene (256 x 256 fine pixels of 30 m, 8 x 8 coarse pixels, 120 days from October
to January) is simulated once per module and read back from real Zarr stores.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import zarr
from scipy import ndimage

from lst_pipeline import simulate
from lst_pipeline.config import PipelineConfig, load_pipeline
from lst_pipeline.errors import ConfigError, InputError, StoreError
from lst_pipeline.io import landsat, modis
from lst_pipeline.io.stack import StackReader
from lst_pipeline.io.stack_writer import StackWriter
from lst_pipeline.simulate import (
    BARE,
    CLASS_NAMES,
    IRRIGATED,
    PASTURE,
    WATER,
    SimulationSummary,
    simulate_region,
    snow,
)

N_PX = 256
FACTOR = 32
START, END = "2021-10-01", "2022-01-28"  # 120 days, spring into summer


def make_config(root: Path, *, seed: int = 7, day_batch: int = 16, n_px: int = N_PX,
                start: str = START, end: str = END, **simulation) -> PipelineConfig:
    top = 5_800_000
    return load_pipeline({
        "name": "simulate-test",
        "grid": {"crs": "EPSG:32755", "resolution": 30,
                 "bounds": [500_000, top - 30 * n_px, 500_000 + 30 * n_px, top],
                 "coarse_factor": FACTOR},
        "dates": {"start": start, "end": end},
        "inputs": {"stack": str(root / "stack.zarr")},
        "output": {"cube": str(root / "cube.zarr")},
        "chunks": {"time": 16, "y": 128, "x": 128},
        "simulation": {"truth": str(root / "truth.zarr"), "seed": seed,
                       "day_batch": day_batch, **simulation},
    })


def read_all(path: Path) -> dict[str, np.ndarray]:
    group = zarr.open_group(str(path), mode="r")
    return {name: arr[...] for name, arr in group.arrays()}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("main")
    config = make_config(root)
    summary = simulate_region(config, progress=False)
    return config, summary, read_all(config.inputs.stack), read_all(config.simulation.truth)


@pytest.fixture(scope="module")
def days(run):
    config = run[0]
    return np.datetime64(config.dates.start, "D") + np.arange(config.dates.n_days)


# --------------------------------------------------------------------------------------
# Sensors against truth.


def test_modis_is_radiance_aggregated_blurred_offset_truth(run, days):
    config, _, stack, truth = run
    sim = config.simulation
    nt = len(days)
    t4 = truth["lst"].astype(np.float64).reshape(nt, 8, FACTOR, 8, FACTOR) ** 4
    expected = t4.mean(axis=(2, 4)) ** 0.25
    expected = np.stack([ndimage.gaussian_filter(e, sim.modis_psf_sigma, mode="nearest")
                         for e in expected])
    bias = simulate.modis_bias(days, sim.modis_offset_k)
    assert np.all(np.abs(bias - sim.modis_offset_k) <= 0.3 + 1e-9)
    residual = stack["modis_lst"] - expected - bias[:, None, None]
    residual = residual[np.isfinite(residual)]
    assert residual.size > 0.6 * nt * 64
    assert abs(residual.mean()) < 0.1
    assert residual.std() == pytest.approx(sim.modis_noise_k, rel=0.2)


def test_modis_qc_bits_agree_with_gaps(run):
    _, _, stack, _ = run
    qc, lst = stack["modis_qc"], stack["modis_lst"]
    mandatory = modis.qc_field(qc, modis.QC_MANDATORY_SHIFT)
    gap = np.isnan(lst)
    assert np.all(mandatory[gap] == modis.MANDATORY_CLOUD)
    assert np.all(mandatory[~gap] == modis.MANDATORY_GOOD)
    error_class = modis.qc_field(qc[~gap], modis.QC_LST_ERROR_SHIFT)
    assert set(np.unique(error_class)) == {0, 1}
    np.testing.assert_array_equal(modis.usable_mask(qc), ~gap)


def test_landsat_dates_follow_the_revisit(run, days):
    config, summary, _, _ = run
    dates = StackReader(config.inputs.stack).landsat_dates
    assert summary.n_landsat_dates == len(dates) >= 7
    assert np.all(np.diff(dates).astype(int) == 16)
    assert days[0] <= dates[0] < days[0] + 16
    assert dates[-1] <= days[-1] < dates[-1] + 16
    assert np.isin(dates, days).all()


def test_landsat_revisit_of_two_satellites(tmp_path):
    config = make_config(tmp_path, n_px=128, end="2021-11-09", landsat_revisit_days=8)
    simulate_region(config, progress=False)
    dates = StackReader(config.inputs.stack).landsat_dates
    assert len(dates) == 5
    assert np.all(np.diff(dates).astype(int) == 8)


def test_landsat_clear_pixels_are_truth_plus_noise(run, days):
    config, _, stack, truth = run
    dates = StackReader(config.inputs.stack).landsat_dates
    index = np.searchsorted(days, dates)
    residual = stack["landsat_lst"] - truth["lst"][index]
    residual = residual[np.isfinite(residual)]
    assert residual.size > 0.4 * len(dates) * N_PX * N_PX
    assert abs(residual.mean()) < 0.02
    assert residual.std() == pytest.approx(config.simulation.landsat_noise_k, rel=0.1)


def test_cloud_fractions_match_the_configuration(run):
    # Per-date fractions are stratified Beta draws with the configured mean; the Landsat
    # threshold is tuned so cloud + dilated cloud + shadow cover the drawn fraction. With
    # only 7-8 Landsat dates the mean keeps a few percent of sampling error (12 seeds
    # measured: within 0.03), hence +-0.1; 120 MODIS days match to about 0.005.
    config, summary, stack, _ = run
    sim = config.simulation
    landsat_cloud = 1.0 - stack["landsat_clear_fraction"]
    assert landsat_cloud.mean() == pytest.approx(sim.landsat_cloud_fraction, abs=0.1)
    assert summary.landsat_clear_fraction == pytest.approx(1.0 - landsat_cloud.mean())
    modis_cloud = np.isnan(stack["modis_lst"]).mean(axis=(1, 2))
    assert modis_cloud.mean() == pytest.approx(sim.modis_cloud_fraction, abs=0.03)
    assert summary.modis_clear_fraction == pytest.approx(1.0 - modis_cloud.mean(), abs=1e-6)
    assert (modis_cloud == 0).sum() >= 5  # some fully clear days
    assert (modis_cloud > 0.8).sum() >= 2  # and some nearly overcast ones
    assert np.isnan(stack["modis_lst"]).all(axis=0).sum() == 0  # gaps move around


def test_landsat_qa_pixel_bits(run):
    _, _, stack, truth = run
    qa, lst = stack["landsat_qa_pixel"], stack["landsat_lst"]
    np.testing.assert_array_equal(landsat.usable_mask(qa), np.isfinite(lst))
    cloud = (qa & (1 << landsat.QA_CLOUD)) > 0
    shadow = (qa & (1 << landsat.QA_CLOUD_SHADOW)) > 0
    dilated = (qa & (1 << landsat.QA_DILATED_CLOUD)) > 0
    assert cloud.any() and shadow.any() and dilated.any()
    assert np.all(qa[cloud] == landsat.QA_VALUE_CLOUD_HIGH)
    assert np.all(qa[shadow] == landsat.QA_VALUE_CLOUD_SHADOW)
    assert not (cloud & shadow).any() and not (cloud & dilated).any()
    # Clear water uses the water value, clear land the land value (no harvest touches water).
    water = truth["land_cover"] == WATER
    clear = landsat.usable_mask(qa)
    assert np.all(qa[clear & water[None]] == landsat.QA_VALUE_CLEAR_WATER)
    assert np.all(qa[clear & ~water[None]] == landsat.QA_VALUE_CLEAR_LAND)
    assert np.all((qa[dilated & ~water[None]] & (1 << landsat.QA_WATER)) == 0)
    # Dilated cloud is a ring of 3 pixels (90 m) around clouds; shadows are clouds moved
    # 1000 m south and 700 m west (33 and 23 pixels).
    for i in range(len(qa)):
        ring = ndimage.maximum_filter(cloud[i].view(np.uint8), size=7) > 0
        assert np.all(ring[dilated[i]])
        moved = np.zeros_like(cloud[i])
        moved[33:, :-23] = cloud[i][:-33, 23:]
        assert np.all(moved[shadow[i]])


# --------------------------------------------------------------------------------------
# The scene.


def test_land_cover_classes_and_fractions(run):
    _, _, _, truth = run
    lc = truth["land_cover"]
    assert lc.dtype == np.uint8
    fractions = np.bincount(lc.ravel(), minlength=6) / lc.size
    assert len(fractions) == 6 and np.all(fractions > 0)
    ranges = {"water": (0.03, 0.10), "irrigated_crop": (0.20, 0.35),
              "dry_pasture": (0.25, 0.40), "bare_soil": (0.10, 0.20),
              "trees": (0.05, 0.15), "urban": (0.02, 0.08)}
    for name, (lo, hi) in ranges.items():
        assert lo <= fractions[CLASS_NAMES.index(name)] <= hi, (name, fractions)
    parcel = truth["parcel"]
    assert np.all((parcel > 0) == np.isin(lc, [IRRIGATED, PASTURE, BARE]))
    assert len(np.unique(parcel[parcel > 0])) > 30


@pytest.mark.parametrize("resolution_m", [30.0, 100.0])
def test_parcels_are_rectangles_of_200_m_to_1500_m(resolution_m):
    n = round(12_000 / resolution_m)
    parcel, boxes = simulate.make_parcels(np.random.default_rng(3), (n, n), resolution_m)
    assert parcel.min() == 1 and parcel.max() == len(boxes)
    sides_m = np.stack([boxes[:, 1] - boxes[:, 0], boxes[:, 3] - boxes[:, 2]], 1) * resolution_m
    assert sides_m.min() >= 200 - resolution_m / 2 and sides_m.max() <= 1500 + resolution_m / 2
    assert np.median(sides_m) == pytest.approx(500, rel=0.5)
    for i, (y0, y1, x0, x1) in enumerate(boxes[:20], start=1):
        assert np.all(parcel[y0:y1, x0:x1] == i)


def test_store_attributes(run):
    config, _, _, _ = run
    group = zarr.open_group(str(config.simulation.truth), mode="r")
    attrs = dict(group["land_cover"].attrs)
    assert attrs["flag_values"] == [0, 1, 2, 3, 4, 5]
    assert attrs["flag_meanings"].split() == list(CLASS_NAMES)
    assert group["lst"].attrs["units"] == "K"
    assert group["lst"].attrs["standard_name"] == "surface_temperature"
    assert group.attrs["lst_pipeline:status"] == "complete"
    assert group.attrs["lst_pipeline:grid"]["shape"] == [N_PX, N_PX]
    stack = zarr.open_group(str(config.inputs.stack), mode="r")
    assert stack.attrs["source"] == "lst_pipeline.simulate"
    assert stack.attrs["simulation"]["seed"] == 7


def test_harvest_turns_irrigated_parcels_into_bare_soil(run, days):
    _, _, _, truth = run
    lc, harvest, parcel, lst = (truth[k] for k in ("land_cover", "harvest_day", "parcel", "lst"))
    harvested = harvest >= 0
    assert harvested.any()
    assert np.all(lc[harvested] == IRRIGATED)
    n = len(days)
    assert np.all((harvest[harvested] >= n // 4) & (harvest[harvested] <= 3 * n // 4))
    day = int(harvest[harvested][0])
    one = harvested & (parcel == parcel[harvested][0])
    assert np.all(simulate.land_cover_on(lc, harvest, day - 1)[one] == IRRIGATED)
    assert np.all(simulate.land_cover_on(lc, harvest, day)[one] == BARE)
    # Relative to irrigated fields that stay irrigated, the parcel warms after harvest.
    staying = (lc == IRRIGATED) & ~harvested
    contrast = lst[:, one].mean(axis=1) - lst[:, staying].mean(axis=1)
    assert contrast[day:].mean() > contrast[:day].mean() + 2.0


def test_irrigated_fields_cool_most_on_hot_days(run):
    _, _, _, truth = run
    lc, lst = truth["land_cover"], truth["lst"]
    irrigated = (lc == IRRIGATED) & (truth["harvest_day"] < 0)
    bare = lc == BARE
    t_bare = lst[:, bare].mean(axis=1)
    contrast = t_bare - lst[:, irrigated].mean(axis=1)
    order = np.argsort(t_bare)
    cool, hot = order[:15], order[-15:]
    assert np.all(contrast > 0)
    assert contrast[hot].mean() > contrast[cool].mean() + 3.0
    assert 290 < t_bare[cool].mean() < t_bare[hot].mean() < 330


def test_water_follows_a_lagged_damped_anomaly(run):
    _, _, _, truth = run
    lc, lst = truth["land_cover"], truth["lst"]
    water = lst[:, lc == WATER].mean(axis=1)
    pasture = lst[:, lc == CLASS_NAMES.index("dry_pasture")].mean(axis=1)
    assert np.std(np.diff(water)) < 0.5 * np.std(np.diff(pasture))


# --------------------------------------------------------------------------------------
# Determinism, batching, stores.


def test_same_seed_same_batching_independent_other_seed_differs(run, tmp_path, monkeypatch):
    _, _, stack, truth = run
    batch_sizes = []
    real = simulate.truth_batch

    def spy(scene, weather, dates, day_indices, **climate):
        batch_sizes.append(len(day_indices))
        return real(scene, weather, dates, day_indices, **climate)

    monkeypatch.setattr(simulate.driver, "truth_batch", spy)  # the driver calls it
    again = make_config(tmp_path / "again", day_batch=7)
    simulate_region(again, progress=False)
    assert max(batch_sizes) == 7 and sum(batch_sizes) == len(truth["lst"])
    for name, reference in (("stack", stack), ("truth", truth)):
        other = read_all(again.inputs.stack if name == "stack" else again.simulation.truth)
        assert set(other) == set(reference)
        for key in reference:
            np.testing.assert_array_equal(other[key], reference[key], err_msg=f"{name}/{key}")

    different = make_config(tmp_path / "different", seed=8, end="2021-10-20")
    simulate_region(different, progress=False)
    truth8 = read_all(different.simulation.truth)
    assert not np.array_equal(truth8["land_cover"], truth["land_cover"])
    assert np.abs(truth8["lst"] - truth["lst"][: len(truth8["lst"])]).mean() > 1.0


def test_same_seed_gives_identical_bytes(tmp_path):
    paths = []
    for name in ("a", "b"):
        config = make_config(tmp_path / name, n_px=64, end="2021-10-10")
        simulate_region(config, progress=False)
        paths.append(tmp_path / name)
    files_a = sorted(p.relative_to(paths[0]) for p in paths[0].rglob("*") if p.is_file())
    files_b = sorted(p.relative_to(paths[1]) for p in paths[1].rglob("*") if p.is_file())
    assert files_a == files_b
    for rel in files_a:
        assert (paths[0] / rel).read_bytes() == (paths[1] / rel).read_bytes(), rel


def test_stack_is_complete_only_at_the_end(tmp_path, monkeypatch):
    config = make_config(tmp_path, n_px=64, end="2021-11-20")
    calls = []
    real = StackWriter.write_modis

    def failing(self, start, qc, lst):
        calls.append(start)
        if len(calls) == 2:
            raise RuntimeError("interrupted")
        real(self, start, qc, lst)

    monkeypatch.setattr(StackWriter, "write_modis", failing)
    with pytest.raises(RuntimeError, match="interrupted"):
        simulate_region(config, progress=False)
    with pytest.raises(InputError, match="incomplete"):
        StackReader(config.inputs.stack)
    truth = zarr.open_group(str(config.simulation.truth), mode="r")
    assert truth.attrs["lst_pipeline:status"] == "writing"

    monkeypatch.undo()
    with pytest.raises(StoreError, match="already exists"):
        simulate_region(config, progress=False)
    summary = simulate_region(config, overwrite=True, progress=False)
    assert StackReader(config.inputs.stack).modis_dates.size == summary.n_days == 51
    assert zarr.open_group(str(config.simulation.truth)).attrs["lst_pipeline:status"] == \
        "complete"


def test_missing_simulation_section(tmp_path):
    config = make_config(tmp_path)
    config = dataclasses.replace(config, simulation=None)
    with pytest.raises(ConfigError, match="simulation: section missing"):
        simulate_region(config, progress=False)


def test_summary_prints(run):
    _, summary, _, _ = run
    assert isinstance(summary, SimulationSummary)
    assert summary.n_days == 120 and summary.shape == (N_PX, N_PX)
    text = str(summary)
    assert "120 days" in text and "256 x 256" in text and "stack.zarr" in text


# --------------------------------------------------------------------------------------
# Kernels.


def test_aggregate_radiance():
    lst = np.full((2, 4, 4), 300.0, dtype=np.float32)
    np.testing.assert_allclose(simulate.aggregate_radiance(lst, 2), 300.0, rtol=1e-6)
    lst[0, :2, :2] = [[280.0, 320.0], [280.0, 320.0]]
    out = simulate.aggregate_radiance(lst, 2)
    assert out.shape == (2, 2, 2) and out.dtype == np.float32
    expected = ((280.0**4 + 320.0**4) / 2) ** 0.25
    assert out[0, 0, 0] == pytest.approx(expected, abs=1e-3)
    assert out[0, 0, 0] > 300.0  # radiance averaging favours the hot half


def test_smooth_field_is_standardised_and_smooth():
    rng = np.random.default_rng(0)
    for length in (0.0, 2.0, 40.0):
        field = simulate.smooth_field(rng, (200, 300), length)
        assert field.shape == (200, 300) and field.dtype == np.float32
        assert abs(field.mean()) < 1e-4 and field.std() == pytest.approx(1.0, abs=1e-4)
    assert np.abs(np.diff(field, axis=1)).mean() < 0.1


def test_landsat_cloud_masks_cover_the_requested_fraction():
    field = simulate.smooth_field(np.random.default_rng(1), (300, 300), 30.0)
    for fraction in (0.0, 0.1, 0.5, 0.9):
        cloud, dilated, shadow = simulate.landsat_cloud_masks(
            field, fraction, dilate_px=3, shadow_shift_px=(20, -10))
        covered = (cloud | dilated | shadow).mean()
        assert covered == pytest.approx(fraction, abs=0.01)
        assert not (cloud & dilated).any() and not (cloud & shadow).any()


def test_cloud_fractions_are_stratified_and_u_shaped():
    rng = np.random.default_rng(2)
    f = simulate.cloud_fractions(rng, 200, 0.3)
    assert f.mean() == pytest.approx(0.3, abs=0.02)
    assert (f == 0).mean() > 0.1 and (f > 0.9).any() and f.max() < 1.0
    assert np.all(simulate.cloud_fractions(rng, 10, 0.0) == 0)


# --------------------------------------------------------------------------------------
# Snow (off by default).

SNOWY = {"climate_shift_k": -15.0, "snow_events_per_year": 25.0}


@pytest.fixture(scope="module")
def snowy(tmp_path_factory):
    root = tmp_path_factory.mktemp("snowy")
    config = make_config(root, n_px=128, start="2021-06-01", end="2021-08-29", **SNOWY)
    simulate_region(config, progress=False)
    return config, read_all(config.inputs.stack), read_all(config.simulation.truth)


def test_snow_caps_lst_at_the_melting_point_and_comes_and_goes(snowy):
    config, _, truth = snowy
    lst = truth["lst"]
    without = dataclasses.replace(config.simulation, snow_events_per_year=0.0)
    scene = simulate.make_scene(without.seed, lst.shape[1:], 30.0, len(lst))
    days = np.datetime64(config.dates.start, "D") + np.arange(len(lst))
    snow_free = simulate.truth_batch(scene, simulate.weather_series(without.seed, len(lst)),
                                     days, range(len(lst)), shift_k=-15.0)
    colder = snow_free - lst  # snow only ever cools a pixel, and never below a snow surface:
    # SNOW_COOLING_K below the snow-free LST, or the melting point where that is warmer
    assert colder.min() >= -1e-3
    assert (colder <= np.maximum(snow.SNOW_COOLING_K, snow_free - snow.MELT_K) + 1e-3).all()
    snowy_days = (colder > 1.0).mean(axis=(1, 2))
    assert snowy_days.max() > 0.5  # a snowfall covers most of the region ...
    assert (snowy_days < 0.05).sum() >= 5  # ... and melts away again
    water = truth["land_cover"] == simulate.WATER
    assert np.abs(colder[:, water]).max() < 1e-3  # open water holds no snow
    # a pixel at least 90 % covered is at most a tenth of its thaw above the melting point
    covered = colder >= 0.9 * np.maximum(snow.SNOW_COOLING_K, snow_free - snow.MELT_K)
    thaw = np.maximum(snow_free[covered] - snow.MELT_K, 0)
    assert covered.mean() > 0.002 and (lst[covered] <= snow.MELT_K + 0.1 * thaw + 1e-3).all()


def test_landsat_flags_snow_only_on_clear_snowy_pixels(snowy):
    stack = snowy[1]
    qa, lst = stack["landsat_qa_pixel"], stack["landsat_lst"]
    flagged = (qa >> landsat.QA_SNOW) & 1 == 1
    assert flagged.mean() > 0.01
    assert (qa[flagged] == landsat.QA_VALUE_CLEAR_SNOW).all()
    # snow is valid LST (unless a config masks it) and reads cold
    assert np.isfinite(lst[flagged]).all()
    assert np.median(lst[flagged]) < snow.MELT_K and np.nanmedian(lst[~flagged]) > snow.MELT_K - 5


def test_snow_is_the_same_whatever_the_batch_size(snowy, tmp_path):
    _, stack, truth = snowy
    again = make_config(tmp_path, n_px=128, start="2021-06-01", end="2021-08-29",
                        day_batch=5, **SNOWY)
    simulate_region(again, progress=False)
    np.testing.assert_array_equal(read_all(again.simulation.truth)["lst"], truth["lst"])
    np.testing.assert_array_equal(read_all(again.inputs.stack)["landsat_qa_pixel"],
                                  stack["landsat_qa_pixel"])


def test_a_region_counts_as_simulated_only_with_the_same_parameters_and_dates(snowy, tmp_path):
    config = snowy[0]
    assert simulate.simulated_as(config)
    for other in (dataclasses.replace(config.simulation, snow_events_per_year=10.0),
                  dataclasses.replace(config.simulation, climate_shift_k=-10.0)):
        assert not simulate.simulated_as(dataclasses.replace(config, simulation=other))
    shorter = make_config(tmp_path, n_px=128, start="2021-06-01", end="2021-08-28", **SNOWY)
    assert not simulate.simulated_as(dataclasses.replace(shorter, inputs=config.inputs))
    assert not simulate.simulated_as(make_config(tmp_path))  # nothing there
    # a stack from before a parameter existed: recorded with its default
    plain = make_config(tmp_path / "plain", n_px=64, end="2021-10-20")
    simulate_region(plain, progress=False)
    group = zarr.open_group(str(plain.inputs.stack), mode="r+")
    recorded = dict(group.attrs["simulation"])
    del recorded["snow_events_per_year"]
    group.attrs["simulation"] = recorded
    assert simulate.simulated_as(plain)


def test_snow_events_must_not_be_negative(tmp_path):
    with pytest.raises(ConfigError, match="snow_events_per_year"):
        make_config(tmp_path, snow_events_per_year=-1.0)
