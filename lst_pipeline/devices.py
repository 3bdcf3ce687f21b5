"""Which device a network runs on, and how many CPU threads it may use (a leaf module)."""

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
    """Give torch exactly ``threads`` CPU threads (a Dask worker's own; None: unchanged)."""
    if threads:
        import torch

        torch.set_num_threads(max(1, int(threads)))
