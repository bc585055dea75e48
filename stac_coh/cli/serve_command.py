"""`stac-coh serve`: browse a local coherence catalog in STAC Browser."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    """Add the command to the app."""
    app.command("serve")(serve)


def serve(
    directory: Path = typer.Argument(
        Path("stac-coh-demo"), help="Catalog folder (holds catalog.json).", show_default=True
    ),
    port: int = typer.Option(8000, "--port", "-p", help="TCP port on 127.0.0.1."),
    catalog: str = typer.Option(
        "catalog.json", help="Root catalog file inside DIRECTORY, for the STAC Browser link."
    ),
) -> None:
    """Serve a local catalog for STAC Browser (HTTP Range + CORS), on 127.0.0.1 only.

    STAC Browser draws COGs on its map only when the server answers Range requests with
    206 and exposes Content-Range over CORS; this server does both. Open the printed
    address in a browser on this machine; stop with Ctrl-C.

    DIRECTORY may also be the folder above the catalog (e.g. the demo's --out folder,
    whose catalog is in catalog/). A port in use is refused with a hint; pick another
    with --port.

    Example: stac-coh serve stac-coh-demo/catalog --port 8000
    """
    from stac_coh.publish.serve import check_port, find_catalog, stac_browser_url
    from stac_coh.publish.serve import serve as run_server

    root, catalog = find_catalog(directory, catalog)
    check_port(port)
    url = f"http://127.0.0.1:{port}/{catalog}"
    typer.echo(f"Serving {root.resolve()} at http://127.0.0.1:{port}/")
    typer.echo(f"Catalog:      {url}")
    typer.echo(f"STAC Browser: {stac_browser_url(url)}")
    typer.echo("Press Ctrl-C to stop.")
    run_server(root, port=port)
