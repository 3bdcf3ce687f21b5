"""Where does ``lst_uncertainty`` lose its calibration? Held-out dates vs the days fused.

For each region and method this fits the error model as ``run`` does (leave-one-date-out on
the stack's own dates) and, for diagnosis only, once more on the *truth* of the fused days
with the same features (an oracle no run can have). It prints, over fused values:

- the coverage (within 1 / 2 sigma) of both, overall and by reference-age class;
- the factor on the run's sigma that would put 68.3 % of the fused errors within 1 sigma
  (1 = calibrated; the spread of this factor between regions is what no fit on held-out
  dates alone removes), and the coverage of the held-out residuals themselves.

Worlds as in ``bench_uncertainty.py`` (simulator held-out seeds 901-903 and the independent
test world). Prints a Markdown table; records nothing.

Usage::

    .venv/bin/python benchmarks/uncertainty_transfer.py [--worlds DIR] [--seeds 901 ...]
        [--regions alpine-foothills ...] [--methods dlstfm reference_change]
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
from pathlib import Path

import numpy as np
from bench_uncertainty import add_region_arguments, both_worlds, open_truth_of

from lst_pipeline.evaluate.calibration import calibration
from lst_pipeline.fusion.error_model import fit_error_model
from lst_pipeline.fusion.uncertainty_fit import fit_uncertainty
from lst_pipeline.grid import Window

#: One fused pixel-day in this many enters (deterministic).
STRIDE = 7


def fused_errors(config, method: str, time_block: int = 32):
    """The run's error model, and the truth errors and raw features of fused pixel-days."""
    from lst_pipeline.flags import Flag
    from lst_pipeline.fusion.block import fuse_inputs, read_block_inputs
    from lst_pipeline.fusion.engine import plan_run

    config = dataclasses.replace(config, fusion=dataclasses.replace(
        config.fusion, method=method, device="cpu"), output=dataclasses.replace(
        config.output, uncertainty=False))
    plan = plan_run(config, overwrite=True, log=lambda *_: None)
    model = fit_uncertainty(config, method, log=lambda *_: None)
    task = dataclasses.replace(plan.task, uncertainty=True)
    truth = open_truth_of(config)
    ny, nx = plan.grid.shape
    whole = Window(0, ny, 0, nx)
    errors, raw = [], []
    for t0 in range(0, len(plan.days), time_block):
        t1 = min(t0 + time_block, len(plan.days))
        block = fuse_inputs(task, read_block_inputs(task, t0, t1, whole), whole, whole,
                            return_features=True)
        ref = truth.sel(time=plan.days[t0:t1].astype("datetime64[ns]")).values
        err = block.lst_k.astype(np.float64) - ref
        index = np.flatnonzero((Flag.fused(block.qa) & np.isfinite(err)).ravel())[::STRIDE]
        errors.append(err.ravel()[index])
        raw.append(block.features.reshape(len(block.features), -1)[:, index])
    return model, np.concatenate(errors), np.concatenate(raw, axis=1)


def row(world: str, region: str, method: str, config) -> str:
    """One Markdown row: the run's sigma and the oracle's on the fused days."""
    model, errors, raw = fused_errors(config, method)
    age = raw[0]

    def text(sigma):
        cal = calibration(errors, sigma, age)
        ages = " ".join(f"{k}:{c.within_1:.2f}/{c.within_2:.2f}" for k, c in cal.by_age.items()
                        if c.n >= 0.01 * cal.overall.n)
        return f"{cal.overall.within_1:.3f}/{cal.overall.within_2:.3f} {ages}"

    run_sigma = model.sigma(raw).astype(np.float64)
    oracle = fit_error_model(raw, errors, method).sigma(raw).astype(np.float64)
    ok = np.isfinite(run_sigma)
    factor = np.quantile(np.abs(errors[ok]) / run_sigma[ok], 0.6827)
    return (f"| {world} | {region} | `{method}` | {model.fitted['within_1_sigma']:.2f} | "
            f"{text(run_sigma)} | {factor:.2f} | {text(oracle)} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_region_arguments(parser, ["dlstfm", "reference_change"])
    args = parser.parse_args()
    print("| world | region | method | held-out within 1 sigma | run's sigma on fused days "
          "(1/2, by age) | factor to 68.3 % | oracle's sigma (1/2, by age) |")
    print("|---" * 7 + "|")
    with tempfile.TemporaryDirectory(prefix="lst-transfer-") as tmp:
        for world, name, make in both_worlds(args, Path(tmp)):
            config = make()
            for method in args.methods:
                print(row(world, name, method, config), flush=True)


if __name__ == "__main__":
    main()
