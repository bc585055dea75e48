"""GPU faults on AWS Batch: a missing or failing GPU is the host's fault, not the pair's.

A job definition that asks for ``--device cuda`` runs on a GPU instance, so a GPU PyTorch
cannot see, or a CUDA runtime error (``torch.AcceleratorError``: illegal memory access,
ECC error, launch failure), says the host or this process's CUDA context is broken. Such
an error is sticky: every later kernel of the process fails too. So the child stops at the
first one and exits 69; AWS Batch retries it in a new container (a fresh CUDA context),
placed wherever capacity is - Batch cannot be told to avoid a host (see batch/README.md).
On the last attempt the child goes on instead, recording each pair, and exits 0, so the
finalize job still runs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import TypeVar

from stac_coh.batch.exits import EXIT_DEVICE, EXIT_OK
from stac_coh.batch.logs import log_event
from stac_coh.errors import DeviceError
from stac_coh.io.faults import Kind, classify
from stac_coh.io.storage import Store
from stac_coh.pipeline.records import record_outcome
from stac_coh.pipeline.runner import PairOutcome
from stac_coh.publish.collection import item_key
from stac_coh.search.manifest import Pair

__all__ = ["device_failed", "load_on_device", "record_device_fault"]

log = logging.getLogger(__name__)

T = TypeVar("T")


def load_on_device(device: str, load: Callable[[], T]) -> T:
    """Run ``load`` (build the predictor); a missing or failing GPU raises :class:`DeviceError`.

    Without this, a GPU that PyTorch cannot see would be an :class:`InputError` (exit 2,
    not retried) and the array job would fail, taking the finalize job with it.
    """
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise DeviceError(
                f"--device {device}: PyTorch sees no CUDA GPU on this host (a driver or "
                "container runtime fault); the child is retried in a new container."
            )
    try:
        return load()
    except Exception as exc:
        fault = classify(exc)
        if fault.kind is Kind.DEVICE:
            raise DeviceError(f"The GPU failed while the model loaded ({fault.code}).") from exc
        raise


def device_failed(outcomes: Sequence[PairOutcome]) -> bool:
    """Whether a pair failed because the GPU did (the CUDA context may be unusable now)."""
    return any(o.status == "failed" and o.fault == Kind.DEVICE for o in outcomes)


def record_device_fault(
    store: Store,
    run_id: str,
    pairs: Sequence[Pair],
    error: BaseException,
    collection_id: str,
    last_attempt: bool,
) -> int:
    """Record the share's unpublished pairs as failed (device); the child's exit code.

    ``stac-coh status`` and the run report then say why the pairs are not done; a retry
    on a working GPU overwrites the records.
    """
    message = f"{type(error).__name__}: {' '.join(str(error).split())}"
    failed = 0
    for pair in pairs:
        if store.exists(item_key(collection_id, pair.id)):
            continue  # published by an earlier attempt; its record stays
        outcome = PairOutcome(pair.id, "failed", error=message, transient=True, fault=Kind.DEVICE)
        record_outcome(store, run_id, outcome.to_entry())
        failed += 1
    code = EXIT_OK if last_attempt else EXIT_DEVICE
    log_event(
        log,
        "worker.gpu_fault",
        f"{message}; {failed} pairs recorded as failed; exit {code}",
        level=logging.ERROR,
        exit_code=code,
    )
    return code
