"""Plain YAML data -> the typed, frozen configuration dataclasses, field by field.

:func:`from_mapping` converts and checks (unknown, missing or mistyped fields fail with one
:class:`~lst_pipeline.errors.ConfigError` naming the field); :func:`load_yaml_config` is the
one YAML loader of the package (``yaml.safe_load``), used for pipelines, training
configurations and cluster profiles.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import types
import typing
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar

from lst_pipeline.config.locations import StorePath, is_remote, local_path, store_path
from lst_pipeline.errors import ConfigError

if typing.TYPE_CHECKING:
    from lst_pipeline.config.pipeline import PipelineConfig

T = TypeVar("T")


def from_mapping(cls: type, data: Any, path: str = "") -> Any:
    """Build dataclass ``cls`` from a mapping, checking keys and types field by field.

    Parameters
    ----------
    cls
        A (frozen) dataclass type whose annotations drive the validation.
    data
        Plain data as produced by ``yaml.safe_load``.
    path
        Dotted location of ``data`` in the document, used in error messages.

    Raises
    ------
    ConfigError
        Naming the first offending field: unknown key, missing key, wrong type or value.
    """
    where = path or "top level"
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: expected a mapping of fields, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"{_join(path, str(unknown[0]))}: unknown field; "
                          f"allowed fields are {', '.join(fields)}")
    kwargs = {}
    for name, f in fields.items():
        field_path = _join(path, name)
        if name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ConfigError(f"{field_path}: required field is missing")
            continue
        if f.metadata.get("store"):
            kwargs[name] = _store_path(data[name], field_path)
        else:
            kwargs[name] = _convert(hints[name], data[name], field_path)
    return cls(**kwargs)


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _convert(tp: Any, value: Any, path: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        non_none = [a for a in args if a is not type(None)]
        return _convert(non_none[0], value, path)
    if origin is Literal:
        if isinstance(value, bool) and ("on" if value else "off") in args:
            value = "on" if value else "off"  # YAML 1.1 reads a bare off (or on) as a bool
        if value not in args:
            raise ConfigError(f"{path}: {value!r} is not one of {', '.join(map(repr, args))}")
        return value
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):  # a dataclass, not an instance
        return from_mapping(tp, value, path)
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{path}: expected a list, got {value!r}")
        return tuple(_convert(args[0], v, f"{path}[{i}]") for i, v in enumerate(value))
    if origin is tuple:
        if not isinstance(value, list | tuple) or len(value) != len(args):
            raise ConfigError(f"{path}: expected a list of {len(args)} values, got {value!r}")
        return tuple(_convert(a, v, f"{path}[{i}]") for i, (a, v) in enumerate(zip(args, value)))
    if origin is dict:
        if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
            raise ConfigError(f"{path}: expected a mapping of names to values, got {value!r}")
        return dict(value)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{path}: expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value):
            raise ConfigError(f"{path}: expected an integer, got {value!r}")
        return int(value)
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{path}: expected a number, got {value!r}")
        if not math.isfinite(value):
            raise ConfigError(f"{path}: expected a finite number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{path}: expected a string, got {value!r}")
        return value
    if tp is Path:
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{path}: expected a path, got {value!r}")
        return local_path(value, path)
    if tp is dt.date:
        if isinstance(value, dt.datetime):
            return value.date()
        if isinstance(value, dt.date):
            return value
        if isinstance(value, str):
            try:
                return dt.date.fromisoformat(value)
            except ValueError:
                pass
        raise ConfigError(f"{path}: expected a date as YYYY-MM-DD, got {value!r}")
    raise TypeError(f"unsupported annotation {tp!r} at {path}")  # programming error


def _store_path(value: Any, where: str) -> StorePath:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{where}: expected a path or a URL, got {value!r}")
    return store_path(value, where)


def load_yaml_config(source: str | Path | Mapping[str, Any], cls: type[T], what: str, *,
                     validate: Callable[[T], T] | None = None, prefix: str = "") -> T:
    """Read a YAML file (``yaml.safe_load``) or a parsed mapping into dataclass ``cls``.

    Parameters
    ----------
    source
        A YAML file, or an already parsed mapping.
    cls
        The configuration dataclass.
    what
        What the file is, for the "not found" message (``pipeline configuration``).
    validate
        Checks across fields, run on the result (errors get the file name too).
    prefix
        Dotted location of the document's fields in messages (``cluster``).

    Raises
    ------
    ConfigError
        If the file is missing, is not valid YAML, or any field is invalid; the message
        names the file and the field.
    """
    def build(data: Any) -> T:
        result = from_mapping(cls, data, prefix)
        return validate(result) if validate else result

    if isinstance(source, Mapping):
        return build(source)
    import yaml

    path = Path(source)
    if not path.is_file():
        raise ConfigError(f"{path}: {what} file not found")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    try:
        return build(data)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def load_pipeline(source: str | Path | Mapping[str, Any]) -> PipelineConfig:
    """Read and validate a pipeline configuration.

    Parameters
    ----------
    source
        Path to a YAML file, or an already parsed mapping.

    Returns
    -------
    PipelineConfig

    Raises
    ------
    ConfigError
        If the file is missing, is not valid YAML, or any field is invalid; the message
        names the file and the field.
    """
    from lst_pipeline.config.pipeline import PipelineConfig

    return load_yaml_config(source, PipelineConfig, "pipeline configuration")


def replace_paths(config: PipelineConfig, workdir: Path) -> PipelineConfig:
    """Return ``config`` with every relative store path placed under ``workdir``."""
    def under(p: StorePath) -> StorePath:
        return p if is_remote(p) or p.is_absolute() else workdir / p.name

    sim = config.simulation
    return dataclasses.replace(
        config,
        inputs=dataclasses.replace(config.inputs, stack=under(config.inputs.stack)),
        output=dataclasses.replace(config.output, cube=under(config.output.cube)),
        simulation=None if sim is None else dataclasses.replace(sim, truth=under(sim.truth)),
    )


def bundled_pipeline(name: str) -> Path:
    """Path of a pipeline YAML shipped inside the package (``pipelines/<name>.yaml``)."""
    path = Path(__file__).parent.parent / "pipelines" / f"{name}.yaml"
    if not path.is_file():
        available = sorted(p.stem for p in path.parent.glob("*.yaml"))
        raise ConfigError(f"no bundled pipeline named {name!r}; available: {available}")
    return path
