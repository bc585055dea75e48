"""STAC items read as Sentinel-1 slices: every property quirk is absorbed here.

Real catalogs publish the platform in any case, ``start_datetime`` with a space instead
of ``T``, slice numbers and datatake ids as strings, fields-subset responses without
``s1:*`` or ``sat:absolute_orbit``, items without ``proj:*`` and footprints with empty
polygon parts. :func:`normalize_item` turns each item into one canonical :class:`Slice`;
facts missing from the properties are read from the Sentinel-1 product id in the item id.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import shapely
import shapely.geometry
from shapely.geometry.base import BaseGeometry

from stac_coh.errors import InputError

__all__ = ["Slice", "item_datetime", "normalize_item"]

_PRODUCT_ID = re.compile(
    r"^(?P<platform>S1[A-F])_(?P<mode>[A-Z0-9]{2})_(?P<product>[A-Z]{3}[A-Z_])_"
    r"\d[SA](?P<pols>S[HV]|D[HV])_(?P<start>\d{8}T\d{6})_\d{8}T\d{6}_"
    r"(?P<orbit>\d{6})_(?P<datatake>[0-9A-F]{6})"
)
_POLS_FROM_ID = {"SV": ("VV",), "DV": ("VV", "VH"), "SH": ("HH",), "DH": ("HH", "HV")}
_POL_KEYS = {"vv", "vh", "hh", "hv"}


@dataclass(frozen=True)
class Slice:
    """One STAC item read as a Sentinel-1 slice, quirks normalised."""

    item_id: str
    """STAC item id."""
    platform: str
    """Lower case, e.g. ``sentinel-1c``."""
    datetime: datetime
    """Nominal (centre) time, UTC."""
    relative_orbit: int
    """Track."""
    orbit_state: str
    """``ascending`` / ``descending``."""
    instrument_mode: str
    """``IW``, ``EW``, ... (upper case)."""
    polarizations: frozenset[str]
    """Upper-case polarisations the item carries."""
    footprint: BaseGeometry
    """Footprint in EPSG:4326."""
    absolute_orbit: int | None = None
    """``sat:absolute_orbit`` (or from the product id)."""
    datatake_id: str | None = None
    """``s1:datatake_id`` as a decimal string (or from the product id's hex)."""
    slice_number: int | None = None
    """``s1:slice_number`` as an int."""
    epsg: int | None = None
    """``proj:epsg`` / ``proj:code`` of the assets, if any."""
    resolution: float | None = None
    """Native pixel size of the data assets in ``epsg`` units, if stated."""
    origin: tuple[float, float] | None = None
    """Upper-left corner (x, y) of the assets' grid (``proj:transform``), if stated."""


def normalize_item(item: Mapping[str, Any]) -> Slice:
    """Read an item as a :class:`Slice`.

    Raises:
        InputError: the item lacks a track, an orbit state, a time or a footprint.
    """
    item_id = str(item.get("id", ""))
    props: Mapping[str, Any] = item.get("properties") or {}
    ident = _PRODUCT_ID.match(item_id)
    try:
        relative_orbit = int(props["sat:relative_orbit"])
        orbit_state = str(props["sat:orbit_state"]).strip().lower()
    except (KeyError, TypeError, ValueError):
        raise InputError(
            f"Item {item_id!r} has no usable sat:relative_orbit/orbit_state."
        ) from None
    return Slice(
        item_id=item_id,
        platform=_platform(props, ident, item_id),
        datetime=item_datetime(item),
        relative_orbit=relative_orbit,
        orbit_state=orbit_state,
        instrument_mode=_mode(props, ident),
        polarizations=_polarizations(item, ident),
        footprint=_footprint(item, item_id),
        absolute_orbit=_int_or_none(props.get("sat:absolute_orbit"))
        or (int(ident["orbit"]) if ident else None),
        datatake_id=_datatake(props, ident),
        slice_number=_int_or_none(props.get("s1:slice_number")),
        epsg=_epsg(props),
        resolution=_native_resolution(item),
        origin=_origin(item),
    )


def item_datetime(item: Mapping[str, Any]) -> datetime:
    """The item's time: ``datetime``, else ``start_datetime``; non-RFC-3339 forms accepted."""
    props = item.get("properties") or {}
    for key in ("datetime", "start_datetime"):
        value = props.get(key)
        if value:
            return _parse_time(str(value), str(item.get("id", "")))
    raise InputError(f"Item {item.get('id')!r} has neither datetime nor start_datetime.")


def _parse_time(text: str, item_id: str) -> datetime:
    """Parse ``2025-03-11 04:42:31.719576+00:00``, ``...Z``, >6 fraction digits, no zone."""
    value = text.strip().replace(" ", "T", 1).replace("z", "Z")
    value = re.sub(r"(\.\d{6})\d+", r"\1", value).replace("Z", "+00:00")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise InputError(f"Item {item_id!r} has an unreadable datetime {text!r}.") from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _platform(props: Mapping[str, Any], ident: re.Match[str] | None, item_id: str) -> str:
    """Lower-case platform; from the product id when the property is missing."""
    value = props.get("platform")
    if value:
        return str(value).strip().lower()
    if ident:
        return "sentinel-1" + ident["platform"][-1].lower()
    raise InputError(f"Item {item_id!r} has no platform.")


def _mode(props: Mapping[str, Any], ident: re.Match[str] | None) -> str:
    """Upper-case instrument mode (``IW`` when nothing says otherwise)."""
    value = props.get("sar:instrument_mode") or (ident["mode"] if ident else None)
    return str(value or "IW").strip().upper()


def _polarizations(item: Mapping[str, Any], ident: re.Match[str] | None) -> frozenset[str]:
    """From ``sar:polarizations``, else the asset keys, else the product id."""
    props = item.get("properties") or {}
    pols = props.get("sar:polarizations")
    if pols:
        return frozenset(str(p).strip().upper() for p in pols)
    keys = {k.lower() for k in (item.get("assets") or {})} & _POL_KEYS
    if keys:
        return frozenset(k.upper() for k in keys)
    return frozenset(_POLS_FROM_ID.get(ident["pols"], ()) if ident else ())


def _footprint(item: Mapping[str, Any], item_id: str) -> BaseGeometry:
    """Valid footprint polygon from ``geometry``, else ``bbox``."""
    geometry = item.get("geometry")
    if geometry and geometry.get("type") == "MultiPolygon":
        # PC has published antimeridian footprints with an empty polygon part.
        parts = [p for p in geometry.get("coordinates", []) if p and p[0]]
        geometry = {"type": "MultiPolygon", "coordinates": parts} if parts else None
    try:
        if geometry:
            shape = shapely.geometry.shape(geometry)
        elif item.get("bbox"):
            w, s, e, n = (float(v) for v in item["bbox"][:4])
            shape = shapely.geometry.box(w, s, e, n)
        else:
            raise InputError(f"Item {item_id!r} has neither geometry nor bbox.")
    except (AttributeError, IndexError, KeyError, TypeError, ValueError):
        raise InputError(f"Item {item_id!r} has an unreadable geometry.") from None
    if shape.is_empty:
        raise InputError(f"Item {item_id!r} has an empty geometry.")
    return shape if shape.is_valid else shapely.make_valid(shape)


def _datatake(props: Mapping[str, Any], ident: re.Match[str] | None) -> str | None:
    """Decimal datatake id (PC/ES write ``"471810"``; the product id has hex ``073302``)."""
    value = props.get("s1:datatake_id")
    if value not in (None, ""):
        return str(value).strip()
    return str(int(ident["datatake"], 16)) if ident else None


def _int_or_none(value: Any) -> int | None:
    """``"30"`` -> 30; missing or junk -> None."""
    try:
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def _epsg(props: Mapping[str, Any]) -> int | None:
    """EPSG code from ``proj:epsg`` or ``proj:code`` (``EPSG:32643``)."""
    if props.get("proj:epsg"):
        return _int_or_none(props["proj:epsg"])
    code = str(props.get("proj:code") or "")
    return _int_or_none(code.split(":", 1)[1]) if code.upper().startswith("EPSG:") else None


def _native_resolution(item: Mapping[str, Any]) -> float | None:
    """Pixel size from a data asset's ``raster:bands`` or the item's ``proj:transform``."""
    for asset in (item.get("assets") or {}).values():
        if "data" not in (asset.get("roles") or []):
            continue
        for band in asset.get("raster:bands") or []:
            if band.get("spatial_resolution"):
                return float(band["spatial_resolution"])
        transform = asset.get("proj:transform")
        if transform:
            return abs(float(transform[0]))
    transform = (item.get("properties") or {}).get("proj:transform")
    return abs(float(transform[0])) if transform else None


def _origin(item: Mapping[str, Any]) -> tuple[float, float] | None:
    """(x, y) of the upper-left corner from ``proj:transform`` (item or a data asset)."""
    transform = (item.get("properties") or {}).get("proj:transform")
    for asset in (item.get("assets") or {}).values():
        if transform is None and "data" in (asset.get("roles") or []):
            transform = asset.get("proj:transform")
    return (float(transform[2]), float(transform[5])) if transform else None
