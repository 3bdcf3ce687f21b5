"""One exception tree for the whole package.

Every message names the file or the configuration field at fault and says what to do.
"""


class LSTPipelineError(Exception):
    """Base class of every error raised on purpose by lst_pipeline."""


class ConfigError(LSTPipelineError, ValueError):
    """A pipeline or cluster configuration is invalid; the message names the field."""


class GridError(LSTPipelineError, ValueError):
    """Grids or chunks do not line up (CRS, resolution, coarse factor, alignment)."""


class InputError(LSTPipelineError):
    """An input file or store is missing, unreadable or inconsistent."""


class StoreError(LSTPipelineError):
    """An output store exists in a state that does not allow the requested operation."""


class MissingDependencyError(LSTPipelineError, ImportError):
    """An optional dependency needed by the requested feature is not installed."""


class SelectionError(LSTPipelineError, ValueError):
    """A date, point or region asked of a cube is malformed or lies outside it."""


class InputWarning(UserWarning):
    """An input was skipped or is doubtful, but the work can go on (named file, reason)."""
