"""GRD items of both providers through the real loader (``load.stac_pair.open_pair_reader``).

The items are the real Planetary Computer and Earth Search ``sentinel-1-grd`` items in
``tests/data/stac`` (copied unchanged from the shared fixtures; provenance in that
folder's README). Their rasters and annotation XML are the small synthetic slices of
``tests/grd_synth.py``, served where the items say they are:

- Planetary Computer: a local HTTP server with byte ranges stands in for Azure blob
  storage and refuses any request without the current SAS-like token (the hrefs are
  rewritten to it; a test signer hands out tokens); GDAL's /vsicurl/ and requests are
  the real clients.
- Earth Search: moto_server's S3 holds the objects under the items' own ``s3://`` keys
  (hrefs unchanged) in a requester-pays bucket; GDAL's /vsis3/ and boto3 read them.

The synthetic slices lie in UTM 31N, not where the items' footprints are: the loader
takes the pair's grid as given, so only the files matter here.
"""

from __future__ import annotations

import contextlib
import copy
import http.server
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import boto3
import numpy as np
import pytest

from stac_coh.errors import RasterReadError
from stac_coh.grid import OutputGrid, PairReader
from stac_coh.load.grd.assets import make_xml_fetcher
from stac_coh.load.grd.geocode import GridWindow
from stac_coh.load.grd.reader import GrdPairReader
from stac_coh.load.stac_pair import open_pair_reader
from stac_coh.search.manifest import Acquisition, Pair, SourceSpec
from stac_coh.search.profiles import read_gdal_options
from tests import grd_synth as synth
from tests.services import MotoServer

STAC = Path(__file__).parent / "data" / "stac"
PC_GRD = STAC / "planetary-computer" / "sentinel-1-grd"
ES_GRD = STAC / "earth-search" / "sentinel-1-grd"

PC_REFERENCE = "S1A_EW_GRDM_1SSH_20150129T081916_20150129T081938_004383_005598"
"""Its ``schema-product-hh`` is the product annotation itself."""
PC_SECONDARY = "S1A_EW_GRDM_1SSH_20220505T235314_20220505T235417_043082_05250D"
"""Its ``schema-product-hh`` points at the RFI annotation (the quirk)."""
ES_REFERENCE = (
    "S1A_IW_GRDH_1SDH_20240419T094842_20240419T094907_053501_067E15",
    "S1A_IW_GRDH_1SDH_20240419T094907_20240419T094932_053501_067E15",
)
"""Two consecutive slices of one pass: mosaicked into one acquisition."""
ES_SECONDARY = ("S1A_IW_GRDH_1SDH_20250717T113717_20250717T113742_060123_077867",)


def _item(folder: Path, item_id: str) -> dict[str, Any]:
    return json.loads((folder / f"{item_id}.json").read_text())  # type: ignore[no-any-return]


def _acquisition(items: list[dict[str, Any]]) -> Acquisition:
    props = items[0]["properties"]
    return Acquisition(
        platform=str(props["platform"]).lower(),
        datetime=datetime.fromisoformat(props["datetime"].replace("Z", "+00:00")).astimezone(UTC),
        item_ids=tuple(it["id"] for it in items),
        relative_orbit=int(props["sat:relative_orbit"]),
        orbit_state=props["sat:orbit_state"],
        instrument_mode=props["sar:instrument_mode"],
    )


def _pair(
    reference: list[dict[str, Any]], secondary: list[dict[str, Any]], grid: OutputGrid
) -> Pair:
    ref, sec = _acquisition(reference), _acquisition(secondary)
    return Pair(
        id="grd-loader-test",
        reference=ref,
        secondary=sec,
        polarization="HH",
        baseline_days=(sec.datetime - ref.datetime).total_seconds() / 86400,
        aoi={"type": "Point", "coordinates": [3.0, 45.1]},
        grid=grid,
    )


def _grid() -> OutputGrid:
    corners = [synth.radar_to_utm(line, pixel) for line in (0, 290) for pixel in (0, 199)]
    xs, ys = zip(*corners, strict=True)
    return OutputGrid.from_bounds(synth.UTM, (min(xs), min(ys), max(xs), max(ys)), 10.0)


def _scene(seed: int, *, second_slice: bool = False) -> synth.SyntheticGrd:
    scene = synth.make_dn(seed=seed)
    scene.polarisation = "HH"
    if second_slice:
        scene.origin = synth.radar_to_utm(140, 0)
    return scene


def _files_for(
    item: dict[str, Any], scene: synth.SyntheticGrd, folder: Path, *, with_gcps: bool
) -> dict[str, bytes]:
    """Object bytes keyed by the item's own href paths (product annotation derived)."""
    local = synth.write_safe(scene, folder, with_gcps=with_gcps)
    measurement = item["assets"]["hh"]["href"]
    product_href = item["assets"]["schema-product-hh"]["href"]
    files = {
        urlparse(measurement).path: local["hh"].read_bytes(),
        urlparse(item["assets"]["schema-calibration-hh"]["href"]).path: local[
            "schema-calibration-hh"
        ].read_bytes(),
        urlparse(item["assets"]["schema-noise-hh"]["href"]).path: local[
            "schema-noise-hh"
        ].read_bytes(),
        urlparse(measurement)
        .path.replace("/measurement/", "/annotation/")
        .replace(".tiff", ".xml"): local["product"].read_bytes(),
    }
    if "/rfi/" in product_href:
        files[urlparse(product_href).path] = local["schema-product-hh"].read_bytes()
    return files


def _assert_pair_window(reader: PairReader, scenes: list[synth.SyntheticGrd]) -> None:
    """Both bands finite over the overlap, different from each other, markers in place."""
    out = reader.read(0, 0, reader.grid.height, reader.grid.width)
    assert out.shape == (2, reader.grid.height, reader.grid.width)
    assert out.dtype == np.float32
    assert np.isfinite(out[0]).mean() > 0.3 and np.isfinite(out[1]).mean() > 0.3
    both = np.isfinite(out).all(axis=0)
    assert both.sum() > 1000 and not np.allclose(out[0][both], out[1][both])
    # The brightest pixels sit where the reference's first slice put its markers.
    inverse = ~reader.grid.affine
    for line, pixel in scenes[0].bright:
        col, row = inverse * synth.radar_to_utm(line, pixel, *scenes[0].origin)
        r, c = int(row), int(col)
        assert np.nanmax(out[0, r - 1 : r + 2, c - 1 : c + 2]) > 50  # marker sigma0 ~ 200
    halo = reader.read(-8, -8, 32, 32)
    assert np.isnan(halo[:, :8, :]).all() and np.isnan(halo[:, :, :8]).all()


# ----------------------------------------------------------------------------- PC over HTTP


class _Blobs(http.server.ThreadingHTTPServer):
    """Serves ``files`` by path with byte ranges; only the current token is accepted."""

    files: dict[str, bytes]
    token: str
    refused: int
    unsigned: int


class _BlobHandler(http.server.BaseHTTPRequestHandler):
    server: _Blobs

    def log_message(self, *args: Any) -> None:
        pass

    def do_HEAD(self) -> None:
        self._serve(body=False)

    def do_GET(self) -> None:
        self._serve(body=True)

    def _serve(self, body: bool) -> None:
        parsed = urlparse(self.path)
        sig = parse_qs(parsed.query).get("sig", [None])[0]
        if sig is None:
            self.server.unsigned += 1
        if sig != self.server.token:
            self.server.refused += 1
            self.send_error(403, "AuthenticationFailed")
            return
        data = self.server.files.get(parsed.path)
        if data is None:
            self.send_error(404)
            return
        start, end = 0, len(data) - 1
        ranged = self.headers.get("Range", "").startswith("bytes=")
        if ranged:
            first, _, last = self.headers["Range"][6:].partition("-")
            start, end = int(first), min(int(last) if last else end, end)
        self.send_response(206 if ranged else 200)
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(end - start + 1))
        if ranged:
            self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
        self.end_headers()
        if body:
            self.wfile.write(data[start : end + 1])


@contextlib.contextmanager
def _blob_server(files: dict[str, bytes], token: str) -> Iterator[_Blobs]:
    server = _Blobs(("127.0.0.1", 0), _BlobHandler)
    server.files, server.token, server.refused, server.unsigned = files, token, 0, 0
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


class _TokenSigner:
    """An :class:`~stac_coh.io.signing.HrefSigner` handing out numbered SAS-like tokens."""

    def __init__(self) -> None:
        self.generation = 1
        self.signed: list[str] = []

    def sign(self, href: str) -> str:
        self.signed.append(href)
        return f"{href}?st=2026-01-01&se=2026-01-02&sp=rl&sig=token{self.generation}"

    def invalidate(self, href: str) -> None:
        self.generation += 1


def test_planetary_computer_grd_pair_signed_reads(tmp_path: Path) -> None:
    reference = [_item(PC_GRD, PC_REFERENCE)]
    secondary = [_item(PC_GRD, PC_SECONDARY)]
    scenes = [_scene(11), _scene(12)]
    files: dict[str, bytes] = {}
    for item, scene, gcps in ((reference[0], scenes[0], True), (secondary[0], scenes[1], False)):
        files.update(_files_for(item, scene, tmp_path / item["id"], with_gcps=gcps))
    # The 2015 item lists the product annotation itself, at the derived path already.
    assert "/rfi/" not in reference[0]["assets"]["schema-product-hh"]["href"]
    assert "/rfi/" in secondary[0]["assets"]["schema-product-hh"]["href"]

    with _blob_server(files, token="token2") as server:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        items = {}
        for item in reference + secondary:
            moved = copy.deepcopy(item)
            for asset in moved["assets"].values():
                asset["href"] = base + urlparse(asset["href"]).path
            items[moved["id"]] = moved
        source = SourceSpec("planetary-computer", "https://example.invalid", "sentinel-1-grd")
        signer = _TokenSigner()  # starts with an "expired" token: the first read is refused
        reader = open_pair_reader(
            _pair(reference, secondary, _grid()), items, source, signer=signer
        )
        assert isinstance(reader, GrdPairReader)
        _assert_pair_window(reader, scenes)
        reader.close()
    assert server.unsigned == 0  # nothing was read without a signature
    assert server.refused >= 1 and signer.generation == 2  # 403 -> invalidate -> re-signed
    assert not any("?" in href for href in signer.signed)  # canonical hrefs went in


# ----------------------------------------------------------------------------- Earth Search


@pytest.mark.integration
def test_earth_search_grd_pair_requester_pays(tmp_path: Path, aws_env: MotoServer) -> None:
    reference = [_item(ES_GRD, i) for i in ES_REFERENCE]
    secondary = [_item(ES_GRD, i) for i in ES_SECONDARY]
    scenes = [_scene(21), _scene(22, second_slice=True), _scene(23)]
    s3 = boto3.client("s3", endpoint_url=aws_env.endpoint)
    bucket = urlparse(reference[0]["assets"]["hh"]["href"]).netloc
    assert bucket == "sentinel-s1-l1c"
    with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou):
        s3.create_bucket(Bucket=bucket)
    s3.put_bucket_request_payment(Bucket=bucket, RequestPaymentConfiguration={"Payer": "Requester"})
    for item, scene, gcps in zip(reference + secondary, scenes, (True, False, True), strict=True):
        for path, data in _files_for(item, scene, tmp_path / item["id"], with_gcps=gcps).items():
            s3.put_object(Bucket=bucket, Key=path.lstrip("/"), Body=data)

    source = SourceSpec(
        "earth-search",
        "https://earth-search.aws.element84.com/v1",
        "sentinel-1-grd",
        options={"requester_pays": True},
    )
    options = read_gdal_options(source)
    assert options["AWS_REQUEST_PAYER"] == "requester"
    items = {it["id"]: it for it in reference + secondary}  # hrefs untouched: s3://...
    reader = open_pair_reader(_pair(reference, secondary, _grid()), items, source)
    assert isinstance(reader, GrdPairReader)
    _assert_pair_window(reader, scenes)
    # The second slice fills what the first does not cover (mosaic of one pass).
    first, second = (
        s.read(reader.grid, GridWindow(0, 0, reader.grid.height, reader.grid.width))
        for s in reader.reference.slices
    )
    mosaic = reader.read(0, 0, reader.grid.height, reader.grid.width)[0]
    only_second = ~np.isfinite(first) & np.isfinite(second)
    assert only_second.sum() > 1000
    np.testing.assert_array_equal(mosaic[only_second], second[only_second])
    reader.close()


# ----------------------------------------------------------------------------- XML fetcher


def test_fetcher_local_and_http_errors(tmp_path: Path) -> None:
    path = tmp_path / "calibration.xml"
    path.write_bytes(synth.calibration_xml())
    fetch = make_xml_fetcher()
    assert fetch(str(path)) == fetch(f"file://{path}") == path.read_bytes()
    with pytest.raises(RasterReadError, match="Cannot read annotation"):
        fetch(str(tmp_path / "missing.xml"))
    with _blob_server({"/a.xml": b"<noise/>"}, token="token1") as server:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        signed = make_xml_fetcher(signer=_TokenSigner(), retries=0)
        assert signed(f"{base}/a.xml") == b"<noise/>"
        with pytest.raises(RasterReadError, match="HTTP 404"):
            signed(f"{base}/b.xml")
        with pytest.raises(RasterReadError, match="HTTP 403") as info:
            make_xml_fetcher(retries=0)(f"{base}/a.xml")  # no signer, no token
        assert "sig=" not in str(info.value)


@pytest.mark.integration
def test_fetcher_s3_sends_requester_pays(aws_env: MotoServer) -> None:
    s3 = boto3.client("s3", endpoint_url=aws_env.endpoint)
    with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou):
        s3.create_bucket(Bucket="grd-fetch-test")
    s3.put_object(Bucket="grd-fetch-test", Key="a/noise.xml", Body=synth.noise_xml())
    payer: list[bytes | None] = []
    s3.meta.events.register(
        "before-send.s3.GetObject",
        lambda request, **_: payer.append(request.headers.get("x-amz-request-payer")),
    )
    assert (
        make_xml_fetcher(requester_pays=True, s3_client=s3)("s3://grd-fetch-test/a/noise.xml")
        == synth.noise_xml()
    )
    make_xml_fetcher(requester_pays=False, s3_client=s3)("s3://grd-fetch-test/a/noise.xml")
    assert payer == [b"requester", None]
    with pytest.raises(RasterReadError, match="NoSuchKey"):
        make_xml_fetcher(requester_pays=True, s3_client=s3)("s3://grd-fetch-test/a/none.xml")
