"""`stac-coh simulate`, `train` and `evaluate`: simulation, training, accuracy."""

from __future__ import annotations

import typer

from stac_coh.cli._placeholder import planned


def register(app: typer.Typer) -> None:
    """Add the commands to the app."""
    planned(app, "simulate", "Write simulated Sentinel-1-like pairs with true coherence.", 8)
    planned(app, "train", "Train or fine-tune the ResUNet on input/label rasters.", 8)
    planned(app, "evaluate", "Compare a coherence map with the truth: metrics and plots.", 8)
