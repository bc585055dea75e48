"""The ResUNet as a tile predictor: receptive field, device, precision, memory.

:class:`NetworkPredictor` is what ``stac_coh.infer.engine`` runs for the network; classic
estimators (``stac_coh.infer.estimators``) implement the same ``TilePredictor`` protocol.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import time
import warnings
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from stac_coh.errors import InputError, PrecisionWarning
from stac_coh.infer.precision import PrecisionChoice, choose_precision
from stac_coh.infer.tiling import round_up
from stac_coh.model.card import ModelCard
from stac_coh.model.fused import InferenceResUNet
from stac_coh.model.preprocess import to_model_input
from stac_coh.model.resunet import DEPTH_MULTIPLE, ResUNet
from stac_coh.model.uncertainty import ViewEnsemble, head_to_sigma, needs_ensemble

__all__ = ["NetworkPredictor", "receptive_field", "resolve_device", "reuse_freed_memory"]

log = logging.getLogger(__name__)


def receptive_field(depth: int = 4, convs_per_block: int = 2) -> tuple[int, int]:
    """Input pixels before and after an output pixel that the ResUNet output depends on.

    Walks the U-Net backwards with exact integer intervals: a 3x3 convolution widens an
    interval by one pixel each side, a 2x2 max-pool maps [a, b] to [2a, 2b + 1], the 2x2
    convolution after upsampling (TensorFlow padding) adds one pixel after, and half-pixel
    bilinear x2 upsampling maps fine pixel j to coarse pixels (j+1)//2 - 1 .. (j+1)//2.
    Pooling makes the extent depend on the pixel's position modulo 2**depth; the worst case
    over those positions is returned. For the published network this is (122, 137).
    """
    grow = convs_per_block

    def encoder(level: int, a: int, b: int) -> tuple[int, int]:
        a, b = a - grow, b + grow
        return (a, b) if level == 0 else encoder(level - 1, 2 * a, 2 * b + 1)

    def decoder(level: int, a: int, b: int) -> tuple[int, int]:
        if level == depth:  # the bottleneck, fed by the deepest pooled encoder
            return encoder(depth - 1, 2 * (a - grow), 2 * (b + grow) + 1)
        a, b = a - grow, b + grow
        skip = encoder(level, a, b)
        coarse = decoder(level + 1, (a + 1) // 2 - 1, (b + 2) // 2)
        return min(skip[0], coarse[0]), max(skip[1], coarse[1])

    extents = [decoder(0, j, j) for j in range(2**depth)]
    before = max(j - lo for j, (lo, _hi) in enumerate(extents))
    after = max(hi - j for j, (_lo, hi) in enumerate(extents))
    return before, after


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    """``auto`` picks CUDA, then Apple MPS, then CPU; naming a missing device is an error."""
    name = str(name)
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InputError("--device cuda was asked for, but PyTorch sees no CUDA GPU; use cpu.")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise InputError("--device mps was asked for, but this PyTorch has no MPS; use cpu.")
    if device.type not in ("cpu", "cuda", "mps"):
        raise InputError(f"--device must be auto, cpu, cuda or mps, not {name!r}.")
    return device


def reuse_freed_memory() -> bool:
    """Make glibc keep freed memory for reuse instead of handing it back to the kernel.

    Every large tensor PyTorch frees on CPU is unmapped by default, so the next tile's
    feature maps fault in fresh zeroed pages: on a 1168 x 1168 tile that is ~900,000 page
    faults and about a quarter of the forward pass's CPU time. With large allocations
    served from a heap that is never trimmed, those pages are reused; peak RSS grows by
    about a third (freed blocks stay resident) and stays bounded by tile and batch size.
    Process-wide, so only applications call it (``stac-coh predict`` and the workers do);
    a no-op returning False where the C library is not glibc.
    """
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3  # from glibc's malloc.h
    return bool(mallopt(m_mmap_threshold, 2**30) and mallopt(m_trim_threshold, 2**31 - 1))


class NetworkPredictor:
    """The ResUNet as a :class:`~stac_coh.infer.engine.TilePredictor`: preprocessing, device, heads.

    Args:
        model: the network (left untouched; a prepared copy runs).
        card: its model card (preprocessing, uncertainty mapping, reference tiling).
        device: ``auto``, ``cpu``, ``cuda``, ``mps`` or a torch device.
        precision: ``auto`` (the device's native reduced precision, else fp32; see
            :mod:`stac_coh.infer.precision`), ``fp32``, ``bf16`` or ``fp16`` (autocast).
        halo: context per side; default the receptive field rounded up to 16 (144).
        channels_last: NHWC memory layout; default on for CPU (oneDNN's convolutions run
            1.2x faster in it in fp32 and ~4x in bf16, docs/inference.md) and CUDA (tensor
            cores), off for MPS.
        optimize: run :class:`~stac_coh.model.fused.InferenceResUNet` (BatchNorm folded,
            in-place activations; equal up to float rounding) instead of ``model`` itself.
    """

    def __init__(
        self,
        model: ResUNet,
        card: ModelCard,
        *,
        device: str | torch.device = "cpu",
        precision: str = "auto",
        halo: int | None = None,
        channels_last: bool | None = None,
        optimize: bool = True,
    ) -> None:
        self.card = card
        self.device = resolve_device(device)
        self.precision: PrecisionChoice = choose_precision(precision, self.device)
        self.autocast_dtype = self.precision.autocast_dtype
        self._fp16_fallbacks = 0
        self.timings: dict[str, float] = dict.fromkeys(
            ("preprocess", "to device", "forward", "postprocess"), 0.0
        )
        """Wall seconds spent in each step of every call so far."""
        self.multiple = DEPTH_MULTIPLE
        depth = len(model.encoders)
        self.halo = round_up(max(receptive_field(depth)), self.multiple) if halo is None else halo
        if channels_last is None:
            channels_last = self.device.type in ("cpu", "cuda")
        self.channels_last = channels_last
        prepared: nn.Module = (
            InferenceResUNet(model) if optimize else copy.deepcopy(model).float().eval()
        )
        if needs_ensemble(card.uncertainty):  # test-time views, recalibrated uncertainty
            prepared = ViewEnsemble(prepared, card.uncertainty)
        prepared = prepared.to(self.device)
        if channels_last:
            # Module.to(memory_format=...) works but is missing from torch's overloads
            prepared = prepared.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        self.model = prepared
        self._heads_finite = True
        if self.autocast_dtype == torch.float16:
            heads = getattr(prepared, "heads", None) or prepared.mean_head
            assert isinstance(heads, nn.Module)
            heads.register_forward_pre_hook(self._watch_overflow)

    def _watch_overflow(self, _module: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
        """Note whether the features reaching the heads are finite (fp16 saturates at 65504)."""
        self._heads_finite = bool(torch.isfinite(args[0]).all())

    @property
    def name(self) -> str:
        """The model card's name (what the CLI reports as 'weights')."""
        return self.card.name

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        """The autocast context the model runs in (nothing for fp32)."""
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.autocast_dtype)

    def _fp32_rerun(self, tensor: torch.Tensor) -> torch.Tensor:
        """Recompute a batch whose fp16 activations overflowed (65504), in float32."""
        self._fp16_fallbacks += 1
        if self._fp16_fallbacks == 1:
            warnings.warn(
                f"fp16 activations of weights '{self.card.name}' overflowed on a tile; such "
                "tiles are recomputed in fp32 (slower). --precision fp32 or bf16 avoids it.",
                PrecisionWarning,
                stacklevel=3,
            )
        log.debug("fp16 overflow: tile recomputed in fp32 (%d so far)", self._fp16_fallbacks)
        out = self.model(tensor)
        self._heads_finite = True
        return out

    def prepare(self, tile: npt.NDArray[np.floating]) -> npt.NDArray[np.float32]:
        """(2, h, w) linear power -> model input, padded at the end to the network's multiple.

        Pure and thread-safe: the engine runs it in its read-ahead thread, so the device
        never waits for preprocessing.
        """
        x = to_model_input(tile[0], tile[1], self.card.preprocessing)
        height, width = x.shape[-2:]
        pad_h = round_up(height, self.multiple) - height
        pad_w = round_up(width, self.multiple) - width
        if pad_h or pad_w:
            x = np.pad(x, ((0, 0), (0, pad_h), (0, pad_w)))
        return x

    def __call__(self, batch: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """Predict coherence and its standard deviation for (N, 2, h, w) linear power."""
        arr = np.asarray(batch, dtype=np.float32)
        if arr.ndim != 4 or arr.shape[1] != 2:
            raise InputError(f"NetworkPredictor needs (N, 2, h, w) input, got {arr.shape}.")
        clock = time.perf_counter()
        x = np.stack([self.prepare(tile) for tile in arr])
        self._tick("preprocess", clock)
        return self.predict_prepared(x, arr.shape[-2], arr.shape[-1])

    def predict_prepared(
        self, x: npt.NDArray[np.float32], height: int, width: int
    ) -> npt.NDArray[np.float32]:
        """Run (N, 2, H, W) :meth:`prepare` d input; return (N, 2, height, width)."""
        clock = time.perf_counter()
        tensor = torch.from_numpy(x).to(self.device)
        if self.channels_last:
            tensor = tensor.contiguous(memory_format=torch.channels_last)
        clock = self._tick("to device", clock)
        with torch.inference_mode():
            with self.autocast():
                out = self.model(tensor)
            if not self._heads_finite:
                out = self._fp32_rerun(tensor)
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)  # else the copy below waits for the GPU
        clock = self._tick("forward", clock)
        result = out.float()[..., :height, :width].cpu().numpy()
        result = np.ascontiguousarray(result, dtype=np.float32)
        result[:, 1] = head_to_sigma(result[:, 1], self.card.uncertainty)
        self._tick("postprocess", clock)
        return result

    def _tick(self, step: str, since: float) -> float:
        """Add the time since ``since`` to ``step``; return now."""
        now = time.perf_counter()
        self.timings[step] += now - since
        return now
