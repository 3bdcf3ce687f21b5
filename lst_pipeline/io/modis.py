"""MODIS MOD11A1 / MYD11A1 v061 daily LST: constants and QC bits.

The one place for MODIS facts (MOD11 User's Guide, Collection 6.1).
"""

from __future__ import annotations

import numpy as np

#: LST_Day_1km DN -> Kelvin: K = DN * LST_SCALE_K; DN 0 is fill; valid DN 7500-65535.
LST_SCALE_K = 0.02
LST_FILL_DN = 0
LST_VALID_MIN_DN = 7500

# QC_Day bit fields (two bits each).
QC_MANDATORY_SHIFT = 0  # 00 good, 01 other quality, 10 cloud, 11 not produced (other)
QC_DATA_QUALITY_SHIFT = 2
QC_EMISSIVITY_ERROR_SHIFT = 4
QC_LST_ERROR_SHIFT = 6  # 00 <= 1 K, 01 <= 2 K, 10 <= 3 K, 11 > 3 K

MANDATORY_GOOD = 0
MANDATORY_OTHER_QUALITY = 1
MANDATORY_CLOUD = 2
MANDATORY_NOT_PRODUCED = 3


def qc_field(qc: np.ndarray, shift: int) -> np.ndarray:
    """Extract one two-bit field of a QC_Day/QC_Night array."""
    return (np.asarray(qc).astype(np.uint8, copy=False) >> np.uint8(shift)) & np.uint8(0b11)


def make_qc(mandatory: np.ndarray, lst_error: np.ndarray | int = 0,
            emissivity_error: np.ndarray | int = 0, data_quality: np.ndarray | int = 0
            ) -> np.ndarray:
    """Pack QC bit fields into uint8 QC_Day values (inverse of :func:`qc_field`)."""
    out = (np.asarray(mandatory, dtype=np.uint8) << QC_MANDATORY_SHIFT)
    out |= np.asarray(data_quality, dtype=np.uint8) << QC_DATA_QUALITY_SHIFT
    out |= np.asarray(emissivity_error, dtype=np.uint8) << QC_EMISSIVITY_ERROR_SHIFT
    out |= np.asarray(lst_error, dtype=np.uint8) << QC_LST_ERROR_SHIFT
    return out.astype(np.uint8)


def usable_mask(qc: np.ndarray, *, max_lst_error_class: int = 1) -> np.ndarray:
    """Pixels whose LST was produced with LST error within ``max_lst_error_class``.

    Parameters
    ----------
    qc
        QC_Day values (uint8).
    max_lst_error_class
        0: <= 1 K, 1: <= 2 K (default), 2: <= 3 K, 3: any.
    """
    mandatory = qc_field(qc, QC_MANDATORY_SHIFT)
    produced = mandatory <= MANDATORY_OTHER_QUALITY
    return produced & (qc_field(qc, QC_LST_ERROR_SHIFT) <= max_lst_error_class)
