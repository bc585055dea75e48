"""Options of `stac-coh worker` that AWS Batch fault handling added (kept out of the command)."""

from __future__ import annotations

from typing import Any

import typer

from stac_coh.constants import ENV_PUBLIC_URL

__all__ = ["ENV_REMOVE_ORPHANS", "public_url_option", "remove_orphans_option"]

ENV_REMOVE_ORPHANS = "STAC_COH_REMOVE_ORPHANS"
"""The finalize job deletes the run's orphan assets (the stack's FinalizeRemovesOrphans)."""


def public_url_option() -> Any:
    """``--public-url`` (``STAC_COH_PUBLIC_URL``): the root of the self links."""
    return typer.Option(
        None,
        "--public-url",
        envvar=ENV_PUBLIC_URL,
        help="HTTP(S) URL readers use for --out: items and the collection get it in self links.",
    )


def remove_orphans_option() -> Any:
    """``--remove-orphans`` (``STAC_COH_REMOVE_ORPHANS``)."""
    return typer.Option(
        False,
        "--remove-orphans",
        envvar=ENV_REMOVE_ORPHANS,
        help="Delete assets without an item left by killed workers (the manifest's pairs).",
    )
