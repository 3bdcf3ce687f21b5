"""Quicklook figures (matplotlib, Agg backend; no screen needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def comparison_png(path: Path, date: str, panels: dict[str, np.ndarray], *,
                   error: np.ndarray | None = None, error_limit_k: float = 3.0) -> Path:
    """Write side-by-side maps of one day with a shared temperature scale.

    Parameters
    ----------
    path
        PNG file to write.
    date
        Date shown in the title.
    panels
        Title -> 2-D Kelvin array, drawn with one shared colour scale.
    error
        Optional prediction-minus-truth map, drawn last on a diverging scale.
    error_limit_k
        Half-range of the error colour scale.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    values = np.concatenate([a[np.isfinite(a)].ravel() for a in panels.values()])
    vmin, vmax = (np.percentile(values, [1, 99]) if values.size else (250.0, 330.0))
    n = len(panels) + (error is not None)
    fig, axes = plt.subplots(1, n, figsize=(4.2 * n, 4.4), constrained_layout=True)
    for ax, (title, arr) in zip(axes, panels.items()):
        im = ax.imshow(arr, cmap="inferno", vmin=vmin, vmax=vmax, interpolation="nearest")
        ax.set_title(title)
        ax.set_axis_off()
    fig.colorbar(im, ax=axes[: len(panels)], shrink=0.8, label="LST (K)")
    if error is not None:
        ax = axes[-1]
        im = ax.imshow(error, cmap="RdBu_r", vmin=-error_limit_k, vmax=error_limit_k,
                       interpolation="nearest")
        ax.set_title("fused - truth")
        ax.set_axis_off()
        fig.colorbar(im, ax=ax, shrink=0.8, label="error (K)")
    fig.suptitle(f"lst_pipeline quicklook {date} (grey: no data)")
    for ax in axes:
        ax.set_facecolor("0.8")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
