"""`stac-coh weights ...`: import, inspect and fetch model weights."""

from __future__ import annotations

import typer

from stac_coh.cli._placeholder import planned


def register(app: typer.Typer) -> None:
    """Add the command group to the app."""
    weights = typer.Typer(help="Model weights: import the published Keras file, inspect.")
    planned(weights, "import-keras", "Convert a Keras .h5 weight file into stac-coh's format.", 2)
    planned(weights, "info", "Print a weight file's model card, parameters and checksum.", 2)
    app.add_typer(weights, name="weights")
