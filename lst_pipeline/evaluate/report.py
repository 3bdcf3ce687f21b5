"""The comparison report: Markdown and standalone HTML (rendered by ``markdown``), figures."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from lst_pipeline.evaluate.comparison import Comparison, comparison_table
from lst_pipeline.evaluate.metrics import LST_DATA_RANGE_K
from lst_pipeline.figures import pyplot, save


def write_report(comparison: Comparison, out_dir: Path | str, *, title: str = "") -> Path:
    """Write ``report.md``, ``report.html`` (images embedded) and the PNGs to ``out_dir``."""
    import base64

    import markdown

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    figures = [_maps(comparison, out / "maps.png"), _scatter(comparison, out / "scatter.png"),
               _error_series(comparison, out / "error_series.png")]
    if comparison.calibration:
        figures.append(_reliability(comparison, out / "reliability.png"))
    text = _markdown(comparison, title)
    (out / "report.md").write_text(text)
    for path in figures:
        data = base64.b64encode(path.read_bytes()).decode()
        text = text.replace(f"({path.name})", f"(data:image/png;base64,{data})")
    body = markdown.markdown(text, extensions=["tables", "fenced_code"])
    (out / "report.html").write_text(
        "<!doctype html><html><head><meta charset='utf-8'><title>lst_pipeline report</title>"
        "<style>body{font-family:sans-serif} table{border-collapse:collapse} "
        "td,th{border:1px solid #999;padding:4px}</style></head><body>\n" + body
        + "\n</body></html>\n")
    return out


def _maps(c: Comparison, path: Path) -> Path:
    """The day with the most common pixels: inputs, each method, the truth; errors below."""
    plt = pyplot()
    methods = list(c.predictions)
    t = int(np.argmax(c.mask.sum(axis=(1, 2))))
    inputs = _input_panels(c, t)
    truth_day = np.where(c.mask[t], c.truth[t], np.nan)
    lo, hi = np.nanpercentile(c.truth[t], [1, 99])
    n_in = len(inputs)
    ncols = n_in + len(methods) + 1
    fig, axes = plt.subplots(2, ncols, figsize=(3.0 * ncols, 6.4), squeeze=False)
    for j, (name, img) in enumerate(inputs.items()):
        im = axes[0, j].imshow(img, vmin=lo, vmax=hi, cmap="inferno")
        axes[0, j].set_title(name, fontsize=9)
        axes[1, j].axis("off")
    if c.land_cover is not None and n_in:
        axes[1, 0].axis("on")
        axes[1, 0].imshow(c.land_cover, cmap="tab10", interpolation="nearest")
        axes[1, 0].set_title("land cover", fontsize=9)
    for i, m in enumerate(methods, start=n_in):
        p = np.where(c.mask[t], c.predictions[m][t], np.nan)
        im = axes[0, i].imshow(p, vmin=lo, vmax=hi, cmap="inferno")
        axes[0, i].set_title(m, fontsize=9)
        em = axes[1, i].imshow(p - truth_day, vmin=-5.0, vmax=5.0, cmap="RdBu_r")
        axes[1, i].set_title(f"{m} - {c.reference_name}", fontsize=9)
    axes[0, -1].imshow(truth_day, vmin=lo, vmax=hi, cmap="inferno")
    axes[0, -1].set_title(f"{c.reference_name} {np.datetime_as_string(c.days[t])}", fontsize=9)
    axes[1, -1].axis("off")
    for a in axes.ravel():
        a.set_xticks([])
        a.set_yticks([])
    fig.colorbar(im, ax=axes[0].tolist(), label="LST (K)", shrink=0.8)
    fig.colorbar(em, ax=axes[1].tolist(), label="error (K)", shrink=0.8)
    return save(fig, path, tight=True)


def _scatter(c: Comparison, path: Path) -> Path:
    """Density scatter of each method against the reference."""
    plt = pyplot()
    methods = list(c.predictions)
    fig, axes = plt.subplots(1, len(methods), figsize=(3.2 * len(methods), 3.2), squeeze=False)
    tv = c.truth[c.mask]
    rng = np.random.default_rng(0)
    pick = rng.choice(tv.size, size=min(tv.size, 200_000), replace=False) if tv.size else []
    for a, m in zip(axes[0], methods):
        pv = c.predictions[m][c.mask]
        a.hexbin(tv[pick], pv[pick], gridsize=60, bins="log", cmap="viridis", mincnt=1)
        lim = [np.nanmin(tv), np.nanmax(tv)] if tv.size else [0, 1]
        a.plot(lim, lim, "k--", lw=0.8)
        a.set_title(m)
        a.set_xlabel(f"{c.reference_name} (K)")
        a.set_ylabel("predicted (K)")
    return save(fig, path, tight=True)


def _error_series(c: Comparison, path: Path) -> Path:
    """MAE per day, and MAE against the age of the reference used."""
    plt = pyplot()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(12, 3.6))
    for m in c.predictions:
        mae = [c.groups[m]["day"][i].mae_k for i in range(len(c.days))]
        a1.plot(c.days, mae, ".-", ms=3, label=m)
        e = np.abs(c.predictions[m] - c.truth)[c.mask]
        ages = c.reference_age[c.mask]
        bins = np.arange(0, np.nanmax(ages) + 2 if ages.size else 2, 2)
        idx = np.digitize(ages, bins)
        by_age = [(bins[i - 1], e[idx == i].mean()) for i in np.unique(idx) if (idx == i).sum()]
        if by_age:
            a2.plot(*zip(*by_age), ".-", label=m)
    a1.set_ylabel("MAE (K)")
    a1.tick_params(axis="x", labelrotation=30)
    a1.set_title("error per day (common mask)")
    a1.legend(fontsize=7)
    a2.set_xlabel("days to the nearest reference used")
    a2.set_ylabel("MAE (K)")
    a2.set_title("error vs reference age")
    return save(fig, path, tight=True)


def _group_tables(c: Comparison) -> list[str]:
    """MAE by land-cover class and at edges vs interior, one Markdown table each."""
    methods = list(c.predictions)
    lines = []
    for kind in ("class", "edge"):
        if kind in c.groups[methods[0]]:
            names = list(c.groups[methods[0]][kind])
            lines.append(f"\n### MAE (K) by {kind}\n")
            lines.append("| method | " + " | ".join(map(str, names)) + " |")
            lines.append("|---" * (len(names) + 1) + "|")
            for m in methods:
                cells = [f"{c.groups[m][kind][k].mae_k:.3f}" for k in names]
                lines.append(f"| `{m}` | " + " | ".join(cells) + " |")
    return lines


def _markdown(c: Comparison, title: str) -> str:
    """The report's Markdown: what was compared, the tables, the figures, the versions."""
    import json

    from lst_pipeline.versions import package_versions

    cfg = c.config
    holdout = (" (each date hidden from the references, predicted from the others: "
               "leave-one-date-out)" if c.reference_name != "truth" else "")
    md = [f"# {title or 'Fusion methods compared: ' + cfg.name}", "",
          f"Region `{cfg.name}`: {c.truth.shape[1]} x {c.truth.shape[2]} px at "
          f"{cfg.grid.resolution:g} m (coarse x{cfg.grid.coarse_factor}), "
          f"{len(c.days)} days {c.days[0]} .. {c.days[-1]}, compared with the "
          f"{c.reference_name}{holdout}. Every method scored on the same "
          f"{int(c.mask.sum()):,} pixel-days (fused by all methods, {c.reference_name} "
          f"present). SSIM and PSNR with a {LST_DATA_RANGE_K:g} K data range.", "",
          comparison_table(c.groups), *_group_tables(c), "", *_dates_section(c),
          "Fusion time (s, this process): " + ", ".join(
              f"{m} {s:.1f}" for m, s in c.seconds.items()), "",
          "![maps](maps.png)", "", "![scatter](scatter.png)", "",
          "![error per day and vs reference age](error_series.png)", "",
          *_calibration_section(c),
          "## Configuration and versions", "", "```json",
          json.dumps({"fusion": dataclasses.asdict(cfg.fusion),
                      "grid": dataclasses.asdict(cfg.grid), "versions": package_versions()},
                     indent=1, default=str),
          "```", ""]
    return "\n".join(md)


def _input_panels(c: Comparison, t: int) -> dict[str, np.ndarray]:
    """The main reference Landsat and the target-day MODIS (coarse pixels) of day ``t``."""
    from lst_pipeline.errors import LSTPipelineError
    from lst_pipeline.grid import Window
    from lst_pipeline.io.stack import StackReader
    from lst_pipeline.resample import upsample_nearest

    try:
        reader = StackReader(c.config.inputs.stack)
    except LSTPipelineError:  # figures without the input panels are still a report
        return {}
    ny, nx = c.truth.shape[1:]
    f = c.config.grid.coarse_factor
    day = np.datetime64(c.days[t], "D")
    modis = reader.read_modis(np.array([day]), Window(0, ny // f, 0, nx // f))[0]
    panels = {}
    ref = -1 if c.main_reference_day is None else int(c.main_reference_day[t])
    ldays = reader.landsat_dates.astype("datetime64[D]").astype(np.int64)
    if ref >= 0 and ref in ldays:
        index = int(np.nonzero(ldays == ref)[0][0])
        date = np.datetime64(ref, "D")
        panels[f"reference Landsat {date}"] = reader.read_landsat(np.array([index]),
                                                                 Window(0, ny, 0, nx))[0]
    panels[f"target MODIS {day}"] = upsample_nearest(modis, f)
    return panels


def _dates_section(c: Comparison) -> list[str]:
    """Leave-one-date-out: the best method against each other, by per-date MAE.

    The pixels of one held-out date share its weather and reference, so the dates are the
    samples; the paired test is :func:`lst_pipeline.fusion.selection.compare`'s.
    """
    from lst_pipeline.fusion.selection import SIGNIFICANCE, choose, per_date_mae

    if c.reference_name == "truth" or len(c.predictions) < 2:
        return []
    by_date = {m: per_date_mae(p - c.truth, c.mask, c.days)[1]
               for m, p in c.predictions.items()}
    pooled = {m: c.groups[m]["overall"]["all"].mae_k for m in c.predictions}
    best, against = choose(tuple(c.predictions), pooled, by_date)
    lines = ["## Can the held-out dates tell the methods apart?", "",
             f"`{best}` has the lowest MAE. Each other method's per-date MAE minus "
             f"`{best}`'s, mean +- standard error over the {len(by_date[best])} held-out "
             f"dates, and whether `{best}` is better beyond the dates' spread (one-sided "
             f"paired t-test at {SIGNIFICANCE}).", "",
             "| method | MAE (K) | minus the best, per date (K) | the best is better |",
             "|---|---|---|---|"]
    for m, d in against.items():
        lines.append(f"| `{m}` | {pooled[m]:.3f} | {-d.mean_difference_k:+.3f} +- "
                     f"{d.standard_error_k:.3f} | {'yes' if d.better else 'not shown'} |")
    return [*lines, ""]


def _calibration_section(c: Comparison) -> list[str]:
    """Coverage of ``lst_uncertainty`` and its reliability diagram (when it was scored)."""
    from lst_pipeline.evaluate.calibration import calibration_table

    if not c.calibration:
        return []
    how = ("each held-out date's sigma from an error model fitted on the other dates"
           if c.reference_name != "truth" else "errors against the simulated truth")
    return ["## Calibration of lst_uncertainty", "",
            f"Fraction of |error| within 1 and 2 sigma ({how}); a calibrated sigma has "
            "0.68 and 0.95. Per reference-age class: within 1 / within 2 sigma (share of "
            "the pixel-days). Spearman: rank correlation of sigma and |error|.", "",
            calibration_table(c.calibration), "", "![reliability](reliability.png)", ""]


def _reliability(c: Comparison, path: Path) -> Path:
    """Predicted sigma against the observed RMSE in sigma bins, one line per method."""
    from lst_pipeline.figures import pyplot, save

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5, 4.5))
    top = 1.0
    for m, cal in c.calibration.items():
        if cal.reliability:
            s = [b[2] for b in cal.reliability]
            r = [b[3] for b in cal.reliability]
            ax.plot(s, r, "o-", ms=4, label=m)
            top = max(top, *s, *r)
    ax.plot([0, top], [0, top], "k--", lw=0.8, label="calibrated")
    ax.set_xlabel("predicted sigma (K, bin mean)")
    ax.set_ylabel("observed RMSE (K)")
    ax.set_title("reliability of lst_uncertainty")
    ax.legend(fontsize=7)
    return save(fig, path, tight=True)
