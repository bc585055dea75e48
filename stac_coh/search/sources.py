"""Where items come from, and how their assets are read: one profile per source.

Every per-source difference lives in :data:`PROFILES` (API URL, known collections,
signing, requester pays, which collections hold radar-geometry GRD rasters); property
quirks of the items themselves are normalised in :mod:`stac_coh.search.slices`. A
:class:`Source` only searches; reading needs nothing but the manifest's
:class:`~stac_coh.search.manifest.SourceSpec` (see :func:`asset_key`, :func:`make_signer`,
:func:`read_gdal_options`, :func:`is_radar_geometry`), so a worker never searches again.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import requests

from stac_coh.errors import InputError, SearchError, SourceUnreachableError
from stac_coh.io.gdal_env import gdal_options
from stac_coh.io.http import make_session, stac_api_io
from stac_coh.io.signing import HrefSigner, PlanetaryComputerSigner
from stac_coh.search.manifest import SourceSpec
from stac_coh.search.slices import item_datetime

if TYPE_CHECKING:
    from stac_coh.search.query import SearchQuery

__all__ = [
    "PROFILES",
    "LocalSource",
    "Source",
    "SourceProfile",
    "StacApiSource",
    "asset_key",
    "is_radar_geometry",
    "make_signer",
    "open_source",
    "read_gdal_options",
    "source_from_spec",
]

log = logging.getLogger(__name__)

PC_URL = "https://planetarycomputer.microsoft.com/api/stac/v1"
EARTH_SEARCH_URL = "https://earth-search.aws.element84.com/v1"
_PAGE_SIZE = 250
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


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
    """``planetary-computer`` when hrefs need a SAS token at read time."""
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

_ALIASES = {"pc": "planetary-computer", "es": "earth-search", "e84": "earth-search"}
_LOCAL_SUFFIXES = (".json", ".geojson", ".ndjson", ".jsonl", ".parquet", ".geoparquet")


@runtime_checkable
class Source(Protocol):
    """A catalog that can be searched for Sentinel-1 items."""

    @property
    def spec(self) -> SourceSpec:
        """What a manifest records about this source (no secrets)."""
        ...

    def search(self, query: SearchQuery) -> list[dict[str, Any]]:
        """Items (plain dicts, unsigned hrefs) intersecting the area within the dates."""
        ...


# --------------------------------------------------------------------------------------
# choosing a source


def open_source(
    source: str | None = None,
    *,
    collection: str | None = None,
    asset_keys: Mapping[str, str] | None = None,
    session: requests.Session | None = None,
) -> Source:
    """Resolve ``--source`` (a name, an https URL or a local path) into a :class:`Source`.

    Raises:
        InputError: the source or collection is unknown.
    """
    name = (source or "planetary-computer").strip()
    kind = _ALIASES.get(name.lower(), name.lower())
    keys = {k.upper(): v for k, v in (asset_keys or {}).items()}
    if kind in ("planetary-computer", "earth-search"):
        profile = PROFILES[kind]
        coll = collection or profile.default_collection or ""
        if coll not in profile.collections:
            raise InputError(
                f"--collection {coll!r} is not a Sentinel-1 collection of {kind}; choose one "
                f"of {', '.join(profile.collections)}, or give --source URL for another API."
            )
        spec = SourceSpec(kind, profile.url or "", coll, keys, _profile_options(profile))
        return StacApiSource(spec, session=session)
    if name.startswith(("http://", "https://")):
        if not collection:
            raise InputError(f"--source {name} is a STAC API URL: also give --collection.")
        return StacApiSource(
            SourceSpec("stac-api", name.rstrip("/"), collection, keys), session=session
        )
    path = Path(name.removeprefix("local:")).expanduser()
    if path.exists() or name.startswith("local:") or name.endswith(_LOCAL_SUFFIXES):
        return LocalSource(SourceSpec("local", str(path.resolve()), collection or "", keys))
    raise InputError(
        f"Unknown --source {name!r}: use planetary-computer (default), earth-search, a STAC "
        "API URL (https://...), or a local catalog (a directory of item JSONs, an .ndjson "
        "or a stac-geoparquet file)."
    )


def source_from_spec(spec: SourceSpec, *, session: requests.Session | None = None) -> Source:
    """Re-open the source a manifest names."""
    if spec.kind == "local":
        return LocalSource(spec)
    if spec.kind not in PROFILES:
        raise InputError(f"Manifest source kind {spec.kind!r} is unknown to this stac-coh.")
    return StacApiSource(spec, session=session)


def _profile_options(profile: SourceProfile) -> dict[str, Any]:
    """Reading options a manifest carries so a worker needs no lookup."""
    options: dict[str, Any] = {}
    if profile.signing:
        options["signing"] = profile.signing
    if profile.requester_pays:
        options["requester_pays"] = True
    return options


# --------------------------------------------------------------------------------------
# reading side: everything derives from the SourceSpec


def asset_key(spec: SourceSpec, polarization: str) -> str:
    """Asset key holding ``polarization`` (``--asset-key`` mapping, else lower case)."""
    pol = polarization.upper()
    return spec.asset_keys.get(pol) or pol.lower()


def make_signer(spec: SourceSpec) -> HrefSigner | None:
    """The signer hrefs of this source need at read time, if any."""
    profile = PROFILES.get(spec.kind)
    signing = spec.options.get("signing") or (profile.signing if profile else None)
    if signing == "planetary-computer":
        return PlanetaryComputerSigner()
    return None


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


# --------------------------------------------------------------------------------------
# STAC APIs (Planetary Computer, Earth Search, any URL)


class StacApiSource:
    """A STAC API searched with pystac-client over the shared retrying session."""

    def __init__(
        self,
        spec: SourceSpec,
        *,
        session: requests.Session | None = None,
        timeout_s: float = 30.0,
    ) -> None:
        self._spec = spec
        self.session = session
        self.timeout_s = timeout_s
        self._checked = False

    @property
    def spec(self) -> SourceSpec:
        """The manifest's record of this source."""
        return self._spec

    def search(self, query: SearchQuery) -> list[dict[str, Any]]:
        """Search the collection; raise clear errors for unreachable APIs and bad input."""
        from pystac_client import Client
        from pystac_client.exceptions import APIError

        session = self.session or make_session(timeout_s=self.timeout_s)
        self._check_collection(session)
        try:
            client = Client.open(self._spec.url, stac_io=stac_api_io(session))
            search = client.search(
                collections=[self._spec.collection],
                intersects=query.aoi if query.bbox is None else None,
                bbox=query.bbox,
                datetime=[query.start, query.end],
                max_items=query.max_items,
                limit=min(_PAGE_SIZE, query.max_items),
            )
            return list(search.items_as_dicts())
        except APIError as exc:
            status = getattr(exc, "status_code", None)
            if status is None or status >= 500 or status == 429:
                raise self._unreachable(f"HTTP {status}") from None
            raise SearchError(
                f"The STAC API {self._spec.url} rejected the search (HTTP {status}): "
                f"{str(exc)[:300]}"
            ) from None
        except requests.RequestException as exc:
            raise self._unreachable(type(exc).__name__) from None

    def _check_collection(self, session: requests.Session) -> None:
        """Fail early, and clearly, on a collection the API does not have."""
        if self._checked:
            return
        url = f"{self._spec.url}/collections/{self._spec.collection}"
        try:
            response = session.get(url)
        except requests.RequestException as exc:
            raise self._unreachable(type(exc).__name__) from None
        if response.status_code == 404:
            raise InputError(
                f"The STAC API {self._spec.url} has no collection "
                f"{self._spec.collection!r}{self._known_collections(session)}; "
                "fix --collection."
            )
        if response.status_code >= 500 or response.status_code == 429:
            raise self._unreachable(f"HTTP {response.status_code}")
        self._checked = True

    def _known_collections(self, session: requests.Session) -> str:
        """`` (it has: a, b, ...)`` or nothing when the list cannot be had."""
        try:
            data = session.get(f"{self._spec.url}/collections").json()
            ids = sorted(c["id"] for c in data.get("collections", []))
        except (requests.RequestException, ValueError, KeyError, TypeError):
            return ""
        return f" (it has: {', '.join(ids[:20])})" if ids else ""

    def _unreachable(self, why: str) -> SourceUnreachableError:
        """The error for an API that does not answer usefully."""
        return SourceUnreachableError(
            f"The STAC API {self._spec.url} could not be reached ({why}). Check the network "
            "and retry, or search an offline catalog with --source PATH (a directory of "
            "item JSONs, an .ndjson or a stac-geoparquet file)."
        )


# --------------------------------------------------------------------------------------
# local catalogs


class LocalSource:
    """A directory of item JSONs, an ndjson file or a stac-geoparquet file, searched here."""

    def __init__(self, spec: SourceSpec) -> None:
        self._spec = spec

    @property
    def spec(self) -> SourceSpec:
        """The manifest's record of this source."""
        return self._spec

    @property
    def path(self) -> Path:
        """The catalog's path."""
        return Path(self._spec.url)

    def search(self, query: SearchQuery) -> list[dict[str, Any]]:
        """Items of the catalog intersecting the area within the dates."""
        if not self.path.exists():
            raise InputError(f"--source {self.path}: no such file or directory.")
        if self.path.suffix in (".parquet", ".geoparquet"):
            items = self._search_geoparquet(query)
        else:
            items = self._filter(self._read_json_items(), query)
        items.sort(key=lambda it: (_item_time(it) or _EPOCH, str(it.get("id", ""))))
        return items[: query.max_items]

    def _read_json_items(self) -> list[dict[str, Any]]:
        """Every item of a directory tree, an ndjson file or a FeatureCollection file."""
        items = list(_iter_json_items(self.path))
        collections = sorted({str(it.get("collection") or "") for it in items})
        if not self._spec.collection and len(collections) > 1:
            raise InputError(
                f"The catalog {self.path} holds several collections ({', '.join(collections)}); "
                "choose one with --collection."
            )
        if not self._spec.collection and collections and collections[0]:
            # One collection: record it, so manifests and readers know what they hold.
            self._spec = replace(self._spec, collection=collections[0])
        if self._spec.collection and self._spec.collection not in collections:
            raise InputError(
                f"The catalog {self.path} has no collection {self._spec.collection!r} "
                f"(it has: {', '.join(c for c in collections if c) or 'none'}); fix --collection."
            )
        return items

    def _filter(self, items: list[dict[str, Any]], query: SearchQuery) -> list[dict[str, Any]]:
        """Spatial and collection filter with CQL2, dates with the quirk-tolerant parser."""
        import cql2

        args: list[Any] = [{"op": "s_intersects", "args": [{"property": "geometry"}, query.aoi]}]
        if self._spec.collection:
            args.append({"op": "=", "args": [{"property": "collection"}, self._spec.collection]})
        expr = cql2.Expr({"op": "and", "args": args} if len(args) > 1 else args[0])
        out = []
        for item in items:
            when = _item_time(item)
            if when is None or not query.start <= when <= query.end:
                continue
            if item.get("geometry") and expr.matches(item):
                out.append(item)
        return out

    def _search_geoparquet(self, query: SearchQuery) -> list[dict[str, Any]]:
        """Search a stac-geoparquet file with rustac's DuckDB client (offline extensions)."""
        try:
            import rustac
            from rustac_duckdb_extensions import extension_directory
        except ImportError:
            raise InputError(
                "Searching a stac-geoparquet catalog needs the geoparquet extra: "
                "pip install 'stac-coh[geoparquet]'."
            ) from None
        client = rustac.DuckdbClient(
            extension_directory=str(extension_directory()), install_extensions=False
        )
        # rustac's ``datetime=`` ignores items without start/end_datetime; a CQL2 filter
        # on ``datetime`` treats every item alike.
        when = {
            "op": "t_intersects",
            "args": [
                {"property": "datetime"},
                {"interval": [_iso(query.start), _iso(query.end)]},
            ],
        }
        try:
            items = client.search(
                str(self.path),
                intersects=query.aoi,
                collections=[self._spec.collection] if self._spec.collection else None,
                filter=when,
            )
        except Exception as exc:  # rustac raises its own error types for unreadable files
            raise InputError(
                f"--source {self.path} is not a readable stac-geoparquet file: {exc}"
            ) from None
        return list(items)


def _iter_json_items(path: Path) -> Iterator[dict[str, Any]]:
    """Items from a directory (recursively), an ndjson file or a JSON file."""
    if path.is_dir():
        for child in sorted(path.rglob("*.json")):
            yield from _iter_json_items(child)
        return
    text = path.read_text()
    try:
        if path.suffix in (".ndjson", ".jsonl"):
            docs = [json.loads(line) for line in text.splitlines() if line.strip()]
        else:
            docs = [json.loads(text)]
    except ValueError as exc:
        raise InputError(f"--source {path} holds invalid JSON: {exc}.") from None
    for doc in docs:
        if doc.get("type") == "Feature":
            yield _anchored(doc, path, own_file=path.suffix not in (".ndjson", ".jsonl"))
        elif doc.get("type") == "FeatureCollection":
            for f in doc.get("features", []):
                if f.get("type") == "Feature":
                    yield _anchored(f, path, own_file=False)


def _anchored(item: dict[str, Any], path: Path, *, own_file: bool) -> dict[str, Any]:
    """Resolve relative asset and link hrefs against the file that holds the item.

    Static catalogs use relative hrefs; readers (GDAL, odc-stac) need absolute ones. An
    item alone in its file gets that file as its ``self`` href when it has none, which is
    its canonical href in a local catalog.
    """
    base = path.resolve().parent

    def absolute(href: str) -> str:
        return href if "://" in href or Path(href).is_absolute() else str((base / href).resolve())

    for asset in item.get("assets", {}).values():
        if isinstance(asset.get("href"), str):
            asset["href"] = absolute(asset["href"])
    links = item.setdefault("links", [])
    for link in links:
        if isinstance(link.get("href"), str):
            link["href"] = absolute(link["href"])
    if own_file and not any(link.get("rel") == "self" for link in links):
        links.append({"rel": "self", "href": str(path.resolve()), "type": "application/geo+json"})
    return item


def _item_time(item: Mapping[str, Any]) -> datetime | None:
    """The item's datetime, tolerant of the quirks :mod:`stac_coh.search.slices` normalises."""
    try:
        return item_datetime(item)
    except InputError:
        return None


def _iso(value: datetime) -> str:
    """RFC 3339 with ``Z``."""
    return str(value.isoformat()).replace("+00:00", "Z")
