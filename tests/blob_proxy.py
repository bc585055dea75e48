"""Azure blob storage, offline: an HTTPS proxy that answers for ``*.blob.core.windows.net``.

Planetary Computer assets live on ``<account>.blob.core.windows.net`` and are read with a
SAS token. Offline those names do not resolve, so a test points the command line's
``https_proxy`` here: the proxy accepts the ``CONNECT`` of curl (GDAL) and answers inside
the tunnel itself over TLS (a self-signed certificate; the test sets
``GDAL_HTTP_UNSAFESSL=YES``), serving files under ``root`` with Range support. Like Azure
it refuses a request without a current SAS signature (``sig=tokenN`` with
``N >= min_token``, as :class:`tests.pc_token_server.TokenServer` issues them) with 403.
``fail_first`` makes the first request of a path answer 503, so GDAL logs a retry warning
that quotes the signed URL.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import re
import ssl
import tempfile
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

BLOB_HOST = "sentinel1euwestrtc.blob.core.windows.net"
CONTAINER = "sentinel1-grd-rtc"


def _self_signed(folder: Path) -> tuple[Path, Path]:
    """A throw-away certificate for ``*.blob.core.windows.net``."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    wildcard = "*.blob.core.windows.net"
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, wildcard)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("*.blob.core.windows.net")]), False
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


class BlobProxy:
    """Serves ``root`` as ``https://<account>.blob.core.windows.net/<container>/...``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.min_token = 1
        self.fail_first: set[str] = set()
        self.queries: list[str] = []
        self.refused = 0
        self.served = 0
        self._failed: set[str] = set()
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``: the value of ``https_proxy``."""
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def env(self) -> dict[str, str]:
        """Environment that sends GDAL's (curl's) and requests' https traffic through here."""
        return {
            "https_proxy": self.url,
            "HTTPS_PROXY": self.url,
            "no_proxy": "127.0.0.1,localhost",
            "NO_PROXY": "127.0.0.1,localhost",
            "GDAL_HTTP_UNSAFESSL": "YES",
        }

    def href(self, relative: str) -> str:
        """The blob URL of a file under ``root``."""
        return f"https://{BLOB_HOST}/{CONTAINER}/{relative}"

    def _authorised(self, query: str) -> bool:
        sig = parse_qs(query).get("sig", [""])[0]
        match = re.fullmatch(r"token(\d+)", sig)
        return bool(match) and int(match.group(1)) >= self.min_token

    def _answer(self, handler: BaseHTTPRequestHandler, head: bool) -> None:
        """One request inside the tunnel."""
        parsed = urlparse(handler.path)
        with self._lock:
            self.queries.append(parsed.query)
        relative = parsed.path.removeprefix(f"/{CONTAINER}/")
        if not self._authorised(parsed.query):
            self.refused += 1
            return _empty(handler, 403)
        with self._lock:
            fail = relative in self.fail_first and relative not in self._failed
            if fail:
                self._failed.add(relative)
        if fail:
            return _empty(handler, 503)
        path = self.root / relative
        if not path.is_file():
            return _empty(handler, 404)
        data = path.read_bytes()
        status, body, start, end = 200, data, 0, len(data) - 1
        match = re.fullmatch(r"bytes=(\d+)-(\d*)", handler.headers.get("Range", ""))
        if match:
            start = int(match.group(1))
            end = min(int(match.group(2)) if match.group(2) else len(data) - 1, len(data) - 1)
            status, body = 206, data[start : end + 1]
        self.served += 1
        handler.send_response(status)
        handler.send_header("Accept-Ranges", "bytes")
        handler.send_header("Content-Type", "image/tiff")
        if status == 206:
            handler.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        if not head:
            handler.wfile.write(body)
        return None

    @contextlib.contextmanager
    def running(self) -> Iterator[BlobProxy]:
        """Run the proxy on 127.0.0.1 (a free port) until the block ends."""
        owner = self
        certs = Path(tempfile.mkdtemp(prefix="blob-proxy-"))
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(*_self_signed(certs))

        class Blob(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                owner._answer(self, head=False)

            def do_HEAD(self) -> None:
                owner._answer(self, head=True)

            def log_message(self, *args: Any) -> None:
                pass

        class Proxy(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_CONNECT(self) -> None:
                self.send_response(200, "Connection established")
                self.end_headers()
                try:
                    tunnel = context.wrap_socket(self.connection, server_side=True)
                    Blob(tunnel, self.client_address, self.server)
                except (OSError, ssl.SSLError):
                    pass
                self.close_connection = True

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Proxy)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        try:
            yield self
        finally:
            self._server.shutdown()
            self._server.server_close()


def _empty(handler: BaseHTTPRequestHandler, status: int) -> None:
    """An answer without a body."""
    handler.send_response(status)
    handler.send_header("Content-Length", "0")
    handler.end_headers()
