"""DLSTFM on data it was never tuned to: the independent test world (issue 13).

For each region of :data:`lst_pipeline.worlds.WORLD_REGIONS` (or ``--regions``): generate
its files with :mod:`lst_pipeline.worlds` (code that trains nothing), ``ingest`` them, ``run``
every method on a local cluster of 2 worker processes, and score each cube against the
region's truth on the days without a Landsat date, on the pixel-days every method fused.
Prints MAE/RMSE/bias per method and region and the ratio of DLSTFM to the better of
``starfm`` and ``reference_change``; appends one JSON line to ``results/worlds.jsonl``.

Usage::

    .venv/bin/python benchmarks/bench_worlds.py [--workdir DIR] [--checkpoint PT]
        [--methods dlstfm starfm reference_change gain_change] [--regions alpine-foothills ...]
        [--adapt-steps N] [--registration]

``--workdir`` keeps the generated regions and stacks (reused when present). ``--adapt-steps``
also runs ``lst-pipeline adapt`` on each region's stack and scores the adapted model.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import time
from pathlib import Path

import numpy as np
from _record import append_result

from lst_pipeline.config import load_pipeline
from lst_pipeline.worlds import WORLD_REGIONS, generate_region


def prepare(spec, root: Path) -> Path:
    """Generate (or reuse) a region and ingest it; returns its pipeline YAML."""
    from lst_pipeline.ingest import ingest
    from lst_pipeline.io.ownership import remove_store
    from lst_pipeline.io.stack import LANDSAT_ST_UNCERTAINTY
    from lst_pipeline.io.zarr_store import root_attrs

    yaml_path = root / "pipeline.yaml"
    if not yaml_path.is_file() or (root_attrs(root / "truth.zarr") or {}).get(
            "lst_pipeline:status") != "complete":
        start = time.perf_counter()
        yaml_path = generate_region(spec, root)
        print(f"{spec.name}: generated in {time.perf_counter() - start:.0f} s")
    stack = root / "stack.zarr"
    complete = (root_attrs(stack) or {}).get("lst_pipeline:status") == "complete"
    if complete and not (stack / LANDSAT_ST_UNCERTAINTY / "zarr.json").is_file():
        # ingested before stacks kept ST_QA: the region's scenes carry it, so ingest again
        print(f"{spec.name}: {stack} has no ST_QA uncertainty (an older ingest); ingesting again")
        remove_store(stack, "stack", field="bench_worlds stack")
        complete = False
    if not complete:
        ingest(load_pipeline(yaml_path), progress=False)
    return yaml_path


def run_methods(yaml_path: Path, methods: list[str], client, checkpoint: str | None,
                adapted: str | None, registration: bool = False) -> dict[str, Path]:
    """Fuse the region with each method (a cube per method and checkpoint, reused when a
    complete one of the same run exists); ``registration``: ``fusion.modis_registration:
    auto``, in cubes of their own."""
    from lst_pipeline.fusion.engine import execute, plan_run
    from lst_pipeline.model.checkpoint import DEFAULT_CHECKPOINT, file_sha256

    config = load_pipeline(yaml_path)
    cubes = {}
    runs = [(m, m, checkpoint if m in ("dlstfm", "ensemble") else None) for m in methods]
    if adapted:  # the network's methods again with the adapted checkpoint
        runs += [(f"{m}_adapted", m, adapted) for m in ("dlstfm", "ensemble")
                 if m == "dlstfm" or m in methods]
    for name, method, ckpt in runs:
        network = method in ("dlstfm", "ensemble")  # an ensemble's members include it
        tag = f"-{file_sha256(ckpt or DEFAULT_CHECKPOINT)[:8]}" if network else ""
        cube = yaml_path.parent / f"cube-{name}{tag}{'-reg' if registration else ''}.zarr"
        fusion = dataclasses.replace(config.fusion, method=method,
                                     checkpoint=Path(ckpt) if ckpt else None,
                                     modis_registration="auto" if registration else "off")
        run = dataclasses.replace(config, fusion=fusion,
                                  output=dataclasses.replace(config.output, cube=cube))
        start = time.perf_counter()
        summary = execute(plan_run(run), client, progress=False)  # resumes a finished cube
        print(f"  {name}: {summary.chunks} chunks fused, {summary.skipped} already done, "
              f"{time.perf_counter() - start:.0f} s")
        cubes[name] = cube
    return cubes


def adapt(args, yaml_path: Path, root: Path) -> tuple[str, dict]:
    """``lst-pipeline adapt`` on the region's stack (or its earlier result); path, record."""
    import torch

    from lst_pipeline.model.checkpoint import DEFAULT_CHECKPOINT, file_sha256
    from lst_pipeline.training import run_adapt

    out = root / "adapted.pt"
    start = args.checkpoint or DEFAULT_CHECKPOINT
    if args.reuse_adapted and out.is_file():
        old = torch.load(out, weights_only=True)["training"]
        if old.get("steps") == args.adapt_steps and \
                old.get("adapted_from_sha256") == file_sha256(start):
            print(f"  reusing {out} (adapted {old['steps']} steps from {Path(start).name})")
            return str(out), old
    result = run_adapt(load_pipeline(yaml_path), steps=args.adapt_steps, out=out,
                       checkpoint=args.checkpoint, progress=False, log=print)
    return str(result.checkpoint), result.record


def auto_choice(yaml_path: Path, checkpoint: str | None, scores: dict, dlstfm: str) -> dict:
    """What ``fusion.method: auto`` picks on the stack alone, next to the truth's ranking."""
    from lst_pipeline.fusion.holdout import choose_method
    from lst_pipeline.fusion.registry import AUTO_CANDIDATES

    config = load_pipeline(yaml_path)
    if checkpoint:
        config = dataclasses.replace(config, fusion=dataclasses.replace(
            config.fusion, checkpoint=Path(checkpoint)))
    start = time.perf_counter()
    choice = choose_method(config, log=lambda _: None)
    suffix = dlstfm.removeprefix("dlstfm")  # "_adapted": the network's methods adapted
    names = {m: m + suffix if m in ("dlstfm", "ensemble") else m for m in AUTO_CANDIDATES}
    truth = {m: scores[names[m]].mae_k for m in AUTO_CANDIDATES if names[m] in scores}
    truth_best = min(truth, key=truth.get)
    regret = truth[choice.method] / truth[truth_best] if choice.method in truth else None
    print(f"  auto: chose {choice.method} in {time.perf_counter() - start:.0f} s "
          f"({choice.describe()}); the truth ranks {truth_best} first"
          + (f"; the choice's MAE is {regret:.3f} x the best" if regret else ""))
    return {"chose": choice.method, "holdout_scores": choice.scores, "truth_mae_k": truth,
            "truth_best": truth_best, "agrees": choice.method == truth_best,
            "chosen_against": choice.as_attrs()["chosen_against"],
            "mae_over_best": regret, "checkpoint": checkpoint or "shipped"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--checkpoint", default=None, help="DLSTFM checkpoint (default shipped)")
    parser.add_argument("--methods", nargs="+",
                        default=["dlstfm", "starfm", "reference_change", "gain_change"])
    parser.add_argument("--regions", nargs="+", default=None)
    parser.add_argument("--adapt-steps", type=int, default=0)
    parser.add_argument("--reuse-adapted", action="store_true",
                        help="with --adapt-steps: keep a region's adapted.pt from an earlier "
                             "run of the same steps and starting checkpoint")
    parser.add_argument("--auto", action="store_true",
                        help="also run fusion.method auto's choice (leave-one-date-out) and "
                             "compare it with the truth's ranking")
    parser.add_argument("--registration", action="store_true",
                        help="fusion.modis_registration: auto for every run")
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()

    from lst_pipeline.cluster import ClusterProfile, connect
    from lst_pipeline.evaluate import compare_cubes_with_truth
    from lst_pipeline.io.stack import StackReader

    specs = [s for s in WORLD_REGIONS if args.regions is None or s.name in args.regions]
    record = {"checkpoint": args.checkpoint or "shipped", "regions": {},
              "modis_registration": "auto" if args.registration else "off"}
    with tempfile.TemporaryDirectory(prefix="bench-worlds-") as tmp:
        base = args.workdir or Path(tmp)
        with connect(ClusterProfile(n_workers=2, threads_per_worker=1), quiet=True) as client:
            for spec in specs:
                root = base / spec.name
                yaml_path = prepare(spec, root)
                adapted = None
                if args.adapt_steps:
                    adapted, adapt_record = adapt(args, yaml_path, root)
                    record["regions"].setdefault(spec.name, {})["adapt"] = adapt_record
                cubes = run_methods(yaml_path, args.methods, client, args.checkpoint, adapted,
                                    args.registration)
                landsat_days = StackReader(root / "stack.zarr").landsat_dates
                scores = compare_cubes_with_truth(cubes, root / "truth.zarr",
                                                  skip_days=landsat_days)
                best = min(scores[m].mae_k for m in ("starfm", "reference_change")
                           if m in scores)
                row = {name: dataclasses.asdict(sc) for name, sc in scores.items()}
                record["regions"].setdefault(spec.name, {}).update(
                    {"scores": row, "landsat_dates": len(landsat_days),
                     "days": int(load_pipeline(yaml_path).dates.n_days)})
                print(f"{spec.name} ({spec.days} days, factor {spec.coarse_factor}, "
                      f"{len(landsat_days)} Landsat dates), days without Landsat:")
                for name, sc in scores.items():
                    ratio = f" = {sc.mae_k / best:.3f} x best classical" \
                        if name.startswith(("dlstfm", "ensemble")) else ""
                    print(f"  {name:>16}: {sc}{ratio}")
                if args.auto:
                    record["regions"][spec.name]["auto"] = auto_choice(
                        yaml_path, adapted or args.checkpoint, scores,
                        "dlstfm_adapted" if adapted else "dlstfm")
    maes = {m: [r["scores"][m]["mae_k"] for r in record["regions"].values()]
            for m in next(iter(record["regions"].values()))["scores"]}
    print("mean MAE over regions: " + ", ".join(f"{m} {np.mean(v):.3f} K"
                                                for m, v in maes.items()))
    if not args.no_record:
        append_result("worlds", json.loads(json.dumps(record, default=float)))


if __name__ == "__main__":
    main()
