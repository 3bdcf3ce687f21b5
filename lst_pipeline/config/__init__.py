"""Pipeline configuration: YAML in, typed, frozen, validated dataclasses out.

A pipeline YAML names the grid, the dates, the stores, the chunking, the fusion method,
the simulation (for synthetic regions) and the cluster profile. Every section is a frozen
dataclass; :func:`load_pipeline` reads the file with ``yaml.safe_load`` and validates every
field, failing with one :class:`~lst_pipeline.errors.ConfigError` that names the field
(``grid.coarse_factor: expected an integer, got 31.5``).

Relative paths are resolved against the current working directory, as with most
command-line tools, so ``lst-pipeline run pipelines/demo.yaml`` writes under ``./demo_output``.
"""

from lst_pipeline.config.parse import (
    bundled_pipeline,
    from_mapping,
    load_pipeline,
    load_yaml_config,
    replace_paths,
)
from lst_pipeline.config.pipeline import (
    MAX_REFERENCE_GAP_DAYS,
    ChunkConfig,
    DateRange,
    FusionConfig,
    GridConfig,
    InputsConfig,
    OutputConfig,
    PipelineConfig,
    SimulationConfig,
)
from lst_pipeline.config.sources import (
    IngestConfig,
    LandsatSourceConfig,
    ModisSourceConfig,
    PregriddedConfig,
    StacSourceConfig,
)
from lst_pipeline.fusion.registry import StarfmParams, UbestarfmParams

__all__ = ["MAX_REFERENCE_GAP_DAYS", "ChunkConfig", "DateRange", "FusionConfig", "GridConfig",
           "IngestConfig", "InputsConfig", "LandsatSourceConfig", "ModisSourceConfig",
           "OutputConfig", "PipelineConfig", "PregriddedConfig", "SimulationConfig",
           "StacSourceConfig", "StarfmParams", "UbestarfmParams", "bundled_pipeline",
           "from_mapping", "load_pipeline", "load_yaml_config", "replace_paths"]
