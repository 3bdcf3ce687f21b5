"""Shared by the benchmark scripts: where and how results are recorded."""

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
