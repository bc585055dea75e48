"""Run-time settings read from the environment (prefix ``STAC_COH_``).

Only the command line and the worker read these; library functions take plain arguments,
so tests and callers never depend on the process environment.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from stac_coh.constants import DEVICES, PRECISIONS


def _default_cache_dir() -> Path:
    """Return the per-user cache directory (XDG on Linux)."""
    import os

    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "stac-coh"


class Settings(BaseSettings):
    """Settings shared by every command; override with ``STAC_COH_<NAME>``."""

    model_config = SettingsConfigDict(env_prefix="STAC_COH_", extra="ignore")

    cache_dir: Path = Field(default_factory=_default_cache_dir)
    """Where downloaded weights and other cached files live."""

    weights: str | None = None
    """Default weights (``auto``, ``bundled``, a path, ``hf://owner/repo``, ``s3://...``);
    ``None`` = ``auto``: the published weights for real data, the bundled ones for the demo."""

    device: str = "auto"
    """Torch device: auto, cpu, cuda, mps."""

    log_json: bool = False
    """Log one JSON object per line (CloudWatch) instead of human-readable lines."""

    http_timeout_s: float = 30.0
    """Timeout of one HTTP request to a STAC API or token service."""

    http_retries: int = 5
    """Retries of an HTTP request on 429/5xx and connection errors."""

    precision: str = "auto"
    """Network precision: auto (bf16/fp16 where the device runs it natively), fp32, bf16, fp16."""

    @field_validator("device")
    @classmethod
    def _known_device(cls, value: str) -> str:
        """A device torch knows by that name (the error names STAC_COH_DEVICE, not --device)."""
        if value not in DEVICES:
            raise ValueError(f"must be one of {', '.join(DEVICES)}")
        return value

    @field_validator("precision")
    @classmethod
    def _known_precision(cls, value: str) -> str:
        """A precision ``--precision`` accepts (the error names STAC_COH_PRECISION)."""
        if value not in PRECISIONS:
            raise ValueError(f"must be one of {', '.join(PRECISIONS)}")
        return value


def get_settings() -> Settings:
    """Read the settings from the environment once per call."""
    return Settings()


def default_cache_dir() -> Path:
    """The per-user stac-coh cache directory (``$XDG_CACHE_HOME/stac-coh``)."""
    return _default_cache_dir()
