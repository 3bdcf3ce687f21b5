"""The fusion engine, in three layers: plan, block, executor (this module gathers them).

- :mod:`lst_pipeline.fusion.plan`: :func:`plan_run` turns a configuration into a
  :class:`RunPlan` (chunks, halos, what an existing cube already holds), with no cluster;
- :mod:`lst_pipeline.fusion.block`: :func:`read_and_fuse` fuses one block of a stack (the
  kernel of :mod:`lst_pipeline.fusion.kernel` on inputs read with their halo);
- :mod:`lst_pipeline.fusion.executor`: :func:`execute` runs a plan on a Dask cluster.
"""

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
    provenance,
    stale_chunks,
)

__all__ = ["BlockInputs", "ChunkStats", "FusionTask", "ResumeState", "RunPlan", "RunSummary",
           "changed_dates", "execute", "fingerprint", "fuse_chunk", "fuse_inputs", "fuse_scene",
           "output_days", "plan_run", "prepare_cube", "provenance", "read_and_fuse",
           "read_block_inputs", "stale_chunks"]


def plan_run(config, *, n_workers: int = 2) -> RunPlan:
    """Check the inputs against the configuration and cut the run into chunks.

    ``fusion.method: auto`` is resolved first, by leave-one-date-out on the stack
    (:func:`lst_pipeline.fusion.holdout.choose_method`); then
    :func:`lst_pipeline.fusion.plan.plan_run` plans the chosen method, whose raised errors
    (``InputError``, ``GridError``) it passes on.
    """
    choice = None
    if config.fusion.method == "auto":
        from lst_pipeline.fusion.holdout import choose_method

        choice = choose_method(config, log=lambda _: None)
    return _plan.plan_run(config, n_workers=n_workers, choice=choice)
