"""Which stores are ours: the only gate in front of anything lst_pipeline deletes.

A store is ours when its root ``zarr.json`` names its kind (:data:`KIND_ATTR`: ``cube``,
``stack`` or ``truth``) and it holds nothing but its own arrays and groups. Replacing or
removing a store goes through :func:`check_replaceable`, which also refuses any path that
is, contains or lies inside a protected one (the run's inputs).
"""

from __future__ import annotations

from collections.abc import Mapping

from lst_pipeline.config.locations import StorePath, as_store_path, is_remote, overlap
from lst_pipeline.errors import StoreError
from lst_pipeline.io.location import remove_tree
from lst_pipeline.io.zarr_store import KIND_ATTR, PRIVATE_GROUP, root_attrs

#: Human names of the store kinds, for messages.
KINDS = {"cube": "output cube", "stack": "input stack", "truth": "simulated truth store"}
#: Titles written by versions that had no :data:`KIND_ATTR` (their stores stay recognised).
_LEGACY_TITLES = {"lst_pipeline daily LST cube": "cube", "lst_pipeline input stack": "stack",
                  "lst_pipeline simulated truth": "truth"}
#: What :func:`remove_store` keeps when the process replacing a store holds its lock.
LOCK_FILES = (f"{PRIVATE_GROUP}/lock", f"{PRIVATE_GROUP}/zarr.json")


def store_kind(path: StorePath | str) -> str | None:
    """``cube``, ``stack`` or ``truth`` for a store written by lst_pipeline, else None."""
    attrs = root_attrs(path)
    if attrs is None:
        return None
    kind = attrs.get(KIND_ATTR)
    if kind in KINDS:
        return kind
    title = str(attrs.get("title", ""))
    return next((k for t, k in _LEGACY_TITLES.items() if title.startswith(t)), None)


def _a(noun: str) -> str:
    return f"{'an' if noun[0] in 'aeiou' else 'a'} {noun}"


def protected_clash(path: StorePath, protected: Mapping[str, StorePath | str]) -> str | None:
    """How ``path`` is, contains or lies inside one of ``protected``; None if it does not."""
    for name, other in protected.items():
        relation = overlap(path, as_store_path(other))
        if relation == "same":
            return f"it is {name} ({other})"
        if relation == "contains":
            return f"it contains {name} ({other})"
        if relation == "inside":
            return f"it lies inside {name} ({other})"
    return None


def is_unborn(path: StorePath) -> bool:
    """An empty directory, or one holding only our private group (a store being created)."""
    entries = _children(path)
    return not entries or (len(entries) == 1 and entries[0].name == PRIVATE_GROUP
                           and (entries[0] / "zarr.json").is_file())


def _foreign_entries(path: StorePath) -> list[str]:
    """Entries of a store directory that are not part of a Zarr v3 store of ours."""
    foreign = []
    for entry in sorted(_children(path), key=lambda e: e.name):
        if entry.name == "zarr.json" and entry.is_file():
            continue
        if entry.is_dir() and not _is_link(entry) and (entry / "zarr.json").is_file():
            continue  # an array or group of the store, or our private group
        foreign.append(entry.name)
    return foreign


def _children(path: StorePath) -> list[StorePath]:
    from typing import cast

    return cast("list[StorePath]", list(path.iterdir()))


def _is_link(path: StorePath) -> bool:
    return not is_remote(path) and path.is_symlink()  # objects stores have no links


def check_replaceable(path: StorePath | str, kind: str, *, field: str,
                      protected: Mapping[str, StorePath | str] | None = None,
                      source: str | None = None) -> bool:
    """Check that ``path`` may be (re)created as a store of ``kind``; True if it exists.

    A path may be written when it is absent, an empty directory, or a store that is
    provably one of ours of the expected kind: its ``zarr.json`` says so and it holds
    nothing but the store's own arrays and groups. It may never be, contain or lie inside a
    ``protected`` path (the run's input stack, a rechunk's source).

    Parameters
    ----------
    path
        The store to replace.
    kind
        ``cube``, ``stack`` or ``truth``.
    field
        Where the path comes from (``output.cube``), for the message.
    protected
        ``{description: path}`` that must never be touched.
    source
        For stacks: the ``source`` attribute the store must carry (``lst_pipeline.simulate``
        for ``simulate --overwrite``: an ingested stack is never replaced by a simulation).

    Returns
    -------
    bool
        Whether a store exists at ``path`` (False: absent, an empty directory, or one that
        holds only our private group, as while another run is creating the store).

    Raises
    ------
    StoreError
        Naming the path and why it is not ours to replace; nothing has been changed.
    """
    path = as_store_path(path)
    clash = protected_clash(path, protected or {})
    what = KINDS[kind]
    if clash:
        raise StoreError(f"{field}: {path} cannot be the {what}: {clash}; choose another path "
                         "(nothing was changed)")
    if _is_link(path):
        raise StoreError(f"{field}: {path} is a symbolic link; give the real path of the "
                         f"{what} (nothing was changed)")
    if not path.exists():
        return False
    if not path.is_dir():
        raise StoreError(f"{field}: {path} is a file, not a Zarr store; choose another path "
                         "(nothing was changed)")
    if is_unborn(path):
        return False
    found = store_kind(path)
    if found is None:
        raise StoreError(f"{field}: {path} exists and is not a store written by lst_pipeline; "
                         "it is never deleted or written into: choose another path (nothing "
                         "was changed)")
    if found != kind:
        raise StoreError(f"{field}: {path} is an lst_pipeline {KINDS[found]}, not {_a(what)}; "
                         "it is never replaced by one: choose another path (nothing was "
                         "changed)")
    if source is not None and (root_attrs(path) or {}).get("source") != source:
        raise StoreError(f"{field}: {path} is {_a(what)} written by "
                         f"{(root_attrs(path) or {}).get('source', 'another command')}, not by "
                         f"{source}; it is never replaced: choose another path (nothing was "
                         "changed)")
    foreign = _foreign_entries(path)
    if foreign:
        raise StoreError(f"{field}: {path} is {_a(what)} but also holds {', '.join(foreign[:3])}"
                         f"{' ...' if len(foreign) > 3 else ''}, which are not part of it; "
                         "refusing to delete them: move them out or choose another path "
                         "(nothing was changed)")
    return True


def remove_store(path: StorePath | str, kind: str, *, field: str,
                 protected: Mapping[str, StorePath | str] | None = None,
                 source: str | None = None,
                 keep: tuple[str, ...] = ()) -> None:
    """Delete a store that :func:`check_replaceable` proves is ours (else nothing happens).

    Parameters
    ----------
    path, kind, field, protected, source
        As for :func:`check_replaceable`.
    keep
        Paths relative to the store that are kept (``_lst_pipeline/lock`` of the run doing
        the replacement).
    """
    path = as_store_path(path)
    if not check_replaceable(path, kind, field=field, protected=protected, source=source):
        return
    kept = {str(path / k) for k in keep}
    for entry in _children(path):
        if str(entry) in kept:
            continue
        inner = [k for k in kept if k.startswith(str(entry) + "/")]
        if inner:  # a kept file inside this folder: empty the folder around it
            for sub in _children(entry):
                if str(sub) not in kept:
                    remove_tree(sub) if sub.is_dir() else sub.unlink()
        elif entry.is_dir():
            remove_tree(entry)
        else:
            entry.unlink()
