"""Training patches: scenes in memory, random augmented patches drawn per step.

Scenes are kept as linear power, so every patch can be augmented before preprocessing:
dihedral flips, date swap (coherence is symmetric in time), and, when asked, the
calibration effects a real pair carries but a coherence map must ignore: a gain common to
both dates (+-``gain_db``), a relative gain of one date (+-``relative_db``), an
incidence-like ramp across the patch (+-``ramp_db``), and nodata edges cut into one date
only (``nodata``: probability per patch). The label is NaN wherever either date is
nodata, as the output would be.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import torch

from stac_coh.errors import InputError
from stac_coh.model.preprocess import Preprocessing, to_model_input, valid_mask
from stac_coh.model.resunet import DEPTH_MULTIPLE
from stac_coh.science.datasets import DatasetEntry, load_pair

__all__ = ["Augmentation", "PatchSampler"]

F32 = npt.NDArray[np.float32]


@dataclass(frozen=True)
class Augmentation:
    """Calibration and nodata augmentation (all off by default)."""

    gain_db: float = 0.0
    """Common gain drawn uniformly in +-this (dB)."""
    relative_db: float = 0.0
    """Gain of one date drawn in +-this (dB)."""
    ramp_db: float = 0.0
    """Linear dB ramp across the patch, common to both dates, in +-this."""
    nodata: float = 0.0
    """Probability that a patch gets a nodata edge in one date."""

    @property
    def active(self) -> bool:
        """True when any calibration or nodata augmentation is on."""
        return bool(self.gain_db or self.relative_db or self.ramp_db or self.nodata)


class PatchSampler:
    """Scenes in memory as linear power + label; draws random, augmented patches."""

    def __init__(
        self,
        entries: list[DatasetEntry],
        label: str,
        patch: int,
        preprocessing: Preprocessing | None = None,
        augmentation: Augmentation | None = None,
    ) -> None:
        if patch % DEPTH_MULTIPLE:
            raise InputError(f"--patch must be a multiple of {DEPTH_MULTIPLE}, got {patch}.")
        self.patch = patch
        self.preprocessing = preprocessing or Preprocessing()
        self.augmentation = augmentation or Augmentation()
        self.images: list[F32] = []
        self.labels: list[F32] = []
        for entry in entries:
            t1, t2, y = load_pair(entry, label)
            assert y is not None
            if min(t1.shape) < patch:
                raise InputError(f"Scene {entry.id} ({t1.shape}) is smaller than --patch.")
            y = np.where(valid_mask(t1, t2) & np.isfinite(y), np.clip(y, 0, 1), np.nan)
            self.images.append(np.stack([t1, t2]).astype(np.float32))
            self.labels.append(y.astype(np.float32))
        self.weights = np.array([np.isfinite(y).sum() for y in self.labels], dtype=float)
        if not self.weights.sum():
            raise InputError("No valid label pixels in the training scenes.")
        self.weights /= self.weights.sum()

    def draw(
        self, rng: np.random.Generator, count: int, augment: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``count`` patches: inputs (N, C, P, P) and labels (N, 1, P, P) with NaN = ignore."""
        xs: list[F32] = []
        ys: list[F32] = []
        p = self.patch
        misses = 0
        while len(xs) < count:
            k = int(rng.choice(len(self.images), p=self.weights))
            rows, cols = self.labels[k].shape
            r, c = int(rng.integers(rows - p + 1)), int(rng.integers(cols - p + 1))
            y = self.labels[k][r : r + p, c : c + p]
            if np.isfinite(y).mean() < 0.5:
                misses += 1
                if misses > 10_000:
                    raise InputError(
                        f"No {p} x {p} patch has half its label valid in 10,000 tries; the "
                        "scenes are mostly nodata. Use a smaller --patch or larger scenes."
                    )
                continue
            pair = self.images[k][:, r : r + p, c : c + p]
            if augment:
                pair, y = _dihedral(pair, y, rng)
                if self.augmentation.active:
                    pair, y = _calibrate(pair, y, self.augmentation, rng)
            xs.append(to_model_input(pair[0], pair[1], self.preprocessing))
            ys.append(y[None])
        return torch.from_numpy(np.stack(xs)), torch.from_numpy(np.stack(ys))


def _dihedral(pair: F32, y: F32, rng: np.random.Generator) -> tuple[F32, F32]:
    """Random rotation by 90 degrees, flip and date swap."""
    turns, flip, swap = int(rng.integers(4)), bool(rng.integers(2)), bool(rng.integers(2))
    pair, y = np.rot90(pair, turns, axes=(1, 2)), np.rot90(y, turns)
    if flip:
        pair, y = pair[:, :, ::-1], y[:, ::-1]
    if swap:
        pair = pair[::-1]
    return np.ascontiguousarray(pair), np.ascontiguousarray(y)


def _calibrate(pair: F32, y: F32, aug: Augmentation, rng: np.random.Generator) -> tuple[F32, F32]:
    """Gains, ramp and one-date nodata edges (see the module docstring)."""
    size = pair.shape[-1]
    gain = rng.uniform(-aug.gain_db, aug.gain_db) if aug.gain_db else 0.0
    relative = rng.uniform(-aug.relative_db, aug.relative_db) if aug.relative_db else 0.0
    db = np.full((2, 1, 1), gain, dtype=np.float32)
    db[int(rng.integers(2))] += relative
    if aug.ramp_db:
        angle = rng.uniform(0.0, 2.0 * np.pi)
        yy, xx = np.mgrid[0:size, 0:size] / max(size - 1, 1) - 0.5
        ramp = rng.uniform(-aug.ramp_db, aug.ramp_db) * (np.cos(angle) * xx + np.sin(angle) * yy)
        db = db + ramp[None].astype(np.float32)
    pair = pair * np.power(np.float32(10.0), db / np.float32(10.0))
    if aug.nodata and rng.random() < aug.nodata:
        pair = pair.copy()
        date = int(rng.integers(2))
        angle = rng.uniform(0.0, 2.0 * np.pi)
        yy, xx = np.mgrid[0:size, 0:size] - (size - 1) / 2.0
        cut = (np.cos(angle) * xx + np.sin(angle) * yy) > rng.uniform(0.1, 0.5) * size
        pair[date][cut] = np.nan
        y = np.where(cut, np.nan, y).astype(np.float32)
    return pair.astype(np.float32), y
