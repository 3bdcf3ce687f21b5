"""What a cube records about how it was made: its root provenance attributes."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lst_pipeline._version import __version__
from lst_pipeline.io.cube_store import CHUNKS_ATTR

if TYPE_CHECKING:
    from lst_pipeline.fusion.plan import RunPlan

#: Root attribute of the MODIS view-time correction of the run.
OVERPASS_ATTR = "lst_pipeline:overpass"

#: Root attribute of the per-day MODIS shifts of the run.
REGISTRATION_ATTR = "lst_pipeline:modis_registration"

#: Root attribute of the error model behind ``lst_uncertainty``.
UNCERTAINTY_ATTR = "lst_pipeline:uncertainty"

#: CF ``references`` of every cube: the fusion model the default method follows.
REFERENCES = (
    "Jin, Li & Shen (2026), Deep-Learning Spatial and Temporal Fusion Model for Land Surface "
    "Temperature Based on a Spatially Adaptive Feature and Temperature-Adaptive Correction "
    "Module, Remote Sensing 18(2):238, doi:10.3390/rs18020238 (DLSTFM)"
)


def provenance(plan: RunPlan) -> dict[str, Any]:
    """Root attributes recording how the cube was made."""
    cfg = plan.config
    fusion = {k: (str(v) if isinstance(v, Path) else v)
              for k, v in dataclasses.asdict(cfg.fusion).items()}
    return {
        "lst_pipeline:version": __version__,
        **plan.task.fusion_method().describe(),
        "lst_pipeline:fusion": fusion,
        "lst_pipeline:input_stack": str(cfg.inputs.stack),
        CHUNKS_ATTR: list(plan.chunks.chunks),
        **{name: fitted.as_attrs() for name, fitted in (
            ("lst_pipeline:auto", plan.auto), ("lst_pipeline:ensemble", plan.ensemble),
            (UNCERTAINTY_ATTR, plan.task.error_model), (OVERPASS_ATTR, plan.task.overpass),
            (REGISTRATION_ATTR, plan.task.registration))
           if fitted is not None},
        "lst_pipeline:pipeline": cfg.name,
        "source": "Landsat Collection 2 L2 ST + MODIS MOD11A1 fused by lst_pipeline",
        "references": REFERENCES,
        "history": f"{time.strftime('%Y-%m-%dT%H:%M:%S%z')} lst_pipeline {__version__} "
                   f"run of pipeline {cfg.name!r}",
    }
