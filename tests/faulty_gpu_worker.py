"""``python -m tests.faulty_gpu_worker worker process``: the worker on a GPU that faults.

The predictor raises what PyTorch raises for a CUDA kernel fault, ``torch.AcceleratorError``
with ``error_code`` 700 (cudaErrorIllegalAddress), from its first call on: sticky, as a
CUDA context is after such an error. Everything else is the real worker.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch

from stac_coh.infer import predictors

_real_build = predictors.build_predictor


def illegal_memory_access() -> torch.AcceleratorError:
    """The error PyTorch raises after an illegal memory access in a CUDA kernel."""
    error = torch.AcceleratorError(
        "CUDA error: an illegal memory access was encountered\n"
        "CUDA kernel errors might be asynchronously reported at some other API call, so the "
        "stacktrace below might be incorrect."
    )
    error.error_code = 700  # type: ignore[attr-defined]
    return error


class FaultyGpu:
    """Wraps a predictor; every call fails like a broken CUDA context."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.calls = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        self.calls += 1
        raise illegal_memory_access()

    def predict_prepared(self, x: np.ndarray, height: int, width: int) -> np.ndarray:
        """The fast path's forward pass (preprocessing ran ahead): fails the same way."""
        self.calls += 1
        raise illegal_memory_access()


def build_predictor(*args: Any, **kwargs: Any) -> predictors.LoadedPredictor:
    """The real predictor behind a faulty GPU."""
    loaded = _real_build(*args, **kwargs)
    return dataclasses.replace(loaded, predictor=FaultyGpu(loaded.predictor))


predictors.build_predictor = build_predictor  # type: ignore[assignment]

if __name__ == "__main__":
    from stac_coh.cli import main

    main()
