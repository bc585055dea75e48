"""Training checkpoints without pickle: safetensors for tensors, JSON for everything else.

A checkpoint is ``NAME.safetensors`` (model state incl. BatchNorm buffers, AdamW moments,
the torch RNG state) plus ``NAME.json`` (step, hyper-parameters, optimizer param groups,
the numpy sampler state, history). Both are written aside and renamed, JSON last, so the
JSON's presence means the pair is complete.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from stac_coh.errors import InputError

__all__ = ["Checkpoint", "load_checkpoint", "save_checkpoint"]


@dataclass(frozen=True)
class Checkpoint:
    """What :func:`load_checkpoint` returns."""

    model_state: dict[str, torch.Tensor]
    """``model.state_dict()``."""
    optimizer_state: dict[str, Any]
    """``optimizer.state_dict()``, rebuilt."""
    torch_rng: torch.Tensor
    """``torch.get_rng_state()``."""
    meta: dict[str, Any]
    """The JSON part: step, config, sampler state, history."""


def save_checkpoint(
    path_stem: Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    meta: dict[str, Any],
) -> Path:
    """Write ``path_stem.safetensors`` and ``path_stem.json``; return the JSON path."""
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    opt = optimizer.state_dict()
    for index, state in opt["state"].items():
        for key, value in state.items():
            tensors[f"optim.{index}.{key}"] = torch.as_tensor(value).detach().cpu().contiguous()
    tensors["rng.torch"] = torch.get_rng_state()
    body = dict(meta, param_groups=opt["param_groups"])
    path_stem.parent.mkdir(parents=True, exist_ok=True)
    tensor_path = path_stem.with_suffix(".safetensors")
    json_path = path_stem.with_suffix(".json")
    partial = tensor_path.with_name(f".{tensor_path.name}.partial")
    save_file(tensors, partial)
    partial.replace(tensor_path)
    partial_json = json_path.with_name(f".{json_path.name}.partial")
    partial_json.write_text(json.dumps(body, indent=1))
    partial_json.replace(json_path)
    return json_path


def load_checkpoint(path_stem: Path) -> Checkpoint:
    """Read a checkpoint written by :func:`save_checkpoint`."""
    json_path = path_stem.with_suffix(".json")
    tensor_path = path_stem.with_suffix(".safetensors")
    try:
        meta = json.loads(json_path.read_text())
        tensors = load_file(tensor_path)
    except (OSError, ValueError, SafetensorError) as exc:
        raise InputError(
            f"Checkpoint {path_stem} is unreadable ({exc}); delete it or start without --resume."
        ) from None
    model_state = {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, index, name = key.split(".", 2)
            state.setdefault(int(index), {})[name] = value
    optimizer_state = {"state": state, "param_groups": meta.pop("param_groups")}
    return Checkpoint(model_state, optimizer_state, tensors["rng.torch"], meta)
