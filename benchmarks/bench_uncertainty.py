"""Is ``lst_uncertainty`` calibrated? Scored against the truth in two worlds (issue 16).

The error model behind ``lst_uncertainty`` is fitted by each run on its own stack
(leave-one-date-out, no truth), exactly as ``lst-pipeline run`` does. This benchmark then
compares the sigma of every value with its actual error against the truth:

- the project's simulator (:mod:`lst_pipeline.simulate`), held-out seeds 901-903 (regions
  never used to train DLSTFM);
- the independent test world (:mod:`lst_pipeline.worlds`, code that trains nothing),
  generated as real-format files and ingested (ST_QA included), as ``bench_worlds.py``.

For each region and method it reports the fraction of |error| within 1 and 2 sigma, overall,
for fused and observed values and per reference-age class of fused values, and the Spearman
rank correlation of sigma and |error|, against the acceptance bands (1 sigma 0.62-0.74,
2 sigma 0.92-0.97, Spearman >= 0.3; age classes with at least 1 % of the pixel-days).
Appends one JSON line to ``results/uncertainty.jsonl``.

Usage::

    .venv/bin/python benchmarks/bench_uncertainty.py [--seeds 901 902 903] [--days 120]
        [--worlds DIR] [--regions alpine-foothills ...] [--methods dlstfm starfm ...]
        [--snow]

``--snow`` simulates the seeds in a snowy winter (``_record.SNOWY_WINTER``: a climate 15 K
colder, 25 snowfall events a year, from June); with ``--seeds 201 202 203 --regions`` (none)
it screens snow-related choices on dev regions, as the frozen-reference feature was.
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

import numpy as np
import xarray as xr
from _record import SNOWY_WINTER, append_result, held_out_region

from lst_pipeline.evaluate.calibration import Calibration, CalibrationSample

BANDS = {"within_1": (0.62, 0.74), "within_2": (0.92, 0.97)}
MIN_SPEARMAN = 0.3


def open_truth_of(config) -> xr.DataArray:
    """The daily truth of a region of either world (the simulator's, or beside the stack)."""
    store = config.simulation.truth if config.simulation else \
        Path(config.inputs.stack).parent / "truth.zarr"
    return xr.open_zarr(store, consolidated=False)["lst"]


def score(config, method: str, time_block: int = 32) -> dict:
    """Fit (as ``run`` does), fuse in this process, and calibrate against the truth."""
    from lst_pipeline.fusion.engine import plan_run, read_and_fuse
    from lst_pipeline.grid import Window

    config = dataclasses.replace(config, fusion=dataclasses.replace(
        config.fusion, method=method, device="cpu"), output=dataclasses.replace(
        config.output, uncertainty=True))
    start = time.perf_counter()
    plan = plan_run(config, overwrite=True, log=lambda *_: None)
    fit_seconds = time.perf_counter() - start
    truth = open_truth_of(config)
    ny, nx = plan.grid.shape
    whole = Window(0, ny, 0, nx)
    sample = CalibrationSample.for_size(len(plan.days) * ny * nx)
    for t0 in range(0, len(plan.days), time_block):
        t1 = min(t0 + time_block, len(plan.days))
        block = read_and_fuse(plan.task, t0, t1, whole, whole)
        ref = truth.sel(time=plan.days[t0:t1].astype("datetime64[ns]")).values
        day = plan.task.first_day + np.arange(t0, t1)[:, None, None]
        sample.add(block.lst_k.astype(np.float64) - ref, block.uncertainty_k,
                   np.abs(day - block.reference_day.astype(np.int64)), block.qa)
    cal = sample.calibration()
    return {"calibration": {k: c.as_dict() for k, c in cal.items()},
            "shares": {k: c.overall.n / cal["all"].overall.n for k, c in cal.items()},
            "passes": passes(cal), "fit_seconds": fit_seconds,
            "model": plan.task.error_model.as_attrs()}


def passes(cal: dict[str, Calibration]) -> dict[str, bool]:
    """Acceptance: overall and in every age class of fused values with >= 1 % of the days."""
    def inside(c, name):
        lo, hi = BANDS[name]
        return lo <= getattr(c, name) <= hi

    overall = cal["all"].overall
    n = overall.n
    ages = {k: c for k, c in cal["fused"].by_age.items() if c.n >= 0.01 * n}
    return {"within_1": inside(overall, "within_1"), "within_2": inside(overall, "within_2"),
            "spearman": overall.spearman >= MIN_SPEARMAN,
            "age_classes": all(inside(c, "within_1") and inside(c, "within_2")
                               for c in ages.values())}


def line(world: str, region: str, method: str, r: dict) -> str:
    """One Markdown row."""
    c = r["calibration"]
    o, f = c["all"]["overall"], c["fused"]
    ages = " ".join(f"{k}:{v['within_1_sigma']:.2f}/{v['within_2_sigma']:.2f}"
                    for k, v in f["by_reference_age_days"].items())
    obs = c.get("observed", {}).get("overall")
    obs_text = "" if obs is None else f"{obs['within_1_sigma']:.2f}/{obs['within_2_sigma']:.2f}"
    ok = "yes" if all(r["passes"].values()) else "no (" + ", ".join(
        k for k, v in r["passes"].items() if not v) + ")"
    return (f"| {world} | {region} | `{method}` | {o['within_1_sigma']:.3f} | "
            f"{o['within_2_sigma']:.3f} | {o['spearman']:.2f} | "
            f"{f['overall']['within_1_sigma']:.2f}/{f['overall']['within_2_sigma']:.2f} | "
            f"{obs_text} | {ages} | {ok} |")


def add_region_arguments(parser: argparse.ArgumentParser, methods: list[str]) -> None:
    """The options choosing the regions of both worlds and the methods."""
    parser.add_argument("--seeds", type=int, nargs="*", default=[901, 902, 903])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--days", type=int, default=120)
    parser.add_argument("--worlds", type=Path, default=None,
                        help="workdir of the independent world (generated when absent)")
    parser.add_argument("--regions", nargs="*", default=None)
    parser.add_argument("--methods", nargs="+", default=methods)
    parser.add_argument("--snow", action="store_true",
                        help="simulator regions in a snowy winter (for screening snow-related "
                             "choices on dev seeds; the scored seeds have no snow)")


def both_worlds(args: argparse.Namespace, tmp: Path) -> list:
    """``(world, region, make_config)`` of the simulator seeds and the independent regions.

    Simulator regions are generated under ``tmp``; the independent world under
    ``args.worlds`` (kept for reuse) or ``tmp``.
    """
    from bench_worlds import prepare

    from lst_pipeline.config import load_pipeline
    from lst_pipeline.worlds import WORLD_REGIONS

    worlds = args.worlds or tmp / "worlds"
    snow = SNOWY_WINTER if args.snow else {}
    return [("simulator", f"seed {s}" + (" snow" if args.snow else ""),
             lambda s=s: held_out_region(tmp, s, args.size, args.days, **snow))
            for s in args.seeds] + [
        ("independent", spec.name, lambda spec=spec: load_pipeline(
            prepare(spec, worlds / spec.name))) for spec in WORLD_REGIONS
        if args.regions is None or spec.name in args.regions]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_region_arguments(parser, ["dlstfm", "starfm", "reference_change"])
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()

    results: dict[str, dict] = {}
    rows = ["| world | region | method | within 1 sigma | within 2 sigma | Spearman | "
            "fused 1/2 | observed 1/2 | fused by reference age (days) 1/2 | passes |",
            "|---" * 10 + "|"]
    with tempfile.TemporaryDirectory(prefix="lst-unc-") as tmp:
        for world, name, make in both_worlds(args, Path(tmp)):
            config = make()
            for method in args.methods:
                start = time.perf_counter()
                r = score(config, method)
                results[f"{world}/{name}/{method}"] = r
                rows.append(line(world, name, method, r))
                print(rows[-1], f"({time.perf_counter() - start:.0f} s)", flush=True)
    print("\n".join(rows))
    if not args.no_record:
        path = append_result("uncertainty", {
            "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "seeds": args.seeds, "snow": args.snow,
            "days": args.days, "methods": args.methods, "results": results})
        print(f"recorded in {path}")


if __name__ == "__main__":
    main()
