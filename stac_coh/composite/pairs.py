"""Published coherence pairs as the composite sees them: small records parsed from items.

A record keeps only what compositing needs (dates, baseline, polarisation, pixel grid,
tile code, where the coherence COG and the item are), about 1 KB, so a catalog of a
million pairs can be planned without holding its items.
"""

from __future__ import annotations

import logging
import math
import posixpath
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from stac_coh.grid import Transform, as_transform

__all__ = ["PairRecord", "pair_record", "resolve_href"]

log = logging.getLogger(__name__)

COHERENCE_ASSET = "coherence"
"""Asset key of the coherence COG in a pair item."""


@dataclass(frozen=True)
class PairRecord:
    """One published pair: what the composite reads and links to."""

    id: str
    """Item id."""
    start: datetime
    """Reference acquisition (UTC)."""
    end: datetime
    """Secondary acquisition (UTC)."""
    baseline_days: float
    """Temporal baseline in days."""
    polarization: str
    """``VV``, ``VH``..."""
    crs: str
    """``EPSG:32633`` (or WKT for CRSs without a code)."""
    transform: Transform
    """Affine coefficients (a, b, c, d, e, f) of the coherence grid."""
    width: int
    """Columns."""
    height: int
    """Rows."""
    coherence_href: str
    """Absolute location of the coherence COG (path, ``s3://`` or ``https://``)."""
    item_href: str
    """Absolute location of the item JSON (for ``derived_from`` links)."""
    grid_code: str | None = None
    """Tile of the fixed output grid (``grid:code``), if the item has one."""
    platforms: tuple[str, ...] = ()
    """Platforms of both acquisitions, lower case."""
    relative_orbit: int | None = None
    """Track."""
    orbit_state: str | None = None
    """``ascending`` or ``descending``."""

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(left, bottom, right, top) of the grid in its CRS."""
        a, _, c, _, e, f = self.transform
        xs = (c, c + a * self.width)
        ys = (f, f + e * self.height)
        return (min(xs), min(ys), max(xs), max(ys))


def pair_record(item: Mapping[str, Any], item_href: str) -> PairRecord | None:
    """The record of a published pair item, or ``None`` (logged) if it is not one."""
    props = item.get("properties") or {}
    asset = (item.get("assets") or {}).get(COHERENCE_ASSET)
    item_id = str(item.get("id", "?"))
    try:
        if not asset or not asset.get("href"):
            raise KeyError("no coherence asset")
        start = _time(props.get("start_datetime") or props["coh:reference_datetime"])
        end = _time(props.get("end_datetime") or props["coh:secondary_datetime"])
        baseline = props.get("coh:baseline_days")
        baseline = (
            float(baseline) if baseline is not None else (end - start).total_seconds() / 86400
        )
        crs = _crs(props)
        transform = as_transform(props["proj:transform"])
        height, width = (int(v) for v in props["proj:shape"][:2])
        pols = props.get("sar:polarizations") or ["VV"]
    except (KeyError, TypeError, ValueError) as exc:
        log.info("%s is not a usable coherence pair item (%s); skipped", item_id, exc)
        return None
    if transform[1] != 0.0 or transform[3] != 0.0 or not math.isfinite(baseline):
        log.info("%s has a rotated grid or no baseline; skipped", item_id)
        return None
    return PairRecord(
        id=item_id,
        start=start,
        end=end,
        baseline_days=baseline,
        polarization=str(pols[0]).upper(),
        crs=crs,
        transform=transform,
        width=width,
        height=height,
        coherence_href=resolve_href(str(asset["href"]), item_href),
        item_href=item_href,
        grid_code=props.get("grid:code"),
        platforms=_platforms(props),
        relative_orbit=_int_or_none(props.get("sat:relative_orbit")),
        orbit_state=props.get("sat:orbit_state"),
    )


def resolve_href(href: str, base: str) -> str:
    """``href`` made absolute against the item's location ``base`` (path or URL)."""
    if "://" in href or href.startswith("/"):
        return href
    scheme, sep, path = base.partition("://")
    if not sep:
        scheme, path = "", base
    # Not urljoin: it leaves hrefs relative under schemes it does not know (s3://).
    netloc, slash, key = path.partition("/") if sep else ("", "", path)
    joined = posixpath.normpath(posixpath.join(posixpath.dirname(key), href))
    return f"{scheme}{sep}{netloc}{slash}{joined}" if sep else joined


def _time(value: Any) -> datetime:
    """An RFC 3339 string (space or ``T``, ``Z`` or offset) as an aware UTC datetime."""
    text = str(value).replace("Z", "+00:00")
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _crs(props: Mapping[str, Any]) -> str:
    """``proj:code`` / ``proj:epsg`` / ``proj:wkt2`` of an item, as one string."""
    if props.get("proj:code"):
        return str(props["proj:code"])
    if props.get("proj:epsg"):
        return f"EPSG:{int(props['proj:epsg'])}"
    if props.get("proj:wkt2"):
        return str(props["proj:wkt2"])
    raise KeyError("no proj:code, proj:epsg or proj:wkt2")


def _platforms(props: Mapping[str, Any]) -> tuple[str, ...]:
    """Both acquisitions' platforms (``coh:`` fields, else ``platform``)."""
    names: list[Any] = [props.get("coh:reference_platform"), props.get("coh:secondary_platform")]
    if not any(names):
        names = str(props.get("platform") or "").split(",")
    return tuple(sorted({str(n).strip().lower() for n in names if n and str(n).strip()}))


def _int_or_none(value: Any) -> int | None:
    """``int(value)`` or ``None``."""
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
