"""Reading and writing at a store's location: what differs between disk and object storage.

Store paths (:data:`~lst_pipeline.config.locations.StorePath`) are ``Path`` or ``UPath``;
the records, the lock and the ownership checks use their common pathlib interface. This
module holds what differs:

- the Zarr store to open (:func:`zarr_store`);
- writing a small document atomically (:func:`write_atomic`) and creating one only if it is
  absent (:func:`create_exclusive`, the lock): a hard link on disk, a conditional write
  (``If-None-Match: *``) on S3 and in memory;
- creating and deleting directories (:func:`make_dirs`, :func:`remove_tree`);
- one line for an object store's refusal (:func:`describe_backend_error`).

Object stores have no directories: a "directory" exists while an object lies under it, and
creating one is a no-op. Object writes are atomic (a reader sees the old object or the new
one), so chunk writes leave no partial files to sweep.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from lst_pipeline.config.locations import StorePath, is_remote
from lst_pipeline.errors import StoreError

#: Schemes whose backend refuses a write that would replace an object (create-if-absent).
CONDITIONAL_WRITES = {"s3", "s3a", "memory"}


def zarr_store(path: StorePath, *, read_only: bool = False) -> Any:
    """The Zarr store at ``path``: a local directory or an fsspec store."""
    if not is_remote(path):
        import zarr.storage

        return zarr.storage.LocalStore(str(path), read_only=read_only)
    import warnings

    from zarr.storage import FsspecStore

    options = dict(path.storage_options)
    if path.protocol in ("s3", "s3a"):
        # s3fs asks for an object's size (one more request) before every whole-object read,
        # to split large files over connections; Zarr chunks are a few MiB, so that only
        # doubles the requests (a user's own setting wins)
        options.setdefault("max_concurrency", 1)
    with warnings.catch_warnings():  # memory:// is synchronous: zarr wraps it, and says so
        warnings.simplefilter("ignore", UserWarning)
        return FsspecStore.from_url(str(path), storage_options=options, read_only=read_only)


def write_atomic(path: StorePath, text: str) -> None:
    """Replace ``path`` by ``text`` atomically (a reader sees the old or the new document)."""
    if is_remote(path):
        path.write_text(text)  # one PUT: atomic on every object store
        return
    import os

    tmp = _temporary(path, text)
    os.replace(tmp, path)


def _temporary(path: Path, text: str) -> Path:
    """``text`` written in full beside ``path``, under a name of this process."""
    import os

    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    return tmp


def create_exclusive(path: StorePath, text: str) -> bool:
    """Create ``path`` holding ``text`` unless it exists; True if this call created it.

    On disk the document is written under a temporary name and hard-linked into place (an
    exclusive create where hard links are missing). On S3 and in memory it is one
    conditional write. Backends without conditional writes get a write after a check,
    which two writers starting in the same instant can both pass (README, "Running in the
    cloud").
    """
    if is_remote(path):
        scheme = str(path).split("://", 1)[0].lower()
        if scheme in CONDITIONAL_WRITES:
            try:
                path.fs.pipe_file(path.path, text.encode(), mode="create")
            except FileExistsError:
                return False
            return True
        if path.exists():
            return False
        path.write_text(text)
        return True
    import os

    tmp = _temporary(path, text)
    try:
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        except OSError:  # no hard links on this file system
            try:
                fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                return False
            with os.fdopen(fd, "w") as fh:
                fh.write(text)
        return True
    finally:
        tmp.unlink(missing_ok=True)


def ensure_dir(path: StorePath) -> None:
    """Create the directory ``path`` and its parents if absent (nothing on object stores)."""
    if not is_remote(path):
        path.mkdir(parents=True, exist_ok=True)


def make_dirs(path: StorePath) -> bool:
    """Create the directory ``path`` (and its parents); True if it was absent.

    Object stores have no directories: nothing is created there, the bucket must exist, and
    the prefix counts as absent while no object lies under it. A caller that gives up
    before writing a store removes what it began with ``discard_unborn``.

    Raises
    ------
    StoreError
        If the bucket of an object-store path does not exist or cannot be reached.
    """
    if is_remote(path):
        bucket = path.path.split("/", 1)[0]
        if str(path).startswith("memory://"):
            return not path.exists()
        try:
            found = path.fs.exists(bucket)
        except Exception as exc:  # credentials, endpoint, network: the backend's own words
            raise StoreError(f"{path}: cannot reach the bucket {bucket} "
                             f"({type(exc).__name__}: {exc})") from exc
        if not found:
            raise StoreError(f"{path}: the bucket {bucket} does not exist; create it first "
                             "(lst_pipeline never creates buckets)")
        return not path.exists()
    if path.exists():
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        path.mkdir()
    except FileExistsError:
        return False
    return True


def remove_tree(path: StorePath) -> None:
    """Delete a directory and everything in it (every object under an object-store prefix)."""
    if is_remote(path):
        path.fs.rm(path.path, recursive=True)
        return
    import shutil

    shutil.rmtree(path)


@contextlib.contextmanager
def local_copy(path: Any, suffix: str = "") -> Iterator[str]:
    """A local file name for ``path``: itself, or a temporary download of a URL (removed after).

    For formats whose library reads only local files (HDF4 through pyhdf). The download
    is streamed to disk in blocks, never held in memory whole.

    Raises
    ------
    InputError
        If the URL cannot be fetched (naming it).
    """
    import os
    import shutil
    import tempfile

    from lst_pipeline.config.locations import input_path
    from lst_pipeline.errors import InputError

    where = input_path(path)
    if not is_remote(where):
        yield str(where)
        return
    fd, name = tempfile.mkstemp(prefix="lst-pipeline-", suffix=suffix)
    try:
        try:
            with os.fdopen(fd, "wb") as out, where.open("rb") as src:
                shutil.copyfileobj(src, out, 1 << 20)
        except Exception as exc:  # HTTP errors come from aiohttp, not as OSError
            raise InputError(f"{path}: cannot download ({type(exc).__name__}: {exc})") from exc
        yield name
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name)


#: Packages whose exceptions mean the object store refused or could not be reached.
_BACKENDS = ("botocore", "aiobotocore", "s3fs", "gcsfs", "google", "adlfs", "azure", "aiohttp")


def describe_backend_error(exc: BaseException) -> str | None:
    """One line for an object-store error (credentials, endpoint, permissions); else None.

    Credentials are never part of the line: it names the exception and the backend's own
    message, which names the bucket or key at fault, and says where credentials come from.
    """
    chain: BaseException | None = exc
    seen: set[int] = set()
    while chain is not None and id(chain) not in seen:
        seen.add(id(chain))
        if type(chain).__module__.split(".")[0] in _BACKENDS:
            return (f"object storage: {type(chain).__name__}: {chain}; check the credentials "
                    "and endpoint (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_ENDPOINT_URL "
                    "or the configuration's storage_options) and that the bucket exists")
        chain = chain.__cause__ or chain.__context__
    return None
