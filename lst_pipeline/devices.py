"""Which device a network runs on, and how many CPU threads it and numba may use (a leaf module)."""

from __future__ import annotations

from lst_pipeline.errors import ConfigError


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` when a GPU is visible, else ``cpu``.

    Raises
    ------
    ConfigError
        If ``cuda`` is asked for and torch sees no GPU.
    """
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device: cuda requested but no GPU is visible to torch")
    return device


def limit_cpu_threads(threads: int | None) -> None:
    """Give torch exactly ``threads`` CPU threads (a Dask worker's own; None: unchanged).

    Cheap when nothing changed, so the network calls it before every forward pass: a numba
    kernel run in between (STARFM in an ``ensemble``) resets the OpenMP thread count that
    torch shares, whatever numba's own limit (:func:`limit_numba_threads`).
    """
    if threads:
        import torch

        if torch.get_num_threads() != max(1, int(threads)):
            torch.set_num_threads(max(1, int(threads)))


def limit_numba_threads(threads: int | None) -> None:
    """Give numba's parallel kernels (STARFM, ubESTARFM) ``threads`` threads in this thread.

    numba's OpenMP layer otherwise runs every kernel on all cores in every worker process.
    It also sets the OpenMP thread count that torch shares, limit or not (measured: torch's
    CPU threads went from 1 to 2 after one STARFM call, and on 2 worker processes x 1
    thread the network's forward pass in an ``ensemble`` run took 3.4 x as long as alone),
    so the network restores its own before each forward pass (:func:`limit_cpu_threads`).
    numba's limit holds per thread: the task's own thread sets it (None: unchanged).
    """
    if threads:
        import numba

        numba.set_num_threads(max(1, min(int(threads), numba.config.NUMBA_NUM_THREADS)))
