"""Shared by the benchmark scripts: where and how results are recorded, held-out regions."""

from __future__ import annotations

import json
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


def append_result(name: str, record: dict) -> Path:
    """Append ``record`` as one JSON line to ``results/<name>.jsonl``."""
    path = RESULTS / f"{name}.jsonl"
    path.parent.mkdir(exist_ok=True)
    with path.open("a") as fh:
        fh.write(json.dumps(record, default=float) + "\n")
    return path


def held_out_region(root: Path, seed: int, size: int, days: int):
    """Simulate a held-out region (seed never used in training) and return its config.

    Each seed gets its own place (origin) so regions never overlap.
    """
    from lst_pipeline.simulate import simulate_region, synthetic_pipeline

    config = synthetic_pipeline(root / f"seed{seed}", seed=seed, size=size, days=days,
                                origin=(700_000.0 + 20_000.0 * (seed % 10), 6_000_000.0))
    simulate_region(config, progress=False)
    return config
