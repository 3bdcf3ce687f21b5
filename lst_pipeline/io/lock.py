"""The writer lock of a store: one command writes a store at a time.

``<store>/_lst_pipeline/lock`` is written in full under a temporary name and hard-linked
into place, which fails if a lock exists. A lock whose process is dead (same host) is stale
and taken over.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from lst_pipeline.errors import StoreError
from lst_pipeline.io.ownership import check_replaceable, is_unborn
from lst_pipeline.io.zarr_store import PRIVATE_GROUP, private_dir


class StoreLock:
    """A writer lock inside a store: ``<store>/_lst_pipeline/lock``, created exclusively.

    The lock file is written in full under a temporary name and then hard-linked into place,
    which fails if a lock exists: two processes that start together cannot both hold it, and
    a lock file is never seen half-written. A lock whose process is dead (same host) is stale
    and taken over.

    Parameters
    ----------
    store
        The store directory (created with the private group if absent).
    what
        What the holder is doing, for the message (``another run is writing this cube``).
    """

    def __init__(self, store: Path | str,
                 what: str = "another command is writing this store") -> None:
        self.store = Path(store)
        self.path = self.store / PRIVATE_GROUP / "lock"
        self.what = what

    def acquire(self) -> None:
        """Take the lock, or refuse if a live process holds it.

        Raises
        ------
        StoreError
            Naming the process that holds the lock, or the unreadable lock file.
        """
        import json
        import os
        import socket
        import time

        private_dir(self.store)
        me = {"pid": os.getpid(), "host": socket.gethostname(),
              "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        tmp = self.path.with_name(f".lock.{os.getpid()}.tmp")
        for _ in range(2):
            tmp.write_text(json.dumps(me))
            try:
                _link_exclusive(tmp, self.path)
            except FileExistsError:
                holder = self.holder()
                if holder is None:
                    raise StoreError(
                        f"{self.path}: lock file is empty or unreadable (lst_pipeline never "
                        "leaves one so); if no lst-pipeline command is using "
                        f"{self.store}, delete this file and start again") from None
                if holder.get("host") == me["host"] and not _pid_alive(holder.get("pid")):
                    self.path.unlink(missing_ok=True)  # stale: its process is dead
                    continue
                raise StoreError(
                    f"{self.store}: {self.what} (pid {holder.get('pid')} "
                    f"on {holder.get('host')}, since {holder.get('started')}); wait for it, or "
                    f"if it died on another host delete {self.path}") from None
            finally:
                tmp.unlink(missing_ok=True)
            return
        raise StoreError(f"{self.store}: could not take the lock {self.path}")

    def release(self) -> None:
        """Give the lock up (only if this process holds it)."""
        import os

        holder = self.holder()
        if holder is not None and holder.get("pid") == os.getpid():
            self.path.unlink(missing_ok=True)

    def holder(self) -> dict | None:
        """The holder's ``pid``, ``host`` and ``started``; None if unreadable or absent."""
        import json

        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) and "pid" in data else None

    def __enter__(self) -> StoreLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _link_exclusive(source: Path, target: Path) -> None:
    """Create ``target`` with ``source``'s content, failing if it exists (atomic)."""
    import os

    try:
        os.link(source, target)
    except FileExistsError:
        raise
    except OSError:  # no hard links on this file system: exclusive create instead
        fd = os.open(target, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        with os.fdopen(fd, "w") as fh:
            fh.write(source.read_text())


def _pid_alive(pid: object) -> bool:
    import os

    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def lock_store(path: Path | str, kind: str, *, field: str, what: str,
               protected: Mapping[str, Path | str] | None = None) -> tuple[StoreLock, bool]:
    """Check that ``path`` is ours (or free), create its directory if absent, and lock it.

    The lock is taken before any store metadata is written, so two commands started
    together cannot both create or resume the store. Nothing is created in a path that
    :func:`check_replaceable` refuses.

    Returns
    -------
    (lock, created)
        The held lock, and whether this call created the directory (the caller removes it
        with :func:`discard_unborn` if it gives up before writing the store).
    """
    path = Path(path)
    check_replaceable(path, kind, field=field, protected=protected)
    created = False
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            path.mkdir()
            created = True
        except FileExistsError:  # another command just created it: the lock decides
            pass
    lock = StoreLock(path, what)
    try:
        lock.acquire()
        check_replaceable(path, kind, field=field, protected=protected)  # again, locked
    except BaseException:
        lock.release()
        if created:
            discard_unborn(path)
        raise
    return lock, created


def discard_unborn(path: Path | str) -> None:
    """Remove a store directory that never got its metadata (only our private group in it).

    Anything else in it is left alone; a lock of another live process keeps it too.
    """
    import shutil

    path = Path(path)
    if not path.is_dir() or (path / "zarr.json").exists():
        return
    if not is_unborn(path):
        return
    holder = StoreLock(path).holder()
    if holder is not None and _pid_alive(holder.get("pid")):
        return
    shutil.rmtree(path)
