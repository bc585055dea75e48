"""`stac-coh finalize`: rebuild a coherence collection from its published items."""

from __future__ import annotations

import typer

from stac_coh.cli._placeholder import planned


def register(app: typer.Typer) -> None:
    """Add the commands to the app."""
    planned(app, "finalize", "Rebuild collection links, extent and summaries from its items.", 5)
