"""Planetary Computer signing through the real planetary_computer code, offline."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from planetary_computer import sas

from stac_coh.errors import InputError, SourceUnreachableError
from stac_coh.io.signing import PlanetaryComputerSigner, strip_query
from stac_coh.search.manifest import SourceSpec
from stac_coh.search.profiles import make_signer
from tests.pc_token_server import TokenServer, pc_sdk_pointed_at

HREF = (
    "https://sentinel1euwestrtc.blob.core.windows.net/sentinel1-grd-rtc/GRD/2026/7/29/IW/DV/"
    "S1D_IW_GRDH_1SDV_20260729T003930_20260729T003955_003881_00701D_440B/measurement/"
    "iw-vv.rtc.tiff"
)


@pytest.fixture
def tokens(monkeypatch: pytest.MonkeyPatch) -> Iterator[TokenServer]:
    with TokenServer().running() as server, pc_sdk_pointed_at(server, monkeypatch):
        yield server


def cache_key(server: TokenServer) -> str:
    return f"{server.url}/sentinel1euwestrtc/sentinel1-grd-rtc"


def test_signs_blob_hrefs_and_reuses_the_token(tokens: TokenServer):
    signer = PlanetaryComputerSigner()
    signed = signer.sign(HREF)
    assert signed == f"{HREF}?{tokens.current_token()}"
    assert tokens.requests == ["/api/sas/v1/token/sentinel1euwestrtc/sentinel1-grd-rtc"]
    assert signer.sign(HREF.replace("iw-vv", "iw-vh")).endswith("sig=token1")
    assert len(tokens.requests) == 1  # cached by planetary_computer itself
    assert strip_query(signed) == HREF


def test_expired_token_in_the_cache_is_renewed(tokens: TokenServer):
    sas.TOKEN_CACHE[cache_key(tokens)] = sas.SASToken(
        expiry=datetime.now(UTC) - timedelta(minutes=1), token="sig=expired"
    )
    signed = PlanetaryComputerSigner().sign(HREF)
    assert "expired" not in signed
    assert signed.endswith("sig=token1")
    assert len(tokens.requests) == 1


def test_token_close_to_expiry_is_renewed_before_the_read(tokens: TokenServer):
    # Two minutes left: the package alone would still use it (it renews under 60 s), but a
    # read starting now could outlive it.
    sas.TOKEN_CACHE[cache_key(tokens)] = sas.SASToken(
        expiry=datetime.now(UTC) + timedelta(minutes=2), token="sig=almost"
    )
    assert PlanetaryComputerSigner(refresh_margin_s=300).sign(HREF).endswith("sig=token1")
    sas.TOKEN_CACHE[cache_key(tokens)] = sas.SASToken(
        expiry=datetime.now(UTC) + timedelta(minutes=2), token="sig=almost"
    )
    assert PlanetaryComputerSigner(refresh_margin_s=60).sign(HREF).endswith("sig=almost")


def test_invalidate_after_a_403_forces_a_new_token(tokens: TokenServer):
    signer = PlanetaryComputerSigner()
    first = signer.sign(HREF)
    signer.invalidate(first)  # the signed URL, as a reader has it
    second = signer.sign(HREF)
    assert first.endswith("sig=token1") and second.endswith("sig=token2")
    assert len(tokens.requests) == 2


def test_other_hrefs_and_signed_hrefs_are_left_alone(tokens: TokenServer):
    signer = PlanetaryComputerSigner()
    for href in (
        "s3://sentinel-s1-l1c/GRD/2024/4/19/IW/DH/x/measurement/iw-hh.tiff",
        "/data/local.tif",
        "https://example.com/a.tif",
        f"{HREF}?st=2026&se=2026&sp=rl&sig=abc",
    ):
        assert signer.sign(href) == href
    assert tokens.requests == []


def test_token_service_failure_is_a_clear_bounded_error(tokens: TokenServer):
    tokens.fail_with = 503
    with pytest.raises(SourceUnreachableError) as info:
        PlanetaryComputerSigner(retries=1).sign(HREF)
    message = str(info.value)
    assert "sentinel1euwestrtc/sentinel1-grd-rtc" in message
    assert tokens.url in message
    assert "sig=" not in message
    assert len(tokens.requests) == 2  # one try + one retry, not the package's ten


def test_signing_is_decided_by_the_href_host_for_every_source():
    # Items copied from Planetary Computer into a local catalog are signed like a search
    # of the API; hrefs elsewhere (S3, local files) pass unchanged, without any token.
    for spec in (
        SourceSpec("planetary-computer", "https://pc", "sentinel-1-rtc"),
        SourceSpec("earth-search", "https://es", "sentinel-1-grd"),
        SourceSpec("local", "/x", "c"),
    ):
        signer = make_signer(spec)
        assert isinstance(signer, PlanetaryComputerSigner)
        assert signer.sign("s3://bucket/a.tif") == "s3://bucket/a.tif"
        assert signer.sign("/data/a.tif") == "/data/a.tif"
    assert make_signer(SourceSpec("local", "/x", "c", options={"signing": "none"})) is None


def test_a_refused_token_is_a_permanent_error_not_a_transient_one(tokens: TokenServer):
    # A bad subscription key (403) or a container Planetary Computer does not know (404)
    # will not heal: exit 2, never the 75 that makes schedulers retry.
    tokens.fail_with = 403
    with pytest.raises(InputError) as info:
        PlanetaryComputerSigner(retries=1).sign(HREF)
    assert info.value.exit_code == 2 and "HTTP 403" in str(info.value)
    assert len(tokens.requests) == 1  # not retried
