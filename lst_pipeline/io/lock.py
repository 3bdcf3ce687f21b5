"""The writer lock of a store: one command writes a store at a time.

``<store>/_lst_pipeline/lock`` is created only if absent
(:func:`~lst_pipeline.io.location.create_exclusive`: a hard link on disk, a conditional
write on S3). A lock whose process is dead (same host) is stale and taken over.
"""

from __future__ import annotations

from collections.abc import Mapping

from lst_pipeline.config.locations import StorePath, as_store_path
from lst_pipeline.errors import StoreError
from lst_pipeline.io.location import create_exclusive, make_dirs, remove_tree
from lst_pipeline.io.ownership import check_replaceable, is_unborn, protected_clash
from lst_pipeline.io.zarr_store import PRIVATE_GROUP, private_dir


class StoreLock:
    """A writer lock inside a store: ``<store>/_lst_pipeline/lock``, created exclusively.

    The lock document is created only if absent, in one step (a hard link of a complete
    temporary file on disk, a conditional write on S3): two processes that start together
    cannot both hold it, and a lock is never seen half-written. A lock whose process is
    dead (same host) is stale and taken over.

    Parameters
    ----------
    store
        The store directory (created with the private group if absent).
    what
        What the holder is doing, for the message (``another run is writing this cube``).
    """

    def __init__(self, store: StorePath | str,
                 what: str = "another command is writing this store") -> None:
        self.store = as_store_path(store)
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
        for _ in range(2):
            if not create_exclusive(self.path, json.dumps(me)):
                holder = self.holder()
                if holder is None:
                    raise StoreError(
                        f"{self.path}: lock file is empty or unreadable (lst_pipeline never "
                        "leaves one so); if no lst-pipeline command is using "
                        f"{self.store}, delete this file and start again") from None
                if _stale(holder):
                    self.path.unlink(missing_ok=True)  # its process is dead
                    continue
                raise self._held_by(holder) from None
            return
        raise StoreError(f"{self.store}: could not take the lock {self.path}")

    def live_holder_error(self) -> StoreError | None:
        """The refusal naming a live process that holds the lock; None if nobody does.

        A holder on another host counts as live (its process cannot be checked from here).
        """
        holder = self.holder()
        return None if holder is None or _stale(holder) else self._held_by(holder)

    def _held_by(self, holder: dict) -> StoreError:
        return StoreError(
            f"{self.store}: {self.what} (pid {holder.get('pid')} on {holder.get('host')}, "
            f"since {holder.get('started')}); wait for it, or if it died on another host "
            f"delete {self.path}")

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


def _stale(holder: dict) -> bool:
    """A lock taken on this host by a process that is no longer running."""
    import socket

    return holder.get("host") == socket.gethostname() and not _pid_alive(holder.get("pid"))


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


def refuse_if_locked(path: StorePath | str, what: str) -> None:
    """Refuse at once if a live command holds the lock of the store at ``path``.

    For commands that plan for minutes or start a cluster before they write: a second one
    must not spend either before :func:`lock_store` refuses it. Advisory only: the lock is
    taken by :func:`lock_store`, so two commands that pass this check together are still
    told apart there.

    Raises
    ------
    StoreError
        Naming the process that holds the lock (``what`` says what it is doing).
    """
    busy = StoreLock(path, what).live_holder_error()
    if busy is not None:
        raise busy


def lock_store(path: StorePath | str, kind: str, *, field: str, what: str,
               protected: Mapping[str, StorePath | str] | None = None
               ) -> tuple[StoreLock, bool]:
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
    path = as_store_path(path)
    try:
        check_replaceable(path, kind, field=field, protected=protected)
    except StoreError:
        # a store another live command is creating fails the unlocked check halfway
        # through (arrays written, root attributes not yet): name that command instead
        # (never for a path that clashes with a protected one: that refusal stands)
        busy = (StoreLock(path, what).live_holder_error()
                if path.is_dir() and not protected_clash(path, protected or {}) else None)
        if busy is not None:
            raise busy from None
        raise
    created = make_dirs(path)
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


def discard_unborn(path: StorePath | str) -> None:
    """Remove a store directory that never got its metadata (only our private group in it).

    Anything else in it is left alone; a lock of another live process keeps it too.
    """
    path = as_store_path(path)
    if not path.is_dir() or (path / "zarr.json").exists():
        return
    if not is_unborn(path):
        return
    holder = StoreLock(path).holder()
    if holder is not None and _pid_alive(holder.get("pid")):
        return
    remove_tree(path)
