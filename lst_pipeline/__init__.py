"""lst_pipeline: daily high-resolution land-surface temperature from Landsat and MODIS.

Importing the package is cheap: torch, distributed and the I/O stack are imported
by the modules that use them.
"""

from lst_pipeline._version import __version__
from lst_pipeline.errors import LSTPipelineError

__all__ = ["LSTPipelineError", "__version__", "open_cube"]


def __getattr__(name: str):
    # ``lst_pipeline.open_cube`` without importing xarray/zarr at ``import lst_pipeline``.
    if name == "open_cube":
        from lst_pipeline.io.cube import open_cube

        return open_cube
    raise AttributeError(f"module 'lst_pipeline' has no attribute {name!r}")
