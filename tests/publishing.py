"""Builders for publication tests: small pairs, coherence rasters, input items, a model card.

Rasters are written the way the inference engine writes them (plain GeoTIFF, uint8 scale
0.004 nodata 255 or float32 NaN) so the publisher's COG rewrite is exercised too.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import rasterio

from stac_coh.grid import OutputGrid
from stac_coh.io.cog import UINT8_UNIT, encode, encoding_for
from stac_coh.model.card import ModelCard, Provenance, UncertaintyHead
from stac_coh.search.manifest import Acquisition, Pair, pair_id

SIZE = 64
"""Edge of test rasters in pixels."""
RES = 20.0
"""Pixel size in metres (UTM 31N)."""


def make_pair(index: int = 0, *, size: int = SIZE, days: int = 12) -> Pair:
    """Pair ``index``: its own grid tile (east of the previous) and its own dates."""
    left = 500_000.0 + index * size * RES
    top = 4_000_000.0 - (index % 3) * size * RES
    grid = OutputGrid("EPSG:32631", (RES, 0.0, left, 0.0, -RES, top), size, size)
    t0 = datetime(2024, 4, 1, 5, 58, 1, tzinfo=UTC) + timedelta(days=index)
    ref = Acquisition(
        "sentinel-1a",
        t0,
        (f"S1A_IW_GRDH_1SDV_{t0:%Y%m%dT%H%M%S}_{index:03d}_rtc",),
        51,
        "descending",
        "IW",
    )
    t1 = t0 + timedelta(days=days)
    sec = Acquisition(
        "sentinel-1c" if index % 2 else "sentinel-1a",
        t1,
        (f"S1C_IW_GRDH_1SDV_{t1:%Y%m%dT%H%M%S}_{index:03d}_rtc",),
        51,
        "descending",
        "IW",
    )
    aoi = {
        "type": "Polygon",
        "coordinates": [[[3, 36], [3.1, 36], [3.1, 36.1], [3, 36.1], [3, 36]]],
    }
    tile = "MGRS-31SDV"  # a real MGRS square name; the test grids need not lie in it
    return Pair(
        pair_id(ref, sec, "VV", grid, tile="31SDV"),
        ref,
        sec,
        "VV",
        float(days),
        aoi,
        grid,
        tile=tile,
    )


def coherence_values(pair: Pair, seed: int = 0) -> np.ndarray:
    """Deterministic coherence in [0, 1] with a nodata corner (NaN)."""
    rng = np.random.default_rng(seed)
    values = rng.uniform(0.0, 1.0, pair.grid.shape).astype(np.float32)
    values[: pair.grid.height // 4, : pair.grid.width // 4] = np.nan
    return values


def write_raster(path: Path, pair: Pair, values: np.ndarray, dtype: str = "uint8") -> Path:
    """Write ``values`` on the pair's grid with the product encoding (not yet a COG)."""
    encoding = encoding_for(dtype)
    profile = {
        "driver": "GTiff",
        "width": pair.grid.width,
        "height": pair.grid.height,
        "count": 1,
        "dtype": dtype,
        "crs": pair.grid.crs,
        "transform": pair.grid.affine,
        "nodata": encoding.nodata,
    }
    with rasterio.open(path, "w", **profile) as ds:
        ds.write(encode(values, encoding), 1)
        ds.scales = (encoding.scale,)
        ds.offsets = (encoding.offset,)
    return path


def write_pair_rasters(
    folder: Path, pair: Pair, *, dtype: str = "uint8", seed: int = 0
) -> tuple[Path, Path, np.ndarray]:
    """Coherence and uncertainty rasters of ``pair``; returns (coherence, uncertainty, values)."""
    folder.mkdir(parents=True, exist_ok=True)
    values = coherence_values(pair, seed)
    coh = write_raster(folder / f"{pair.id}_coh.tif", pair, values, dtype)
    sigma = (0.05 + 0.1 * values).astype(np.float32)  # NaN where coherence is nodata
    unc = write_raster(folder / f"{pair.id}_unc.tif", pair, sigma, "float32")
    return coh, unc, values


def input_items(pair: Pair, *, signed: bool = True) -> dict[str, dict[str, Any]]:
    """Input item JSONs as a manifest holds them; the self href may carry a SAS token."""
    api = "https://planetarycomputer.microsoft.com/api/stac/v1/collections/sentinel-1-rtc/items"
    items = {}
    for item_id in pair.item_ids:
        query = "?st=2024-01-01&se=2024-01-02&sp=rl&sig=SECRETSIGNATURE" if signed else ""
        items[item_id] = {
            "type": "Feature",
            "id": item_id,
            "links": [{"rel": "self", "href": f"{api}/{item_id}{query}"}],
        }
    return items


def model_card(
    *, calibrated: bool = True, source: str = "hf://FPSica/beyond-backscatter-grd-gee"
) -> ModelCard:
    """A card like the published weights' (checksum made up for the test)."""
    return ModelCard(
        name="beyond-backscatter-grd-gee",
        uncertainty=UncertaintyHead(calibrated=calibrated),
        provenance=Provenance(
            source=source,
            trained_on="12-day Sentinel-1 pairs (GEE S1_GRD) with InSAR coherence labels.",
            license="CC-BY-4.0",
            citation="Sica, Pulella, Schmitt (2026), arXiv 2606.07374",
        ),
        sha256=hashlib.sha256(b"test weights").hexdigest(),
    )


UINT8 = UINT8_UNIT


def stack_coherence(item: Any) -> np.ndarray:
    """The item's coherence as stackstac decodes it (rescaled, NaN nodata), one band."""
    import warnings

    import stackstac

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # stackstac/pandas deprecation chatter
        stack = stackstac.stack(
            [item],
            assets=["coherence"],
            epsg=32631,
            resolution=20,
            bounds=tuple(item.properties["proj:bbox"]),
            rescale=True,
            dtype="float64",
            fill_value=np.nan,
        )
        return np.asarray(stack.values[0, 0])


def listed_item_hrefs(store: Any, collection_id: str = "sentinel-1-coherence") -> list[str]:
    """Every item link reachable from the collection through its sub-catalogs, as
    ``./<id>/<id>.json`` relative to the collection's folder (duplicates kept)."""
    import json
    import posixpath

    out: list[str] = []

    def walk(key: str) -> None:
        doc = json.loads(store.get(key).data)
        folder = posixpath.dirname(key)
        for link in doc["links"]:
            target = posixpath.normpath(posixpath.join(folder, link["href"]))
            if link["rel"] == "child":
                walk(target)
            elif link["rel"] == "item":
                out.append("./" + posixpath.relpath(target, collection_id))

    walk(f"{collection_id}/collection.json")
    return out
