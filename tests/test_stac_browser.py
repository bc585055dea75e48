"""The demo catalog in the real STAC Browser 5.0.0 (Debian's chromium, Python playwright).

What a person would check, on every object of the catalog: the validation page says
"Valid" (schemas answered from ../shared/schemas); pages open without console errors and
every COG/PNG request answers 200/206; each item's map draws coherence colours with nodata
transparent (the base map shows through where the picture has no data), its data assets
are visible when shown, their panels say what the statistics describe, and every link of
the item opens. How it looks is in tests/stac_browser.py; the screenshots stay in
``test-artifacts/stac-browser/`` (``STAC_COH_TEST_ARTIFACTS`` moves them).

``STAC_COH_BROWSER_CATALOG=/path/to/catalog`` runs the same checks on another catalog
(e.g. one written by an older stac-coh) instead of a fresh demo.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.services import unavailable
from tests.stac_browser import REPO, check_catalog, unavailable_reason

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def results(request: pytest.FixtureRequest) -> dict[str, list[str]]:
    """Every check on every object of the catalog: check -> problems seen."""
    if (reason := unavailable_reason()) is not None:
        unavailable(reason)
    override = os.environ.get("STAC_COH_BROWSER_CATALOG")
    catalog = Path(override) if override else request.getfixturevalue("demo_run")[0] / "catalog"
    artifacts = Path(os.environ.get("STAC_COH_TEST_ARTIFACTS", REPO / "test-artifacts"))
    return check_catalog(catalog, artifacts / "stac-browser")


def failures(results: dict[str, list[str]], kind: str) -> str:
    """What the checks of one kind saw, one problem a line (empty when all passed)."""
    return "\n".join(
        f"{check}: {problem}"
        for check, seen in results.items()
        if check.startswith(kind)
        for problem in seen
    )


def test_every_object_is_valid_with_the_official_schemas(results):
    assert not failures(results, "valid "), "\n" + failures(results, "valid ")
    checked = [check for check in results if check.startswith("valid ")]
    assert any("/collection.json" in check for check in checked)
    assert any(check.startswith("valid models/") for check in checked), "no model item"
    assert len(checked) >= 5  # catalog, collection, two items, model


def test_catalog_collection_and_model_pages_open_cleanly(results):
    assert not failures(results, "page "), "\n" + failures(results, "page ")
    assert any(check.startswith("page models/") for check in results), "no model item"


def test_item_maps_show_coherence_with_transparent_nodata(results):
    assert not failures(results, "map "), "\n" + failures(results, "map ")
    assert len([check for check in results if check.startswith("map ")]) >= 2
