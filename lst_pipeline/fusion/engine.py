"""The fusion engine, in three layers: plan, block, executor (this module gathers them).

- :mod:`lst_pipeline.fusion.plan`: :func:`plan_run` turns a configuration into a
  :class:`RunPlan` (chunks, halos, what an existing cube already holds), with no cluster;
- :mod:`lst_pipeline.fusion.block`: :func:`read_and_fuse` fuses one block of a stack (the
  kernel of :mod:`lst_pipeline.fusion.kernel` on inputs read with their halo);
- :mod:`lst_pipeline.fusion.executor`: :func:`execute` runs a plan on a Dask cluster.
"""

import dataclasses

from lst_pipeline.fusion import plan as _plan
from lst_pipeline.fusion.block import (
    BlockInputs,
    fuse_inputs,
    fuse_scene,
    read_and_fuse,
    read_block_inputs,
)
from lst_pipeline.fusion.executor import ChunkStats, RunSummary, execute, fuse_chunk, prepare_cube
from lst_pipeline.fusion.plan import (
    FusionTask,
    ResumeState,
    RunPlan,
    changed_dates,
    fingerprint,
    output_days,
    stale_chunks,
)
from lst_pipeline.fusion.provenance import (
    OVERPASS_ATTR,
    REGISTRATION_ATTR,
    UNCERTAINTY_ATTR,
    provenance,
)
from lst_pipeline.fusion.registry import ENSEMBLE, with_ensemble_weights

__all__ = ["BlockInputs", "ChunkStats", "FusionTask", "ResumeState", "RunPlan", "RunSummary",
           "changed_dates", "execute", "fingerprint", "fuse_chunk", "fuse_inputs", "fuse_scene",
           "output_days", "plan_run", "prepare_cube", "provenance", "read_and_fuse",
           "read_block_inputs", "stale_chunks"]


def plan_run(config, *, n_workers: int = 2, overwrite: bool = False, log=print) -> RunPlan:
    """Check the inputs against the configuration and cut the run into chunks.

    ``fusion.method: auto`` is resolved first, by leave-one-date-out on the stack
    (:func:`lst_pipeline.fusion.holdout.choose_method`); then
    :func:`lst_pipeline.fusion.plan.plan_run` plans the chosen method, whose raised errors
    (``InputError``, ``GridError``) it passes on. With ``output.uncertainty`` the error model
    of ``lst_uncertainty`` is fitted on held-out dates of the chosen method (more of them
    than ``auto`` scores; :func:`lst_pipeline.fusion.uncertainty_fit.fit_uncertainty`), or,
    when the run resumes an existing cube (not ``overwrite``), taken from that cube, so that
    every chunk of a cube uses one model; so are the MODIS view-time correction and
    ``fusion.method: ensemble``'s weights (fitted on ``auto``'s held-out dates,
    :func:`lst_pipeline.fusion.ensemble.fit_ensemble`, unless the configuration gives them).
    """
    from lst_pipeline.errors import InputError
    from lst_pipeline.fusion.error_model import ErrorModel
    from lst_pipeline.fusion.holdout import choose_method
    from lst_pipeline.fusion.overpass import OverpassCorrection
    from lst_pipeline.fusion.registration import ModisRegistration
    from lst_pipeline.fusion.uncertainty_fit import fit_uncertainty
    from lst_pipeline.io.cube_store import CubeStore

    choice = fit = None
    wanted = config.output.uncertainty
    if config.fusion.method == "auto":
        choice = choose_method(config, log=lambda _: None)
    elif config.fusion.method == ENSEMBLE and not config.fusion.ensemble.weights:
        config, fit = _ensemble_weights(config, overwrite, log)
    plan = _plan.plan_run(config, n_workers=n_workers, choice=choice)
    if fit is not None:
        plan = dataclasses.replace(plan, ensemble=fit, notes=(*plan.notes, fit.describe()))
    if plan.resume is not None and not overwrite:  # every chunk of a cube uses one correction
        task, cube_attrs = plan.task, CubeStore(plan.task.cube).attrs
        if task.overpass is not None and OVERPASS_ATTR in cube_attrs:
            task = dataclasses.replace(
                task, overpass=OverpassCorrection.from_attrs(cube_attrs[OVERPASS_ATTR]))
        if task.registration is not None and REGISTRATION_ATTR in cube_attrs:
            task = dataclasses.replace(
                task, registration=ModisRegistration.from_attrs(cube_attrs[REGISTRATION_ATTR]))
        plan = dataclasses.replace(plan, task=task)
    if wanted is False:
        return plan
    recorded = CubeStore(plan.task.cube).attrs.get(UNCERTAINTY_ATTR) if (
        plan.resume is not None and not overwrite) else None
    if recorded is not None:
        model = ErrorModel.from_attrs(recorded)
        log(f"uncertainty: the error model recorded in {plan.task.cube} (resuming)")
    else:
        try:
            model = fit_uncertainty(plan.config, plan.task.method, log=log)
        except InputError as exc:
            if wanted is True:
                raise
            plan = dataclasses.replace(
                plan, task=dataclasses.replace(plan.task, uncertainty=False),
                notes=(*plan.notes, f"lst_uncertainty left out (output.uncertainty: auto): "
                                    f"{exc}"))
            return dataclasses.replace(plan, resume=_plan.resume_state(plan))
    return dataclasses.replace(plan, task=dataclasses.replace(plan.task, error_model=model))


def _ensemble_weights(config, overwrite: bool, log):
    """``config`` with the ensemble's weights: recorded by the cube being resumed, or fitted.

    Returns the configuration and the fit (None when the weights were recorded).
    """
    from lst_pipeline.fusion.ensemble import fit_ensemble
    from lst_pipeline.io.cube_store import CubeStore

    members = config.fusion.ensemble.members
    fusion = ({} if overwrite else CubeStore(config.output.cube).attrs).get(
        "lst_pipeline:fusion", {})
    recorded = fusion.get("ensemble", {}) if fusion.get("method") == ENSEMBLE else {}
    if recorded.get("weights") and tuple(recorded.get("members", ())) == tuple(members):
        weights = tuple(recorded["weights"])
        log(f"fusion.method ensemble: the weights recorded in {config.output.cube} "
            f"(resuming): {', '.join(f'{m} {w:.3f}' for m, w in zip(members, weights))}")
        return with_ensemble_weights(config, weights), None
    fit = fit_ensemble(config, log=lambda _: None)
    return with_ensemble_weights(config, fit.weights), fit
