"""What the user asks for: area, dates and pairing options, validated once.

:class:`SearchQuery` is the canonical form; :meth:`SearchQuery.build` accepts the loose
forms a command line or a caller has (date strings, comma lists, a GeoJSON file's
content) and turns every mistake into an :class:`~stac_coh.errors.InputError` that names
the option at fault.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time
from pathlib import Path
from typing import Any

from stac_coh.errors import InputError

__all__ = [
    "DEFAULT_BASELINES",
    "DEFAULT_BASELINE_TOLERANCE_DAYS",
    "DEFAULT_MAX_ITEMS",
    "DEFAULT_MIN_COVERAGE",
    "SearchQuery",
    "load_aoi",
    "parse_datetime",
]

DEFAULT_BASELINES = (6.0, 12.0)
"""Temporal baselines (days) the published model handles best (trained on 12, 6 is real)."""

DEFAULT_BASELINE_TOLERANCE_DAYS = 0.1
"""How far a pair's baseline may stray from a requested one.

Repeat passes of one Sentinel-1 track happen at the same time of day (orbit control keeps
them within seconds; S1A vs S1C/S1D differ by well under a minute) and acquisitions of
one pass span at most ~25 minutes, so 0.1 day (2.4 h) absorbs every real offset while
staying far from the next possible baseline (repeat passes are whole days apart).
"""

DEFAULT_MIN_COVERAGE = 0.5
"""Minimum share of the imaged part of the area that both acquisitions cover."""

DEFAULT_MAX_ITEMS = 2000
"""Total number of items a search returns at most (not a page size, pystac-client#617)."""

_ORBIT_STATES = ("ascending", "descending")


@dataclass(frozen=True)
class SearchQuery:
    """A validated search: where, when, and which pairs are wanted."""

    aoi: dict[str, Any]
    """GeoJSON geometry (EPSG:4326) of the area; a bbox becomes a polygon."""
    start: datetime
    """First instant searched, timezone-aware UTC."""
    end: datetime
    """Last instant searched (inclusive), timezone-aware UTC."""
    bbox: tuple[float, float, float, float] | None = None
    """The bbox the user gave (W, S, E, N), if any; ``aoi`` is what is searched."""
    polarization: str = "VV"
    """Polarisation both acquisitions must carry, upper case."""
    baselines: tuple[float, ...] = DEFAULT_BASELINES
    """Wanted temporal baselines in days."""
    baseline_tolerance_days: float = DEFAULT_BASELINE_TOLERANCE_DAYS
    """See :data:`DEFAULT_BASELINE_TOLERANCE_DAYS`."""
    orbit_state: str | None = None
    """``ascending`` or ``descending``; ``None`` = both."""
    relative_orbit: int | None = None
    """Only this relative orbit (track); ``None`` = all."""
    min_coverage: float = DEFAULT_MIN_COVERAGE
    """See :data:`DEFAULT_MIN_COVERAGE`."""
    max_items: int = DEFAULT_MAX_ITEMS
    """Total number of items fetched at most."""
    resolution: float | None = None
    """Output pixel size in CRS units; ``None`` = the reference asset's native size."""
    crs: str | None = None
    """Output CRS (e.g. ``EPSG:32643``); ``None`` = the reference's UTM zone."""

    def __post_init__(self) -> None:
        _check_dates(self.start, self.end)
        if self.polarization not in {"VV", "VH", "HH", "HV"}:
            raise InputError(
                f"--pol {self.polarization!r} is not a Sentinel-1 polarisation; "
                "use VV, VH, HH or HV."
            )
        if not self.baselines or any(b <= 0 or not math.isfinite(b) for b in self.baselines):
            raise InputError(
                f"--baselines {self.baselines!r} must be positive day counts, e.g. 6,12."
            )
        if not 0 < self.baseline_tolerance_days < 1:
            raise InputError("The baseline tolerance must lie between 0 and 1 day.")
        if self.orbit_state is not None and self.orbit_state not in _ORBIT_STATES:
            raise InputError(
                f"--orbit-state {self.orbit_state!r} must be 'ascending' or 'descending'."
            )
        if self.relative_orbit is not None and not 1 <= self.relative_orbit <= 175:
            raise InputError(
                f"--relative-orbit {self.relative_orbit} is outside Sentinel-1's 1..175."
            )
        if not 0 <= self.min_coverage <= 1:
            raise InputError(f"--min-coverage {self.min_coverage} must lie between 0 and 1.")
        if self.max_items < 1:
            raise InputError(f"--limit {self.max_items} must be at least 1.")
        if self.resolution is not None and not (
            self.resolution > 0 and math.isfinite(self.resolution)
        ):
            raise InputError(f"--resolution {self.resolution} must be a positive number.")

    @classmethod
    def build(
        cls,
        *,
        bbox: Sequence[float] | None = None,
        aoi: dict[str, Any] | None = None,
        start: str | datetime,
        end: str | datetime,
        polarization: str = "VV",
        baselines: str | Iterable[float] = DEFAULT_BASELINES,
        **options: Any,
    ) -> SearchQuery:
        """Canonicalise loose inputs (strings, lists, GeoJSON objects) into a query."""
        if (bbox is None) == (aoi is None):
            raise InputError("Give exactly one of --bbox W S E N or --aoi FILE.geojson.")
        box = _check_bbox(bbox) if bbox is not None else None
        geometry = _bbox_polygon(box) if box is not None else _aoi_geometry(aoi or {})
        crs = options.pop("crs", None)
        orbit_state = options.pop("orbit_state", None)
        return cls(
            aoi=geometry,
            bbox=box,
            start=parse_datetime(start, "--start"),
            end=parse_datetime(end, "--end", end_of_day=True),
            polarization=polarization.strip().upper(),
            baselines=_parse_baselines(baselines),
            orbit_state=orbit_state.strip().lower() if orbit_state else None,
            crs=_check_crs(crs) if crs else None,
            **options,
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON form kept in the manifest for provenance."""
        return {
            "bbox": list(self.bbox) if self.bbox else None,
            "aoi": self.aoi,
            "start": _iso(self.start),
            "end": _iso(self.end),
            "polarization": self.polarization,
            "baselines": list(self.baselines),
            "baseline_tolerance_days": self.baseline_tolerance_days,
            "orbit_state": self.orbit_state,
            "relative_orbit": self.relative_orbit,
            "min_coverage": self.min_coverage,
            "max_items": self.max_items,
            "resolution": self.resolution,
            "crs": self.crs,
        }


def parse_datetime(value: str | datetime, option: str, *, end_of_day: bool = False) -> datetime:
    """Parse a date or RFC 3339 datetime; a bare date means its first (or last) instant, UTC."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    text = value.strip()
    try:
        if len(text) == 10:
            day = datetime.strptime(text, "%Y-%m-%d").date()
            return datetime.combine(day, time.max if end_of_day else time.min, tzinfo=UTC)
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InputError(
            f"{option} {value!r} is not a date; use YYYY-MM-DD or an RFC 3339 datetime "
            "such as 2026-04-17T00:40:00Z."
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def load_aoi(path: str | Path) -> dict[str, Any]:
    """Read a GeoJSON file (geometry, Feature or FeatureCollection) as one geometry."""
    p = Path(path)
    try:
        data = json.loads(p.read_text())
    except FileNotFoundError:
        raise InputError(f"--aoi {p}: no such file.") from None
    except (OSError, ValueError) as exc:
        raise InputError(f"--aoi {p} is not readable GeoJSON: {exc}.") from None
    return _aoi_geometry(data, str(p))


def _check_dates(start: datetime, end: datetime) -> None:
    """Reject naive datetimes and ranges that end before they start."""
    if start.tzinfo is None or end.tzinfo is None:
        raise InputError("Search datetimes must be timezone-aware (UTC).")
    if end < start:
        raise InputError(
            f"--end {_iso(end)} is before --start {_iso(start)}; swap them or fix the dates."
        )


def _check_bbox(bbox: Sequence[float]) -> tuple[float, float, float, float]:
    """Validate a W S E N bbox in degrees."""
    values = tuple(float(v) for v in bbox)
    if len(values) != 4 or not all(math.isfinite(v) for v in values):
        raise InputError(f"--bbox needs four numbers W S E N, got {list(bbox)!r}.")
    west, south, east, north = values
    if not (-180 <= west <= 180 and -180 <= east <= 180):
        raise InputError(
            f"--bbox longitudes {west}, {east} must lie in -180..180 (degrees, EPSG:4326)."
        )
    if not (-90 <= south <= 90 and -90 <= north <= 90):
        raise InputError(
            f"--bbox latitudes {south}, {north} must lie in -90..90 (degrees, EPSG:4326)."
        )
    if west >= east:
        raise InputError(
            f"--bbox west {west} is not less than east {east}; the order is W S E N "
            "(areas across the antimeridian: search each side separately)."
        )
    if south >= north:
        raise InputError(
            f"--bbox south {south} is not less than north {north}; the order is W S E N."
        )
    return values


def _bbox_polygon(bbox: tuple[float, float, float, float]) -> dict[str, Any]:
    """GeoJSON polygon of a bbox."""
    w, s, e, n = bbox
    return {"type": "Polygon", "coordinates": [[[w, s], [e, s], [e, n], [w, n], [w, s]]]}


def _aoi_geometry(data: dict[str, Any], name: str = "--aoi") -> dict[str, Any]:
    """One valid polygonal geometry from a GeoJSON geometry, Feature or FeatureCollection."""
    import shapely.geometry
    from shapely.ops import unary_union

    kind = data.get("type") if isinstance(data, dict) else None
    if kind == "FeatureCollection":
        geoms = [f.get("geometry") for f in data.get("features", [])]
    elif kind == "Feature":
        geoms = [data.get("geometry")]
    else:
        geoms = [data]
    try:
        shapes = [shapely.geometry.shape(g) for g in geoms if g]
    except (AttributeError, KeyError, TypeError, ValueError, IndexError) as exc:
        raise InputError(f"{name} holds no valid GeoJSON geometry: {exc}.") from None
    merged = unary_union(shapes) if shapes else None
    if merged is None or merged.is_empty or merged.area <= 0:
        raise InputError(f"{name} holds no polygon with an area; give a Polygon/MultiPolygon.")
    west, south, east, north = merged.bounds
    if west < -180 or east > 180 or south < -90 or north > 90:
        raise InputError(f"{name} has coordinates outside lon -180..180 / lat -90..90.")
    if not merged.is_valid:
        merged = merged.buffer(0)
    return shapely.geometry.mapping(merged)


def _parse_baselines(value: str | Iterable[float]) -> tuple[float, ...]:
    """``"6,12"`` or ``[6, 12]`` -> ``(6.0, 12.0)``."""
    parts: Iterable[Any] = value.split(",") if isinstance(value, str) else value
    try:
        out = tuple(sorted({float(p) for p in parts if str(p).strip()}))
    except ValueError:
        raise InputError(
            f"--baselines {value!r} must be comma-separated days, e.g. 6,12."
        ) from None
    if not out:
        raise InputError("--baselines is empty; give days such as 6,12.")
    return out


def _check_crs(crs: str) -> str:
    """Validate a CRS string with PROJ; return its ``EPSG:n`` form when it has one."""
    from rasterio.crs import CRS
    from rasterio.errors import CRSError

    try:
        parsed = CRS.from_user_input(crs)
    except CRSError:
        raise InputError(f"--crs {crs!r} is not a CRS PROJ knows; use e.g. EPSG:32643.") from None
    if not parsed.is_projected:
        raise InputError(
            f"--crs {crs!r} is not projected; the model needs square metric pixels "
            "(use a UTM zone, e.g. EPSG:32643)."
        )
    epsg = parsed.to_epsg()
    return f"EPSG:{epsg}" if epsg else parsed.to_wkt()


def _iso(value: datetime) -> str:
    """RFC 3339 with ``Z``."""
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
