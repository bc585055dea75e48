"""Serve a local catalog the way STAC Browser needs it: Range requests and CORS.

STAC Browser draws COGs client-side with HTTP Range requests; it needs ``206 Partial
Content`` answers and CORS headers that expose ``Content-Range``. Python's ``http.server``
gives neither, so we serve with Starlette's static files (Range-aware) behind its CORS
middleware, on uvicorn.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["STAC_BROWSER", "check_port", "find_catalog", "make_app", "serve", "stac_browser_url"]

STAC_BROWSER = "https://radiantearth.github.io/stac-browser/"
"""The hosted STAC Browser; it can read a catalog served on localhost."""

EXPOSED_HEADERS = ["Content-Range", "Content-Length", "Accept-Ranges", "ETag", "Last-Modified"]
"""Headers a cross-origin page may read; COG readers need Content-Range."""


class _PrivateNetworkAccess:
    """Answer Chrome's private-network preflight so an https page may fetch from localhost."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Add ``Access-Control-Allow-Private-Network`` to every HTTP response."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_header(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.append((b"access-control-allow-private-network", b"true"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_header)


def make_app(root: str | Path) -> Starlette:
    """ASGI app serving ``root`` read-only with Range support and permissive CORS."""
    directory = Path(root)
    if not directory.is_dir():
        from stac_coh.errors import InputError

        raise InputError(f"Cannot serve {directory}: not a directory. Pass the catalog folder.")
    return Starlette(
        routes=[Mount("/", app=StaticFiles(directory=directory, html=True))],
        middleware=[
            Middleware(_PrivateNetworkAccess),
            Middleware(
                CORSMiddleware,
                allow_origins=["*"],
                allow_methods=["GET", "HEAD", "OPTIONS"],
                allow_headers=["*"],
                expose_headers=EXPOSED_HEADERS,
                max_age=3600,
            ),
        ],
    )


def find_catalog(directory: Path, catalog: str = "catalog.json") -> tuple[Path, str]:
    """(folder to serve, root catalog inside it) for what the user named.

    The folder itself when it holds ``catalog``; else its ``catalog/`` subfolder (the demo's
    --out layout), or its only subfolder holding one.

    Raises:
        InputError: no root catalog there.
    """
    from stac_coh.errors import InputError

    if (directory / catalog).is_file():
        return directory, catalog
    below = sorted(p.parent for p in directory.glob(f"*/{catalog}") if p.is_file())
    preferred = [p for p in below if p.name == "catalog"]
    if preferred or len(below) == 1:
        return (preferred or below)[0], catalog
    where = f" (several below it: {', '.join(p.name for p in below)})" if below else ""
    raise InputError(
        f"{directory / catalog} does not exist{where}; pass the folder that holds the root "
        "catalog (e.g. the --out folder of search-and-run, or the demo's --out/catalog)."
    )


def check_port(port: int, host: str = "127.0.0.1") -> None:
    """Refuse a port already in use, in one line with the way out (uvicorn prints a trace)."""
    import errno
    import socket

    from stac_coh.errors import InputError

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise InputError(
                    f"Port {port} on {host} is in use (another `stac-coh serve`?); choose "
                    f"another with --port, e.g. --port {port + 1}."
                ) from None
            raise InputError(
                f"Cannot listen on {host}:{port}: {exc.strerror}; try --port."
            ) from None


def serve(root: str | Path, *, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Serve ``root`` until interrupted (blocking)."""
    import uvicorn

    uvicorn.run(make_app(root), host=host, port=port, log_level="warning", ws="none")


def stac_browser_url(catalog_url: str) -> str:
    """STAC Browser address that opens ``catalog_url`` (its ``#/external/...`` route)."""
    scheme, _, rest = catalog_url.partition("://")
    prefix = "" if scheme == "https" else f"{scheme}:/"
    return f"{STAC_BROWSER}#/external/{prefix}{quote(rest, safe='/:@')}"
