"""Versions of the packages a result depends on, from their installed metadata."""

from __future__ import annotations

import platform

#: The packages recorded with benchmarks and reports.
PACKAGES = ("lst-pipeline", "numpy", "numba", "torch", "xarray", "dask", "distributed", "zarr")


def package_versions(names: tuple[str, ...] = PACKAGES) -> dict[str, str]:
    """``{module: version}`` (``importlib.metadata``; "not installed" if absent), and Python.

    Keys are import names (``lst_pipeline``, not the distribution's ``lst-pipeline``).
    """
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for name in names:
        try:
            out[name.replace("-", "_")] = version(name)
        except PackageNotFoundError:
            out[name.replace("-", "_")] = "not installed"
    return out
