"""stac-coh composite end to end on simulated multi-baseline stacks with known decay.

The stacks (science/decay_stack.py) are pair catalogs whose coherence follows
gamma(t) = (1 - rho_inf) exp(-t / tau) + rho_inf per pixel, stored as uint8 COGs like
published pairs. Recovery tolerances below are for pixels whose tau is at most the
longest baseline (48 d): beyond it 6-48 d baselines see too little decay to separate
rho_inf from tau (the fit is then reported, not asserted: see the README).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pystac
import pytest
import rasterio
from rio_cogeo.cogeo import cog_validate
from typer.testing import CliRunner

from stac_coh.cli import app
from stac_coh.science.decay_stack import DecayStackSpec, StackCatalog, write_stack_catalog
from tests.stac_validation import assert_valid

SIZE = 96
PERIOD = ["--start", "2026-06-01", "--end", "2026-12-31"]
SEASONAL = "sentinel-1-coherence-seasonal"


def _composite(root: Path, *args: str) -> Any:
    result = CliRunner().invoke(
        app, ["composite", "--catalog", str(root), *PERIOD, "--json", *args], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _item(root: Path, item_id: str) -> dict[str, Any]:
    return json.loads((root / SEASONAL / item_id / f"{item_id}.json").read_text())


def _layer(root: Path, item: dict[str, Any], key: str) -> np.ndarray:
    """An asset decoded with the file's scale/offset, NaN at nodata, cropped to the tile."""
    href = root / SEASONAL / item["id"] / item["assets"][key]["href"]
    with rasterio.open(href) as ds:
        data = ds.read(1, masked=True)
        values = data.astype(np.float64) * ds.scales[0] + ds.offsets[0]
    height, width = item["properties"]["proj:shape"]
    return values.filled(np.nan)[:height, :width]


@pytest.fixture(scope="module")
def clean(tmp_path_factory) -> tuple[StackCatalog, dict[str, Any]]:
    """A noise-free stack (only the product's 0.004 quantisation), composited."""
    root = tmp_path_factory.mktemp("clean")
    stack = write_stack_catalog(root, seed=1, spec=DecayStackSpec(size=SIZE, n_dates=16))
    (result,) = _composite(root)
    return stack, _item(root, result["item_id"])


@pytest.fixture(scope="module")
def noisy(tmp_path_factory) -> tuple[StackCatalog, dict[str, Any]]:
    """A stack with white estimation noise of std 0.05 on every pair, composited."""
    root = tmp_path_factory.mktemp("noisy")
    spec = DecayStackSpec(size=SIZE, n_dates=16, noise=0.05)
    stack = write_stack_catalog(root, seed=2, spec=spec)
    (result,) = _composite(root)
    return stack, _item(root, result["item_id"])


def _errors(stack: StackCatalog, item: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """|rho error| and relative tau error where the true tau is at most 48 d."""
    truth = stack.truth
    rho, tau = _layer(stack.root, item, "rho_inf"), _layer(stack.root, item, "tau")
    assert np.isfinite(tau).all() and np.isfinite(rho).all()
    fast = truth.tau <= 48.0
    assert fast.mean() > 0.5
    return np.abs(rho - truth.rho_inf)[fast], np.abs(tau / truth.tau - 1.0)[fast]


def test_fit_recovers_rho_inf_and_tau_on_a_clean_stack(clean):
    rho_err, tau_err = _errors(*clean)
    assert np.percentile(rho_err, 99) <= 0.015 and rho_err.max() <= 0.03
    assert np.percentile(tau_err, 99) <= 0.05 and tau_err.max() <= 0.08


def test_fit_recovers_rho_inf_and_tau_through_estimation_noise(noisy):
    rho_err, tau_err = _errors(*noisy)
    assert np.median(rho_err) <= 0.03 and np.percentile(rho_err, 90) <= 0.12
    assert np.median(tau_err) <= 0.2 and np.percentile(tau_err, 90) <= 0.45


def test_composites_equal_numpy_over_the_stack_odc_stac_loads(clean, tmp_path):
    import odc.stac

    stack, item = clean
    catalog = pystac.Catalog.from_file(str(stack.root / "catalog.json"))
    pairs = [i for i in catalog.get_items(recursive=True) if i.collection_id != SEASONAL]
    mean_id = _composite(stack.root, "--stat", "mean")[0]["item_id"]
    mean_item = _item(stack.root, mean_id)
    for baseline, n_pairs in stack.pairs_per_baseline.items():
        members = [i for i in pairs if i.properties["coh:baseline_days"] == baseline]
        assert (
            len(members) == n_pairs == item["properties"]["coh:pairs_per_baseline"][str(baseline)]
        )
        stored = odc.stac.load(members, bands=["coherence"]).coherence.values
        values = np.where(stored == 255, np.nan, stored * 0.004)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # pixels no pair covers
            median, mean = np.nanmedian(values, axis=0), np.nanmean(values, axis=0)
        # 0.002: the composite is stored on the product's 0.004 steps.
        np.testing.assert_allclose(
            _layer(stack.root, item, f"coherence_{baseline}d"), median, atol=0.0021
        )
        np.testing.assert_allclose(
            _layer(stack.root, mean_item, f"coherence_{baseline}d"), mean, atol=0.0021
        )
        counts = _layer(stack.root, item, f"count_{baseline}d")
        np.testing.assert_array_equal(np.nan_to_num(counts), stack.counts[baseline])
        np.testing.assert_array_equal(stack.counts[baseline], np.isfinite(values).sum(axis=0))
        assert stack.counts[baseline].min() < n_pairs  # the swath gaps make counts differ


def test_item_collection_and_catalog_are_valid_and_browser_ready(clean):
    stack, item = clean
    root = stack.root
    assert_valid(item)
    collection = json.loads((root / SEASONAL / "collection.json").read_text())
    assert_valid(collection)
    catalog = json.loads((root / "catalog.json").read_text())
    assert_valid(catalog)
    assert {"./sentinel-1-coherence/collection.json", f"./{SEASONAL}/collection.json"} <= {
        link["href"] for link in catalog["links"] if link["rel"] == "child"
    }
    props = item["properties"]
    assert (props["start_datetime"], props["end_datetime"]) == (
        "2026-06-01T00:00:00Z",
        "2026-12-31T23:59:59Z",
    )
    assert props["datetime"] is None and collection["extent"]["temporal"]["interval"] == [
        ["2026-06-01T00:00:00Z", "2026-12-31T23:59:59Z"]
    ]
    derived = [link for link in item["links"] if link["rel"] == "derived_from"]
    assert len(derived) == props["coh:pairs"] == sum(stack.pairs_per_baseline.values())
    item_dir = root / SEASONAL / item["id"]
    for link in derived:
        assert link["href"].startswith("../../sentinel-1-coherence/")
        assert (item_dir / link["href"]).resolve().is_file()
    for key, asset in item["assets"].items():
        path = item_dir / asset["href"]
        assert path.is_file()
        if key == "thumbnail":
            assert asset["type"] == "image/png" and "thumbnail" in asset["roles"]
            continue
        assert asset["type"] == "image/tiff; application=geotiff; profile=cloud-optimized"
        assert cog_validate(str(path), quiet=True)[0], key
        with rasterio.open(path) as ds:
            assert ds.nodata is not None or key == "visual"
            for factor in ds.overviews(1):  # every overview halves exactly
                assert ds.width % factor == 0 and ds.height % factor == 0
        if key != "visual":
            (band,) = asset["bands"]
            assert "statistics" in band and "nodata" in band
    assert set(collection["renders"]) >= {"coherence_12d", "tau", "rho_inf", "visual"}


def test_values_are_in_range(clean):
    stack, item = clean
    for key in item["assets"]:
        if key in ("visual", "thumbnail"):
            continue
        values = _layer(stack.root, item, key)
        finite = values[np.isfinite(values)]
        assert finite.size, key
        if key.startswith(("coherence_", "rho_inf", "rmse")):
            assert finite.min() >= 0.0 and finite.max() <= 1.0, key
        elif key == "tau":
            assert finite.min() >= 1.0 and finite.max() <= 1000.0
        else:  # counts
            baseline = int(key.removeprefix("count_").removesuffix("d"))
            assert finite.max() <= stack.pairs_per_baseline[baseline]


def test_a_rerun_leaves_up_to_date_items_alone(clean):
    stack, item = clean
    (again,) = _composite(stack.root)
    assert again["status"] == "up-to-date" and again["item_id"] == item["id"]


def test_grid_tiles_name_items_and_select_units(tmp_path):
    spec = DecayStackSpec(size=32, n_dates=4, baselines=(6, 12), grid_code="MGRS-10SEG")
    write_stack_catalog(tmp_path, seed=5, spec=spec)
    args = ["composite", "--catalog", str(tmp_path), "--year", "2026", "--season", "JJA"]
    plan = CliRunner().invoke(app, [*args, "--plan", "--json", "--tile", "MGRS-10SEG"])
    assert plan.exit_code == 0, plan.output
    (tile,) = json.loads(plan.stdout)["tiles"]
    assert tile["code"] == "MGRS-10SEG" and tile["units"][0]["decay_fit"] is False
    unknown = CliRunner().invoke(app, [*args, "--tile", "MGRS-33UXP"])
    assert "No composite tile MGRS-33UXP" in str(unknown.exception)
    result = CliRunner().invoke(app, [*args, "--json"], catch_exceptions=False)
    (made,) = json.loads(result.stdout)
    item = _item(tmp_path, made["item_id"])
    assert item["id"] == "MGRS-10SEG_2026-JJA_VV_median"
    assert item["properties"]["grid:code"] == "MGRS-10SEG" and not made["fitted"]
    assert "tau" not in item["assets"] and "no decay model" in item["properties"]["description"]
    assert_valid(item)


def test_pairing_accepts_the_composite_baselines(tmp_path):
    from stac_coh.cli._search_options import SearchOptions
    from stac_coh.science.demo import build_demo_catalog

    source = build_demo_catalog(tmp_path, tile=64)
    search = SearchOptions(
        bbox=source.bbox,
        start=source.start,
        end=source.end,
        source=str(source.items_dir),
        baselines="6,12,18,24,36,48",
    )
    baselines = sorted(round(p.baseline_days) for p in search.run().manifest.pairs)
    assert baselines == [6, 12, 18, 24]
