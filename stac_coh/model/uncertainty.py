"""The second head: from the network's sigmoid output to a predicted standard deviation."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import torch

from stac_coh.model.card import UncertaintyHead

__all__ = ["head_to_log_variance", "head_to_sigma"]


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
