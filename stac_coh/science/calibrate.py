"""Recalibrate the uncertainty on a held-out setting, and measure how honest it is.

The network's second head learns the noise of the training domain; on data unlike it the
errors grow and the head does not notice. :func:`fit_uncertainty` therefore fits the card's
``head_scale``, ``spread_scale`` and ``floor`` (see :mod:`stac_coh.model.uncertainty`) on
scenes of a setting no training saw (the ``terrain`` landscape generator with every speckle
model and calibration gains): first by Gaussian likelihood, then one common factor so that
68.3 % of the calibration errors fall within one sigma.

:func:`training_domain` measures what a training set covers with the input-domain guard's
own estimator, so the guard compares like with like.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt
import torch

from stac_coh.model.card import ModelCard, TrainingDomain, UncertaintyHead
from stac_coh.model.domain import estimate_domain
from stac_coh.model.preprocess import to_model_input, valid_mask
from stac_coh.model.resunet import DEPTH_MULTIPLE, ResUNet
from stac_coh.model.uncertainty import view_components
from stac_coh.science.datasets import DatasetEntry, load_pair

__all__ = [
    "Components",
    "collect_components",
    "coverage",
    "fit_uncertainty",
    "spearman",
    "training_domain",
]

F64 = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Components:
    """Per-pixel samples: truth, mean of the views, head variance, views' spread variance."""

    truth: F64
    mean: F64
    head_var: F64
    spread_var: F64

    def sigma(self, mapping: UncertaintyHead) -> F64:
        """Combined sigma under a card's recalibration."""
        var = (
            mapping.head_scale**2 * self.head_var
            + mapping.spread_scale**2 * self.spread_var
            + mapping.floor**2
        )
        return np.sqrt(var)


def scene_components(
    model: ResUNet, card: ModelCard, t1: npt.ArrayLike, t2: npt.ArrayLike, views: int
) -> tuple[F64, F64, F64]:
    """Whole-scene mean, head variance and spread variance (H, W); NaN where nodata."""
    a, b = np.asarray(t1, np.float32), np.asarray(t2, np.float32)
    x = to_model_input(a, b, card.preprocessing)
    rows, cols = x.shape[1:]
    pad = ((0, 0), (0, (-rows) % DEPTH_MULTIPLE), (0, (-cols) % DEPTH_MULTIPLE))
    x = np.pad(x, pad, mode="reflect")
    with torch.no_grad():
        means, variances = view_components(
            model.eval(), torch.from_numpy(x)[None], card.uncertainty, views
        )
    mu = means[:, 0, 0, :rows, :cols].double().numpy()
    head = variances[:, 0, 0, :rows, :cols].double().numpy().mean(axis=0)
    spread = mu.var(axis=0) if views > 1 else np.zeros_like(head)
    out = [mu.mean(axis=0), head, spread]
    bad = ~valid_mask(a, b)
    for array in out:
        array[bad] = np.nan
    return out[0], out[1], out[2]


def collect_components(
    model: ResUNet,
    card: ModelCard,
    entries: list[DatasetEntry],
    *,
    views: int = 2,
    per_scene: int = 20_000,
    seed: int = 0,
    on_scene: Callable[[DatasetEntry, F64, F64], None] | None = None,
) -> Components:
    """Sample ``per_scene`` valid pixels of every scene (true coherence label).

    ``on_scene(entry, mean, truth)`` sees each whole scene, so a caller that also wants
    whole-scene figures needs no second forward pass.
    """
    rng = np.random.default_rng(seed)
    parts: list[list[F64]] = [[], [], [], []]
    for entry in entries:
        t1, t2, y = load_pair(entry, "coherence")
        assert y is not None
        mean, head, spread = scene_components(model, card, t1, t2, views)
        if on_scene is not None:
            on_scene(entry, mean, np.asarray(y, np.float64))
        good = np.flatnonzero(np.isfinite(mean.ravel()) & np.isfinite(y.ravel()))
        pick = rng.choice(good, size=min(per_scene, good.size), replace=False)
        for part, array in zip(parts, (y, mean, head, spread), strict=True):
            part.append(np.asarray(array, np.float64).ravel()[pick])
    return Components(*(np.concatenate(p) for p in parts))


def fit_uncertainty(comp: Components, mapping: UncertaintyHead, views: int) -> UncertaintyHead:
    """Scales that make ``comp``'s errors Gaussian-likely, then 68.3 % within one sigma."""
    err2 = torch.from_numpy((comp.mean - comp.truth) ** 2)
    head = torch.from_numpy(comp.head_var)
    spread = torch.from_numpy(comp.spread_var)
    raw = torch.tensor([0.5, -1.0 if views > 1 else -20.0, -4.0], dtype=torch.float64)
    raw.requires_grad_(True)
    optimizer = torch.optim.Adam([raw], lr=0.05)
    for _ in range(400):
        a, b, c = torch.exp(raw)
        var = a**2 * head + (b**2 * spread if views > 1 else 0.0) + c**2
        loss = 0.5 * (torch.log(var) + err2 / var).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    a, b, c = (float(v) for v in torch.exp(raw.detach()))
    fitted = replace(
        mapping, views=views, head_scale=a, spread_scale=b if views > 1 else 0.0, floor=c
    )
    ratio = np.abs(comp.mean - comp.truth) / comp.sigma(fitted)
    k = float(np.quantile(ratio, 0.6827))
    return replace(
        fitted,
        head_scale=round(a * k, 4),
        spread_scale=round(fitted.spread_scale * k, 4),
        floor=round(c * k, 4),
    )


def coverage(sigma: npt.ArrayLike, error: npt.ArrayLike) -> float:
    """Share of finite pixels whose absolute error is within one sigma."""
    s, e = np.asarray(sigma, np.float64).ravel(), np.asarray(error, np.float64).ravel()
    good = np.isfinite(s) & np.isfinite(e)
    return float((np.abs(e[good]) <= s[good]).mean()) if good.any() else math.nan


def spearman(a: npt.ArrayLike, b: npt.ArrayLike) -> float:
    """Spearman rank correlation of two arrays over finite pairs (ties broken by order)."""
    x, y = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    good = np.isfinite(x) & np.isfinite(y)
    if good.sum() < 3:
        return math.nan
    rx = np.argsort(np.argsort(x[good])).astype(np.float64)
    ry = np.argsort(np.argsort(y[good])).astype(np.float64)
    return float(np.corrcoef(rx, ry)[0, 1])


def training_domain(
    entries: list[DatasetEntry], *, gain_db: float, relative_db: float, description: str
) -> TrainingDomain:
    """The guard's estimates over training scenes, widened by the gain augmentation."""
    looks, levels, relative = [], [], []
    for entry in entries:
        t1, t2, _ = load_pair(entry, None)
        estimate = estimate_domain(t1, t2)
        if math.isfinite(estimate.looks):
            looks.append(estimate.looks)
        levels.append(estimate.level_db)
        relative.append(estimate.relative_gain_db)
    rel = max(abs(min(relative)), abs(max(relative))) + relative_db
    if not looks:  # scenes too small to measure: no claim on looks
        looks = [0.0, 1000.0]
    return TrainingDomain(
        looks=(
            round(float(np.quantile(looks, 0.02)), 2),
            round(float(np.quantile(looks, 0.98)), 2),
        ),
        level_db=(round(min(levels) - gain_db, 1), round(max(levels) + gain_db, 1)),
        relative_gain_db=(round(-rel, 2), round(rel, 2)),
        description=description,
    )
