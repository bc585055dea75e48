"""An output that already holds a ``catalog.json``: someone's STAC catalog is joined, never
damaged; any other file of that name is refused before any work, in one line.

The command-line cases run the real CLI in a fresh process on a local catalog of real
Sentinel-1 item shapes (``tests.run_scene``); the store cases run locally and on a real
moto_server (the Batch worker's path, which publishes without the CLI's up-front check).
"""

from __future__ import annotations

import json
from pathlib import Path

import pystac
import pytest

from stac_coh.errors import StorageError
from stac_coh.io.storage import Store
from stac_coh.publish.collection import CATALOG_KEY
from stac_coh.publish.root_catalog import inspect_root_catalog, update_root_catalog
from tests.run_scene import RunScene, build_scene
from tests.services import unavailable
from tests.stac_browser import StacBrowser, check_page, check_validation, unavailable_reason
from tests.stac_validation import assert_valid
from tests.user_cli import cli, error_line

EXIT_OUTPUT = 5
COLLECTION = "sentinel-1-coherence"

THEIR_CATALOG = {
    "type": "Catalog",
    "stac_version": "1.1.0",
    "id": "field-campaign",
    "title": "Field campaign 2024",
    "description": "Drone orthophotos of the campaign.",
    "links": [
        {"rel": "root", "href": "./catalog.json", "type": "application/json"},
        {"rel": "about", "href": "https://example.org/campaign", "type": "text/html"},
    ],
}

NOT_STAC = {
    "not JSON": "{this is not json",
    "JSON but not STAC": json.dumps({"app": "notes", "links": 3}),
    "a GeoJSON FeatureCollection": json.dumps({"type": "FeatureCollection", "features": []}),
}


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> RunScene:
    return build_scene(tmp_path_factory.mktemp("scene"))


def search_and_run(scene: RunScene, out: Path):
    return cli(
        "search-and-run", *scene.search_args(), "--out", str(out), "--weights", str(scene.weights)
    )


@pytest.mark.parametrize("kind", list(NOT_STAC))
def test_run_refuses_a_catalog_json_that_is_not_stac_before_any_work(
    scene: RunScene, tmp_path: Path, kind: str
) -> None:
    out = tmp_path / "project"
    out.mkdir()
    (out / "catalog.json").write_text(NOT_STAC[kind])
    line = error_line(search_and_run(scene, out), EXIT_OUTPUT)
    assert str(out / "catalog.json") in line and "not a STAC catalog" in line
    assert (out / "catalog.json").read_text() == NOT_STAC[kind]
    assert sorted(p.name for p in out.iterdir()) == ["catalog.json"]  # nothing processed


@pytest.fixture(scope="module")
def joined(scene: RunScene, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list]:
    """Someone's STAC catalog folder after two runs into it: (folder, the two runs)."""
    out = tmp_path_factory.mktemp("campaign")
    (out / "catalog.json").write_text(json.dumps(THEIR_CATALOG))
    return out, [search_and_run(scene, out) for _ in range(2)]  # a rerun adds nothing


def test_run_joins_someone_elses_stac_catalog_as_one_child(joined: tuple[Path, list]) -> None:
    out, runs = joined
    for done in runs:
        assert done.returncode == 0, done.stderr[-2000:]
        assert "is the STAC catalog 'field-campaign'" in done.stdout
    catalog = json.loads((out / "catalog.json").read_text())
    ours = {"rel": "child", "href": f"./{COLLECTION}/collection.json"}
    added = [link for link in catalog["links"] if link not in THEIR_CATALOG["links"]]
    assert [{k: link[k] for k in ours} for link in added] == [ours]
    assert {k: v for k, v in catalog.items() if k != "links"} == {
        k: v for k, v in THEIR_CATALOG.items() if k != "links"
    }
    assert_valid(catalog)
    walked = pystac.Catalog.from_file(str(out / "catalog.json"))
    assert [child.id for child in walked.get_children()] == [COLLECTION]
    assert len(list(walked.get_items(recursive=True))) == 2


@pytest.mark.integration
@pytest.mark.slow
def test_stac_browser_shows_the_joined_catalog_and_calls_it_valid(
    joined: tuple[Path, list], tmp_path: Path
) -> None:
    if (reason := unavailable_reason()) is not None:
        unavailable(reason)
    out, _ = joined
    with StacBrowser(out, tmp_path / "shots") as browser:
        problems = check_validation(browser, "catalog.json", "joined-valid")
        problems += check_page(browser, "catalog.json", "joined-page", "Field campaign 2024")
        with browser.page("catalog.json") as (page, _visit):
            page.get_by_text("Field campaign 2024", exact=False).first.wait_for(timeout=60_000)
            page.wait_for_load_state("networkidle")
            text = page.inner_text("body")
    assert not problems, problems
    ours = json.loads((out / COLLECTION / "collection.json").read_text())["title"]
    assert ours in text, text[:2000]  # the collection is listed as their catalog's child


@pytest.mark.parametrize("kind", list(NOT_STAC))
def test_publishers_refuse_a_catalog_json_that_is_not_stac(store: Store, kind: str) -> None:
    store.put(CATALOG_KEY, NOT_STAC[kind].encode())
    link = ("child", f"./{COLLECTION}/collection.json", "application/json", COLLECTION)
    for attempt in (
        lambda: inspect_root_catalog(store),
        lambda: update_root_catalog(store, [link]),
        lambda: update_root_catalog(store, [link], point_self=True),
    ):
        with pytest.raises(StorageError, match="not a STAC catalog") as caught:
            attempt()
        assert store.url_for(CATALOG_KEY) in str(caught.value)
    assert store.get(CATALOG_KEY).data.decode() == NOT_STAC[kind]


def test_root_catalog_tells_its_own_from_someone_elses(store: Store) -> None:
    assert not inspect_root_catalog(store).exists
    link = ("child", f"./{COLLECTION}/collection.json", "application/json", COLLECTION)
    assert update_root_catalog(store, [link])
    own = inspect_root_catalog(store)
    assert own.exists and not own.foreign
    store.put(CATALOG_KEY, json.dumps(THEIR_CATALOG).encode())
    theirs = inspect_root_catalog(store)
    assert theirs.foreign and theirs.catalog_id == "field-campaign"
    assert theirs.title == "Field campaign 2024"
