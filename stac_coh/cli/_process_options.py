"""The processing options shared by `run`, `search-and-run` and `demo`.

Decorate a command with :func:`process_options`: it gains the options below and receives
them as one :class:`ProcessingChoices` argument named ``processing``.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from stac_coh.constants import DEVICES, DTYPES, ESTIMATORS, MODES, PRECISIONS
from stac_coh.errors import InputError

if TYPE_CHECKING:
    from pathlib import Path

    from stac_coh.infer.predictors import LoadedPredictor
    from stac_coh.pipeline.runner import ProcessOptions
    from stac_coh.settings import Settings

__all__ = ["ProcessingChoices", "process_options"]

F = TypeVar("F", bound=Callable[..., Any])
_PANEL = "Processing"


@dataclass(frozen=True)
class ProcessingChoices:
    """What the user typed for processing, before validation."""

    weights: str | None
    """``--weights``; ``None`` = STAC_COH_WEIGHTS, else ``auto``."""
    estimator: str
    """``--estimator``."""
    mode: str
    """``--mode``."""
    device: str | None
    """``--device``; ``None`` = STAC_COH_DEVICE, else auto."""
    tile: int | None
    """``--tile``."""
    batch_size: int | None
    """``--batch-size``."""
    dtype: str
    """``--dtype``."""
    uncertainty: bool
    """``--uncertainty/--no-uncertainty``."""
    loader: str
    """``--loader``."""
    overwrite: bool
    """``--overwrite``."""
    collection_id: str
    """``--collection-id``."""
    source_kind: str = "real"
    """``real`` or ``simulated`` data: ``auto`` weights are the published or the bundled ones."""
    preloaded: LoadedPredictor | None = field(default=None, compare=False, repr=False)
    """A predictor already built from these choices (e.g. checked before any work)."""
    precision: str | None = None
    """``--precision``; ``None`` = STAC_COH_PRECISION, else auto."""

    def load_predictor(self, settings: Settings) -> LoadedPredictor:
        """Build the predictor these choices name (settings fill the defaults).

        On a CPU the process also keeps freed memory for reuse: ~30 % faster tiles for
        ~30 % more peak memory (see docs/inference.md). Applications only.
        """
        from stac_coh.infer.network import reuse_freed_memory
        from stac_coh.infer.predictors import build_predictor

        if self.preloaded is not None:
            return self.preloaded
        loaded = build_predictor(
            self.estimator,
            weights=self.resolve_weights(settings) if self.estimator == "resunet" else None,
            device=self.device or settings.device,
            cache_dir=settings.cache_dir,
            precision=self.precision or settings.precision,
        )
        if loaded.device == "cpu":
            reuse_freed_memory()
        return loaded

    def resolve_weights(self, settings: Settings) -> Path:
        """The local weight file these choices name (``auto`` fetches or converts once)."""
        from stac_coh.model.weight_sources import AUTO, resolve_weights

        return resolve_weights(
            self.weights or settings.weights or AUTO,
            cache_dir=settings.cache_dir,
            source_kind="simulated" if self.source_kind == "simulated" else "real",
        )

    def options(self) -> ProcessOptions:
        """Validated :class:`ProcessOptions`."""
        from stac_coh.load.stac_pair import as_loader_name
        from stac_coh.pipeline.runner import ProcessOptions

        for value, allowed, flag in (
            (self.mode, MODES, "--mode"),
            (self.dtype, DTYPES, "--dtype"),
            (self.estimator, ESTIMATORS, "--estimator"),
            (self.device or "auto", DEVICES, "--device"),
            (self.precision or "auto", PRECISIONS, "--precision"),
        ):
            if value not in allowed:
                raise InputError(f"{flag} must be one of {', '.join(allowed)}, not {value!r}.")
        return ProcessOptions(
            mode=self.mode,
            tile=self.tile,
            batch_size=self.batch_size,
            dtype=self.dtype,
            uncertainty=self.uncertainty,
            loader=as_loader_name(self.loader),
            overwrite=self.overwrite,
            collection_id=self.collection_id,
        )


def _opt(*names: str, help: str, **kwargs: Any) -> Any:
    """A Typer option in the Processing help panel."""
    return typer.Option(*names, help=help, rich_help_panel=_PANEL, **kwargs)


def _param(name: str, annotation: Any, default: Any) -> inspect.Parameter:
    return inspect.Parameter(
        name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation
    )


_PARAMETERS = [
    _param(
        "weights",
        Annotated[
            str | None,
            _opt(
                "--weights",
                help="auto (the published weights for real data, fetched once and "
                "cached; the bundled ones for the demo), bundled, our .safetensors, a Keras "
                ".h5, a folder, hf://owner/repo or s3://. Default: STAC_COH_WEIGHTS, else "
                "auto. See `stac-coh weights --help`.",
            ),
        ],
        None,
    ),
    _param(
        "estimator",
        Annotated[str, _opt("--estimator", help="resunet (the network) or siegert (baseline).")],
        "resunet",
    ),
    _param("mode", Annotated[str, _opt("--mode", help="fast (halo tiles) or reference.")], "fast"),
    _param(
        "device",
        Annotated[str | None, _opt("--device", help="auto, cpu, cuda or mps (default auto).")],
        None,
    ),
    _param(
        "tile",
        Annotated[int | None, _opt("--tile", min=16, help="Core tile edge in pixels.")],
        None,
    ),
    _param(
        "batch_size",
        Annotated[int | None, _opt("--batch-size", min=1, help="Tiles per forward pass.")],
        None,
    ),
    _param(
        "dtype",
        Annotated[str, _opt("--dtype", help="uint8 (scale 0.004, nodata 255) or float32.")],
        "uint8",
    ),
    _param(
        "uncertainty",
        Annotated[
            bool,
            _opt("--uncertainty/--no-uncertainty", help="Publish the uncertainty asset too."),
        ],
        True,
    ),
    _param(
        "loader",
        Annotated[str, _opt("--loader", help="odc (odc-stac) or stackstac.")],
        "odc",
    ),
    _param(
        "overwrite",
        Annotated[bool, _opt("--overwrite", help="Re-process pairs already published.")],
        False,
    ),
    _param(
        "collection_id",
        Annotated[str, _opt("--collection-id", help="Id of the coherence collection.")],
        "sentinel-1-coherence",
    ),
    _param(
        "precision",
        Annotated[
            str | None,
            _opt(
                "--precision",
                help="Network precision: auto (bf16 on CPUs with AVX512-BF16/AMX and on GPUs "
                "from sm_80, fp16 on older GPUs, else fp32), fp32, bf16 or fp16. "
                "Default: STAC_COH_PRECISION, else auto.",
            ),
        ],
        None,
    ),
]


def process_options(func: F) -> F:
    """Give a command the shared processing options, as ``processing: ProcessingChoices``."""
    own = [p for p in inspect.signature(func).parameters.values() if p.name != "processing"]
    names = {p.name for p in _PARAMETERS}

    @functools.wraps(func)
    def wrapper(**kwargs: Any) -> Any:
        values = {n: kwargs.pop(n) for n in list(kwargs) if n in names}
        return func(processing=ProcessingChoices(**values), **kwargs)

    params = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own] + _PARAMETERS
    # Typer reads the options from the signature built here, which mypy cannot follow.
    wrapper.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    return wrapper  # type: ignore[return-value]
