"""Where a store lives: a local path, or an object-store URL (``s3://``, ``gs://`` ...).

A store path is a :class:`pathlib.Path` (local or mounted file systems) or a
:class:`upath.UPath` (fsspec, with the configuration's ``storage_options`` and the standard
environment variables for credentials). Both have pathlib's interface; what differs when
reading and writing is in :mod:`lst_pipeline.io.location`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

from lst_pipeline.errors import ConfigError, MissingDependencyError

if TYPE_CHECKING:
    from typing_extensions import TypeIs
    from upath import UPath

#: A store's location: a local path or an fsspec URL path.
StorePath: TypeAlias = "Path | UPath"

#: URL schemes a store may have, and the fsspec package each needs.
STORE_SCHEMES = {"s3": "s3fs", "s3a": "s3fs", "gs": "gcsfs", "gcs": "gcsfs", "az": "adlfs",
                 "abfs": "adlfs", "abfss": "adlfs", "memory": "fsspec"}
#: Schemes whose fsspec implementation takes ``use_listings_cache`` (switched off: a run
#: lists completion records that other processes have just written).
_LISTING_CACHES = {"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss"}


def store_url(value: str, where: str, storage_options: dict[str, Any] | None = None) -> UPath:
    """An object-store location from a URL of :data:`STORE_SCHEMES`.

    Parameters
    ----------
    value
        ``s3://bucket/path.zarr`` and the like.
    where
        The field or option the URL comes from, for messages.
    storage_options
        fsspec options (endpoint, credentials, ...); none are needed when the standard
        environment variables (``AWS_ACCESS_KEY_ID``, ``AWS_ENDPOINT_URL`` ...) are set.

    Raises
    ------
    ConfigError
        If the scheme is not one a store can have, or the URL names no path in a bucket.
    MissingDependencyError
        If the fsspec implementation of the scheme is not installed.
    """
    import importlib.util

    scheme, _, rest = value.partition("://")
    scheme = scheme.lower()
    if scheme not in STORE_SCHEMES:
        raise ConfigError(f"{where}: {value}: a store cannot be at a {scheme}:// URL; give a "
                          f"local path or a URL of {', '.join(sorted(STORE_SCHEMES))}")
    if scheme != "memory" and "/" not in rest.strip("/"):
        raise ConfigError(f"{where}: {value} names a bucket, not a store inside it; give a "
                          f"path such as {scheme}://{rest.strip('/') or 'bucket'}/name.zarr")
    package = STORE_SCHEMES[scheme]
    if importlib.util.find_spec(package) is None:
        extra = {"s3fs": "cloud", "gcsfs": "gcs", "adlfs": "azure"}[package]
        raise MissingDependencyError(f"{where}: {value} needs the {package} package; install "
                                     f"it (pip install {package}, or lst-pipeline[{extra}])")
    from upath import UPath

    options = dict(storage_options or {})
    if scheme in _LISTING_CACHES:
        options.setdefault("use_listings_cache", False)
    return UPath(value.rstrip("/"), **options)


def is_remote(path: Any) -> TypeIs[UPath]:
    """Whether ``path`` is an object-store location (not a local or mounted path)."""
    return not isinstance(path, Path) and hasattr(path, "storage_options")


def as_store_path(path: Any) -> StorePath:
    """A store path as given (``Path`` or ``UPath``), or a ``Path`` made from a string."""
    return path if is_remote(path) else Path(path)


def require_local(path: StorePath, what: str) -> Path:
    """``path`` itself if it is local.

    Raises
    ------
    ConfigError
        Naming ``what`` if ``path`` is an object-store URL.
    """
    if is_remote(path):
        raise ConfigError(f"{what}: {path} is an object-store URL; this needs a local path")
    return path


def overlap(a: StorePath, b: StorePath) -> str | None:
    """``same``, ``inside`` (``a`` lies inside ``b``), ``contains`` or None (apart)."""
    if is_remote(a) or is_remote(b):
        if not (is_remote(a) and is_remote(b)):
            return None
        ka, kb = str(a).rstrip("/"), str(b).rstrip("/")
        if ka == kb:
            return "same"
        if ka.startswith(kb + "/"):
            return "inside"
        return "contains" if kb.startswith(ka + "/") else None
    ra, rb = a.resolve(), b.resolve()
    if ra == rb:
        return "same"
    if rb in ra.parents:
        return "inside"
    return "contains" if ra in rb.parents else None


#: ``scheme://`` at the start of a path: a URL, not a file name.
_URL = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://")


def local_path(value: str, where: str) -> Path:
    """A local path from a configuration value or argument; ``file://`` URLs accepted.

    Other URLs (``s3://``, ``http(s)://`` ...) are refused: inputs, checkpoints and reports
    are read and written on local or mounted file systems (stores may be at URLs:
    :func:`store_path`), and a URL taken as a file name would quietly write a directory
    named ``s3:`` here.

    Raises
    ------
    ConfigError
        Naming ``where`` (the field or option) for a URL that is not ``file://``.
    """
    match = _URL.match(value)
    if match is None:
        return Path(value).expanduser()
    scheme = match["scheme"].lower()
    if scheme == "file":
        from urllib.parse import unquote, urlparse

        return Path(unquote(urlparse(value).path))
    raise ConfigError(f"{where}: {value} is a {scheme}:// URL; only Zarr stores (inputs.stack, "
                      "output.cube, simulation.truth) may be on object storage: give a local "
                      "path or a mounted file system (e.g. an s3fs, gcsfuse or blobfuse mount)")


def store_path(value: str, where: str, storage_options: Mapping[str, Any] | None = None
               ) -> StorePath:
    """A store's location: a local path, or an object-store URL (``s3://``, ``gs://`` ...).

    Parameters
    ----------
    value
        A path, a ``file://`` URL, or a URL of
        :data:`~lst_pipeline.config.locations.STORE_SCHEMES`.
    where
        The field or option the value comes from, for messages.
    storage_options
        fsspec options for URLs (the configuration's ``storage_options``).

    Raises
    ------
    ConfigError
        Naming ``where`` for a URL a store cannot have (``http://``, ``ftp://`` ...).
    """
    match = _URL.match(value)
    if match is None or match["scheme"].lower() == "file":
        return local_path(value, where)
    return store_url(value, where, dict(storage_options or {}))


#: URL schemes an input file (scene band, MTL, MODIS tile, STAC asset) may have.
INPUT_SCHEMES = ("http", "https", "s3")


def input_path(value: Any, where: str = "input") -> Path | UPath:
    """An input file's location: a local ``Path``, or a ``UPath`` for an ``http(s)://`` URL.

    GeoTIFF and COG bands at URLs are read with windowed range requests (GDAL's
    ``/vsicurl/`` and ``/vsis3/``); small text files (MTL) are fetched whole; HDF4 tiles are
    downloaded to a temporary file, which the format needs
    (:func:`lst_pipeline.io.location.local_copy`). ``s3://`` inputs (a ``UPath`` too)
    take their credentials and endpoint from the standard environment variables
    (``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_ENDPOINT_URL`` ...), which
    both fsspec and GDAL read.

    Raises
    ------
    ConfigError
        For a URL of another scheme (``gs://``, ``az://`` inputs: mount the storage, or give
        the files' ``https://`` URLs).
    """
    if is_remote(value):
        return value
    text = str(value)
    match = _URL.match(text)
    scheme = match["scheme"].lower() if match else "file"
    if scheme == "file":
        return local_path(text, where)
    if scheme not in INPUT_SCHEMES:
        raise ConfigError(f"{where}: {text}: input files are read from local paths or "
                          f"{' / '.join(s + '://' for s in INPUT_SCHEMES)} URLs, not "
                          f"{scheme}://; mount the storage or give the files' https URLs")
    if scheme == "s3":  # credentials and endpoint from the environment, as GDAL reads them
        return store_url(text, where)
    import importlib.util

    if importlib.util.find_spec("aiohttp") is None:
        raise MissingDependencyError(f"{where}: {text} needs aiohttp to be fetched; install "
                                     "it (pip install aiohttp, or lst-pipeline[cloud])")
    from upath import UPath

    return UPath(text)


def input_size(path: Path | UPath) -> int | None:
    """Bytes of an input file, None if it does not exist (one HEAD request for a URL).

    (fsspec's ``is_file`` on ``http(s)://`` starts a GET of the whole file.)
    """
    if not is_remote(path):
        return path.stat().st_size if path.is_file() else None
    try:
        return int(path.fs.size(path.path) or 0)
    except FileNotFoundError:
        return None


def is_input_file(path: Path | UPath) -> bool:
    """Whether an input file exists (:func:`input_size`)."""
    return input_size(path) is not None
