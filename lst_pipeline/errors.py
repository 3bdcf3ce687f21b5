"""One exception tree for the whole package.

Every message names the file or the configuration field at fault and says what to do.
"""


class LSTPipelineError(Exception):
    """Base class of every error raised on purpose by lst_pipeline."""


class ConfigError(LSTPipelineError, ValueError):
    """A pipeline or cluster configuration is invalid; the message names the field."""


def require_config(condition: bool, field_path: str, message: str) -> None:
    """Raise :class:`ConfigError` ``"<field_path>: <message>"`` unless ``condition``."""
    if not condition:
        raise ConfigError(f"{field_path}: {message}")


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


class TaskError(LSTPipelineError):
    """A task on a worker failed because of its input or its output (not a bug).

    The message is the task's own one-line error followed by the log file that holds the
    worker's traceback.
    """


def describe_os_error(exc: OSError) -> str:
    """``/path: Permission denied`` for an operating-system error, naming the file."""
    where = exc.filename if exc.filename is not None else ""
    what = exc.strerror or str(exc) or type(exc).__name__
    if exc.filename2 is not None:
        where = f"{where} -> {exc.filename2}"
    return f"{where}: {what}" if where else what


class InputWarning(UserWarning):
    """An input was skipped or is doubtful, but the work can go on (named file, reason)."""
