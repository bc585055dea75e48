"""One tile's share of a composite plan as JSON: what an AWS Batch array child reads.

The submitting process reads the pair items once and writes one share per tile (the
request, where the pairs and the output are, the tile and its units with their pair
records), so a child reads only its own tile's share: its memory and start-up do not
grow with the size of the run.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from stac_coh.composite.pairs import PairRecord
from stac_coh.composite.periods import Period
from stac_coh.composite.run import CompositePlan, CompositeRequest, CompositeUnit
from stac_coh.composite.tiles import Lattice, TileStack
from stac_coh.errors import InputError
from stac_coh.grid import as_transform

__all__ = ["SHARE_FORMAT", "TileShare", "read_share", "tile_shares"]

SHARE_FORMAT = "stac-coh/composite-share/1"
"""``format`` of a share document."""


@dataclass(frozen=True)
class TileShare:
    """A decoded share: the request, the source, the output and the tile's units."""

    request: CompositeRequest
    """What to composite."""
    catalog: str
    """``--catalog``: where the pairs are."""
    pair_collection: str
    """Collection of the pairs."""
    out: str
    """Catalog the composites go to."""
    units: list[CompositeUnit]
    """The tile's units."""


def tile_shares(
    plan: CompositePlan, request: CompositeRequest, *, catalog: str, pair_collection: str, out: str
) -> list[bytes]:
    """One JSON share per tile of ``plan``, in tile order (child ``i`` takes share ``i``)."""
    shares = []
    for tile in plan.tiles:
        units = [u for u in plan.units if u.tile.code == tile.code]
        doc = {
            "format": SHARE_FORMAT,
            "catalog": catalog,
            "pair_collection": pair_collection,
            "out": out,
            "request": _request(request),
            "tile": _tile(tile),
            "units": [
                {
                    "period": u.period.label,
                    "polarization": u.polarization,
                    "pairs": {str(b): [p.id for p in ps] for b, ps in u.pairs.items()},
                }
                for u in units
            ],
        }
        shares.append(json.dumps(doc, separators=(",", ":")).encode())
    return shares


def read_share(data: bytes, where: str) -> TileShare:
    """Decode a share written by :func:`tile_shares`."""
    try:
        doc = json.loads(data)
        if doc.get("format") != SHARE_FORMAT:
            raise KeyError(f"format {doc.get('format')!r}")
        request = _request_from(doc["request"])
        tile = _tile_from(doc["tile"])
        periods = {p.label: p for p in request.periods}
        pairs = {p.id: p for p in tile.pairs}
        units = [
            CompositeUnit(
                tile,
                periods[u["period"]],
                u["polarization"],
                {int(b): tuple(pairs[i] for i in ids) for b, ids in u["pairs"].items()},
                request.stat,
            )
            for u in doc["units"]
        ]
        return TileShare(request, doc["catalog"], doc["pair_collection"], doc["out"], units)
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(
            f"{where} is not a composite share of this stac-coh version ({exc}); "
            "submit the run again."
        ) from None


def _request(request: CompositeRequest) -> dict[str, Any]:
    return {
        "periods": [
            {
                "label": p.label,
                "start": p.start.isoformat(),
                "stop": p.stop.isoformat(),
                "season": p.season,
            }
            for p in request.periods
        ],
        "baselines": list(request.baselines),
        "stat": request.stat,
        "collection_id": request.collection_id,
        "chunk": request.chunk,
        "overwrite": request.overwrite,
    }


def _request_from(doc: dict[str, Any]) -> CompositeRequest:
    periods = tuple(
        Period(
            p["label"],
            datetime.fromisoformat(p["start"]),
            datetime.fromisoformat(p["stop"]),
            p["season"],
        )
        for p in doc["periods"]
    )
    return CompositeRequest(
        periods=periods,
        baselines=tuple(int(b) for b in doc["baselines"]),
        stat=doc["stat"],
        collection_id=doc["collection_id"],
        chunk=int(doc["chunk"]),
        overwrite=bool(doc["overwrite"]),
    )


def _tile(tile: TileStack) -> dict[str, Any]:
    lat = tile.lattice
    return {
        "code": tile.code,
        "grid_code": tile.grid_code,
        "lattice": [lat.crs, lat.res_x, lat.res_y, lat.offset_x, lat.offset_y],
        "grid": [tile.left, tile.top, tile.width, tile.height],
        "pairs": [_pair(p) for p in tile.pairs],
    }


def _tile_from(doc: dict[str, Any]) -> TileStack:
    crs, rx, ry, ox, oy = doc["lattice"]
    left, top, width, height = doc["grid"]
    return TileStack(
        doc["code"],
        doc["grid_code"],
        Lattice(crs, rx, ry, ox, oy),
        left,
        top,
        int(width),
        int(height),
        tuple(_pair_from(p) for p in doc["pairs"]),
    )


def _pair(p: PairRecord) -> dict[str, Any]:
    return {
        "id": p.id,
        "start": p.start.isoformat(),
        "end": p.end.isoformat(),
        "baseline_days": p.baseline_days,
        "polarization": p.polarization,
        "crs": p.crs,
        "transform": list(p.transform),
        "shape": [p.height, p.width],
        "coherence_href": p.coherence_href,
        "item_href": p.item_href,
        "grid_code": p.grid_code,
        "platforms": list(p.platforms),
        "relative_orbit": p.relative_orbit,
        "orbit_state": p.orbit_state,
    }


def _pair_from(d: dict[str, Any]) -> PairRecord:
    return PairRecord(
        id=d["id"],
        start=datetime.fromisoformat(d["start"]),
        end=datetime.fromisoformat(d["end"]),
        baseline_days=float(d["baseline_days"]),
        polarization=d["polarization"],
        crs=d["crs"],
        transform=as_transform(d["transform"]),
        width=int(d["shape"][1]),
        height=int(d["shape"][0]),
        coherence_href=d["coherence_href"],
        item_href=d["item_href"],
        grid_code=d["grid_code"],
        platforms=tuple(d["platforms"]),
        relative_orbit=d["relative_orbit"],
        orbit_state=d["orbit_state"],
    )
