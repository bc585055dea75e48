"""Train or fine-tune the ResUNet on input/label rasters with the heteroscedastic loss.

The network's two heads are a mean ``mu`` and a sigmoid ``h`` that the model card's
:class:`~stac_coh.model.card.UncertaintyHead` maps to a log-variance ``s``. Together they
define a Gaussian likelihood per pixel, whose negative log is
``0.5 * (exp(-s) * (y - mu)^2 + s)``. With ``beta > 0`` each pixel's term is weighted by
the detached predicted variance ``exp(s)^beta`` (beta-NLL, Seitzer et al. 2022), which keeps
hard pixels from being ignored by the mean; ``beta = 0`` is the plain NLL.

Training draws random patches (dihedral flips, t1/t2 swap: coherence is symmetric in
time), uses AdamW with warm-up and cosine decay, validates on whole held-out scenes'
patches, checkpoints (:mod:`stac_coh.science.checkpoint`) and resumes bit-for-bit on the same
machine and thread count.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import numpy.typing as npt
import torch

from stac_coh.errors import InputError
from stac_coh.model.card import ModelCard, Provenance, UncertaintyHead
from stac_coh.model.preprocess import Preprocessing, preset, to_model_input, valid_mask
from stac_coh.model.resunet import DEPTH_MULTIPLE, ResUNet
from stac_coh.model.uncertainty import head_to_log_variance
from stac_coh.science.calibrate import training_domain
from stac_coh.science.checkpoint import load_checkpoint, save_checkpoint
from stac_coh.science.datasets import DatasetEntry, read_dataset, split_entries
from stac_coh.science.sampler import Augmentation, PatchSampler
from stac_coh.science.settings import select_settings

__all__ = [
    "PatchSampler",
    "TrainConfig",
    "TrainResult",
    "gaussian_nll",
    "predict_image",
    "train",
    "training_entries",
]


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run depends on (stored in every checkpoint)."""

    data: str
    """Dataset: folder with index.json, an index.json, or a CSV (see stac_coh.science.datasets)."""
    out: str
    """Run folder: checkpoints/, history.jsonl, model.safetensors."""
    label: str = "coherence"
    """Label kind to learn (``coherence`` = true coherence of simulated data, ``boxcar``)."""
    base: int = 32
    """ResUNet width; 32 is the published architecture, 8 is for tests."""
    patch: int = 64
    """Patch edge in pixels (multiple of 16)."""
    batch: int = 8
    """Patches per step."""
    steps: int = 2000
    """Optimizer steps in total (a resumed run continues up to this)."""
    lr: float = 1e-3
    """Peak AdamW learning rate."""
    weight_decay: float = 1e-4
    """AdamW weight decay."""
    warmup: int = 100
    """Linear warm-up steps."""
    beta: float = 0.5
    """beta-NLL exponent; 0 gives the plain Gaussian NLL."""
    val_fraction: float = 0.1
    """Share of scenes held out when the dataset does not fix splits."""
    val_patches: int = 32
    """Fixed validation patches."""
    val_every: int = 200
    """Validate every this many steps."""
    checkpoint_every: int = 100
    """Checkpoint every this many steps."""
    seed: int = 0
    """Seeds initialisation, split and patch sampling."""
    init: str | None = None
    """Weights to fine-tune from (safetensors, Keras .h5, hf://); None = He init."""
    device: str = "cpu"
    """Torch device."""
    input_mode: str = "published"
    """Input preprocessing: ``published`` (MODEL.md) or ``wide-masked`` (see preprocess)."""
    augment_gain_db: float = 0.0
    """Common gain augmentation per patch, +-dB."""
    augment_relative_db: float = 0.0
    """Relative gain augmentation of one date per patch, +-dB."""
    augment_ramp_db: float = 0.0
    """Ramp across a patch, +-dB."""
    augment_nodata: float = 0.0
    """Probability of a one-date nodata edge per patch."""
    exclude: str = ""
    """Held-out settings (comma-separated names of stac_coh.science.settings) left out."""
    only: str = ""
    """Held-out settings whose scenes alone are trained on (empty: every scene)."""

    @property
    def preprocessing(self) -> Preprocessing:
        """The input preprocessing this run trains for."""
        return preset(self.input_mode)

    @property
    def augmentation(self) -> Augmentation:
        """The calibration and nodata augmentation of this run."""
        return Augmentation(
            self.augment_gain_db,
            self.augment_relative_db,
            self.augment_ramp_db,
            self.augment_nodata,
        )

    @property
    def excluded(self) -> list[str]:
        """Names of the held-out settings."""
        return _names(self.exclude)

    @property
    def kept_only(self) -> list[str]:
        """Names of the settings trained on alone."""
        return _names(self.only)


def _names(text: str) -> list[str]:
    return [n.strip() for n in text.split(",") if n.strip()]


def training_entries(config: TrainConfig) -> list[DatasetEntry]:
    """The scenes a run trains and validates on: the dataset less ``exclude``, of ``only``."""
    return select_settings(read_dataset(config.data), config.excluded, config.kept_only)


@dataclass(frozen=True)
class TrainResult:
    """Summary of a finished run."""

    step: int
    """Last step done."""
    best_val_rmse: float
    """Best validation RMSE of the mean (NaN without validation)."""
    weights: Path
    """Exported weights (best validation state, or the last without validation)."""
    history: list[dict[str, float]]
    """Validation records."""


def gaussian_nll(
    output: torch.Tensor,
    target: torch.Tensor,
    mapping: UncertaintyHead,
    beta: float = 0.0,
) -> torch.Tensor:
    """Mean heteroscedastic Gaussian NLL over pixels whose target is finite.

    ``output`` is the network's (N, 2, H, W); ``target`` (N, 1, H, W) with NaN = ignore.
    """
    mask = torch.isfinite(target)
    if not mask.any():
        return output.sum() * 0.0
    mu = output[:, :1][mask]
    s = head_to_log_variance(output[:, 1:2], mapping)[mask]
    y = target[mask]
    nll = 0.5 * (torch.exp(-s) * (y - mu) ** 2 + s)
    if beta:
        nll = nll * torch.exp(s.detach() * beta)
    return nll.mean()


def _lr_factor(step: int, config: TrainConfig) -> float:
    """Linear warm-up then cosine decay to 5 % of the peak."""
    if step < config.warmup:
        return (step + 1) / config.warmup
    progress = (step - config.warmup) / max(1, config.steps - config.warmup)
    return 0.05 + 0.95 * 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))


def _build_model(config: TrainConfig) -> ResUNet:
    """He-initialised ResUNet, or the ``--init`` weights to fine-tune."""
    torch.manual_seed(config.seed)
    channels = config.preprocessing.channels
    if config.init is None:
        return ResUNet(base=config.base, in_channels=channels)
    from stac_coh.model.weights import load_weights

    model, _card = load_weights(config.init)
    return widen_input(model, channels)


def widen_input(model: ResUNet, channels: int) -> ResUNet:
    """The same network with extra input channels that start with zero weight.

    Fine-tuning 2-channel weights for an input with a ``valid`` channel: the new channel
    contributes nothing at first, so the network starts exactly where it was.
    """
    if channels == model.in_channels:
        return model
    if channels < model.in_channels:
        raise InputError(
            f"The --init weights take {model.in_channels} input channels; --input-mode "
            f"needs {channels}. Pick the preprocessing the weights were trained with."
        )
    wide = ResUNet(base=model.base, in_channels=channels)
    state = model.state_dict()
    with torch.no_grad():
        for name in ("encoders.0.conv1.weight", "encoders.0.shortcut.weight"):
            old = state[name]
            new = torch.zeros((old.shape[0], channels, *old.shape[2:]), dtype=old.dtype)
            new[:, : model.in_channels] = old
            state[name] = new
    wide.load_state_dict(state)
    return wide


def _validate(
    model: ResUNet,
    val: tuple[torch.Tensor, torch.Tensor] | None,
    mapping: UncertaintyHead,
    device: torch.device,
) -> dict[str, float]:
    """Validation NLL and RMSE of the mean on the fixed patches (eval-mode BatchNorm)."""
    if val is None:
        return {}
    model.eval()
    nll, sq, n = 0.0, 0.0, 0
    with torch.no_grad():
        for xb, yb in zip(val[0].split(8), val[1].split(8), strict=True):
            out = model(xb.to(device))
            yb = yb.to(device)
            mask = torch.isfinite(yb)
            nll += float(gaussian_nll(out, yb, mapping)) * int(mask.sum())
            sq += float(((out[:, :1] - yb)[mask] ** 2).sum())
            n += int(mask.sum())
    model.train()
    return {"val_nll": nll / max(n, 1), "val_rmse": math.sqrt(sq / max(n, 1))}


def train(
    config: TrainConfig,
    *,
    resume: bool = False,
    on_step: Callable[[int, float], None] | None = None,
    on_validate: Callable[[dict[str, float]], None] | None = None,
    command: str = "",
) -> TrainResult:
    """Run (or resume) training and export the best weights with a model card."""
    out = Path(config.out)
    ckpt_dir = out / "checkpoints"
    entries = training_entries(config)
    train_entries, val_entries = split_entries(entries, config.val_fraction, config.seed)
    prep, aug = config.preprocessing, config.augmentation
    sampler = PatchSampler(train_entries, config.label, config.patch, prep, aug)
    val = None
    if val_entries and config.val_patches > 0:
        val_sampler = PatchSampler(val_entries, config.label, config.patch, prep, aug)
        val = val_sampler.draw(np.random.default_rng([config.seed, 11]), config.val_patches)
    device = torch.device(config.device)
    model = _build_model(config).to(device).train()
    config = replace(config, base=model.base)  # --init fixes the width
    mapping = UncertaintyHead(calibrated=True)
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=config.lr, weight_decay=config.weight_decay
    )
    rng = np.random.default_rng(config.seed)
    step, history, best = 0, [], math.inf
    if resume and (ckpt_dir / "last.json").exists():
        ckpt = load_checkpoint(ckpt_dir / "last")
        model.load_state_dict(ckpt.model_state)
        optimizer.load_state_dict(ckpt.optimizer_state)
        torch.set_rng_state(ckpt.torch_rng)
        rng.bit_generator.state = ckpt.meta["sampler_state"]
        step, history = int(ckpt.meta["step"]), list(ckpt.meta["history"])
        best = float(ckpt.meta["best_val_rmse"])
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(asdict(config), indent=1))
    while step < config.steps:
        for group in optimizer.param_groups:
            group["lr"] = config.lr * _lr_factor(step, config)
        x, y = sampler.draw(rng, config.batch)
        loss = gaussian_nll(model(x.to(device)), y.to(device), mapping, config.beta)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        step += 1
        if on_step is not None:
            on_step(step, float(loss.detach()))
        if val is not None and (step % config.val_every == 0 or step == config.steps):
            record = {
                "step": step,
                "loss": float(loss.detach()),
                **_validate(model, val, mapping, device),
            }
            history.append(record)
            with (out / "history.jsonl").open("a") as fh:
                fh.write(json.dumps(record) + "\n")
            if record["val_rmse"] < best:
                best = record["val_rmse"]
                save_checkpoint(ckpt_dir / "best", model, optimizer, {"step": step})
            if on_validate is not None:
                on_validate(record)
        if step % config.checkpoint_every == 0 or step == config.steps:
            meta = {
                "step": step,
                "config": asdict(config),
                "sampler_state": rng.bit_generator.state,
                "history": history,
                "best_val_rmse": best,
            }
            save_checkpoint(ckpt_dir / "last", model, optimizer, meta)
    weights = export_run(out, config, command=command)
    return TrainResult(step, best if history else math.nan, weights, history)


def export_run(
    out: Path,
    config: TrainConfig,
    *,
    command: str = "",
    dtype: torch.dtype = torch.float32,
    path: Path | None = None,
    card: ModelCard | None = None,
) -> Path:
    """Save the run's best (else last) state as weights with a model card."""
    from stac_coh.model.weights import save_weights

    ckpt_dir = out / "checkpoints"
    stem = ckpt_dir / ("best" if (ckpt_dir / "best.json").exists() else "last")
    model = ResUNet(base=config.base, in_channels=config.preprocessing.channels)
    model.load_state_dict(load_checkpoint(stem).model_state)
    card = card or default_card(config, command)
    return save_weights(model.eval(), card, path or out / "model.safetensors", dtype=dtype)


def default_card(config: TrainConfig, command: str) -> ModelCard:
    """The card of weights trained by ``stac-coh train``."""
    trained_on = f"{config.data} (label: {config.label})"
    if config.init:
        trained_on += f", fine-tuned from {config.init}"
    if config.excluded:
        trained_on += f", without held-out settings {config.exclude}"
    if config.kept_only:
        trained_on += f", only the scenes of settings {config.only}"
    entries = training_entries(config)
    domain = training_domain(
        entries,
        gain_db=config.augment_gain_db,
        relative_db=config.augment_relative_db,
        description=f"input-domain guard estimates over the scenes of {config.data}",
    )
    return ModelCard(
        name=f"stac-coh-trained-{Path(config.out).name}",
        preprocessing=config.preprocessing,
        uncertainty=UncertaintyHead(calibrated=True),
        training_domain=domain,
        provenance=Provenance(
            source="stac-coh train",
            trained_on=trained_on,
            command=command or f"stac-coh train (config: {json.dumps(asdict(config))})",
        ),
    )


def predict_image(
    model: ResUNet,
    t1: npt.ArrayLike,
    t2: npt.ArrayLike,
    preprocessing: Preprocessing | None = None,
) -> npt.NDArray[np.float32]:
    """Whole-image forward pass (reflect-padded to a multiple of 16): (2, H, W), NaN = nodata.

    For small images (tests, validation, benchmarks); scenes go through ``stac_coh.infer.engine``.
    """
    a, b = np.asarray(t1, np.float32), np.asarray(t2, np.float32)
    card = getattr(model, "model_card", None)
    if preprocessing is None and card is not None:
        preprocessing = card.preprocessing
    x = to_model_input(a, b, preprocessing)
    rows, cols = x.shape[1:]
    pad_r, pad_c = (-rows) % DEPTH_MULTIPLE, (-cols) % DEPTH_MULTIPLE
    x = np.pad(x, ((0, 0), (0, pad_r), (0, pad_c)), mode="reflect")
    device = next(model.parameters()).device
    with torch.no_grad():
        out = model.eval()(torch.from_numpy(x)[None].to(device))[0, :, :rows, :cols]
    result = out.cpu().numpy().astype(np.float32)
    result[:, ~valid_mask(a, b)] = np.nan
    return result
