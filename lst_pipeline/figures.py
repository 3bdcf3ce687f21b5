"""Figures without a screen: one place for matplotlib's Agg backend and for saving PNGs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the Agg backend (works on clusters and in CI)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(fig: Any, path: Path | str, *, dpi: int = 90, tight: bool = False) -> Path:
    """Write ``fig`` as a PNG (creating the folder), close it, return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, bbox_inches="tight" if tight else None)
    pyplot().close(fig)
    return path


def colour_limits(*arrays: np.ndarray) -> tuple[float, float]:
    """A shared colour scale for maps: the 1st to 99th percentile of the finite values."""
    values = np.concatenate([np.asarray(a, dtype=np.float64).ravel() for a in arrays])
    values = values[np.isfinite(values)]
    if not values.size:
        return 250.0, 330.0
    lo, hi = np.percentile(values, [1, 99])
    return float(lo), float(max(hi, lo + 0.1))
