"""Quicklook figures (matplotlib, Agg backend; no screen needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lst_pipeline import explore
from lst_pipeline.config.locations import StorePath
from lst_pipeline.figures import colour_limits, pyplot, save


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
    plt = pyplot()
    vmin, vmax = colour_limits(*panels.values())
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
    return save(fig, path)


#: Colours and names of the ``qa`` codes in flag maps.
FLAG_COLOURS = ("#bdbdbd", "#1a9850", "#4575b4", "#91bfdb", "#fdae61")
FLAG_NAMES = ("no data", "observed", "fused (one reference)", "fused (two references)",
              "fused (gap-filled MODIS)")


def map_png(path: Path, lst_k: np.ndarray, qa: np.ndarray, *, title: str,
            extent: tuple[float, float, float, float], crs_name: str = "",
            sigma_k: np.ndarray | None = None) -> Path:
    """Write one day's LST map (colour bar in K) beside its flag map (and uncertainty map).

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
    sigma_k
        The day's ``lst_uncertainty`` (K); drawn as a third map when given.
    """
    from matplotlib.colors import BoundaryNorm, ListedColormap
    from matplotlib.patches import Patch

    plt = pyplot()
    vmin, vmax = colour_limits(lst_k)
    n = 2 if sigma_k is None else 3
    fig, axes = plt.subplots(1, n, figsize=(5.5 * n, 4.8), constrained_layout=True)
    ax, axq = axes[0], axes[1]
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
    if sigma_k is not None:
        axs = axes[2]
        finite = sigma_k[np.isfinite(sigma_k)]
        top = float(np.percentile(finite, 99)) if finite.size else 1.0
        im = axs.imshow(sigma_k, cmap="viridis", vmin=0, vmax=max(top, 0.1), extent=extent,
                        interpolation="nearest")
        axs.set_facecolor("0.8")
        axs.set_title("estimated 1-sigma error (lst_uncertainty)")
        fig.colorbar(im, ax=axs, shrink=0.85, label="sigma (K)")
    for a in axes:
        a.set_xlabel(f"x (m{', ' + crs_name if crs_name else ''})")
        a.set_ylabel("y (m)")
        a.ticklabel_format(style="plain", useOffset=False)
        a.tick_params(labelsize=7)
    fig.suptitle(title)
    return save(fig, path)


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
    plt = pyplot()
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
    return save(fig, path)


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

    plt = pyplot()
    vmin, vmax = colour_limits(*(a for _, a in frames))
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
    # PillowWriter takes any number (frame duration 1000 / fps ms); its stub says int
    anim.save(path, writer=PillowWriter(fps=fps), dpi=80)  # type: ignore[arg-type]
    plt.close(fig)
    return path


# --- figures of a cube: selection (lst_pipeline.explore) then drawing ---------------------

#: Most frames :func:`range_gif` draws (each frame is one day's map in memory).
MAX_FRAMES = 400


def _crs_name(cube) -> str:
    crs = cube.rio.crs
    return crs.to_string() if crs is not None else ""


def day_png(cube, name: str, day: np.datetime64, out: Path | None, *,
            uncertainty: bool = True) -> Path:
    """The map of one day of ``cube`` with its flags (default ``lst_<day>.png``).

    A cube with ``lst_uncertainty`` gets its map too, unless ``uncertainty`` is False.
    """
    names = ["lst", "qa"] + (["lst_uncertainty"] if uncertainty and "lst_uncertainty" in cube
                             else [])
    sel = explore.day_map(cube, day)[names].load()
    sigma = sel["lst_uncertainty"].values if "lst_uncertainty" in sel else None
    return map_png(out or Path(f"lst_{day}.png"), sel["lst"].values, sel["qa"].values,
                   title=f"{name}  {day}", extent=explore.extent(cube), crs_name=_crs_name(cube),
                   sigma_k=sigma)


def point_png(cube, name: str, lon: float, lat: float, out: Path | None, *,
              inputs: Path | None = None, log=print) -> Path:
    """A point's daily series, with the input stack's Landsat and MODIS overlaid.

    The stack is ``inputs``, else the one recorded in the cube's attributes if it exists.
    """
    from lst_pipeline.errors import InputError
    from lst_pipeline.io.zarr_store import root_attrs

    point = explore.lonlat_to_cube(cube, lon, lat)
    series = explore.point_series(cube, point)[["lst", "qa"]].load()
    landsat = modis = None
    stack_path = inputs or cube.attrs.get("lst_pipeline:input_stack")
    if stack_path and root_attrs(stack_path) is not None:
        from lst_pipeline.io.stack import open_stack

        ls, md = explore.inputs_at_point(open_stack(stack_path), point)
        ls, md = ls.load(), md.load()
        landsat = (ls["time_landsat"].values, ls.values)
        modis = (md["time_modis"].values, md.values)
    elif inputs:
        raise InputError(f"{inputs}: no input stack here (--inputs)")
    else:
        log("no input stack found to overlay (pass --inputs STACK)")
    return series_png(
        out or Path(f"lst_point_{lon:.4f}_{lat:.4f}.png"), series["time"].values,
        series["lst"].values, series["qa"].values,
        title=f"{name}  {point.label()}  (x {float(series.x):.0f}, y {float(series.y):.0f}"
              f" {_crs_name(cube)})", landsat=landsat, modis=modis)


def range_gif(cube, name: str, start: np.datetime64, end: np.datetime64, out: Path | None, *,
              fps: float = 4.0) -> Path:
    """An animated GIF of the daily maps ``start..end`` (inclusive).

    Raises
    ------
    SelectionError
        If the range is reversed, outside the cube or longer than :data:`MAX_FRAMES` days.
    """
    from lst_pipeline.errors import SelectionError

    if end < start:
        raise SelectionError(f"--animate: END {end} is before START {start}")
    explore.check_day(cube, start, option="--animate")
    explore.check_day(cube, end, option="--animate")
    days = np.arange(start, end + 1)
    if len(days) > MAX_FRAMES:
        raise SelectionError(f"--animate: {len(days)} days asked; at most {MAX_FRAMES} "
                             "frames, choose a shorter range")
    lst = cube["lst"].sel(time=slice(str(start), str(end))).load()
    frames = [(str(t.astype("datetime64[D]")), lst.sel(time=t).values)
              for t in lst["time"].values]
    return animation_gif(out or Path(f"lst_{start}_{end}.gif"), frames,
                         extent=explore.extent(cube),
                         title=f"{name}  ", fps=fps)


def truth_comparison_png(cube_path: StorePath, truth_path: StorePath, stack_path: StorePath,
                         coarse_factor: int,
                         path: Path) -> Path:
    """Truth, MODIS, fused and error maps of the day with the most fused pixels."""
    from lst_pipeline.io.cube import Flag, open_cube
    from lst_pipeline.io.stack import open_stack
    from lst_pipeline.io.truth import open_truth
    from lst_pipeline.resample import upsample_nearest

    cube = open_cube(cube_path)
    t = int(np.argmax(Flag.fused(cube["qa"]).mean(("y", "x")).values))
    day = cube.time.values[t]
    fused = cube["lst"].isel(time=t).values
    truth = open_truth(truth_path)["lst"].sel(time=day).values
    modis = open_stack(stack_path)["modis_lst"].sel(time_modis=day).values
    return comparison_png(path, str(np.datetime64(day, "D")),
                          {"truth": truth, "MODIS (coarse)": upsample_nearest(modis, coarse_factor),
                           "fused": fused}, error=fused - truth)
