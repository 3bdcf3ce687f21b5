"""Writing input stacks: date by date, and an ingest's staging and commit.

:class:`StackWriter` fills a stack made by :func:`~lst_pipeline.io.stack.create_stack`.
:class:`StackCommit` is how an ingest grows one without a torn state: every date is read
into a staging store inside the stack (``_lst_pipeline/staging.zarr``), the stored dates
that must move to make room are copied into ``tail.zarr``, a commit journal
(``_lst_pipeline/commit.json``) is written and applied. The commit copies only from the
staging stores, never from the stack into itself, so it can be repeated after a crash: the
next ingest into the stack finishes it first.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from lst_pipeline.config.locations import StorePath, as_store_path, is_remote
from lst_pipeline.io import landsat, modis
from lst_pipeline.io.ownership import remove_store
from lst_pipeline.io.stack import (
    CONTENT_RECORD,
    LANDSAT_CLEAR,
    LANDSAT_HOUR,
    LANDSAT_LST,
    LANDSAT_QA,
    LANDSAT_ST_UNCERTAINTY,
    MODIS_CLEAR,
    MODIS_LST,
    MODIS_QC,
    MODIS_VALID,
    MODIS_VIEW_TIME,
    TIME_DIMS,
    IngestRecord,
    create_stack,
    decode_dates,
    read_content,
    stack_dates,
)
from lst_pipeline.io.zarr_store import (
    PRIVATE_GROUP,
    content_digest,
    delete_json,
    open_group,
    private_dir,
    read_json,
    set_status,
    write_json,
)

if TYPE_CHECKING:
    from lst_pipeline.grid import TargetGrid

#: Staging stores and the commit journal, inside the stack's private group.
STAGING = "staging.zarr"
TAIL = "tail.zarr"
JOURNAL = "commit.json"
SENSORS = ("landsat", "modis")
#: The per-date arrays of each sensor: clear fraction and acquisition (view) time.
_SCALARS = {"landsat": (LANDSAT_CLEAR, LANDSAT_HOUR), "modis": (MODIS_CLEAR, MODIS_VIEW_TIME)}
#: Most bytes of one array copied at once by the commit (bounds its memory).
COMMIT_BLOCK_BYTES = 16 << 20


class StackWriter:
    """Fills an input stack created by :func:`create_stack`, date by date or in batches.

    Every write records a digest of the LST it wrote (:attr:`content`), which
    :meth:`finish` keeps in the store (``_lst_pipeline/content.json``): a cube records the
    digests of the dates it was computed from, so a resume sees exactly which dates changed.
    """

    def __init__(self, path: StorePath | str, *, defer_scalars: bool = False) -> None:
        self.path = as_store_path(path)
        self._group = open_group(self.path, mode="r+")
        self.content: dict[str, dict[str, str]] = {"landsat": {}, "modis": {}}
        self._dates: dict[str, np.ndarray] = {}
        #: With ``defer_scalars``, the per-date values (clear fraction, time) are kept here
        #: instead of written: they share one chunk for all dates, so writers in several
        #: processes hand them to one that writes them all (:meth:`write_scalars`).
        self.deferred: dict[str, list[tuple[int, float, float]]] | None = (
            {"landsat": [], "modis": []} if defer_scalars else None)

    @property
    def modis_time_chunk(self) -> int:
        """Days per chunk of the MODIS arrays (writers in other processes own whole ones)."""
        return int(self._group[MODIS_LST].chunks[0])

    def _date(self, sensor: str, index: int) -> str:
        if sensor not in self._dates:
            self._dates[sensor] = decode_dates(self._group[TIME_DIMS[sensor]])
        return str(self._dates[sensor][index])

    def write_landsat(self, index: int, qa_pixel: np.ndarray, lst_k: np.ndarray, *,
                      masked: bool = False, hour_utc: float = float("nan"),
                      st_uncertainty: np.ndarray | float | None = None) -> float:
        """Write one Landsat date: QA bits and LST, masked from the QA bits.

        Parameters
        ----------
        index
            Date position in the stack.
        qa_pixel, lst_k
            QA_PIXEL bits and Kelvin on the fine grid.
        masked
            ``lst_k`` is already NaN wherever it is unusable (ingested scenes are masked
            on their own pixels before resampling); otherwise mask from ``qa_pixel``.
        hour_utc
            Acquisition time, hours after 00:00 UTC.
        st_uncertainty
            ST_QA uncertainty (K) on the fine grid, or one value for every pixel (a
            simulated sensor's noise); kept on usable pixels (None: unknown).

        Returns
        -------
        float
            The clear fraction recorded for that date.
        """
        usable = np.isfinite(lst_k)
        if not masked:
            usable &= landsat.usable_mask(qa_pixel)
        lst = np.where(usable, lst_k, np.nan).astype(np.float32)
        self._group[LANDSAT_LST][index] = lst
        self._group[LANDSAT_QA][index] = qa_pixel.astype(np.uint16)
        if st_uncertainty is not None and LANDSAT_ST_UNCERTAINTY in self._group.array_keys():
            sigma = np.broadcast_to(np.asarray(st_uncertainty, np.float32), lst.shape)
            self._group[LANDSAT_ST_UNCERTAINTY][index] = np.where(
                usable, sigma, np.nan).astype(np.float16)
        clear = float(usable.mean())
        self._scalars("landsat", index, [clear], [hour_utc])
        self.content["landsat"][self._date("landsat", index)] = content_digest(lst)
        return clear

    def write_modis(self, start: int, qc: np.ndarray, lst_k: np.ndarray, *,
                    masked: bool = False, valid_fraction: np.ndarray | None = None,
                    view_time_h: np.ndarray | None = None) -> np.ndarray:
        """Write consecutive MODIS days ``start, start + 1, ...`` (arrays ``(days, yc, xc)``).

        Parameters
        ----------
        start
            Position of the first day in the stack.
        qc, lst_k
            QC bits and Kelvin on the coarse grid.
        masked
            ``lst_k`` is already NaN wherever it is unusable; otherwise mask from ``qc``.
        valid_fraction
            Usable fraction of each coarse cell (default: 1 where usable, else 0).
        view_time_h
            Mean view time of each day (hours, local solar).

        Returns
        -------
        numpy.ndarray
            The clear fraction of each day.
        """
        usable = np.isfinite(lst_k)
        if not masked:
            usable &= modis.usable_mask(qc)
        lst = np.where(usable, lst_k, np.nan).astype(np.float32)
        if valid_fraction is None:
            valid_fraction = usable.astype(np.float32)
        stop = start + lst.shape[0]
        clear = usable.reshape(lst.shape[0], -1).mean(axis=1).astype(np.float32)
        self._group[MODIS_LST][start:stop] = lst
        self._group[MODIS_QC][start:stop] = qc.astype(np.uint8)
        self._group[MODIS_VALID][start:stop] = valid_fraction.astype(np.float32)
        self._scalars("modis", start, clear.tolist(), None if view_time_h is None
                      else np.asarray(view_time_h, np.float64).tolist())
        for k in range(lst.shape[0]):
            self.content["modis"][self._date("modis", start + k)] = content_digest(lst[k])
        return clear

    def _scalars(self, sensor: str, start: int, clear: list[float],
                 times: list[float] | None) -> None:
        """Write (or defer) the clear fraction and time of dates ``start, start + 1 ...``."""
        if self.deferred is not None:
            times = times if times is not None else [float("nan")] * len(clear)
            self.deferred[sensor] += [(start + k, float(c), float(t))
                                      for k, (c, t) in enumerate(zip(clear, times))]
            return
        clear_name, time_name = _SCALARS[sensor]
        stop = start + len(clear)
        self._group[clear_name][start:stop] = np.asarray(clear, np.float32)
        if times is not None:
            self._group[time_name][start:stop] = np.asarray(times, np.float32)

    def write_scalars(self, deferred: dict[str, list[tuple[int, float, float]]]) -> None:
        """Write the per-date values other writers deferred, one write per array.

        An unknown time is NaN, the arrays' fill value: the same as leaving it unwritten.
        """
        for sensor, rows in deferred.items():
            if not rows:
                continue
            index = np.array([r[0] for r in rows])
            for name, column in zip(_SCALARS[sensor], (1, 2)):
                arr = self._group[name]
                whole = arr[...]
                whole[index] = np.array([r[column] for r in rows], np.float32)
                arr[...] = whole

    def save_content(self) -> None:
        """Merge the digests of this writer's dates into the store's content record."""
        stored = read_content(self.path) or {"landsat": {}, "modis": {}}
        for sensor, entries in self.content.items():
            stored.setdefault(sensor, {}).update(entries)
        write_json(self.path, CONTENT_RECORD, stored)

    def finish(self) -> None:
        """Keep the content record and mark the stack complete (readers refuse it before)."""
        self.save_content()
        set_status(self.path, "complete", self._group)

    # -- commit of an ingest: idempotent operations, safe to repeat after a crash ----------

    def time_arrays(self, sensor: str) -> list[str]:
        """Names of the arrays indexed by ``sensor``'s time dimension (its coordinate too)."""
        dim = TIME_DIMS[sensor]
        return [n for n in self._group.array_keys()
                if n != dim and tuple(self._group[n].metadata.dimension_names or ())[:1]
                == (dim,)]

    def set_dates(self, sensor: str, dates: np.ndarray) -> None:
        """Give ``sensor`` exactly ``dates`` (sorted): resize its arrays, rewrite the coordinate.

        Data at positions that exist before and after is not moved: the caller writes every
        position whose date changed (see :meth:`copy_dates`). Repeating the call is harmless.
        """
        import xarray as xr

        dates = np.asarray(dates, dtype="datetime64[D]")
        for name in self.time_arrays(sensor):
            arr = self._group[name]
            if arr.shape[0] != len(dates):
                arr.resize((len(dates), *arr.shape[1:]))
        coord = self._group[TIME_DIMS[sensor]]
        attrs = dict(coord.attrs)
        encoded, _, _ = xr.coding.times.encode_cf_datetime(
            dates.astype("datetime64[ns]"), attrs.get("units"), attrs.get("calendar"))
        if coord.shape[0] != len(dates):
            coord.resize((len(dates),))
        if len(dates):
            coord[:] = np.asarray(encoded).astype(coord.dtype)
        self._dates.pop(sensor, None)

    def copy_dates(self, source: Any, sensor: str, src: np.ndarray, dst: np.ndarray, *,
                   block_bytes: int = COMMIT_BLOCK_BYTES) -> None:
        """Copy positions ``src`` of ``source`` (a stack group) to positions ``dst`` here.

        Every array on ``sensor``'s time dimension is copied, in runs of consecutive
        positions of at most ``block_bytes`` per array, so memory stays bounded.
        """
        names = self.time_arrays(sensor)
        if not len(src) or not names:
            return
        per_date = max(int(np.prod(source[n].shape[1:])) * source[n].dtype.itemsize
                       for n in names)
        for lo, hi in _runs(np.asarray(src), np.asarray(dst), max(1, block_bytes // per_date)):
            for name in names:
                self._group[name][int(dst[lo]):int(dst[hi - 1]) + 1] = \
                    source[name][int(src[lo]):int(src[hi - 1]) + 1]

    def set_status(self, status: str) -> None:
        """Set the store's status attribute (``writing`` while a commit is applied)."""
        set_status(self.path, status, self._group)


def _runs(src: np.ndarray, dst: np.ndarray, limit: int) -> list[tuple[int, int]]:
    """Split indices into runs where both ``src`` and ``dst`` advance by one.

    Runs are at most ``limit`` long, so each is one slice copy.
    """
    runs, lo = [], 0
    for i in range(1, len(src) + 1):
        if (i == len(src) or src[i] != src[i - 1] + 1 or dst[i] != dst[i - 1] + 1
                or i - lo >= limit):
            runs.append((lo, i))
            lo = i
    return runs


class StackCommit:
    """The staging area and commit of one ingest into ``stack``.

    Parameters
    ----------
    stack
        The input stack (it exists: :func:`~lst_pipeline.io.stack.create_stack`).
    grid
        Its grid (the staging stores are on it too).
    spatial_chunk
        Spatial chunk edge of the staging stores.
    attrs
        Root attributes of the staging stores.
    """

    def __init__(self, stack: StorePath | str, grid: TargetGrid, *, spatial_chunk: int,
                 attrs: dict[str, Any] | None = None) -> None:
        self.stack = as_store_path(stack)
        self.grid = grid
        self.spatial_chunk = spatial_chunk
        self.attrs = dict(attrs or {})

    def _path(self, name: str) -> StorePath:
        return self.stack / PRIVATE_GROUP / name

    def interrupted(self) -> dict[str, Any] | None:
        """The journal of an ingest that died during its commit (apply it first), if any."""
        return read_json(self.stack, JOURNAL)

    def remove_staging(self) -> None:
        """Delete staging stores left by an ingest that died before its commit."""
        for name in (STAGING, TAIL):
            path = self._path(name)
            if path.exists():
                remove_store(path, "stack", field=f"{self.stack} staging")
                if not is_remote(path):  # an object store's prefix is gone with its objects
                    path.rmdir()

    def staging_writer(self, landsat_dates: np.ndarray, modis_dates: np.ndarray
                       ) -> StackWriter:
        """Create the staging store for the dates to read and return its writer."""
        path = private_dir(self.stack) / STAGING
        create_stack(path, self.grid, landsat_dates, modis_dates,
                     spatial_chunk=self.spatial_chunk, attrs=self.attrs)
        return StackWriter(path)

    def prepare(self, staged: StackWriter, updates: dict[str, dict[str, Any]]
                ) -> dict[str, Any]:
        """Stage the stored dates that new dates displace and describe the whole commit.

        Parameters
        ----------
        staged
            The writer of :meth:`staging_writer`, after every date was written.
        updates
            Ingest-record entries per sensor and date of the dates read.

        Returns
        -------
        dict
            The journal: the stack's new dates per sensor, where each staged date goes, the
            record entries and the content digests.
        """
        planned = {s: stack_dates(staged.path, s) for s in SENSORS}
        old = {s: stack_dates(self.stack, s) for s in SENSORS}
        journal: dict[str, Any] = {"record": updates, "content": staged.content,
                                   "sensors": {}}
        tails = {}
        for sensor in SENSORS:
            read = np.array(sorted(updates[sensor]), "datetime64[D]")
            union = np.union1d(old[sensor], read)
            fresh = np.setdiff1d(read, old[sensor])
            # stored dates after the first new one shift up: they are staged too
            moved = old[sensor][old[sensor] > fresh[0]] if len(fresh) else old[sensor][:0]
            moved = np.setdiff1d(moved, read)  # replaced dates come from the staging store
            tails[sensor] = moved
            journal["sensors"][sensor] = {
                "dates": [str(d) for d in union],
                "new": [[int(np.searchsorted(planned[sensor], d)),
                         int(np.searchsorted(union, d))] for d in read],
                "tail": [[k, int(np.searchsorted(union, d))] for k, d in enumerate(moved)],
            }
        if any(len(t) for t in tails.values()):
            self._stage_tail(tails, old)
        return journal

    def _stage_tail(self, tails: dict[str, np.ndarray], old: dict[str, np.ndarray]) -> None:
        path = self._path(TAIL)
        create_stack(path, self.grid, tails["landsat"], tails["modis"],
                     spatial_chunk=self.spatial_chunk, attrs=self.attrs)
        source = open_group(self.stack)
        writer = StackWriter(path)
        for sensor, dates in tails.items():
            writer.copy_dates(source, sensor, np.searchsorted(old[sensor], dates),
                              np.arange(len(dates)))

    def commit(self, journal: dict[str, Any]) -> None:
        """Write the journal, then apply it."""
        write_json(self.stack, JOURNAL, journal)
        self.apply(journal)

    def apply(self, journal: dict[str, Any]) -> None:
        """Apply a commit journal to the stack (idempotent: safe to repeat after a crash).

        Only the staging stores are read, so repeating a partly applied commit gives the
        same stack. The journal and the staging stores are removed once it is complete.
        """
        writer = StackWriter(self.stack)
        writer.set_status("writing")
        sources = {name: open_group(self._path(name))
                   for name in (STAGING, TAIL) if self._path(name).exists()}
        for sensor, entry in journal["sensors"].items():
            writer.set_dates(sensor, np.array(entry["dates"], "datetime64[D]"))
            for key, name in (("new", STAGING), ("tail", TAIL)):
                pairs = np.array(entry[key], dtype=np.int64).reshape(-1, 2)
                if len(pairs):
                    writer.copy_dates(sources[name], sensor, pairs[:, 0], pairs[:, 1])
        record = IngestRecord.load(self.stack)
        for sensor, entries in journal["record"].items():
            record.dates.setdefault(sensor, {}).update(entries)
        record.save()
        writer.content = journal["content"]
        writer.finish()
        delete_json(self.stack, JOURNAL)
        self.remove_staging()
