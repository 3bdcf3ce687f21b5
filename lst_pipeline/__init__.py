"""lst_pipeline: daily high-resolution land-surface temperature from Landsat and MODIS.

Importing the package is cheap: torch, distributed and the I/O stack are imported
by the modules that use them.
"""

from lst_pipeline._version import __version__
from lst_pipeline.errors import LSTPipelineError

__all__ = ["LSTPipelineError", "__version__"]
