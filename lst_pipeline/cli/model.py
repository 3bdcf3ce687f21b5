"""Commands that make checkpoints: ``train`` and ``adapt``."""

from __future__ import annotations

import argparse

from lst_pipeline.cli.common import add_no_progress, path_arg


def add_parsers(sub) -> None:
    """Register the commands on the ``lst-pipeline`` subparsers."""
    p = sub.add_parser("train", help="train the DLSTFM network",
                       description="Train DLSTFM as described by a training YAML (see "
                                   "pipelines/train_dlstfm.yaml): simulate the training regions "
                                   "if needed, train with periodic validation, keep the best "
                                   "checkpoint.")
    p.add_argument("config", type=path_arg, help="training YAML")
    p.add_argument("--resume", action="store_true",
                   help="continue from the last saved training state in the workdir")
    add_no_progress(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("adapt", help="fine-tune DLSTFM on the region's own input stack",
                       description="Fine-tune the DLSTFM checkpoint (fusion.checkpoint, or "
                                   "the shipped one) on pairs of clear Landsat dates of "
                                   "CONFIG's input stack, with dates held out in blocks of "
                                   "time for validation; write the best checkpoint with its "
                                   "provenance and print validation MAE/RMSE of the adapted "
                                   "model, the starting model, reference_change and starfm.")
    p.add_argument("config", type=path_arg, help="pipeline YAML (its inputs.stack is used)")
    p.add_argument("--steps", type=int, default=400,
                   help="optimiser steps (default 400: about 5 minutes for 600 x 600 px on "
                        "2 CPU cores)")
    p.add_argument("--out", type=path_arg, default=None,
                   help="checkpoint to write (default: <stack>.adapted.pt beside the stack)")
    p.add_argument("--min-clear", type=float, default=0.2,
                   help="least clear fraction of a Landsat date to use (default 0.2)")
    add_no_progress(p, "no progress bar")
    p.set_defaults(func=cmd_adapt)


def cmd_train(args: argparse.Namespace) -> int:
    """Train from a training YAML; print the best validation MAE."""
    from lst_pipeline.model.train import load_train_config
    from lst_pipeline.training import run_training

    config = load_train_config(args.config)
    record = run_training(config, resume=args.resume, progress=not args.no_progress)
    print(f"best validation MAE {record['best_validation_mae_k']:.3f} K; "
          f"checkpoint: {config.checkpoint}")
    return 0


def cmd_adapt(args: argparse.Namespace) -> int:
    """Fine-tune on the config's stack; print the validation table."""
    from lst_pipeline.config import load_pipeline
    from lst_pipeline.errors import ConfigError
    from lst_pipeline.training import run_adapt

    if args.steps < 1:
        raise ConfigError(f"--steps: must be >= 1, got {args.steps}")
    result = run_adapt(load_pipeline(args.config), steps=args.steps, out=args.out,
                       min_clear_fraction=args.min_clear, progress=not args.no_progress)
    print(result.describe())
    return 0
