"""Shared by the benchmark scripts: where and how results are recorded, held-out regions."""

from __future__ import annotations

import json
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


def head_commit() -> str:
    """Short hash of the checkout's HEAD, ``+dirty`` if tracked files differ from it.

    ``unknown`` outside a git checkout: a figure must say which code produced it (the
    README's results table), and a run from an uncommitted tree must say so.
    """
    import subprocess

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], capture_output=True, text=True, check=True,
                              cwd=Path(__file__).parent).stdout.strip()

    try:
        head = git("rev-parse", "--short", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


def append_result(name: str, record: dict) -> Path:
    """Append ``record`` as one JSON line to ``results/<name>.jsonl``.

    A record without a ``commit`` gets :func:`head_commit`'s.
    """
    if "commit" not in record:
        record = {**record, "commit": head_commit()}
    path = RESULTS / f"{name}.jsonl"
    path.parent.mkdir(exist_ok=True)
    with path.open("a") as fh:
        fh.write(json.dumps(record, default=float) + "\n")
    return path


#: Simulator settings of a snowy winter (``--snow``): a cold climate, snowfall, from June.
SNOWY_WINTER = {"start": "2021-06-01", "climate_shift_k": -15.0, "snow_events_per_year": 25.0}


def held_out_region(root: Path, seed: int, size: int, days: int, **simulation):
    """Simulate a held-out region (seed never used in training) and return its config.

    Each seed gets its own place (origin) so regions never overlap; ``simulation`` goes to
    :func:`~lst_pipeline.simulate.synthetic_pipeline` (e.g. :data:`SNOWY_WINTER`).
    """
    from lst_pipeline.simulate import simulate_region, synthetic_pipeline

    config = synthetic_pipeline(root / f"seed{seed}", seed=seed, size=size, days=days,
                                origin=(700_000.0 + 20_000.0 * (seed % 10), 6_000_000.0),
                                **simulation)
    simulate_region(config, progress=False)
    return config
