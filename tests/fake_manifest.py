"""Hand-made manifests of fake pairs, for tests that must not depend on search."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from stac_coh.grid import OutputGrid
from stac_coh.search.manifest import Acquisition, Manifest, Pair, SourceSpec, pair_id

_T0 = datetime(2026, 3, 1, 0, 45, tzinfo=UTC)


def fake_manifest(n_pairs: int) -> Manifest:
    """``n_pairs`` distinct 12-day pairs on a tiny UTM grid; the items are not readable."""
    grid = OutputGrid.from_bounds(
        "EPSG:32643", (780_000.0, 1_420_000.0, 780_640.0, 1_420_640.0), 20.0
    )
    aoi = {
        "type": "Polygon",
        "coordinates": [
            [[77.5, 12.9], [77.506, 12.9], [77.506, 12.906], [77.5, 12.906], [77.5, 12.9]]
        ],
    }
    pairs = []
    for k in range(n_pairs):
        ref = _acquisition(_T0 + timedelta(days=k), f"ref-{k}")
        sec = _acquisition(_T0 + timedelta(days=k + 12), f"sec-{k}")
        pairs.append(
            Pair(pair_id(ref, sec, "VV", grid), ref, sec, "VV", 12.0, aoi, grid, coverage=1.0)
        )
    source = SourceSpec("local", "/nonexistent/catalog", "sentinel-1-rtc", {"VV": "vv"})
    return Manifest(source, {"bbox": [77.5, 12.9, 77.506, 12.906]}, tuple(pairs), {})


def _acquisition(when: datetime, item_id: str) -> Acquisition:
    """One fake single-slice acquisition on track 165 ascending."""
    return Acquisition("sentinel-1a", when, (item_id,), 165, "ascending", "IW")
