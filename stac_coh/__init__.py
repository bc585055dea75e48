"""stac-coh: InSAR coherence maps from detected Sentinel-1 backscatter, published as STAC.

The Python API is the dozen names below; the command line is built on them, and each
stage's own modules (``stac_coh.search``, ``.load``, ``.model``, ``.infer``, ``.publish``,
``.pipeline``) hold the rest. Names are imported on first use, so ``import stac_coh``
stays light.

- Search: :func:`open_source`, :class:`SearchQuery`, :func:`search_pairs`,
  :func:`read_manifest`.
- Predict: :func:`build_predictor`, :func:`predict_array`, :class:`RasterPairReader`,
  :func:`predict_to_cogs`.
- Run and publish: :func:`open_store`, :class:`ProcessOptions`, :class:`PairProcessor`,
  :func:`execute_run`, :func:`finish_run`.
- Errors: :class:`StacCohError` (every error stac-coh raises on purpose).
"""

from __future__ import annotations

from importlib import import_module
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

try:
    __version__ = version("stac-coh")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

_EXPORTS = {
    "open_source": "stac_coh.search.sources",
    "SearchQuery": "stac_coh.search.query",
    "search_pairs": "stac_coh.search.find",
    "read_manifest": "stac_coh.search.manifest_io",
    "build_predictor": "stac_coh.infer.predictors",
    "predict_array": "stac_coh.infer.engine",
    "predict_to_cogs": "stac_coh.infer.engine",
    "RasterPairReader": "stac_coh.load.file_pair",
    "open_store": "stac_coh.io.storage",
    "ProcessOptions": "stac_coh.pipeline.runner",
    "PairProcessor": "stac_coh.pipeline.runner",
    "execute_run": "stac_coh.pipeline.run",
    "finish_run": "stac_coh.pipeline.run",
    "StacCohError": "stac_coh.errors",
}

__all__ = [
    "PairProcessor",
    "ProcessOptions",
    "RasterPairReader",
    "SearchQuery",
    "StacCohError",
    "__version__",
    "build_predictor",
    "execute_run",
    "finish_run",
    "open_source",
    "open_store",
    "predict_array",
    "predict_to_cogs",
    "read_manifest",
    "search_pairs",
]

if TYPE_CHECKING:
    from stac_coh.errors import StacCohError
    from stac_coh.infer.engine import predict_array, predict_to_cogs
    from stac_coh.infer.predictors import build_predictor
    from stac_coh.io.storage import open_store
    from stac_coh.load.file_pair import RasterPairReader
    from stac_coh.pipeline.run import execute_run, finish_run
    from stac_coh.pipeline.runner import PairProcessor, ProcessOptions
    from stac_coh.search.find import search_pairs
    from stac_coh.search.manifest_io import read_manifest
    from stac_coh.search.query import SearchQuery
    from stac_coh.search.sources import open_source


def __getattr__(name: str) -> Any:
    """Import a public name from its stage module on first use."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'stac_coh' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    """The public names, for completion."""
    return sorted(__all__)
