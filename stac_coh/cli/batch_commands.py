"""`stac-coh submit`, `status` and `worker`: AWS Batch."""

from __future__ import annotations

import typer

from stac_coh.cli._placeholder import planned


def register(app: typer.Typer) -> None:
    """Add the commands to the app."""
    planned(app, "submit", "Search, write the manifest to S3, submit AWS Batch array jobs.", 6)
    planned(app, "status", "Show the AWS Batch jobs of a run by state.", 6)
    planned(app, "worker", "Container entrypoint: process this array child's pairs.", 6)
