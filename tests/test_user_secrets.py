"""Nothing leaked (issue #12, findings 2, 4 and 5): tokens and machine paths stay out.

The scene is what a user has after saving Planetary Computer items: a local catalog whose
hrefs point at ``*.blob.core.windows.net`` and still carry the (expired) SAS tokens they
were fetched with. Blob storage is served offline by :class:`tests.blob_proxy.BlobProxy`
(refuses anything but a current token) and tokens by
:class:`tests.pc_token_server.TokenServer`; GDAL reaches them through ``https_proxy``.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.blob_proxy import BlobProxy
from tests.pc_token_server import TokenServer
from tests.run_scene import AREA, SEARCH, RunScene, build_scene
from tests.user_cli import clean_env, cli

OLD_SAS = (
    "st=2024-01-01T00%3A00%3A00Z&se=2024-01-02T00%3A00%3A00Z&sp=rl&sv=2021-06-08&sr=c"
    "&skoid=0d0e&sig=OLDTOKEN%2Fabc%3D"
)
SIGNING = re.compile(r"(?<![A-Za-z0-9_-])(?:sig|se)=|X-Amz-Signature", re.IGNORECASE)
"""What a signed URL leaves in text: a SAS signature or expiry, an S3 signature."""


@dataclass
class SavedPcScene:
    """A local copy of Planetary Computer items, the services to read it, and a run of it."""

    root: Path
    catalog: Path
    scene: RunScene
    tokens: TokenServer
    blobs: BlobProxy
    env: dict[str, str]
    scratch: Path

    def search_args(self) -> list[str]:
        """The search that finds the scene's two pairs."""
        return ["--source", str(self.catalog), "--bbox", *map(str, AREA), *SEARCH]


@pytest.fixture(scope="module")
def saved_pc(tmp_path_factory) -> Iterator[SavedPcScene]:
    root = tmp_path_factory.mktemp("saved-pc")
    scene = build_scene(root / "scene")
    catalog = root / "pc-items"
    catalog.mkdir()
    with TokenServer().running() as tokens, BlobProxy(root / "scene").running() as blobs:
        for item_id, item in scene.items.items():
            item = json.loads(json.dumps(item))
            relative = Path(item["assets"]["vv"]["href"]).relative_to(root / "scene")
            item["assets"]["vv"]["href"] = f"{blobs.href(relative.as_posix())}?{OLD_SAS}"
            item["links"] = [link for link in item["links"] if link["rel"] != "self"]
            (catalog / f"{item_id}.json").write_text(json.dumps(item))
        scratch = root / "scratch"
        scratch.mkdir()
        env = clean_env(**blobs.env(), PC_SDK_SAS_URL=tokens.url, TMPDIR=str(scratch))
        yield SavedPcScene(root, catalog, scene, tokens, blobs, env, scratch)


@pytest.fixture(scope="module")
def run(saved_pc: SavedPcScene) -> subprocess.CompletedProcess[str]:
    """search-and-run of the saved items, -v, one blob answering 503 once (a GDAL warning)."""
    saved_pc.blobs.fail_first = {"cogs/0.tif"}
    return cli(
        "search-and-run",
        *saved_pc.search_args(),
        "--out",
        str(saved_pc.root / "out"),
        "--weights",
        str(saved_pc.scene.weights),
        "-v",
        env=saved_pc.env,
    )


def written_files(folder: Path) -> list[Path]:
    """Every file under ``folder``, hidden ones included."""
    return sorted(p for p in folder.rglob("*") if p.is_file())


def test_local_copies_of_pc_items_are_signed_at_read_time(saved_pc, run):
    # Finding 4: no signer for local sources meant unsigned reads (403 from blob storage).
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "2 published" in run.stdout
    assert saved_pc.tokens.requests, "no SAS token was requested for the blob hrefs"
    assert saved_pc.blobs.served > 0 and saved_pc.blobs.refused == 0
    # Every read carried a fresh token, none the stale one saved in the items.
    assert all("sig=token" in q for q in saved_pc.blobs.queries)
    assert not any("OLDTOKEN" in q for q in saved_pc.blobs.queries)


def test_gdal_retry_warnings_name_the_file_without_its_signature(run):
    # Finding 2: GDAL's warnings printed the whole signed URL.
    assert run.returncode == 0, run.stderr[-3000:]
    retries = [line for line in run.stderr.splitlines() if "HTTP error code: 503" in line]
    assert retries and all("cogs/0.tif" in line for line in retries), run.stderr
    assert not SIGNING.search(run.stderr), run.stderr


def test_a_run_leaves_no_token_and_no_temp_path_in_anything_it_writes(saved_pc, run):
    # Catalog tree (COGs included, as bytes), reports, manifests, and the logs on stderr.
    assert run.returncode == 0, run.stderr[-3000:]
    out = saved_pc.root / "out"
    files = written_files(out)
    assert any(p.parts[-3] == "runs" for p in files) and any("reports" in p.parts for p in files)
    scratch = str(saved_pc.scratch).encode()
    for path in files:
        data = path.read_bytes()
        assert not SIGNING.search(data.decode("latin-1")), path
        assert scratch not in data, path
    assert not SIGNING.search(run.stdout + run.stderr)
    assert str(saved_pc.scratch) not in run.stdout + run.stderr


def test_reports_manifests_and_catalog_hold_no_machine_path(saved_pc, run):
    # Finding 5 (the parts outside the items): relative hrefs, relocatable, no home folders.
    assert run.returncode == 0, run.stderr[-3000:]
    out = saved_pc.root / "out"
    base = str(saved_pc.root)
    documents = [
        *out.glob("reports/*.json"),
        *out.glob("runs/*/manifest.json"),
        out / "catalog.json",
        out / "sentinel-1-coherence" / "collection.json",
    ]
    for path in documents:
        assert base not in path.read_text(), path
    # The report's items are keys under the catalog root; its collection link is relative
    # to the report itself (the lead's report format, #13).
    report_path = next(out.glob("reports/*.json"))
    report = json.loads(report_path.read_text())
    for entry in report["pairs"]:
        assert not entry["item"].startswith("/") and (out / entry["item"]).is_file(), entry
    collection = report["catalog"]["collection_href"]
    assert not collection.startswith("/") and (report_path.parent / collection).is_file()


def test_published_items_hold_no_machine_path(saved_pc, run):
    # derived_from links are relative since #14 item 2 (engineer "catalog").
    items = list((saved_pc.root / "out").glob("sentinel-1-coherence/*/*.json"))
    assert len(items) == 2
    for path in items:
        assert str(saved_pc.root) not in path.read_text(), path


def test_the_published_run_manifest_runs_again_elsewhere(saved_pc, run, tmp_path):
    # Its local paths are relative to it: `stac-coh run` resolves them back.
    assert run.returncode == 0, run.stderr[-3000:]
    manifest = next((saved_pc.root / "out").glob("runs/*/manifest.json"))
    again = cli(
        "run",
        "--manifest",
        str(manifest),
        "--index",
        "0",
        "--out",
        str(tmp_path / "again"),
        "--weights",
        str(saved_pc.scene.weights),
        env=saved_pc.env,
        cwd=tmp_path,
    )
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]
    assert "1 published" in again.stdout


def test_search_json_keeps_the_hrefs_without_their_tokens(saved_pc, tmp_path):
    # Finding 2: `search --json` copied the SAS tokens of the source items into the manifest.
    manifest = tmp_path / "m.json"
    done = cli("search", *saved_pc.search_args(), "--json", str(manifest), env=saved_pc.env)
    assert done.returncode == 0, done.stderr
    text = manifest.read_text()
    assert not SIGNING.search(text)
    hrefs = [it["assets"]["vv"]["href"] for it in json.loads(text)["items"].values()]
    assert hrefs and all(h.startswith("https://") and "?" not in h for h in hrefs)


def test_predict_redacts_a_signed_input_url_from_gdal_messages(saved_pc, tmp_path):
    # The user may hand predict a signed URL; GDAL then quotes it in its retry warnings.
    saved_pc.blobs.fail_first = {"cogs/3.tif"}
    token = f"st=2026-01-01&se=2099-01-01&sp=rl&sv=2024-05-04&sr=c&sig=token{10**6}"
    # Slice 1 of the first date and of the date 12 days later: the same grid.
    t1 = f"{saved_pc.blobs.href('cogs/1.tif')}?{token}"
    t2 = f"{saved_pc.blobs.href('cogs/3.tif')}?{token}"
    out = tmp_path / "coh.tif"
    done = cli(
        "predict", t1, t2, "-o", str(out), "--weights", str(saved_pc.scene.weights),
        env=saved_pc.env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert out.is_file()
    assert "HTTP error code: 503" in done.stderr
    assert not SIGNING.search(done.stdout + done.stderr), done.stderr
