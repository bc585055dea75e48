"""`stac-coh predict`."""

from __future__ import annotations

import typer

from stac_coh.cli._placeholder import planned


def register(app: typer.Typer) -> None:
    """Add the command to the app."""
    planned(app, "predict", "Predict coherence from two backscatter rasters into a COG.", 3)
