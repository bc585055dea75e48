"""The search options shared by `search`, `search-and-run` and `submit`.

Decorate a command with :func:`search_options`: it gains every option below and
receives them as one :class:`SearchOptions` argument named ``search``::

    @search_options
    def my_command(search: SearchOptions, out: str = typer.Option(...)) -> None:
        result = search.run()
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from stac_coh.errors import InputError
from stac_coh.search.query import (
    DEFAULT_MAX_ITEMS,
    DEFAULT_MIN_COVERAGE,
    SearchQuery,
    load_aoi,
)

__all__ = ["SEARCH_EXAMPLES", "SearchOptions", "search_options"]

F = TypeVar("F", bound=Callable[..., Any])

SEARCH_EXAMPLES = "\n\n".join(
    [
        "  stac-coh search --bbox 77.4 12.8 77.8 13.1 --start 2026-04-01 --end 2026-06-30",
        "  stac-coh search --aoi area.geojson --start 2026-04-01 --end 2026-08-31 "
        "--baselines 12 --orbit-state descending --json pairs.json",
        "  stac-coh search --source earth-search --bbox -54 55 -52 57 "
        "--start 2024-04-01 --end 2024-05-31 --pol HH",
        "  stac-coh search --source ./catalog.parquet --bbox 77.4 12.8 77.8 13.1 "
        "--start 2026-04-01 --end 2026-08-31",
        "  stac-coh search --source https://stac.example.com/v1 --collection my-s1-rtc "
        "--asset-key VV=VV_gamma0 --bbox 10 45 10.5 45.4 --start 2025-01-01 --end 2025-03-01",
    ]
)
"""Example command lines, one paragraph each (Typer's rich help keeps paragraphs)."""

_PANEL = "Search"


@dataclass(frozen=True)
class SearchOptions:
    """What the user typed for a search, before validation."""

    bbox: tuple[float, float, float, float] | None = None
    """``--bbox W S E N``."""
    aoi: Path | None = None
    """``--aoi FILE.geojson``."""
    start: str | None = None
    """``--start``."""
    end: str | None = None
    """``--end``."""
    source: str = "planetary-computer"
    """``--source``."""
    collection: str | None = None
    """``--collection``."""
    asset_keys: tuple[str, ...] = field(default=())
    """``--asset-key POL=KEY`` (repeatable)."""
    pol: str = "VV"
    """``--pol``."""
    baselines: str = "6,12"
    """``--baselines``."""
    orbit_state: str | None = None
    """``--orbit-state``."""
    relative_orbit: int | None = None
    """``--relative-orbit``."""
    min_coverage: float = DEFAULT_MIN_COVERAGE
    """``--min-coverage``."""
    limit: int = DEFAULT_MAX_ITEMS
    """``--limit`` (total items)."""
    resolution: float | None = None
    """``--resolution``."""
    crs: str | None = None
    """``--crs``."""

    def query(self) -> SearchQuery:
        """The validated query."""
        if not self.start or not self.end:
            raise InputError("Give the dates to search with --start DATE and --end DATE.")
        if self.bbox is not None and self.aoi is not None:
            raise InputError("Give either --bbox or --aoi, not both.")
        return SearchQuery.build(
            bbox=self.bbox,
            aoi=load_aoi(self.aoi) if self.aoi is not None else None,
            start=self.start,
            end=self.end,
            polarization=self.pol,
            baselines=self.baselines,
            orbit_state=self.orbit_state,
            relative_orbit=self.relative_orbit,
            min_coverage=self.min_coverage,
            max_items=self.limit,
            resolution=self.resolution,
            crs=self.crs,
        )

    def asset_key_map(self) -> dict[str, str]:
        """``("VV=vv",)`` -> ``{"VV": "vv"}``."""
        out = {}
        for pair in self.asset_keys:
            pol, sep, key = pair.partition("=")
            if not sep or not pol.strip() or not key.strip():
                raise InputError(f"--asset-key {pair!r} must look like POL=KEY, e.g. VV=vv.")
            out[pol.strip().upper()] = key.strip()
        return out

    def run(self) -> Any:
        """Search and pair; returns a :class:`stac_coh.search.find.SearchResult`."""
        from stac_coh.io.http import make_session
        from stac_coh.search.find import search_pairs
        from stac_coh.search.sources import open_source
        from stac_coh.settings import get_settings

        query = self.query()
        settings = get_settings()
        session = make_session(timeout_s=settings.http_timeout_s, retries=settings.http_retries)
        source = open_source(
            self.source,
            collection=self.collection,
            asset_keys=self.asset_key_map(),
            session=session,
        )
        return search_pairs(source, query)


def _bbox_number(value: str) -> float:
    """One number of ``--bbox``; a clear message when an option took a number's place."""
    try:
        return float(value)
    except ValueError:
        if value.startswith("-"):
            message = (
                f"needs four numbers W S E N, but {value} came where a number should be: "
                "fewer than four were given (negative numbers are fine: --bbox -54 55 -52 57)."
            )
        else:
            message = f"needs four numbers W S E N; {value!r} is not a number."
        raise typer.BadParameter(message) from None


def _opt(*names: str, help: str, **kwargs: Any) -> Any:
    """A Typer option in the Search help panel."""
    return typer.Option(*names, help=help, rich_help_panel=_PANEL, **kwargs)


_PARAMETERS: list[inspect.Parameter] = [
    inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=ann)
    for name, ann, default in [
        (
            "bbox",
            Annotated[
                tuple[float, float, float, float] | None,
                _opt(
                    "--bbox",
                    metavar="W S E N",
                    parser=_bbox_number,
                    help="Area as lon/lat degrees: W S E N.",
                ),
            ],
            None,
        ),
        (
            "aoi",
            Annotated[
                Path | None,
                _opt("--aoi", metavar="FILE", help="Area as a GeoJSON file (instead of --bbox)."),
            ],
            None,
        ),
        (
            "start",
            Annotated[
                str | None, _opt("--start", metavar="DATE", help="First day (YYYY-MM-DD) or time.")
            ],
            None,
        ),
        (
            "end",
            Annotated[
                str | None,
                _opt("--end", metavar="DATE", help="Last day, inclusive (YYYY-MM-DD) or time."),
            ],
            None,
        ),
        (
            "source",
            Annotated[
                str,
                _opt(
                    "--source",
                    help="planetary-computer, earth-search, a STAC API URL, or a local catalog "
                    "(directory of item JSONs, .ndjson, stac-geoparquet).",
                ),
            ],
            "planetary-computer",
        ),
        (
            "collection",
            Annotated[
                str | None,
                _opt(
                    "--collection",
                    help="Collection; default sentinel-1-rtc (planetary-computer), "
                    "sentinel-1-grd (earth-search). Needed with a URL.",
                ),
            ],
            None,
        ),
        (
            "asset_keys",
            Annotated[
                list[str] | None,
                _opt(
                    "--asset-key",
                    metavar="POL=KEY",
                    help="Asset key of a polarisation, e.g. VV=vv; repeatable.",
                ),
            ],
            None,
        ),
        (
            "pol",
            Annotated[str, _opt("--pol", help="Polarisation both images must have.")],
            "VV",
        ),
        (
            "baselines",
            Annotated[
                str,
                _opt(
                    "--baselines",
                    metavar="DAYS",
                    help="Temporal baselines in days, comma-separated (±0.1 d).",
                ),
            ],
            "6,12",
        ),
        (
            "orbit_state",
            Annotated[
                str | None, _opt("--orbit-state", help="ascending or descending (default both).")
            ],
            None,
        ),
        (
            "relative_orbit",
            Annotated[int | None, _opt("--relative-orbit", help="Only this track (1-175).")],
            None,
        ),
        (
            "min_coverage",
            Annotated[
                float,
                _opt(
                    "--min-coverage",
                    help="Least share (0-1) of the imaged area that both images must cover.",
                ),
            ],
            DEFAULT_MIN_COVERAGE,
        ),
        (
            "limit",
            Annotated[
                int,
                _opt("--limit", help="Most items fetched in total (not a page size)."),
            ],
            DEFAULT_MAX_ITEMS,
        ),
        (
            "resolution",
            Annotated[
                float | None,
                _opt(
                    "--resolution",
                    metavar="METRES",
                    help="Output pixel size; default the reference's native size (10 m).",
                ),
            ],
            None,
        ),
        (
            "crs",
            Annotated[
                str | None,
                _opt("--crs", help="Output CRS, e.g. EPSG:32643; default the reference's UTM."),
            ],
            None,
        ),
    ]
]


def search_options(func: F) -> F:
    """Give a command the shared search options, delivered as ``search: SearchOptions``."""
    own = [p for p in inspect.signature(func).parameters.values() if p.name != "search"]
    names = {p.name for p in _PARAMETERS}

    @functools.wraps(func)
    def wrapper(**kwargs: Any) -> Any:
        values = {n: kwargs.pop(n) for n in list(kwargs) if n in names}
        values["asset_keys"] = tuple(values.get("asset_keys") or ())
        return func(search=SearchOptions(**values), **kwargs)

    params = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own] + _PARAMETERS
    # Typer reads the options from the signature built here, which mypy cannot follow.
    wrapper.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    return wrapper  # type: ignore[return-value]
