"""The ResUNet rearranged for inference: same function, fewer passes over memory.

On a CPU the convolutions of a large tile are compute bound, but every other operation
(BatchNorm, ReLU, residual add, padding, the two heads) streams whole feature maps through
memory, and each fresh output tensor costs page faults. For inference with fixed weights:

* BatchNorm is folded into the convolution before it (exact up to float rounding);
* ReLU and the residual add run in place on tensors nobody else holds;
* the upsampling path's TensorFlow 'same' 2x2 convolution (pad 0 before, 1 after) is a
  symmetric padding-1 convolution whose first row and column are dropped, instead of an
  explicit padded copy;
* the two 1x1 heads are one 2-channel convolution followed by one sigmoid.

Under reduced-precision autocast (bf16/fp16, see ``stac_coh.infer.precision``) two cheap
ends stay in float32: the convolutions that read the 2-channel input (rounding the
dB-scaled backscatter to bf16's 8-bit mantissa doubles the difference from fp32; these
are 0.3 % of the FLOPs) and the heads (so coherence is not rounded to bf16 steps).
Without autocast these are no-ops and the network computes exactly what it did before.

``tests/test_infer.py`` checks the result against ``ResUNet.forward`` on whole scenes.
"""

from __future__ import annotations

import contextlib
import copy
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from stac_coh.model.resunet import ResidualBlock, ResUNet, UpConv, unet_trunk

__all__ = ["InferenceResUNet"]

_AUTOCAST_DEVICES = ("cpu", "cuda", "mps", "xpu")


def _full_precision(x: torch.Tensor) -> contextlib.AbstractContextManager[Any]:
    """Suspend an active autocast for ``x``'s device (nothing to do without one)."""
    kind = x.device.type
    if kind in _AUTOCAST_DEVICES and torch.is_autocast_enabled(kind):
        return torch.autocast(kind, enabled=False)
    return contextlib.nullcontext()


class _FoldedBlock(nn.Module):
    """A residual block with BatchNorm folded in and in-place activations.

    ``fp32_input``: the convolutions reading the block's input run in float32 even under
    autocast (for the network's first block, whose input is the backscatter itself).
    """

    def __init__(self, block: ResidualBlock, *, fp32_input: bool = False) -> None:
        super().__init__()
        self.conv1 = fuse_conv_bn_eval(block.conv1, block.bn1)
        self.conv2 = fuse_conv_bn_eval(block.conv2, block.bn2)
        self.shortcut = block.shortcut
        self.fp32_input = fp32_input

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the block."""
        if not self.fp32_input:
            y = self.conv2(F.relu_(self.conv1(x)))
            return F.relu_(y.add_(self.shortcut(x)))
        with _full_precision(x):
            hidden = F.relu_(self.conv1(x))
            shortcut = self.shortcut(x)
        y = self.conv2(hidden)
        return F.relu_(y.add_(shortcut.to(y.dtype)))


class _UpConvSame(nn.Module):
    """Bilinear x2 upsampling, then the 2x2 'same' convolution without a padded copy."""

    def __init__(self, up: UpConv) -> None:
        super().__init__()
        conv = up.conv
        self.conv = nn.Conv2d(conv.in_channels, conv.out_channels, 2, padding=1)
        self.conv.load_state_dict(conv.state_dict())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the upsampling step; the result is a (non-contiguous) view."""
        x = F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)
        # Output (i+1, j+1) of the padding-1 convolution sees inputs i..i+1, j..j+1 with
        # zeros past the end: exactly TensorFlow's 'same' rule for an even kernel.
        return F.relu_(self.conv(x)[..., 1:, 1:])


class InferenceResUNet(nn.Module):
    """Eval-mode ResUNet with the same outputs, arranged for speed (see module docstring)."""

    def __init__(self, model: ResUNet) -> None:
        super().__init__()
        source = copy.deepcopy(model).float().eval()
        # the source's ModuleLists are typed as holding Modules; they hold ResidualBlocks
        # and UpConvs (ResUNet.__init__)
        self.encoders = nn.ModuleList(
            _FoldedBlock(b, fp32_input=i == 0)  # type: ignore[arg-type]
            for i, b in enumerate(source.encoders)
        )
        self.bottleneck = _FoldedBlock(source.bottleneck)
        self.up_convs = nn.ModuleList(_UpConvSame(u) for u in source.up_convs)  # type: ignore[arg-type]
        self.decoders = nn.ModuleList(_FoldedBlock(b) for b in source.decoders)  # type: ignore[arg-type]
        mean, log_variance = source.mean_head, source.log_variance_head
        self.heads = nn.Conv2d(mean.in_channels, 2, 1)
        assert mean.bias is not None and log_variance.bias is not None  # built with bias
        assert self.heads.bias is not None
        with torch.no_grad():
            self.heads.weight.copy_(torch.cat([mean.weight, log_variance.weight]))
            self.heads.bias.copy_(torch.cat([mean.bias, log_variance.bias]))
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map (N, 2, H, W) model input (H, W multiples of 16) to (N, 2, H, W)."""
        x = unet_trunk(x, self.encoders, self.bottleneck, self.up_convs, self.decoders)
        with _full_precision(x):
            return torch.sigmoid_(self.heads(x.float()))
