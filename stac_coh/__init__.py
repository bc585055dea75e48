"""stac-coh: InSAR coherence maps from detected Sentinel-1 backscatter, published as STAC."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("stac-coh")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
