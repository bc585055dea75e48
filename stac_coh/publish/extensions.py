"""Which STAC extensions the published objects declare, and the paper they credit.

Every URL here is an official extension schema that resolves where it says (all are
vendored in the team's shared schema folder, so tests validate offline). stac-coh facts
that no standard field covers are plain ``coh:`` properties and declare no schema:
listing a schema URL that does not resolve makes STAC Browser and online validators call
the object invalid.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "INSAR",
    "PAPER_ARXIV",
    "PAPER_DOI",
    "PROCESSING",
    "RASTER_BANDS_V1",
    "SCIENTIFIC",
    "scientific_fields",
]

INSAR = "https://stac-extensions.github.io/insar/v1.0.0/schema.json"
"""``insar:temporal_baseline``, ``insar:reference_datetime``, ``insar:secondary_datetime``."""

SCIENTIFIC = "https://stac-extensions.github.io/scientific/v1.0.0/schema.json"
"""``sci:citation``, ``sci:publications``: the paper whose model made the data."""

PROCESSING = "https://stac-extensions.github.io/processing/v1.2.0/schema.json"
"""pystac has no processing extension class; v1.2.0 adds ``processing:datetime``."""

RASTER_BANDS_V1 = "https://stac-extensions.github.io/raster/v1.1.0/schema.json"
"""``raster:bands`` (scale, offset, resolution): where stackstac's ``rescale`` reads the
scale. Raster v2.0.0 would put them in ``bands`` instead and forbids ``raster:bands``."""

PAPER_DOI = "10.48550/arXiv.2606.07374"
"""DOI arXiv registers for the paper (DataCite, ``10.48550/arXiv.<id>``)."""

PAPER_ARXIV = "arXiv:2606.07374"
"""The paper's arXiv identifier."""

PAPER_CITATION = (
    "Sica, Pulella and Schmitt (2026). Beyond Backscatter: InSAR coherence from detected "
    f"SAR images. {PAPER_ARXIV}."
)
"""How to cite the paper whose model stac-coh runs."""


def scientific_fields(subject: str) -> dict[str, Any]:
    """``sci:`` fields crediting the paper; ``subject`` says what is cited (one phrase)."""
    return {
        "sci:citation": f"{subject} Model: {PAPER_CITATION}",
        "sci:publications": [{"doi": PAPER_DOI, "citation": PAPER_CITATION}],
    }
