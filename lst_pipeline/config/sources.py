"""The ``ingest:`` section: Landsat scenes, MODIS tiles, STAC items, pre-gridded series."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from lst_pipeline.errors import ConfigError, require_config


@dataclass(frozen=True)
class LandsatSourceConfig:
    """Landsat 8/9 Collection 2 Level-2 scenes on disk.

    Attributes
    ----------
    paths
        Glob patterns of scene directories, ``*_MTL.txt``/``*_MTL.xml`` or ``*_ST_B10.TIF``
        files (``downloads/landsat/LC0*_L2SP_*``).
    mask_snow
        Also reject snow/ice pixels (QA_PIXEL bit 5).
    max_st_uncertainty_k
        Reject pixels whose ST_QA uncertainty is above this (Kelvin); unset keeps all.
    require_qa_pixel
        Refuse scenes without a QA_PIXEL band (clouds could not be masked); ``false``
        masks fill only.
    georeference_from_mtl
        Place band files without GeoTIFF georeference by the MTL's UTM zone and corners.
    """

    paths: tuple[str, ...] = ()
    mask_snow: bool = False
    max_st_uncertainty_k: float | None = None
    require_qa_pixel: bool = True
    georeference_from_mtl: bool = False

    def __post_init__(self) -> None:
        if self.max_st_uncertainty_k is not None:
            require_config(self.max_st_uncertainty_k > 0, "ingest.landsat.max_st_uncertainty_k",
                           "must be positive (Kelvin)")


@dataclass(frozen=True)
class ModisSourceConfig:
    """MOD11A1 / MYD11A1 v061 daily LST: HDF4-EOS tiles or GeoTIFF/COG exports.

    Attributes
    ----------
    paths
        Glob patterns of ``.hdf`` tiles or of the ``LST_Day_1km`` GeoTIFFs (their
        ``QC_Day`` companions are found beside them).
    platform
        ``terra`` (MOD11A1, the Landsat-like morning overpass) or ``aqua`` (MYD11A1).
        A stack holds one platform: the two are never mixed.
    overpass
        ``day`` or ``night`` layers.
    max_lst_error_k
        Highest accepted QC LST error: 1, 2 (default: produced with error <= 2 K) or 3 K;
        unset accepts every produced pixel.
    min_valid_fraction
        A coarse cell keeps a value only if at least this fraction of it is covered by
        usable MODIS pixels.
    """

    paths: tuple[str, ...] = ()
    platform: Literal["terra", "aqua"] = "terra"
    overpass: Literal["day", "night"] = "day"
    max_lst_error_k: Literal[1, 2, 3] | None = 2
    min_valid_fraction: float = 0.5

    def __post_init__(self) -> None:
        require_config(0.0 < self.min_valid_fraction <= 1.0, "ingest.modis.min_valid_fraction",
                       "must be in (0, 1]")

    @property
    def max_lst_error_class(self) -> int:
        """The QC LST-error class matching :attr:`max_lst_error_k` (3: any)."""
        return 3 if self.max_lst_error_k is None else self.max_lst_error_k - 1


@dataclass(frozen=True)
class StacSourceConfig:
    """STAC items for ``landsat-c2-l2`` and ``modis-11A1-061``-style collections.

    Attributes
    ----------
    catalog
        A static catalog (``catalog.json``), read with pystac.
    items
        A saved ItemCollection / FeatureCollection JSON (e.g. the result of a STAC API
        search). One of ``catalog`` or ``items`` is required.
    landsat_collection, modis_collection
        Collection ids of the Landsat and MODIS items.

    Landsat options (masking) come from ``ingest.landsat`` and MODIS options from
    ``ingest.modis`` when those sections are present (their ``paths`` may be empty lists).
    """

    catalog: Path | None = None
    items: Path | None = None
    landsat_collection: str = "landsat-c2-l2"
    modis_collection: str = "modis-11A1-061"

    def __post_init__(self) -> None:
        require_config((self.catalog is None) != (self.items is None), "ingest.stac",
                       "give exactly one of catalog or items")


@dataclass(frozen=True)
class PregriddedConfig:
    """A series already on the target grid, one GeoTIFF per date (own preparation).

    Attributes
    ----------
    landsat, modis
        Glob patterns of the fine-resolution LST files and of the MODIS files (either on
        the coarse grid, or on the fine grid: then averaged over each coarse cell).
    date_regex
        Regular expression whose first group is the date in a file name.
    date_format
        ``strptime`` format of that group.
    scale, offset
        Kelvin = value * scale + offset (for example ``offset: 273.15`` for Celsius).
    """

    landsat: tuple[str, ...] = ()
    modis: tuple[str, ...] = ()
    date_regex: str = r"(\d{8})"
    date_format: str = "%Y%m%d"
    scale: float = 1.0
    offset: float = 0.0

    def __post_init__(self) -> None:
        import re

        require_config(bool(self.landsat or self.modis), "ingest.pregridded",
                       "list landsat and/or modis glob patterns")
        try:
            groups = re.compile(self.date_regex).groups
        except re.error as exc:
            raise ConfigError(f"ingest.pregridded.date_regex: invalid: {exc}") from None
        require_config(groups >= 1, "ingest.pregridded.date_regex",
                       "needs one (group) for the date")


@dataclass(frozen=True)
class IngestConfig:
    """What ``lst-pipeline ingest`` reads into the input stack (``inputs.stack``).

    Only dates within ``dates`` widened by ``fusion.max_reference_gap_days`` on each side
    are ingested (the references the run can use), and beyond them, up to the
    reference-offset horizon, Landsat dates with the MODIS of those dates.
    """

    landsat: LandsatSourceConfig | None = None
    modis: ModisSourceConfig | None = None
    stac: StacSourceConfig | None = None
    pregridded: PregriddedConfig | None = None

    def __post_init__(self) -> None:
        require_config(any(getattr(self, n) is not None for n in ("landsat", "modis", "stac",
                                                             "pregridded")),
                       "ingest", "name at least one source: landsat, modis, stac or pregridded")
        for name in ("landsat", "modis"):
            source = getattr(self, name)
            require_config(source is None or bool(source.paths) or self.stac is not None,
                     f"ingest.{name}.paths", "list at least one glob pattern (or use stac)")


