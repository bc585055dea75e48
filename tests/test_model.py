"""The ResUNet's shape rules and the three details that decide parity with Keras."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from stac_coh.errors import InputError
from stac_coh.model.resunet import BN_EPSILON, ResUNet, UpConv


def _param_count_from_model_md(base: int, in_channels: int = 2) -> int:
    """Count parameters from the layer list of MODEL.md (conv kernels + biases, BN gamma/beta)."""

    def conv(k: int, cin: int, cout: int) -> int:
        return k * k * cin * cout + cout

    def block(cin: int, f: int) -> int:
        return conv(3, cin, f) + conv(3, f, f) + conv(1, cin, f) + 2 * 2 * f

    widths = [base * 2**i for i in range(5)]
    total, cin = 0, in_channels
    for f in widths:
        total += block(cin, f)
        cin = f
    for f in reversed(widths[:4]):
        total += conv(2, cin, f) + block(2 * f, f)
        cin = f
    return total + 2 * conv(1, cin, 1)


def test_output_shape_and_range() -> None:
    model = ResUNet(base=4).eval()
    x = torch.rand(3, 2, 32, 48)
    with torch.no_grad():
        y = model(x)
    assert y.shape == (3, 2, 32, 48)
    assert y.dtype == torch.float32
    # Both heads end in a sigmoid.
    assert float(y.min()) >= 0.0 and float(y.max()) <= 1.0


@pytest.mark.parametrize("shape", [(1, 2, 24, 32), (1, 2, 32, 40), (1, 2, 8, 8)])
def test_non_multiple_of_16_is_refused(shape: tuple[int, ...]) -> None:
    model = ResUNet(base=2)
    with pytest.raises(InputError, match="multiples of 16"):
        model(torch.zeros(shape))


def test_wrong_channel_count_is_refused() -> None:
    with pytest.raises(InputError, match=r"\(N, 2, H, W\)"):
        ResUNet(base=2)(torch.zeros(1, 3, 16, 16))


def test_parameter_count_matches_model_md_at_base_32() -> None:
    with torch.device("meta"):  # shapes only; skips seconds of initialisation
        model = ResUNet()
    count = sum(p.numel() for p in model.parameters())
    assert count == _param_count_from_model_md(32)
    assert 7.9e6 < count < 8.3e6  # MODEL.md: "about 8 million parameters"


@pytest.mark.parametrize("base", [4, 8, 16])
def test_width_is_configurable(base: int) -> None:
    with torch.device("meta"):
        model = ResUNet(base=base)
    widths = [block.conv2.out_channels for block in model.residual_blocks()]
    assert widths == [base * m for m in (1, 2, 4, 8, 16, 8, 4, 2, 1)]
    assert sum(p.numel() for p in model.parameters()) == _param_count_from_model_md(base)


def test_batchnorm_uses_keras_epsilon() -> None:
    norms = [m for m in ResUNet(base=2).modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(norms) == 18
    assert all(m.eps == BN_EPSILON == 1e-4 for m in norms)
    # With a running variance of the order of epsilon, 1e-4 and 1e-5 give visibly different
    # outputs; check the module really normalises with 1e-4.
    bn = norms[0].eval()
    bn.running_var.fill_(1e-4)
    x = torch.ones(1, bn.num_features, 1, 1)
    expected = (x - bn.running_mean.view(1, -1, 1, 1)) / math.sqrt(2e-4)
    with torch.no_grad():
        torch.testing.assert_close(bn(x), expected * bn.weight.view(1, -1, 1, 1))


def _bilinear_half_pixel_x2(image: np.ndarray) -> np.ndarray:
    """TensorFlow's bilinear resize (half-pixel centres), written out for one 2-D image."""
    h, w = image.shape

    def axis(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        src = np.clip((np.arange(2 * n) + 0.5) / 2 - 0.5, 0, n - 1)
        lo = np.floor(src).astype(int)
        hi = np.minimum(lo + 1, n - 1)
        return lo, hi, src - lo

    r0, r1, fr = axis(h)
    c0, c1, fc = axis(w)
    top = image[r0][:, c0] * (1 - fc) + image[r0][:, c1] * fc
    bottom = image[r1][:, c0] * (1 - fc) + image[r1][:, c1] * fc
    return top * (1 - fr[:, None]) + bottom * fr[:, None]


def test_upsampling_is_half_pixel_bilinear_and_2x2_same_pads_bottom_right() -> None:
    torch.manual_seed(0)
    up = UpConv(1, 1)
    with torch.no_grad():
        up.conv.bias.fill_(-0.1)  # so the ReLU clips some pixels
    x = torch.rand(1, 1, 4, 5)
    with torch.no_grad():
        got = up(x)[0, 0].numpy()
    upsampled = _bilinear_half_pixel_x2(x[0, 0].numpy())
    # TensorFlow 'same' for a 2x2 kernel: zero row below and zero column right, none before.
    padded = np.pad(upsampled, ((0, 1), (0, 1)))
    k = up.conv.weight.detach()[0, 0].numpy()
    bias = float(up.conv.bias.detach())
    conv = sum(k[i, j] * padded[i : i + 8, j : j + 10] for i in range(2) for j in range(2))
    expected = np.maximum(conv + bias, 0.0)
    np.testing.assert_allclose(got, expected, atol=1e-6)
    # Padding on the other side gives a different answer, so the check above can fail.
    other = np.pad(upsampled, ((1, 0), (1, 0)))
    conv_other = sum(k[i, j] * other[i : i + 8, j : j + 10] for i in range(2) for j in range(2))
    assert not np.allclose(np.maximum(conv_other + bias, 0.0), got, atol=1e-4)


def test_residual_blocks_in_keras_order() -> None:
    model = ResUNet(base=2)
    blocks = list(model.residual_blocks())
    assert blocks[:4] == list(model.encoders)
    assert blocks[4] is model.bottleneck
    assert blocks[5:] == list(model.decoders)


def test_he_normal_initialisation() -> None:
    torch.manual_seed(1)
    conv = ResUNet(base=8).bottleneck.conv2  # 3x3x128x128: plenty of samples
    fan_in = 3 * 3 * 128
    std = float(conv.weight.detach().std())
    assert abs(std - math.sqrt(2 / fan_in)) < 0.02 * math.sqrt(2 / fan_in)
    # Keras truncates at two standard deviations of the untruncated normal.
    bound = 2 * math.sqrt(2 / fan_in) / 0.87962566103423978
    assert float(conv.weight.detach().abs().max()) <= bound
    assert float(conv.bias.detach().abs().max()) == 0.0
