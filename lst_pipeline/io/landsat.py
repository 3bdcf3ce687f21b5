"""Landsat 8/9 Collection 2 Level-2 surface temperature: constants and QA_PIXEL bits.

The one place for Landsat facts (USGS Landsat 8-9 Collection 2 Level-2 Science Product
Guide). Collection 1 used other bit positions; these are Collection 2 only.
"""

from __future__ import annotations

import numpy as np

#: ST_B10 DN -> Kelvin: K = DN * ST_SCALE_K + ST_OFFSET_K; DN 0 is fill.
ST_SCALE_K = 0.00341802
ST_OFFSET_K = 149.0
ST_FILL_DN = 0

# QA_PIXEL bit positions (Collection 2).
QA_FILL = 0
QA_DILATED_CLOUD = 1
QA_CIRRUS = 2
QA_CLOUD = 3
QA_CLOUD_SHADOW = 4
QA_SNOW = 5
QA_CLEAR = 6
QA_WATER = 7
QA_CLOUD_CONFIDENCE = 8  # two bits: 00 none, 01 low, 10 medium, 11 high
QA_SHADOW_CONFIDENCE = 10
QA_SNOW_CONFIDENCE = 12
QA_CIRRUS_CONFIDENCE = 14

#: Typical QA_PIXEL values of Landsat 8/9 C2 L2 scenes.
QA_VALUE_CLEAR_LAND = 21824
QA_VALUE_CLEAR_WATER = 21952
QA_VALUE_CLOUD_HIGH = 22280
QA_VALUE_CLOUD_SHADOW = 23888
QA_VALUE_DILATED_CLOUD = 21762  # dilated cloud over land, confidences low, not clear
QA_VALUE_FILL = 1


def usable_mask(qa_pixel: np.ndarray, *, mask_snow: bool = False) -> np.ndarray:
    """Pixels whose surface temperature can be used.

    Usable means: not fill, not cloud, not dilated cloud, not cirrus, not cloud shadow
    (and not snow if ``mask_snow``). Water is valid LST. Bit 6 "clear" is not used: it only
    means "neither cloud nor dilated cloud" and is set on shadow pixels too.

    Parameters
    ----------
    qa_pixel
        QA_PIXEL values (uint16, any shape).
    mask_snow
        Also reject snow/ice pixels.

    Returns
    -------
    numpy.ndarray of bool, same shape.
    """
    qa = np.asarray(qa_pixel).astype(np.uint16, copy=False)
    reject = (1 << QA_FILL) | (1 << QA_DILATED_CLOUD) | (1 << QA_CIRRUS) | (1 << QA_CLOUD)
    reject |= 1 << QA_CLOUD_SHADOW
    if mask_snow:
        reject |= 1 << QA_SNOW
    return (qa & np.uint16(reject)) == 0
