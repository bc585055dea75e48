"""The second head: from the network's sigmoid output to a predicted standard deviation.

Weights whose card asks for more than one view (``UncertaintyHead.views``) run as a
:class:`ViewEnsemble`: the network sees the tile as it is and transformed (dates swapped
and turned 180 degrees, then flips), the means are averaged and the predicted variance is
``(head_scale * sigma_head)^2 + (spread_scale * spread)^2 + floor^2``, where ``spread`` is
the standard deviation of the views' means. Views disagree more on inputs unlike the
training data, so the uncertainty grows there; the three scales are recalibrated on a
held-out simulation setting (``stac_coh.science.calibrate``). Each view costs one forward
pass.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from stac_coh.model.card import UncertaintyHead

__all__ = [
    "VIEWS",
    "ViewEnsemble",
    "combine",
    "head_to_log_variance",
    "head_to_sigma",
    "needs_ensemble",
    "view_components",
]

VIEWS = ((False, False, False), (True, True, True), (False, False, True), (True, True, False))
"""(swap dates, flip rows, flip columns) of each view; view 1 is a 180-degree turn + swap."""


def head_to_log_variance(head: torch.Tensor, mapping: UncertaintyHead) -> torch.Tensor:
    """Map the sigmoid head output in [0, 1] to a log-variance (used by the training loss)."""
    span = mapping.log_variance_max - mapping.log_variance_min
    return mapping.log_variance_min + head * span


def head_to_sigma(
    head: npt.NDArray[np.floating], mapping: UncertaintyHead
) -> npt.NDArray[np.float32]:
    """Predicted standard deviation of coherence; the raw head when the mapping is unknown."""
    head = np.asarray(head, dtype=np.float32)
    if not mapping.calibrated:
        return head
    span = mapping.log_variance_max - mapping.log_variance_min
    return np.exp(0.5 * (mapping.log_variance_min + head * span)).astype(np.float32)


def needs_ensemble(mapping: UncertaintyHead) -> bool:
    """True when the card's uncertainty differs from the plain head (views or rescaling)."""
    plain = mapping.head_scale == 1.0 and not mapping.spread_scale and not mapping.floor
    return mapping.calibrated and (mapping.views > 1 or not plain)


def _transform(x: torch.Tensor, view: tuple[bool, bool, bool]) -> torch.Tensor:
    """Apply a view to (N, C, H, W) model input (swapping channels 0 and 1 = t1, t2)."""
    swap, rows, cols = view
    if swap:
        x = torch.cat([x[:, 1:2], x[:, 0:1], x[:, 2:]], dim=1)
    dims = [d for d, flip in ((2, rows), (3, cols)) if flip]
    return torch.flip(x, dims) if dims else x


def view_components(
    net: nn.Module, x: torch.Tensor, mapping: UncertaintyHead, views: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Means (V, N, 1, H, W) and head variances (V, N, 1, H, W) of the first ``views`` views."""
    means, variances = [], []
    for view in VIEWS[:views]:
        out = net(_transform(x, view))
        _swap, rows, cols = view
        dims = [d for d, flip in ((2, rows), (3, cols)) if flip]
        out = torch.flip(out, dims) if dims else out  # outputs carry no date channels
        means.append(out[:, :1])
        variances.append(torch.exp(head_to_log_variance(out[:, 1:2], mapping)))
    return torch.stack(means), torch.stack(variances)


def combine(
    means: torch.Tensor, variances: torch.Tensor, mapping: UncertaintyHead
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and total variance of the views (see the module docstring)."""
    mean = means.mean(dim=0)
    spread = means.var(dim=0, unbiased=False) if means.shape[0] > 1 else torch.zeros_like(mean)
    total = (
        mapping.head_scale**2 * variances.mean(dim=0)
        + mapping.spread_scale**2 * spread
        + mapping.floor**2
    )
    return mean, total


class ViewEnsemble(nn.Module):
    """A network run on several views of each tile; outputs like the network itself.

    Channel 1 is the head value whose card mapping gives the combined variance, so callers
    treat the ensemble exactly like the plain network.
    """

    def __init__(self, net: nn.Module, mapping: UncertaintyHead) -> None:
        super().__init__()
        self.net = net
        self.mapping = mapping

    @property
    def heads(self) -> nn.Module:
        """The wrapped network's output convolution(s) (inference hooks watch them)."""
        found = getattr(self.net, "heads", None) or getattr(self.net, "mean_head", None)
        assert isinstance(found, nn.Module)
        return found

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map model input (N, C, H, W) to (N, 2, H, W): mean, head of the combined variance."""
        m = self.mapping
        means, variances = view_components(self.net, x, m, max(1, m.views))
        mean, total = combine(means, variances, m)
        span = m.log_variance_max - m.log_variance_min
        head = (torch.log(total.clamp_min(1e-30)) - m.log_variance_min) / span
        return torch.cat([mean, head.clamp(0.0, 1.0)], dim=1)
