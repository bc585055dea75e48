"""`stac-coh search`."""

from __future__ import annotations

import typer

from stac_coh.cli._placeholder import planned


def register(app: typer.Typer) -> None:
    """Add the command to the app."""
    planned(
        app,
        "search",
        "Find Sentinel-1 pairs over an area and dates; --json writes the manifest.",
        4,
    )
