"""Choosing a source from what the user typed: a named API, any STAC API URL, a local catalog.

Per-source differences live in :mod:`stac_coh.search.profiles`; property quirks of the
items themselves are normalised in :mod:`stac_coh.search.slices`. A :class:`Source` only
searches (:mod:`~stac_coh.search.api_source`, :mod:`~stac_coh.search.local_source`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import requests

from stac_coh.errors import InputError
from stac_coh.search.api_source import StacApiSource
from stac_coh.search.local_source import LocalSource
from stac_coh.search.manifest import SourceSpec
from stac_coh.search.profiles import PROFILES, SourceProfile

if TYPE_CHECKING:
    from stac_coh.search.query import SearchQuery

__all__ = ["Source", "open_source"]

log = logging.getLogger(__name__)

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
        """Items (plain dicts) intersecting the area within the dates.

        Every href is unsigned (:func:`stac_coh.io.signing.unsigned_item`): search results
        are where hrefs enter stac-coh, so nothing downstream ever holds a token.
        """
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
    looks_local = "/" in name or name.startswith((".", "~", "local:"))
    if not path.exists() and (looks_local or name.endswith(_LOCAL_SUFFIXES)):
        raise InputError(
            f"--source {name}: no such file or folder. Give a local catalog that exists (a "
            "folder of item JSONs, an .ndjson or a stac-geoparquet file), or a STAC API."
        )
    if path.exists():
        return LocalSource(SourceSpec("local", str(path.resolve()), collection or "", keys))
    raise InputError(
        f"Unknown --source {name!r}: use planetary-computer (default), earth-search, a STAC "
        "API URL (https://...), or a local catalog (a directory of item JSONs, an .ndjson "
        "or a stac-geoparquet file)."
    )


def _profile_options(profile: SourceProfile) -> dict[str, Any]:
    """Reading options a manifest carries so a worker needs no lookup."""
    options: dict[str, Any] = {}
    if profile.signing:
        options["signing"] = profile.signing
    if profile.requester_pays:
        options["requester_pays"] = True
    return options
