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


#: Colours and names of the ``qa`` codes in flag maps.
FLAG_COLOURS = ("#bdbdbd", "#1a9850", "#4575b4", "#91bfdb", "#fdae61")
FLAG_NAMES = ("no data", "observed", "fused (one reference)", "fused (two references)",
              "fused (gap-filled MODIS)")


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _limits(*arrays: np.ndarray) -> tuple[float, float]:
    values = np.concatenate([np.asarray(a, dtype=np.float64).ravel() for a in arrays])
    values = values[np.isfinite(values)]
    if not values.size:
        return 250.0, 330.0
    lo, hi = np.percentile(values, [1, 99])
    return float(lo), float(max(hi, lo + 0.1))


def _save(fig, path: Path, plt) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def map_png(path: Path, lst_k: np.ndarray, qa: np.ndarray, *, title: str,
            extent: tuple[float, float, float, float], crs_name: str = "") -> Path:
    """Write one day's LST map (colour bar in K) beside its flag map.

    Parameters
    ----------
    path
        PNG file to write.
    lst_k, qa
        2-D Kelvin values (NaN: no data) and ``qa`` codes of the day.
    title
        Figure title (the date, the cube).
    extent
        ``(left, right, bottom, top)`` of the map in the cube's CRS, for the axes.
    crs_name
        Axis label suffix naming the CRS.
    """
    from matplotlib.colors import BoundaryNorm, ListedColormap
    from matplotlib.patches import Patch

    plt = _pyplot()
    vmin, vmax = _limits(lst_k)
    fig, (ax, axq) = plt.subplots(1, 2, figsize=(11, 4.8), constrained_layout=True)
    im = ax.imshow(lst_k, cmap="inferno", vmin=vmin, vmax=vmax, extent=extent,
                   interpolation="nearest")
    ax.set_facecolor("0.8")
    ax.set_title("land surface temperature (grey: no data)")
    fig.colorbar(im, ax=ax, shrink=0.85, label="LST (K)")
    cmap = ListedColormap(FLAG_COLOURS)
    axq.imshow(qa, cmap=cmap, norm=BoundaryNorm(np.arange(-0.5, 5.5), cmap.N), extent=extent,
               interpolation="nearest")
    axq.set_title("how each value was obtained (qa)")
    present = sorted(set(np.unique(qa).tolist()) & set(range(len(FLAG_NAMES))))
    axq.legend(handles=[Patch(color=FLAG_COLOURS[c], label=FLAG_NAMES[c]) for c in present],
               loc="lower left", fontsize=8, framealpha=0.9)
    for a in (ax, axq):
        a.set_xlabel(f"x (m{', ' + crs_name if crs_name else ''})")
        a.set_ylabel("y (m)")
        a.ticklabel_format(style="plain", useOffset=False)
        a.tick_params(labelsize=7)
    fig.suptitle(title)
    return _save(fig, path, plt)


def series_png(path: Path, days: np.ndarray, lst_k: np.ndarray, qa: np.ndarray, *,
               title: str, landsat: tuple[np.ndarray, np.ndarray] | None = None,
               modis: tuple[np.ndarray, np.ndarray] | None = None) -> Path:
    """Write a point's daily LST series, marking observed days, with the inputs overlaid.

    Parameters
    ----------
    path
        PNG file to write.
    days, lst_k, qa
        The cube's days (``datetime64``), Kelvin values and ``qa`` codes at the point.
    title
        Figure title (the point, the cube).
    landsat, modis
        Optional ``(dates, Kelvin)`` of the input stack at the point (Landsat clear pixels,
        MODIS over the point's coarse pixel); NaN entries are not drawn.
    """
    plt = _pyplot()
    days = np.asarray(days).astype("datetime64[D]").astype("datetime64[ms]").astype(object)
    fig, ax = plt.subplots(figsize=(11, 4.2), constrained_layout=True)
    ax.plot(days, lst_k, "-", color="0.3", lw=1.0, label="cube (daily)")
    fused = (qa >= 2) & np.isfinite(lst_k)
    ax.plot(days[fused], lst_k[fused], ".", color=FLAG_COLOURS[2], ms=4, label="cube: fused")
    obs = qa == 1
    ax.plot(days[obs], lst_k[obs], "o", color=FLAG_COLOURS[1], ms=6, mfc="none",
            label="cube: observed")
    for series, style, label in ((modis, dict(marker="x", color="#d73027", ms=4),
                                  "MODIS (1 km pixel)"),
                                 (landsat, dict(marker="s", color="#1a9850", ms=5),
                                  "Landsat (clear)")):
        if series is None:
            continue
        t, v = (np.asarray(a) for a in series)
        ok = np.isfinite(v)
        t = t[ok].astype("datetime64[D]").astype("datetime64[ms]").astype(object)
        ax.plot(t, v[ok], ls="none", label=label, **style)
    ax.set_ylabel("LST (K)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, ncol=5, loc="upper center")
    return _save(fig, path, plt)


def animation_gif(path: Path, frames: list[tuple[str, np.ndarray]], *,
                  extent: tuple[float, float, float, float], title: str = "",
                  fps: float = 4.0) -> Path:
    """Write an animated GIF of daily maps on one fixed colour scale (Pillow writer).

    Parameters
    ----------
    path
        GIF file to write.
    frames
        ``(date label, 2-D Kelvin)`` per frame.
    extent
        ``(left, right, bottom, top)`` in the cube's CRS.
    title
        Prefix of every frame's title.
    fps
        Frames per second.
    """
    from matplotlib.animation import FuncAnimation, PillowWriter

    plt = _pyplot()
    vmin, vmax = _limits(*(a for _, a in frames))
    fig, ax = plt.subplots(figsize=(6, 5.2), constrained_layout=True)
    ax.set_facecolor("0.8")
    im = ax.imshow(frames[0][1], cmap="inferno", vmin=vmin, vmax=vmax, extent=extent,
                   interpolation="nearest")
    fig.colorbar(im, ax=ax, shrink=0.85, label="LST (K)")
    ax.ticklabel_format(style="plain", useOffset=False)
    ax.tick_params(labelsize=7)

    def draw(i: int):
        im.set_data(frames[i][1])
        ax.set_title(f"{title}{frames[i][0]}")
        return (im,)

    anim = FuncAnimation(fig, draw, frames=len(frames), blit=False)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    anim.save(path, writer=PillowWriter(fps=fps), dpi=80)
    plt.close(fig)
    return path
