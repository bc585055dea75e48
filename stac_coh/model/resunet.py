"""The Residual U-Net of "Beyond Backscatter" (Sica, Pulella, Schmitt, 2026), in PyTorch.

The layer graph follows the published Keras model exactly, so its weights load one to one
(see ``stac_coh.model.weights``). Three details decide numerical parity with Keras: 'same'
padding of an even kernel pads 0 before and 1 after; bilinear upsampling uses half-pixel
centres; BatchNorm uses epsilon 1e-4.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from stac_coh.errors import InputError

if TYPE_CHECKING:
    from stac_coh.model.card import ModelCard

__all__ = [
    "BN_EPSILON",
    "BN_MOMENTUM",
    "DEPTH_MULTIPLE",
    "UPSAMPLING_NAMES",
    "ResUNet",
    "ResidualBlock",
    "UpConv",
    "model_card_of",
    "unet_trunk",
]

BN_EPSILON = 1e-4
"""Keras BatchNormalization epsilon of the published model (PyTorch defaults to 1e-5)."""

BN_MOMENTUM = 0.1
"""PyTorch momentum equivalent to Keras momentum 0.9 (PyTorch weights the new batch)."""

DEPTH_MULTIPLE = 16
"""Input height and width must be multiples of this (four 2x2 max-pools)."""

UPSAMPLING_NAMES = (
    "upsampling_256-128",
    "upsampling_128-64",
    "upsampling_64-32",
    "upsampling_32-16",
)
"""Keras names of the four 2x2 convolutions that follow each upsampling, top of the U last."""


class ResidualBlock(nn.Module):
    """Conv3x3-BN-ReLU-Conv3x3-BN plus a 1x1 convolution shortcut, then ReLU."""

    def __init__(self, in_channels: int, filters: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, filters, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(filters, eps=BN_EPSILON, momentum=BN_MOMENTUM)
        self.conv2 = nn.Conv2d(filters, filters, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(filters, eps=BN_EPSILON, momentum=BN_MOMENTUM)
        self.shortcut = nn.Conv2d(in_channels, filters, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the block."""
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return F.relu(self.shortcut(x) + y)


class UpConv(nn.Module):
    """Bilinear x2 upsampling (half-pixel centres) then a 2x2 'same' convolution and ReLU."""

    def __init__(self, in_channels: int, filters: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, filters, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the upsampling step."""
        x = F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)
        # TensorFlow's 'same' rule for an even kernel: nothing before, one pixel after.
        x = F.pad(x, (0, 1, 0, 1))
        return F.relu(self.conv(x))


class ResUNet(nn.Module):
    """Residual U-Net with a coherence head and a log-variance head.

    Args:
        base: filters of the first level; 32 is the published model.
        in_channels: input images (t1, t2).
    """

    model_card: ModelCard | None = None
    """Set by :func:`stac_coh.model.weights.load_weights`: what the loaded weights are."""

    def __init__(self, base: int = 32, in_channels: int = 2) -> None:
        super().__init__()
        if base < 1 or in_channels < 1:
            raise InputError(
                f"ResUNet needs base >= 1 and in_channels >= 1, got {base} and {in_channels}."
            )
        self.base = base
        self.in_channels = in_channels
        widths = [base * 2**i for i in range(5)]
        self.encoders = nn.ModuleList()
        channels = in_channels
        for width in widths[:4]:
            self.encoders.append(ResidualBlock(channels, width))
            channels = width
        self.bottleneck = ResidualBlock(channels, widths[4])
        self.up_convs = nn.ModuleList()
        self.decoders = nn.ModuleList()
        channels = widths[4]
        for width in reversed(widths[:4]):
            self.up_convs.append(UpConv(channels, width))
            self.decoders.append(ResidualBlock(2 * width, width))
            channels = width
        self.mean_head = nn.Conv2d(channels, 1, 1)
        self.log_variance_head = nn.Conv2d(channels, 1, 1)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """He-normal kernels and zero biases, as the Keras model initialises them."""
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                _keras_he_normal_(module.weight)
                if module.bias is not None:  # every conv here has one
                    nn.init.zeros_(module.bias)

    def residual_blocks(self) -> Iterator[ResidualBlock]:
        """Yield the nine residual blocks in Keras creation order (block index b = 0..8)."""
        # nn.ModuleList is typed as holding Modules; __init__ filled these with ResidualBlocks
        yield from self.encoders  # type: ignore[misc]
        yield self.bottleneck
        yield from self.decoders  # type: ignore[misc]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map (N, 2, H, W) model input to (N, 2, H, W): coherence mean, log-variance head."""
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise InputError(
                f"ResUNet input must be (N, {self.in_channels}, H, W), got {tuple(x.shape)}; "
                "stack t1 and t2 with stac_coh.model.preprocess.to_model_input."
            )
        height, width = x.shape[-2:]
        if height % DEPTH_MULTIPLE or width % DEPTH_MULTIPLE:
            raise InputError(
                f"ResUNet input height and width must be multiples of {DEPTH_MULTIPLE}, "
                f"got {height}x{width}; pad the input (stac_coh.infer.engine does this for you)."
            )
        x = unet_trunk(x, self.encoders, self.bottleneck, self.up_convs, self.decoders)
        mean = torch.sigmoid(self.mean_head(x))
        log_variance = torch.sigmoid(self.log_variance_head(x))
        return torch.cat([mean, log_variance], dim=1)


def unet_trunk(
    x: torch.Tensor,
    encoders: Iterable[nn.Module],
    bottleneck: nn.Module,
    up_convs: Iterable[nn.Module],
    decoders: Iterable[nn.Module],
) -> torch.Tensor:
    """The U-Net between input and heads: encoders, bottleneck and decoders, wired.

    Shared by :class:`ResUNet` and its fused inference copy, whose blocks differ but whose
    wiring (pool after each encoder, skip concatenated before each decoder) is the same.
    """
    skips = []
    for encoder in encoders:
        x = encoder(x)
        skips.append(x)
        x = F.max_pool2d(x, 2)
    x = bottleneck(x)
    for up_conv, decoder, skip in zip(up_convs, decoders, reversed(skips), strict=True):
        x = decoder(torch.cat([skip, up_conv(x)], dim=1))
    return x


def _keras_he_normal_(weight: torch.Tensor) -> None:
    """Keras ``HeNormal``: a normal truncated at two sigma, rescaled to variance 2 / fan_in."""
    fan_in = weight.shape[1] * weight.shape[2] * weight.shape[3]
    # 0.8796... is the standard deviation of a unit normal truncated to [-2, 2].
    std = math.sqrt(2.0 / fan_in) / 0.87962566103423978
    nn.init.trunc_normal_(weight, mean=0.0, std=std, a=-2.0 * std, b=2.0 * std)


def model_card_of(model: nn.Module) -> ModelCard | None:
    """Return the model card attached by :func:`stac_coh.model.weights.load_weights`, if any."""
    return getattr(model, "model_card", None)
