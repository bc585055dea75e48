"""A small local catalog of real-looking Sentinel-1 RTC items with COG assets, and tiny weights.

The items are the recorded Planetary Computer items of tests/data/stac (two slices of one
pass), coarsened to 2.5 km pixels and repeated 12 and 24 days later on the same track, so
a run has two valid 12-day pairs and one rejected 24-day combination.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from stac_coh.model.card import ModelCard, Provenance, UncertaintyHead
from stac_coh.model.resunet import ResUNet
from stac_coh.model.weights import save_weights
from tests.stac_data import PC_RTC, item, scaled, shifted_in_time, write_item_cog

REFERENCE_SLICES = ("S1A_IW_GRDH_1SDV_20240419T045749", "S1A_IW_GRDH_1SDV_20240419T045814")
AREA = (15.05, 33.5, 15.95, 34.25)
"""Across both slices of the pass, inside one MGRS tile (33SWT): one work unit per pair."""
SEARCH = ["--start", "2024-04-01", "--end", "2024-05-31"]


@dataclass(frozen=True)
class RunScene:
    """A local catalog folder, its items, and a weights file."""

    catalog: Path
    items: dict[str, dict[str, Any]]
    weights: Path

    def search_args(self) -> list[str]:
        """The search options that find the scene's two pairs."""
        bbox = [str(v) for v in AREA]
        return ["--source", str(self.catalog), "--bbox", *bbox, *SEARCH]


def build_scene(root: Path) -> RunScene:
    """Write items (3 dates x 2 slices) with COG assets and tiny random weights under ``root``."""
    catalog = root / "catalog"
    catalog.mkdir(parents=True)
    (root / "cogs").mkdir()
    first = [scaled(item(PC_RTC, p), 250) for p in REFERENCE_SLICES]
    dates = [first] + [[shifted_in_time(it, days, f"d{days}") for it in first] for days in (12, 24)]
    items: dict[str, dict[str, Any]] = {}
    for n, it in enumerate(it for date in dates for it in date):
        write_item_cog(it, root / "cogs" / f"{n}.tif", seed=0.37 * n)
        path = catalog / f"{it['id']}.json"
        # A local catalog's canonical href is its own file, not the API it was copied from.
        it["links"] = [link for link in it.get("links", []) if link["rel"] != "self"]
        it["links"].append({"rel": "self", "href": str(path), "type": "application/geo+json"})
        items[it["id"]] = it
        path.write_text(json.dumps(it))
    return RunScene(catalog, items, tiny_weights(root / "tiny.safetensors"))


def tiny_weights(path: Path) -> Path:
    """A base-8 ResUNet with a fixed seed: fast on a CPU, real network code path."""
    torch.manual_seed(0)
    card = ModelCard(
        name="tiny-test-weights",
        uncertainty=UncertaintyHead(calibrated=True),
        provenance=Provenance(source="tests", trained_on="nothing: random weights for tests"),
    )
    card = ModelCard(**{**card.__dict__, "architecture": card.architecture.__class__(base=8)})
    save_weights(ResUNet(base=8), card, path)
    return path


def stac_coh(*args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """Run the real command line in a fresh process."""
    return subprocess.run(
        [sys.executable, "-m", "stac_coh", *args], capture_output=True, text=True, **kwargs
    )
