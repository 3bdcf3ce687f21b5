"""The values of the cube's ``qa`` flag and of a missing reference date (a leaf module).

Shared by the fusion kernel, which sets them, and the cube's storage, which records their
CF description; nothing here touches storage.
"""

from __future__ import annotations

import numpy as np

#: ``reference_date`` of a pixel-day without a value (int32 days since 1970-01-01).
REFERENCE_DATE_FILL = np.int32(-2147483648)


class Flag:
    """Values of the ``qa`` variable."""

    NO_DATA = np.uint8(0)
    OBSERVED = np.uint8(1)
    FUSED = np.uint8(2)
    FUSED_TWO = np.uint8(3)
    MODIS_GAP_FILLED = np.uint8(4)

    values = (0, 1, 2, 3, 4)
    meanings = ("no_data observed fused_one_reference fused_two_references "
                "fused_from_gap_filled_modis")

    @staticmethod
    def fused(qa):
        """True where a value was fused (from one or two references)."""
        return (qa == Flag.FUSED) | (qa == Flag.FUSED_TWO) | (qa == Flag.MODIS_GAP_FILLED)
