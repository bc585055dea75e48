"""What differs between sources, and how their assets are read: one profile per source.

Every per-source difference lives in :data:`PROFILES` (API URL, known collections,
signing, requester pays, which collections hold radar-geometry GRD rasters). Reading needs
nothing but the manifest's :class:`~stac_coh.search.manifest.SourceSpec` (see
:func:`asset_key`, :func:`make_signer`, :func:`read_gdal_options`,
:func:`is_radar_geometry`), so a loader or worker never searches again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from stac_coh.io.gdal_env import gdal_options
from stac_coh.io.signing import HrefSigner, PlanetaryComputerSigner
from stac_coh.search.manifest import SourceSpec

__all__ = [
    "EARTH_SEARCH_URL",
    "PC_URL",
    "PROFILES",
    "SourceProfile",
    "asset_key",
    "is_radar_geometry",
    "make_signer",
    "read_gdal_options",
]

PC_URL = "https://planetarycomputer.microsoft.com/api/stac/v1"
EARTH_SEARCH_URL = "https://earth-search.aws.element84.com/v1"


@dataclass(frozen=True)
class SourceProfile:
    """Everything that differs between sources; the single place that knows it."""

    kind: str
    """Name used with ``--source`` and stored in manifests."""
    url: str | None
    """API root; ``None`` when the user gives it (any STAC API, a local catalog)."""
    default_collection: str | None
    """Collection searched when ``--collection`` is not given."""
    collections: tuple[str, ...] = ()
    """Collections known to hold Sentinel-1 (empty = any, checked against the API)."""
    radar_collections: tuple[str, ...] = ()
    """Collections whose rasters are radar geometry with GCPs (GRD), not map-projected."""
    signing: str | None = None
    """``planetary-computer`` when hrefs need a SAS token at read time (recorded in
    manifests; reading decides by each href's host, see :func:`make_signer`)."""
    requester_pays: bool = False
    """Reads are billed to the reader (``AWS_REQUEST_PAYER=requester``)."""


PROFILES: dict[str, SourceProfile] = {
    "planetary-computer": SourceProfile(
        "planetary-computer",
        PC_URL,
        "sentinel-1-rtc",
        collections=("sentinel-1-rtc", "sentinel-1-grd"),
        radar_collections=("sentinel-1-grd",),
        signing="planetary-computer",
    ),
    "earth-search": SourceProfile(
        "earth-search",
        EARTH_SEARCH_URL,
        "sentinel-1-grd",
        collections=("sentinel-1-grd",),
        radar_collections=("sentinel-1-grd",),
        requester_pays=True,
    ),
    "stac-api": SourceProfile("stac-api", None, None),
    "local": SourceProfile("local", None, None),
}
"""Known sources by ``--source`` name."""


def asset_key(spec: SourceSpec, polarization: str) -> str:
    """Asset key holding ``polarization`` (``--asset-key`` mapping, else lower case)."""
    pol = polarization.upper()
    return spec.asset_keys.get(pol) or pol.lower()


def make_signer(spec: SourceSpec) -> HrefSigner | None:
    """The signer this source's hrefs get at read time (``None``: ``"signing": "none"``).

    Whether an href is signed is decided by its host, as ``planetary_computer.sign`` does:
    the signer turns Azure blob hrefs into SAS-signed URLs and returns any other href
    unchanged. So items copied from Planetary Computer into a local catalog (JSON files,
    ndjson, stac-geoparquet) or a STAC API of one's own are read exactly like a search of
    Planetary Computer, and sources without blob hrefs never fetch a token.
    """
    if spec.options.get("signing") == "none":
        return None
    return PlanetaryComputerSigner()


def read_gdal_options(spec: SourceSpec, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """GDAL options for reading this source's assets: cloud defaults, requester pays."""
    profile = PROFILES.get(spec.kind)
    requester_pays = bool(
        spec.options.get("requester_pays", profile.requester_pays if profile else False)
    )
    return gdal_options(requester_pays=requester_pays, extra=extra)


def is_radar_geometry(spec: SourceSpec, item: Mapping[str, Any]) -> bool:
    """True when the item's rasters are GRD radar geometry (GCPs), not a map grid.

    Named sources know their GRD collections; for any other source a collection id that
    says ``grd`` (and not ``rtc``) is taken as radar geometry.
    """
    collection = str(item.get("collection") or spec.collection or "").lower()
    profile = PROFILES.get(spec.kind)
    if profile and profile.radar_collections:
        return collection in profile.radar_collections
    return "grd" in collection and "rtc" not in collection
