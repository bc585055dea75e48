"""`stac-coh serve`: browse a local coherence catalog in STAC Browser."""

from __future__ import annotations

from pathlib import Path

import typer

from stac_coh.errors import InputError


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

    Example: stac-coh serve stac-coh-demo/catalog --port 8000
    """
    from stac_coh.publish.serve import serve as run_server
    from stac_coh.publish.serve import stac_browser_url

    if not (directory / catalog).is_file():
        raise InputError(
            f"{directory / catalog} does not exist; pass the folder that holds the root "
            "catalog (e.g. the --out folder of search-and-run or demo)."
        )
    url = f"http://127.0.0.1:{port}/{catalog}"
    typer.echo(f"Serving {directory.resolve()} at http://127.0.0.1:{port}/")
    typer.echo(f"Catalog:      {url}")
    typer.echo(f"STAC Browser: {stac_browser_url(url)}")
    typer.echo("Press Ctrl-C to stop.")
    run_server(directory, port=port)
