"""Per-thread stage clocks: where a chunk task spends its time (read, upsample, copies ...).

A Dask worker thread runs one task at a time, so cumulative per-thread counters, read before
and after a task (:func:`snapshot`), give that task's own stage times even when several
threads of one worker process run tasks side by side.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

#: Stages timed inside the fusion kernel and methods.
STAGES = ("upsample", "host_to_device", "forward", "device_to_host")

_local = threading.local()


def _counters() -> dict[str, float]:
    counters = getattr(_local, "counters", None)
    if counters is None:
        counters = _local.counters = dict.fromkeys(STAGES, 0.0)
    return counters


@contextmanager
def timed(stage: str) -> Iterator[None]:
    """Add the wall time of the ``with`` body to this thread's ``stage`` counter."""
    start = time.perf_counter()
    try:
        yield
    finally:
        _counters()[stage] += time.perf_counter() - start


def snapshot() -> dict[str, float]:
    """The calling thread's cumulative seconds per stage (subtract two snapshots for a task)."""
    return dict(_counters())
