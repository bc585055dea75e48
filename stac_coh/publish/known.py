"""What inference already knows about the files it hands to publishing.

``predict_to_cogs`` keeps exact statistics, a decimated valid mask, the grid and any
renders while it writes (:class:`~stac_coh.infer.engine.PredictionSummary`). This module
turns them into what an item needs - band metadata, the footprint, the visual asset - so
``publish_pair`` reads the COGs only to check them (COG layout, checksum, header).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stac_coh.infer.engine import PredictionSummary
from stac_coh.publish.raster_info import BandInfo, Statistics, footprint_from_mask

__all__ = ["KnownFacts"]


@dataclass(frozen=True)
class KnownFacts:
    """What inference already knows about the files being published (nothing by default)."""

    prediction: PredictionSummary | None = None

    @classmethod
    def of(cls, prediction: PredictionSummary | None, coherence: Path) -> KnownFacts:
        """Use ``prediction`` only if it describes this coherence file."""
        if prediction is None or prediction.path.resolve() != coherence.resolve():
            return cls()
        return cls(prediction)

    @property
    def visual(self) -> Path | None:
        """The ``visual`` COG rendered in the same pass, if there is one."""
        return self.prediction.renders.get("visual") if self.prediction else None

    @property
    def precision(self) -> str | None:
        """The network's precision."""
        return self.prediction.precision if self.prediction else None

    @property
    def footprint(self) -> dict[str, Any] | None:
        """The valid outline, traced on the mask inference kept; ``None`` = read the file."""
        p = self.prediction
        if p is None or p.valid_mask is None or p.grid is None or not p.valid_mask.mask.any():
            return None
        transform = p.valid_mask.transform(p.grid.affine)
        return footprint_from_mask(p.valid_mask.mask, transform, p.grid.rasterio_crs)

    def band_infos(self, files: Mapping[str, Path]) -> dict[str, BandInfo]:
        """Band metadata with exact statistics, for data files inference wrote unchanged."""
        if self.prediction is None:
            return {}
        infos = {}
        for key, facts in self.prediction.outputs.items():
            path = files.get(key)
            if path is None or path.resolve() != facts.path.resolve():  # rewritten or another
                continue
            stats = facts.stored_statistics
            infos[key] = BandInfo(
                data_type=facts.encoding.dtype,
                nodata=facts.encoding.nodata,
                scale=facts.encoding.scale,
                offset=facts.encoding.offset,
                statistics=None
                if stats is None
                else Statistics(
                    minimum=stats.minimum,
                    maximum=stats.maximum,
                    mean=stats.mean,
                    stddev=stats.stddev,
                    valid_percent=stats.valid_percent,
                ),
                width=facts.width,
                height=facts.height,
            )
        return infos
