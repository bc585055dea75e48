"""A Keras 3 (torch backend) build of the published ResUNet and writers of its weight files.

The builder follows MODEL.md layer by layer with explicit names, so the legacy file written
from it carries the published Keras names. Importing this module sets KERAS_BACKEND=torch.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

os.environ["KERAS_BACKEND"] = "torch"

import h5py
import keras
import numpy as np
from keras import layers

assert keras.backend.backend() == "torch", "keras was imported before KERAS_BACKEND was set"

UPSAMPLING = (
    (256, "upsampling_256-128"),
    (128, "upsampling_128-64"),
    (64, "upsampling_64-32"),
    (32, "upsampling_32-16"),
)


def _name(base: str, index: int) -> str:
    return base if index == 0 else f"{base}_{index}"


def _residual_block(x: keras.KerasTensor, filters: int, b: int) -> keras.KerasTensor:
    y = layers.Conv2D(filters, 3, padding="same", name=_name("conv2d", 3 * b + 1))(x)
    y = layers.BatchNormalization(
        momentum=0.9, epsilon=1e-4, name=_name("batch_normalization", 2 * b)
    )(y)
    y = layers.Activation("relu")(y)
    y = layers.Conv2D(filters, 3, padding="same", name=_name("conv2d", 3 * b + 2))(y)
    s = layers.Conv2D(filters, 1, padding="same", name=_name("conv2d", 3 * b))(x)
    y = layers.BatchNormalization(
        momentum=0.9, epsilon=1e-4, name=_name("batch_normalization", 2 * b + 1)
    )(y)
    return layers.Activation("relu")(layers.Add()([s, y]))


def build_keras_resunet(base: int = 32, in_channels: int = 2) -> keras.Model:
    """The published graph (MODEL.md), NHWC, any H and W that are multiples of 16."""
    inputs = keras.Input((None, None, in_channels))
    skips = []
    x = inputs
    for b in range(4):
        x = _residual_block(x, base * 2**b, b)
        skips.append(x)
        x = layers.MaxPooling2D(2)(x)
    x = _residual_block(x, base * 16, 4)
    for level, (_width, name) in enumerate(UPSAMPLING):
        filters = base * 2 ** (3 - level)
        x = layers.UpSampling2D(2, interpolation="bilinear")(x)
        x = layers.Conv2D(filters, 2, padding="same", activation="relu", name=name)(x)
        x = layers.Concatenate()([skips[3 - level], x])
        x = _residual_block(x, filters, 5 + level)
    mean = layers.Conv2D(1, 1, activation="sigmoid", name="mean")(x)
    log_variance = layers.Conv2D(1, 1, activation="sigmoid", name="log_variance")(x)
    return keras.Model(inputs, layers.Concatenate()([mean, log_variance]))


def randomise(model: keras.Model, seed: int = 0) -> None:
    """Give biases and every BatchNorm statistic random values, so each of them matters."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, layers.BatchNormalization):
            n = layer.gamma.shape[0]
            layer.set_weights(
                [
                    rng.uniform(0.6, 1.4, n),
                    rng.normal(0.0, 0.2, n),
                    rng.normal(0.0, 0.3, n),
                    rng.uniform(0.5, 2.0, n),
                ]
            )
        elif isinstance(layer, layers.Conv2D):
            kernel, bias = layer.get_weights()
            layer.set_weights([kernel, rng.normal(0.0, 0.05, bias.shape)])


def keras_weights(model: keras.Model) -> list[tuple[str, list[tuple[str, np.ndarray]]]]:
    """(layer name, [(variable name, array)]) for every layer, in model order."""
    return [
        (layer.name, [(v.name, np.asarray(v.numpy())) for v in layer.weights])
        for layer in model.layers
    ]


def write_legacy_h5(
    model: keras.Model,
    path: Path,
    *,
    attrs: Literal["bytes", "str"] = "bytes",
    full_model: bool = False,
) -> Path:
    """Write the legacy Keras 2 layout (layer_names, weight_names, nested datasets)."""

    def encode(values: list[str]) -> object:
        if attrs == "bytes":
            return np.array([v.encode() for v in values], dtype="S")
        return values  # h5py stores a list of str as variable-length UTF-8 strings

    entries = keras_weights(model)
    with h5py.File(path, "w") as handle:
        root = handle.create_group("model_weights") if full_model else handle
        root.attrs["layer_names"] = encode([name for name, _ in entries])
        root.attrs["backend"] = "tensorflow" if attrs == "str" else b"tensorflow"
        root.attrs["keras_version"] = "2.15.0" if attrs == "str" else b"2.15.0"
        for layer_name, variables in entries:
            group = root.create_group(layer_name)
            names = [f"{layer_name}/{var_name}:0" for var_name, _ in variables]
            group.attrs["weight_names"] = encode(names)
            for weight_name, (_, array) in zip(names, variables, strict=True):
                group.create_dataset(weight_name, data=array.astype(np.float32))
        if full_model:
            handle.attrs["model_config"] = "{}"
    return path


def edit_keras3_names(path: Path, rename: dict[str, str] | None = None) -> None:
    """Drop (rename None) or rewrite the ``name`` attributes of a Keras 3 weight file."""
    with h5py.File(path, "r+") as handle:

        def visit(_name: str, obj: object) -> None:
            if isinstance(obj, h5py.Group) and "name" in obj.attrs:
                old = obj.attrs["name"]
                old = old.decode() if isinstance(old, bytes) else str(old)
                if rename is None:
                    del obj.attrs["name"]
                else:
                    obj.attrs["name"] = rename.get(old, old)

        handle.visititems(visit)
