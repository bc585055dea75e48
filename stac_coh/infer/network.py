"""The ResUNet as a tile predictor: receptive field, device, precision, memory.

:class:`NetworkPredictor` is what ``stac_coh.infer.engine`` runs for the network; classic
estimators (``stac_coh.infer.estimators``) implement the same ``TilePredictor`` protocol.
"""

from __future__ import annotations

import contextlib
import copy
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from stac_coh.errors import InputError
from stac_coh.infer.tiling import round_up
from stac_coh.model.card import ModelCard
from stac_coh.model.fused import InferenceResUNet
from stac_coh.model.preprocess import to_model_input
from stac_coh.model.resunet import DEPTH_MULTIPLE, ResUNet
from stac_coh.model.uncertainty import head_to_sigma

__all__ = ["NetworkPredictor", "receptive_field", "resolve_device", "reuse_freed_memory"]


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


def _autocast_dtype(device: torch.device, precision: str) -> torch.dtype | None:
    """Autocast dtype for ``precision``; reduced precision only on CUDA."""
    if precision == "float32" or (precision == "auto" and device.type != "cuda"):
        return None
    if precision == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if precision not in ("bfloat16", "float16"):
        raise InputError(
            f"precision must be auto, float32, bfloat16 or float16, not {precision!r}."
        )
    if device.type != "cuda":
        raise InputError(f"{precision} autocast runs on CUDA only; use float32 on {device.type}.")
    return torch.bfloat16 if precision == "bfloat16" else torch.float16


class NetworkPredictor:
    """The ResUNet as a :class:`~stac_coh.infer.engine.TilePredictor`: preprocessing, device, heads.

    Args:
        model: the network (left untouched; a prepared copy runs).
        card: its model card (preprocessing, uncertainty mapping, reference tiling).
        device: ``auto``, ``cpu``, ``cuda``, ``mps`` or a torch device.
        precision: ``auto`` (bf16, or fp16 where bf16 is missing, autocast on CUDA; float32
            elsewhere), ``float32``, ``bfloat16`` or ``float16``.
        halo: context per side; default the receptive field rounded up to 16 (144).
        channels_last: NHWC memory layout; default on for CPU (oneDNN convolutions run
            about 4x faster in it here) and CUDA (tensor cores), off for MPS.
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
        self.autocast_dtype = _autocast_dtype(self.device, precision)
        self.multiple = DEPTH_MULTIPLE
        depth = len(model.encoders)
        self.halo = round_up(max(receptive_field(depth)), self.multiple) if halo is None else halo
        if channels_last is None:
            channels_last = self.device.type in ("cpu", "cuda")
        self.channels_last = channels_last
        prepared: nn.Module = (
            InferenceResUNet(model) if optimize else copy.deepcopy(model).float().eval()
        )
        prepared = prepared.to(self.device)
        if channels_last:
            prepared = prepared.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        self.model = prepared

    @property
    def name(self) -> str:
        """The model card's name (what the CLI reports as 'weights')."""
        return self.card.name

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.autocast_dtype)

    def __call__(self, batch: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """Predict coherence and its standard deviation for (N, 2, h, w) linear power."""
        arr = np.asarray(batch, dtype=np.float32)
        if arr.ndim != 4 or arr.shape[1] != 2:
            raise InputError(f"NetworkPredictor needs (N, 2, h, w) input, got {arr.shape}.")
        height, width = arr.shape[-2:]
        prep = self.card.preprocessing
        x = np.stack([to_model_input(tile[0], tile[1], prep) for tile in arr])
        pad_h = round_up(height, self.multiple) - height
        pad_w = round_up(width, self.multiple) - width
        if pad_h or pad_w:
            x = np.pad(x, ((0, 0), (0, 0), (0, pad_h), (0, pad_w)))
        tensor = torch.from_numpy(x).to(self.device)
        if self.channels_last:
            tensor = tensor.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode(), self._autocast():
            out = self.model(tensor)
        result = out.float()[..., :height, :width].cpu().numpy()
        result = np.ascontiguousarray(result, dtype=np.float32)
        result[:, 1] = head_to_sigma(result[:, 1], self.card.uncertainty)
        return result
