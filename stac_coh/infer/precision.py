"""Numeric precision of the network: which autocast dtype a device runs natively.

``auto`` picks the fastest precision a device executes in hardware and fp32 everywhere
else:

* CPU: bf16 where the CPU has bf16 instructions (``avx512_bf16`` or AMX ``amx_bf16``);
  oneDNN emulates bf16 elsewhere, which is slower than fp32.
* CUDA: bf16 from compute capability 8.0 (Ampere) on; fp16 on older GPUs with fast fp16
  (tensor cores from 7.0, e.g. V100 and T4, and the P100 at 6.0). A T4 (7.5) reports bf16
  as "supported" but emulates it, so ``torch.cuda.is_bf16_supported()`` is not the test.
  Pascal 6.1/6.2 run fp16 at a fraction of fp32 speed: fp32 there.
* Apple MPS: fp32 (not measured).

The capability is read at the torch API boundary (``torch.cpu.get_capabilities``,
``torch.cuda.get_device_capability``), so tests fake it there. Explicit choices run as
asked; an emulated one draws a :class:`~stac_coh.errors.PrecisionWarning`.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch

from stac_coh.constants import PRECISIONS
from stac_coh.errors import InputError, PrecisionWarning

__all__ = [
    "PRECISIONS",
    "PrecisionChoice",
    "choose_precision",
    "cpu_has_native_bf16",
    "cuda_capability",
]

_ALIASES = {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16"}
"""Spellings the Python API accepted before ``--precision`` existed."""

_DTYPES: dict[str, torch.dtype | None] = {
    "fp32": None,
    "bf16": torch.bfloat16,
    "fp16": torch.float16,
}

_BF16_CUDA = (8, 0)
"""Ampere and later execute bf16 on tensor cores."""

_FP16_CUDA = (7, 0)
"""Volta and Turing (T4) have fp16 tensor cores."""

_SLOW_FP16_CUDA = {(6, 1), (6, 2)}
"""Consumer Pascal / Jetson TX2: fp16 arithmetic at a small fraction of fp32 speed."""


@dataclass(frozen=True)
class PrecisionChoice:
    """The precision a predictor runs at, and why."""

    name: str
    """``fp32``, ``bf16`` or ``fp16``."""
    reason: str
    """One line: what decided it (shown in logs and ``--help`` examples)."""

    @property
    def autocast_dtype(self) -> torch.dtype | None:
        """The autocast dtype, ``None`` for fp32 (no autocast)."""
        return _DTYPES[self.name]


def cpu_has_native_bf16() -> bool:
    """Whether this CPU executes bf16 in hardware (AVX512-BF16 or AMX-BF16)."""
    caps = torch.cpu.get_capabilities()
    return bool(caps.get("avx512_bf16") or caps.get("amx_bf16"))


def cuda_capability(device: torch.device) -> tuple[int, int]:
    """Compute capability (major, minor) of a CUDA device."""
    major, minor = torch.cuda.get_device_capability(device)
    return int(major), int(minor)


def _auto(device: torch.device) -> PrecisionChoice:
    """The precision ``auto`` means on ``device``."""
    if device.type == "cpu":
        if cpu_has_native_bf16():
            return PrecisionChoice("bf16", "auto: the CPU has native bf16 (AVX512-BF16/AMX)")
        return PrecisionChoice("fp32", "auto: the CPU has no native bf16")
    if device.type == "cuda":
        cap = cuda_capability(device)
        sm = f"sm_{cap[0]}{cap[1]}"
        if cap >= _BF16_CUDA:
            return PrecisionChoice("bf16", f"auto: {sm} has bf16 tensor cores")
        if cap >= _FP16_CUDA or (cap >= (6, 0) and cap not in _SLOW_FP16_CUDA):
            return PrecisionChoice("fp16", f"auto: {sm} has fast fp16 but no native bf16")
        return PrecisionChoice("fp32", f"auto: {sm} has no fast fp16 or bf16")
    return PrecisionChoice("fp32", f"auto: reduced precision not measured on {device.type}")


def _emulated(name: str, device: torch.device) -> str | None:
    """Why an explicit ``name`` runs slowly on ``device``, or ``None`` when it is native."""
    if device.type == "cpu" and name == "bf16" and not cpu_has_native_bf16():
        return "this CPU has no bf16 instructions (AVX512-BF16/AMX); bf16 is emulated"
    if device.type == "cpu" and name == "fp16":
        return "PyTorch's CPU convolutions run fp16 slower than fp32 (docs/inference.md)"
    if device.type == "cuda" and name == "bf16" and cuda_capability(device) < _BF16_CUDA:
        major, minor = cuda_capability(device)
        return f"sm_{major}{minor} emulates bf16 (native from sm_80); fp16 is its fast choice"
    return None


def choose_precision(precision: str, device: torch.device) -> PrecisionChoice:
    """Resolve ``auto|fp32|bf16|fp16`` for ``device``; warn when an explicit one is emulated."""
    name = _ALIASES.get(precision, precision)
    if name not in PRECISIONS:
        raise InputError(f"--precision must be one of {', '.join(PRECISIONS)}, not {precision!r}.")
    if name == "auto":
        return _auto(device)
    if name != "fp32" and (why := _emulated(name, device)) is not None:
        warnings.warn(
            f"--precision {name} on {device.type}: {why}; expect it to be slower than "
            "--precision auto.",
            PrecisionWarning,
            stacklevel=3,
        )
    return PrecisionChoice(name, "asked for")
