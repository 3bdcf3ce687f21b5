"""All fusion methods against the simulated truth on held-out regions (seeds 901-903).

Each region is simulated with a seed never used in training, fused by every method through
the same kernel (:func:`lst_pipeline.evaluate.compare_methods`) and scored on the
pixel-days every method fused. Writes one report per region under ``--out`` (not in the
repository) and appends a JSON line to ``results/methods.jsonl``.

Usage::

    .venv/bin/python benchmarks/bench_methods.py --out /tmp/lst-methods [--size 256] [--days 96]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from _record import append_result, head_commit, held_out_region

from lst_pipeline.evaluate import ALL_METHODS, compare_methods, comparison_table, write_report

AGE_BINS = ((0, 4), (5, 8), (9, 16), (17, 48))


def mae_by_age(c, method: str) -> dict[str, float]:
    """MAE of ``method`` on the common mask, by days to the nearest reference used."""
    err = np.abs(c.predictions[method] - c.truth)
    out = {}
    for lo, hi in AGE_BINS:
        sel = c.mask & (c.reference_age >= lo) & (c.reference_age <= hi)
        out[f"{lo}-{hi}"] = float(err[sel].mean()) if sel.any() else float("nan")
    return out


def days_not_best(c) -> dict[str, object]:
    """Days (with >= 1 % of the pixels compared) on which another method beats DLSTFM."""
    days = [i for i in range(len(c.days)) if c.mask[i].mean() >= 0.01]
    lost = {}
    for i in days:
        maes = {m: g["day"][i].mae_k for m, g in c.groups.items()}
        best = min(maes, key=maes.get)
        if best != "dlstfm":
            lost[str(c.days[i])] = {"winner": best, "winner_mae_k": maes[best],
                                    "dlstfm_mae_k": maes["dlstfm"],
                                    "compared_fraction": float(c.mask[i].mean())}
    return {"days_compared": len(days), "lost": lost}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[901, 902, 903])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--days", type=int, default=96)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()
    record = {}
    with tempfile.TemporaryDirectory(prefix="lst-methods-") as tmp:
        for seed in args.seeds:
            config = held_out_region(Path(tmp), seed, args.size, args.days)
            c = compare_methods(config, ALL_METHODS, log=lambda _m: None)
            write_report(c, args.out / f"seed{seed}", title=f"Held-out region, seed {seed}")
            print(f"seed {seed}\n{comparison_table(c.groups)}")
            record[seed] = {m: {"overall": g["overall"]["all"].as_dict(),
                                "edge": {k: v.as_dict() for k, v in g.get("edge", {}).items()},
                                "mae_by_reference_age_k": mae_by_age(c, m),
                                "seconds": c.seconds[m]} for m, g in c.groups.items()}
            record[seed]["days_dlstfm_not_best"] = days_not_best(c)
            print("MAE by reference age (days):", {m: record[seed][m]["mae_by_reference_age_k"]
                                                  for m in c.groups})
            print("days where dlstfm is not the lowest MAE:", record[seed]["days_dlstfm_not_best"])
    if not args.no_record:
        append_result("methods", {"benchmark": "methods", "seeds": args.seeds,
                                  "size": args.size, "days": args.days, "commit": head_commit(),
                                  "date": time.strftime("%Y-%m-%d"), "regions": record})


if __name__ == "__main__":
    main()
