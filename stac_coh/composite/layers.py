"""The rasters of one composite item: what each layer stores, and writing them block by block.

Every layer is one single-band COG (stackstac refuses multi-band assets):

- ``coherence_<B>d``: the composite coherence of baseline B days, uint8 like the pair
  items (value = stored * 0.004, nodata 255);
- ``count_<B>d``: how many pairs of that baseline the pixel's composite comes from
  (uint16, 0 = no pair, declared as nodata so viewers draw it transparent);
- ``rho_inf`` (uint8, like coherence), ``tau`` (float32 days, NaN nodata) and ``rmse``
  (uint8, like coherence) of the decay model, where enough baselines exist.

Layers are written into plain tiled GeoTIFFs a chunk at a time, then rewritten as COGs
(:func:`stac_coh.io.cog.translate_to_cog`: 512 px tiles, overviews that halve exactly).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import rasterio
from affine import Affine
from rasterio.windows import Window

from stac_coh.io.cog import COG_BLOCKSIZE, UINT8_UNIT, encode, translate_to_cog

__all__ = [
    "LayerSpec",
    "LayerWriter",
    "coherence_key",
    "count_key",
    "decay_layers",
    "layers_for",
]


@dataclass(frozen=True)
class LayerSpec:
    """How one layer is stored and described."""

    key: str
    """Asset key."""
    dtype: str
    """Stored data type."""
    nodata: float
    """Stored nodata value."""
    scale: float
    """value = stored * scale + offset."""
    offset: float
    """See ``scale``."""
    unit: str | None
    """UCUM unit of the decoded values (``1``: dimensionless, ``d``: days)."""
    title: str
    """Asset title."""
    description: str
    """What the values mean."""

    def encode(self, values: npt.NDArray[Any]) -> npt.NDArray[np.generic]:
        """Decoded values (NaN = nodata) -> stored array; counts saturate at the type's top."""
        if self.dtype == "uint8":
            return encode(values, UINT8_UNIT)
        if self.dtype == "float32":
            return _float32(values)
        top = np.iinfo(self.dtype).max
        return np.minimum(np.asarray(values), top).astype(self.dtype)


def coherence_key(baseline: int) -> str:
    """Asset key of the composite of one baseline."""
    return f"coherence_{baseline}d"


def count_key(baseline: int) -> str:
    """Asset key of the pair count of one baseline."""
    return f"count_{baseline}d"


def layers_for(baseline: int, stat: str) -> tuple[LayerSpec, LayerSpec]:
    """Composite and count layers of one baseline."""
    coherence = LayerSpec(
        coherence_key(baseline),
        "uint8",
        UINT8_UNIT.nodata,
        UINT8_UNIT.scale,
        UINT8_UNIT.offset,
        "1",
        f"Coherence, {baseline}-day {stat}",
        f"Per-pixel {stat} of the predicted coherence of every {baseline}-day pair of the "
        "period: value = stored * scale + offset (0..1); nodata where no pair covers it.",
    )
    count = LayerSpec(
        count_key(baseline),
        "uint16",
        0,
        1.0,
        0.0,
        None,
        f"Pairs behind the {baseline}-day composite",
        f"Number of {baseline}-day pairs with a valid coherence at the pixel (0 = none, "
        "declared as nodata).",
    )
    return coherence, count


def decay_layers() -> tuple[LayerSpec, LayerSpec, LayerSpec]:
    """The decay-model layers: rho_inf, tau, rmse."""
    model = "gamma(t) = (1 - rho_inf) * exp(-t / tau) + rho_inf"
    return (
        LayerSpec(
            "rho_inf",
            "uint8",
            UINT8_UNIT.nodata,
            UINT8_UNIT.scale,
            UINT8_UNIT.offset,
            "1",
            "Long-term coherence rho_inf",
            f"rho_inf of the decay model {model} fitted to the composites (0..1).",
        ),
        LayerSpec(
            "tau",
            "float32",
            math.nan,
            1.0,
            0.0,
            "d",
            "Decay time tau (days)",
            f"tau of the decay model {model}, in days (1..1000; NaN where not fitted).",
        ),
        LayerSpec(
            "rmse",
            "uint8",
            UINT8_UNIT.nodata,
            UINT8_UNIT.scale,
            UINT8_UNIT.offset,
            "1",
            "Decay fit RMSE",
            "Root mean square difference between the composites and the fitted decay model, "
            "in coherence units.",
        ),
    )


class LayerWriter:
    """Plain tiled GeoTIFFs of several layers on one grid, written window by window."""

    def __init__(
        self,
        specs: Iterable[LayerSpec],
        workdir: Path,
        *,
        crs: Any,
        transform: Affine,
        shape: tuple[int, int],
    ) -> None:
        self.specs = {spec.key: spec for spec in specs}
        self.workdir = workdir
        self._stack = ExitStack()
        self._files: dict[str, Any] = {}
        height, width = shape
        for key, spec in self.specs.items():
            profile = {
                "driver": "GTiff",
                "width": width,
                "height": height,
                "count": 1,
                "dtype": spec.dtype,
                "crs": crs,
                "transform": transform,
                "nodata": spec.nodata,
                "tiled": True,
                "blockxsize": COG_BLOCKSIZE,
                "blockysize": COG_BLOCKSIZE,
                "compress": "DEFLATE",
                "BIGTIFF": "IF_SAFER",
            }
            ds = self._stack.enter_context(rasterio.open(self._plain(key), "w", **profile))
            ds.scales, ds.offsets = (spec.scale,), (spec.offset,)
            ds.set_band_description(1, spec.title)
            if spec.unit:
                ds.set_band_unit(1, spec.unit)
            self._files[key] = ds

    def write(self, key: str, values: npt.NDArray[Any], window: Window) -> None:
        """Encode decoded ``values`` (NaN = nodata) into layer ``key`` at ``window``."""
        self._files[key].write(self.specs[key].encode(values), 1, window=window)

    def finish(self) -> dict[str, Path]:
        """Close the plain files and rewrite each as a COG; return key -> COG path."""
        self._stack.close()
        cogs = {}
        for key in self.specs:
            plain, cog = self._plain(key), self.workdir / f"{key}.tif"
            translate_to_cog(plain, cog)
            plain.unlink()
            cogs[key] = cog
        return cogs

    def close(self) -> None:
        """Close without converting (after an error)."""
        self._stack.close()

    def _plain(self, key: str) -> Path:
        """Scratch file of a layer."""
        return self.workdir / f"{key}.plain.tif"


def _float32(values: npt.NDArray[np.floating]) -> npt.NDArray[np.float32]:
    """Float32 with NaN kept (no clipping: tau is in days)."""
    return np.asarray(values, dtype=np.float32)
