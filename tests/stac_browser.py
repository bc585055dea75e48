"""Drive the real STAC Browser 5.0.0 build in Debian's chromium, as a person would look at it.

The static build (``../shared/tools/stac-browser``) and a catalog are each served on
127.0.0.1 by ``stac-coh serve`` (Range + CORS); chromium runs headless through Python
playwright (never ``playwright install``: the system browser is used). Requests that would
leave the machine are answered locally: schema URLs from ``../shared/schemas`` (so the
validation page can fetch them), base-map tiles with plain magenta tiles (so transparent
nodata shows as magenta and opaque nodata does not), anything else aborted and recorded.

Each check returns the problems it saw, in words, so the same code asserts in the test and
reports on any catalog from the command line::

    python -m tests.stac_browser CATALOG_DIR --artifacts DIR
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urljoin, urlsplit

import numpy as np
from PIL import Image

from tests.services import free_port, stop, wait_http

REPO = Path(__file__).parents[1]
SHARED = REPO.parent / "shared"
DIST_TARBALL = SHARED / "tools" / "stac-browser" / "stac-browser-5.0.0-dist.tgz"
SCHEMAS = SHARED / "schemas"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--use-gl=swiftshader",
    "--enable-unsafe-swiftshader",
    "--ignore-gpu-blocklist",
]
MAGENTA = (255, 0, 255)
"""Colour of every base-map tile: what transparent nodata must let through."""
MAP_TIMEOUT_S = 120.0
"""Longest wait for a map to draw a COG (WebGL in software is slow on a loaded machine)."""
EMPTY_MAP = "No spatial information available in the metadata."
"""What STAC Browser writes on a map it has nothing to draw on."""
VIRIDIS_TOLERANCE = 24
"""Largest RGB distance from the viridis colour map that still counts as coherence colour."""


def unavailable_reason() -> str | None:
    """Why the real-browser check cannot run here, or ``None`` when it can."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Python playwright is not installed (pip install -e '.[dev]')"
    if not CHROMIUM.exists():
        return f"{CHROMIUM} is missing (Debian package chromium)"
    if not DIST_TARBALL.exists():
        return f"{DIST_TARBALL} is missing (the shared STAC Browser build)"
    return None


@dataclass
class Visit:
    """What one page did: requests, errors, and where its screenshot is."""

    url: str
    """Address opened."""
    console_errors: list[str] = field(default_factory=list)
    """Console errors and uncaught page errors."""
    catalog_responses: list[tuple[int, str]] = field(default_factory=list)
    """(status, URL) of every response from the catalog server."""
    failed: list[str] = field(default_factory=list)
    """Requests that failed outright (URL and reason)."""
    left_machine: list[str] = field(default_factory=list)
    """Requests to other hosts that were not schemas or base-map tiles (aborted)."""
    screenshot: Path | None = None
    """Full-page screenshot taken at the end."""

    def request_problems(self) -> list[str]:
        """Console errors, failed requests and COG/PNG answers other than 200/206."""
        problems = [f"console error: {text}" for text in self.console_errors]
        problems += [f"request failed: {text}" for text in self.failed]
        problems += [f"request left the machine: {url}" for url in self.left_machine]
        for status, url in self.catalog_responses:
            if url.endswith((".tif", ".png")) and status not in (200, 206):
                problems.append(f"{url} answered {status}")
        return problems

    def asset_requests(self, suffix: str) -> list[str]:
        """Catalog URLs ending in ``suffix`` that the page fetched."""
        return [url for _, url in self.catalog_responses if url.endswith(suffix)]


@dataclass(frozen=True)
class MapPixels:
    """How the pixels of a map screenshot divide up."""

    coherence: float
    """Share of pixels whose colour lies on the viridis colour map."""
    basemap: float
    """Share of magenta (base map seen through transparency) pixels."""
    black: float
    """Share of near-black pixels (opaque nodata draws black)."""
    grey_spread: float
    """5th to 95th percentile range of grey levels among non-base-map grey pixels."""


def classify(image: Image.Image) -> MapPixels:
    """Split a map screenshot into coherence colours, base map and black."""
    from matplotlib import colormaps

    rgb = np.asarray(image.convert("RGB"), dtype=np.int32).reshape(-1, 3)
    lut = np.round(colormaps["viridis"](np.linspace(0, 1, 256))[:, :3] * 255).astype(np.int32)
    nearest = np.full(len(rgb), np.inf)
    for chunk in np.array_split(lut, 8):
        distance = np.sqrt(((rgb[:, None, :] - chunk[None, :, :]) ** 2).sum(-1)).min(1)
        nearest = np.minimum(nearest, distance)
    magenta = np.abs(rgb - np.array(MAGENTA)).max(1) <= 40
    black = rgb.max(1) <= 25
    grey = (rgb.max(1) - rgb.min(1) <= 12) & ~magenta
    levels = rgb[grey].mean(1) if grey.any() else np.zeros(1)
    return MapPixels(
        coherence=float((nearest <= VIRIDIS_TOLERANCE).mean()),
        basemap=float(magenta.mean()),
        black=float(black.mean()),
        grey_spread=float(np.percentile(levels, 95) - np.percentile(levels, 5)),
    )


class StacBrowser:
    """STAC Browser and a catalog served on 127.0.0.1, and a headless chromium to look."""

    def __init__(
        self, catalog: Path, artifacts: Path, basemap: tuple[int, int, int] = MAGENTA
    ) -> None:
        self.catalog = Path(catalog)
        self.artifacts = Path(artifacts)
        self.basemap = basemap
        self._stack = contextlib.ExitStack()
        self._schema_index: dict[str, str] = json.loads((SCHEMAS / "index.json").read_text())
        self.browser_url = ""
        self.catalog_url = ""

    def __enter__(self) -> StacBrowser:
        from playwright.sync_api import sync_playwright

        self.artifacts.mkdir(parents=True, exist_ok=True)
        dist = Path(self._stack.enter_context(tempfile.TemporaryDirectory(prefix="stac-b-")))
        with tarfile.open(DIST_TARBALL) as tar:
            tar.extractall(dist, filter="data")
        root = dist / "dist" if (dist / "dist").is_dir() else dist
        self.browser_url = self._serve(root, "index.html")
        self.catalog_url = self._serve(self.catalog, "catalog.json")
        playwright = self._stack.enter_context(sync_playwright())
        self._browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS
        )
        self._stack.callback(self._browser.close)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def _serve(self, folder: Path, landing: str) -> str:
        """Serve ``folder`` with ``stac-coh serve`` on a free port; return its base URL."""
        port = free_port()
        log = (self.artifacts / f"serve-{port}.log").open("w")
        self._stack.callback(log.close)
        command = ["serve", str(folder), "--port", str(port), "--catalog", landing]
        proc = subprocess.Popen(
            [sys.executable, "-m", "stac_coh", *command],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self._stack.callback(stop, proc)
        base = f"http://127.0.0.1:{port}"
        wait_http(f"{base}/{landing}", 60, proc)
        return base

    def address(self, stac_path: str, *, validation: bool = False) -> str:
        """STAC Browser address of a STAC file of the catalog (``validation``: its report)."""
        target = f"{self.catalog_url}/{stac_path}".replace("http://", "http:/", 1)
        route = "validation/external" if validation else "external"
        return f"{self.browser_url}/#/{route}/{quote(target, safe='/:')}"

    @contextlib.contextmanager
    def page(self, stac_path: str, *, validation: bool = False) -> Iterator[tuple[Any, Visit]]:
        """Open a page with every outside request answered locally; record what it did."""
        url = self.address(stac_path, validation=validation)
        visit = Visit(url)
        context = self._browser.new_context(viewport={"width": 1400, "height": 1000})
        page = context.new_page()
        page.route("**/*", lambda route: self._answer(route, visit))
        page.on("console", lambda m: m.type == "error" and visit.console_errors.append(m.text))
        page.on("pageerror", lambda e: visit.console_errors.append(f"page error: {e}"))
        page.on("requestfailed", lambda r: visit.failed.append(f"{r.url} ({r.failure})"))
        page.on("response", lambda r: self._record(r, visit))
        try:
            page.goto(url)
            yield page, visit
        finally:
            context.close()

    def _record(self, response: Any, visit: Visit) -> None:
        """Keep the catalog server's answers."""
        if response.url.startswith(self.catalog_url):
            visit.catalog_responses.append((response.status, response.url))

    def _answer(self, route: Any, visit: Visit) -> None:
        """Local requests pass; schemas come from files; tiles are magenta; the rest aborts."""
        url = route.request.url
        if url.startswith(("http://127.0.0.1:", "data:", "blob:")):
            route.continue_()
            return
        cors = {"Access-Control-Allow-Origin": "*"}
        schema = self._schema_index.get(url.split("#")[0])
        if schema is not None:
            route.fulfill(status=200, path=str(SCHEMAS / schema), headers=cors)
        elif urlsplit(url).hostname == "tile.openstreetmap.org":
            tile = _tile(self.basemap)
            route.fulfill(status=200, body=tile, content_type="image/png", headers=cors)
        else:
            visit.left_machine.append(url)
            route.abort()

    def screenshot(self, page: Any, name: str) -> Path:
        """Full-page screenshot kept as a test artifact."""
        path = self.artifacts / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path


def _tile(colour: tuple[int, int, int]) -> bytes:
    """A 256 px PNG base-map tile of one colour."""
    import io

    buffer = io.BytesIO()
    Image.new("RGB", (256, 256), colour).save(buffer, format="PNG")
    return buffer.getvalue()


def map_pixels(page: Any, ready: str) -> tuple[MapPixels, Image.Image]:
    """Wait until the item map shows ``ready`` ('colour' or 'grey') and stops changing.

    Polls screenshots of the map (WebGL cannot be read from the page) until the condition
    holds and two consecutive shots are identical, or :data:`MAP_TIMEOUT_S` passes.
    """
    import io

    locator = page.locator(".maps-preview .map").first
    locator.wait_for(state="visible", timeout=60_000)
    deadline = time.monotonic() + MAP_TIMEOUT_S
    previous = b""
    while True:
        shot = locator.screenshot()
        image = Image.open(io.BytesIO(shot))
        pixels = classify(_inner(image))
        if ready == "colour":
            drawn = pixels.coherence > 0.02
        else:
            drawn = pixels.grey_spread > 60 and pixels.coherence < 0.01
        if (drawn and shot == previous) or time.monotonic() > deadline:
            return pixels, image
        previous = shot
        page.wait_for_timeout(1500)


def _inner(image: Image.Image) -> Image.Image:
    """The map without the 40 px bands where OpenLayers puts its controls."""
    width, height = image.size
    return image.crop((40, 40, width - 40, height - 40))


def _basemap_mask(image: Image.Image) -> np.ndarray:
    """Where the magenta base map shows."""
    rgb = np.asarray(_inner(image).convert("RGB"), dtype=np.int32)
    return np.abs(rgb - np.array(MAGENTA)).max(-1) <= 40


def check_item(
    browser: StacBrowser, stac_path: str, name: str, data_assets: tuple[str, ...] = ()
) -> list[str]:
    """The item's map draws coherence in colour with nodata transparent; each of
    ``data_assets`` shown on the map is visible, transparent where the picture is, and its
    panel says what its statistics describe; no request fails."""
    problems: list[str] = []
    with browser.page(stac_path) as (page, visit):
        pixels, visual = map_pixels(page, "colour")
        visual.save(browser.artifacts / f"{name}-map.png")
        if pixels.coherence < 0.02:
            problems.append(f"the map shows no coherence colours ({pixels})")
        if pixels.black > 0.002:
            problems.append(f"nodata drawn opaque: {pixels.black:.1%} of the map is black")
        if pixels.basemap < 0.05:
            problems.append(f"the base map does not show through ({pixels})")
        for key in data_assets:
            problems += _show_data_asset(browser, page, key, _basemap_mask(visual), name)
        visit.screenshot = browser.screenshot(page, name)
    if not visit.asset_requests(".tif"):
        problems.append("the map fetched no COG")
    return visit.request_problems() + problems + _dead_links(browser, stac_path)


def _dead_links(browser: StacBrowser, stac_path: str) -> list[str]:
    """Links of the item that a click would not open: what answers other than 200."""
    import requests

    item_url = f"{browser.catalog_url}/{stac_path}"
    problems = []
    for link in requests.get(item_url, timeout=30).json().get("links", []):
        href = urljoin(item_url, link["href"])
        if not href.startswith(browser.catalog_url):
            continue  # a URL of another host: not ours to answer offline
        status = requests.get(href, timeout=30).status_code
        if status != 200:
            problems.append(f"{link['rel']} link {link['href']} answers {status}")
    return problems


def _show_data_asset(
    browser: StacBrowser, page: Any, key: str, transparent: np.ndarray, name: str
) -> list[str]:
    """Show asset ``key`` on the map and look at it and at its panel."""
    page.locator(f"#asset-{key}-heading button").click()
    body = page.locator(f"#asset-{key}")
    body.get_by_role("button", name="Show on map").click()
    pixels, image = map_pixels(page, "grey")
    image.save(browser.artifacts / f"{name}-{key}-map.png")
    problems = []
    if pixels.grey_spread <= 60:
        problems.append(f"{key} is not visible: grey levels span {pixels.grey_spread:.0f}")
    leaked = float((transparent & ~_basemap_mask(image)).mean())
    if leaked > 0.005:
        problems.append(f"{key}: {leaked:.1%} of the map is opaque where nodata should be")
    panel = body.inner_text()
    if "Statistics are of the stored values" not in panel:
        problems.append(f"{key}: the panel does not say what its statistics describe")
    page.locator(f"#asset-{key}-heading button").click()
    return problems


def check_page(browser: StacBrowser, stac_path: str, name: str, expect: str) -> list[str]:
    """A page opens without errors and shows ``expect``; its map is not empty."""
    with browser.page(stac_path) as (page, visit):
        page.get_by_text(expect, exact=False).first.wait_for(timeout=60_000)
        page.wait_for_load_state("networkidle")
        text = page.inner_text("body")
        visit.screenshot = browser.screenshot(page, name)
    problems = visit.request_problems()
    if EMPTY_MAP in text:
        problems.append(f"{stac_path}: the map is empty ('{EMPTY_MAP}')")
    return problems


def check_validation(browser: StacBrowser, stac_path: str, name: str) -> list[str]:
    """STAC Browser's validation report (schemas from ../shared/schemas) says Valid."""
    with browser.page(stac_path, validation=True) as (page, visit):
        page.get_by_text("Result", exact=True).first.wait_for(timeout=60_000)
        report = page.locator(".validation, main, body").first
        page.wait_for_function(
            "() => !document.body.innerText.includes('Validating')", timeout=60_000
        )
        text = report.inner_text()
        visit.screenshot = browser.screenshot(page, name)
    problems = visit.request_problems()
    result = text.split("Result", 1)[-1].split()[:1]
    if result != ["Valid"] or "Invalid" in text or "not found" in text:
        detail = " ".join(text.split("Result", 1)[-1].split())[:600]
        problems.append(f"{stac_path} is not valid: {detail}")
    return problems


def stac_objects(catalog: Path) -> dict[str, dict[str, Any]]:
    """Every STAC object reachable from the root catalog: path (relative) -> JSON."""
    found: dict[str, dict[str, Any]] = {}
    pending = ["catalog.json"]
    while pending:
        rel = pending.pop()
        if rel in found:
            continue
        found[rel] = data = json.loads((catalog / rel).read_text())
        for link in data.get("links", []):
            if link.get("rel") in {"child", "item"}:
                target = (catalog / rel).parent / link["href"]
                pending.append(target.resolve().relative_to(catalog.resolve()).as_posix())
    return found


def check_catalog(catalog: Path, artifacts: Path) -> dict[str, list[str]]:
    """Every check on every object of ``catalog``: check name -> problems."""
    objects = stac_objects(catalog)
    items = {
        p: d for p, d in objects.items() if d["type"] == "Feature" and "coherence" in d["assets"]
    }
    others = {p: d for p, d in objects.items() if p not in items}
    results: dict[str, list[str]] = {}
    with StacBrowser(catalog, artifacts) as browser:
        for path, data in objects.items():
            results[f"valid {path}"] = check_validation(browser, path, f"valid-{data['id']}")
        for path, data in others.items():
            expect = data.get("title") or data["properties"].get("title", data["id"])
            results[f"page {path}"] = check_page(browser, path, f"page-{data['id']}", expect)
        for n, (path, data) in enumerate(sorted(items.items())):
            assets = ("coherence", "uncertainty") if n == 0 else ()  # one item is enough
            results[f"map {path}"] = check_item(browser, path, f"item-{data['id']}", assets)
    return results


def readme_screenshot(catalog: Path, item_path: str, png: Path) -> None:
    """The item page (map and description) on a light-grey base map, for the README."""
    with (
        tempfile.TemporaryDirectory() as tmp,
        StacBrowser(catalog, Path(tmp), basemap=(232, 232, 232)) as browser,
        browser.page(item_path) as (page, _),
    ):
        page.locator(".maps-preview .map").first.wait_for(state="visible", timeout=60_000)
        deadline = time.monotonic() + MAP_TIMEOUT_S
        while classify(_inner(_map_image(page))).coherence < 0.02:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{item_path}: the map drew no coherence")
            page.wait_for_timeout(1500)
        page.wait_for_timeout(3000)  # let the last overview tiles land before the shot
        page.screenshot(path=str(png), clip={"x": 0, "y": 0, "width": 1400, "height": 720})


def _map_image(page: Any) -> Image.Image:
    """A screenshot of the item map."""
    import io

    return Image.open(io.BytesIO(page.locator(".maps-preview .map").first.screenshot()))


def main() -> int:
    """Run every check on a catalog folder and print what a person would have seen."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("catalog", type=Path)
    parser.add_argument("--artifacts", type=Path, default=REPO / "test-artifacts" / "browser")
    parser.add_argument("--readme", type=Path, help="only take the README screenshot, here")
    parser.add_argument("--item", help="item path in the catalog for --readme")
    args = parser.parse_args()
    if (reason := unavailable_reason()) is not None:
        print(f"cannot run: {reason}")
        return 2
    if args.readme:
        readme_screenshot(args.catalog, args.item, args.readme)
        return 0
    if args.artifacts.exists():
        shutil.rmtree(args.artifacts)
    results = check_catalog(args.catalog, args.artifacts)
    failed = 0
    for check, problems in results.items():
        print(f"{'FAIL' if problems else 'ok  '} {check}")
        for problem in problems:
            print(f"       {problem}")
        failed += bool(problems)
    print(f"{failed} of {len(results)} checks failed; screenshots in {args.artifacts}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
