"""`stac-coh run`, `search-and-run`, `demo` and `serve`: the main job."""

from __future__ import annotations

import typer

from stac_coh.cli._placeholder import planned


def register(app: typer.Typer) -> None:
    """Add the commands to the app."""
    planned(app, "search-and-run", "Search, pair, predict and publish a coherence catalog.", 9)
    planned(app, "run", "Process pairs of a manifest (the AWS Batch worker's code path).", 9)
    planned(app, "demo", "Run the whole job offline on a bundled simulated catalog.", 9)
