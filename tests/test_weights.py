"""Weight files: our safetensors format, Keras imports and refusals, hf:// offline, the CLI."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import h5py
import huggingface_hub.constants
import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from typer.testing import CliRunner

import stac_coh.model.weight_sources as weight_sources
from stac_coh.cli import app
from stac_coh.errors import WeightsError
from stac_coh.model.card import ModelCard, Provenance, Tiling
from stac_coh.model.resunet import ResUNet, model_card_of
from stac_coh.model.weights import (
    CARD_METADATA_KEY,
    card_path,
    describe_weights,
    import_keras,
    load_model,
    load_weights,
    model_tensors,
    save_weights,
    tensor_checksum,
)
from tests.keras_files import randomise_, write_legacy

BASE = 4  # a narrow ResUNet keeps these tests fast; the width is read from each file
COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture
def tiny() -> ResUNet:
    torch.manual_seed(0)
    return randomise_(ResUNet(base=BASE)).eval()


@pytest.fixture
def card() -> ModelCard:
    return ModelCard(
        name="unit-test",
        tiling=Tiling(stride=64),
        provenance=Provenance(source="tests", notes="made by test_weights"),
    )


def _same_tensors(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    ta, tb = model_tensors(a), model_tensors(b)
    return ta.keys() == tb.keys() and all(torch.equal(ta[k], tb[k]) for k in ta)


def _forward(model: torch.nn.Module, seed: int = 0) -> torch.Tensor:
    x = torch.rand(2, 2, 32, 32, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        return model(x)


# --- our format ------------------------------------------------------------------------


def test_round_trip_float32(tmp_path: Path, tiny: ResUNet, card: ModelCard) -> None:
    path = save_weights(tiny, card, tmp_path / "w.safetensors")
    model, loaded = load_weights(path)
    assert isinstance(model, ResUNet) and not model.training
    assert model.base == BASE
    assert _same_tensors(model, tiny)
    assert model.model_card == loaded
    assert loaded.name == "unit-test" and loaded.tiling.stride == 64
    assert loaded.provenance.notes == "made by test_weights"
    assert loaded.sha256 == tensor_checksum(model_tensors(tiny))
    # The card travels twice: in the metadata and in the sidecar.
    with safe_open(path, framework="pt") as handle:
        assert ModelCard.from_json(handle.metadata()[CARD_METADATA_KEY]) == loaded
    assert card_path(path) == tmp_path / "w.safetensors.card.json"
    assert ModelCard.from_json(card_path(path).read_text()) == loaded


def test_round_trip_float16(tmp_path: Path, tiny: ResUNet, card: ModelCard) -> None:
    full = save_weights(tiny, card, tmp_path / "full.safetensors")
    half = save_weights(tiny, card, tmp_path / "half.safetensors", dtype=torch.float16)
    assert half.stat().st_size < 0.6 * full.stat().st_size
    model, loaded = load_weights(half)
    assert all(t.dtype == torch.float32 for t in model_tensors(model).values())
    torch.testing.assert_close(_forward(model), _forward(tiny), atol=2e-2, rtol=0)
    # The checksum identifies the numbers: fp16 rounding gives another one.
    _, full_card = load_weights(full)
    assert loaded.sha256 != full_card.sha256
    rounded = {k: v.half() for k, v in model_tensors(tiny).items()}
    assert loaded.sha256 == tensor_checksum(rounded) == tensor_checksum(model_tensors(model))
    assert describe_weights(half).dtype == "float16"


def test_checksum_is_stable_and_sensitive(tmp_path: Path, tiny: ResUNet, card: ModelCard) -> None:
    first = load_weights(save_weights(tiny, card, tmp_path / "a.safetensors"))[1].sha256
    again = load_weights(save_weights(tiny, card, tmp_path / "b.safetensors"))[1].sha256
    assert first == again
    with torch.no_grad():
        tiny.bottleneck.bn2.running_var[0] += 1e-3
    assert tensor_checksum(model_tensors(tiny)) != first


def test_edited_tensors_fail_the_checksum(tmp_path: Path, tiny: ResUNet, card: ModelCard) -> None:
    path = save_weights(tiny, card, tmp_path / "w.safetensors")
    with safe_open(path, framework="pt") as handle:
        metadata = handle.metadata()
        tensors = {k: handle.get_tensor(k) for k in handle.keys()}  # noqa: SIM118
    tensors["mean_head.bias"] = tensors["mean_head.bias"] + 0.5
    save_file(tensors, path, metadata=metadata)
    with pytest.raises(WeightsError, match="checksum"):
        load_weights(path)


def test_safetensors_without_card_or_with_foreign_tensors(tmp_path: Path, tiny: ResUNet) -> None:
    bare = tmp_path / "bare.safetensors"
    save_file({k: v.contiguous() for k, v in model_tensors(tiny).items()}, bare)
    model, card = load_weights(bare)
    assert _same_tensors(model, tiny) and card.name == "bare"
    foreign = tmp_path / "foreign.safetensors"
    save_file({"linear.weight": torch.zeros(2, 2)}, foreign)
    with pytest.raises(WeightsError, match="not ResUNet weights"):
        load_weights(foreign)
    partial = tmp_path / "partial.safetensors"
    tensors = {k: v.contiguous() for k, v in model_tensors(tiny).items()}
    del tensors["decoders.2.bn1.running_var"]
    save_file(tensors, partial)
    with pytest.raises(WeightsError, match=r"decoders\.2\.bn1\.running_var"):
        load_weights(partial)


def test_format_is_detected_by_content(tmp_path: Path, tiny: ResUNet, card: ModelCard) -> None:
    ours = save_weights(tiny, card, tmp_path / "looks_like.h5")
    assert load_weights(ours)[1].name == "unit-test"
    keras = write_legacy(tiny, tmp_path / "looks_like.safetensors")
    model, imported = load_weights(keras)
    assert imported.name == "beyond-backscatter-grd-gee"
    assert _same_tensors(model, tiny)


def test_load_model_and_directories(tmp_path: Path, tiny: ResUNet, card: ModelCard) -> None:
    save_weights(tiny, card, tmp_path / "only" / "w.safetensors")
    model = load_model(tmp_path / "only")
    assert not model.training and _same_tensors(model, tiny)
    assert model_card_of(model) is not None and model_card_of(model).name == "unit-test"
    save_weights(tiny, card, tmp_path / "only" / "second.safetensors")
    with pytest.raises(WeightsError, match="several weight files"):
        load_weights(tmp_path / "only")
    with pytest.raises(WeightsError, match="does not exist"):
        load_weights(tmp_path / "missing.safetensors")


def test_bundled_weights(
    tmp_path: Path, tiny: ResUNet, card: ModelCard, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(weight_sources, "BUNDLED_WEIGHTS_DIR", tmp_path / "data" / "weights")
    with pytest.raises(WeightsError, match=r"bundled weights are missing.*--weights"):
        load_weights(None)
    save_weights(tiny, card, tmp_path / "data" / "weights" / "demo.safetensors")
    assert _same_tensors(load_model(None), tiny)


def test_save_refuses_other_dtypes(tmp_path: Path, tiny: ResUNet, card: ModelCard) -> None:
    with pytest.raises(ValueError, match="float32 or float16"):
        save_weights(tiny, card, tmp_path / "w.safetensors", dtype=torch.bfloat16)


# --- Keras files: layouts and refusals ---------------------------------------------------


@pytest.mark.parametrize("attrs", ["bytes", "str"])
@pytest.mark.parametrize("full_model", [False, True])
def test_legacy_layout_variants(
    tmp_path: Path, tiny: ResUNet, attrs: str, full_model: bool
) -> None:
    path = write_legacy(tiny, tmp_path / "m.h5", attrs=attrs, full_model=full_model)  # type: ignore[arg-type]
    with h5py.File(path) as handle:  # the attribute really is stored the way we asked
        root = handle["model_weights"] if full_model else handle
        first = root.attrs["layer_names"][0]
        assert isinstance(first, bytes if attrs == "bytes" else str)
    model, card = import_keras(path)
    assert _same_tensors(model, tiny)
    torch.testing.assert_close(_forward(model), _forward(tiny), atol=0, rtol=0)
    assert card.architecture.base == BASE
    assert card.uncertainty.calibrated is False
    assert "legacy Keras 2" in card.provenance.notes and "matched by name" in card.provenance.notes
    assert card.provenance.source == str(path)
    assert "arXiv:2606.07374" in card.provenance.citation
    assert (card.tiling.patch_size, card.tiling.stride, card.tiling.batch_size) == (128, 32, 8)
    assert (card.tiling.aggregation, card.tiling.kaiser_beta) == ("kaiser", 5.0)
    assert card.sha256 == tensor_checksum(model_tensors(tiny))


def test_refuses_files_that_are_not_weights(tmp_path: Path) -> None:
    text = tmp_path / "notes.h5"
    text.write_text("this is not a weight file\n")
    with pytest.raises(WeightsError, match="neither a safetensors file nor a Keras HDF5"):
        load_weights(text)
    empty_h5 = tmp_path / "data.h5"
    with h5py.File(empty_h5, "w") as handle:
        handle["values"] = np.zeros(3)
    with pytest.raises(WeightsError, match=r"neither a legacy Keras 2 .* nor a Keras 3"):
        load_weights(empty_h5)


def test_refuses_missing_layer(tmp_path: Path, tiny: ResUNet) -> None:
    path = write_legacy(tiny, tmp_path / "m.h5", drop="conv2d_5")
    with pytest.raises(
        WeightsError, match=r"no weights for layer 'conv2d_5' \(PyTorch encoders\.1\.conv2\)"
    ):
        import_keras(path)


def test_refuses_wrong_shape(tmp_path: Path, tiny: ResUNet) -> None:
    def shrink(layer: str, var: str, array: np.ndarray) -> np.ndarray:
        return array[:, :, :3, :] if (layer, var) == ("conv2d_4", "kernel") else array

    path = write_legacy(tiny, tmp_path / "m.h5", edit=shrink)
    message = (
        f"'conv2d_4' (PyTorch encoders.1.conv1) kernel has shape (3, 3, 3, {2 * BASE}), "
        f"expected (3, 3, {BASE}, {2 * BASE})"
    )
    with pytest.raises(WeightsError, match=re.escape(message)):
        import_keras(path)


def test_refuses_listed_but_absent_dataset(tmp_path: Path, tiny: ResUNet) -> None:
    path = write_legacy(tiny, tmp_path / "m.h5")
    with h5py.File(path, "r+") as handle:
        del handle["mean"]["mean"]["bias:0"]
    with pytest.raises(WeightsError, match="'mean' lists weight 'mean/bias:0'"):
        import_keras(path)


# --- hf:// through huggingface_hub's real cache, offline -----------------------------------


def populate_hf_cache(cache: Path, repo_id: str, files: dict[str, Path]) -> None:
    """Lay files out the way huggingface_hub stores a download (blobs, snapshots, refs)."""
    folder = cache / f"models--{repo_id.replace('/', '--')}"
    snapshot = folder / "snapshots" / COMMIT
    (folder / "blobs").mkdir(parents=True)
    (folder / "refs").mkdir()
    snapshot.mkdir(parents=True)
    (folder / "refs" / "main").write_text(COMMIT)
    for name, source in files.items():
        data = source.read_bytes()
        blob = folder / "blobs" / hashlib.sha256(data).hexdigest()
        blob.write_bytes(data)
        (snapshot / name).symlink_to(os.path.relpath(blob, snapshot))


@pytest.fixture
def hf_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """HF_HUB_OFFLINE=1; huggingface_hub reads the variable once at import, so set both."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)


@pytest.mark.usefixtures("hf_offline")
def test_hf_uri_offline(tmp_path: Path, tiny: ResUNet, card: ModelCard) -> None:
    ours = save_weights(tiny, card, tmp_path / "src" / "model.safetensors")
    keras = write_legacy(tiny, tmp_path / "src" / "model.weights.h5")
    cache = tmp_path / "cache"  # stac-coh's cache: huggingface_hub's below it
    populate_hf_cache(cache / "huggingface", "stac-coh/tiny", {"model.safetensors": ours})
    populate_hf_cache(cache / "huggingface", "someone/keras-only", {"model.weights.h5": keras})

    for uri in (
        "hf://stac-coh/tiny",
        "hf://stac-coh/tiny/model.safetensors",
        "hf://stac-coh/tiny/model.safetensors@main",
        f"hf://stac-coh/tiny@{COMMIT}",
    ):
        model, loaded = load_weights(uri, cache_dir=cache)
        assert _same_tensors(model, tiny), uri
        assert loaded.name == "unit-test"

    model, imported = load_weights("hf://someone/keras-only", cache_dir=cache)
    assert _same_tensors(model, tiny)
    # Converted once into the cache, naming the file, repository and commit it came from.
    assert imported.provenance.source == "hf://someone/keras-only/model.weights.h5"
    assert (imported.provenance.repository, imported.provenance.revision) == (
        "someone/keras-only",
        COMMIT,
    )
    assert "No config.yaml" in imported.provenance.notes
    assert describe_weights("hf://someone/keras-only", cache_dir=cache).format == "safetensors"

    with pytest.raises(
        WeightsError, match=r"not in the local Hugging Face cache.*weights download"
    ):
        load_weights("hf://someone/never-downloaded", cache_dir=cache)
    with pytest.raises(WeightsError, match="not a Hugging Face weights URI"):
        load_weights("hf://no-repo-part", cache_dir=cache)


# --- command line -------------------------------------------------------------------------

runner = CliRunner()


@pytest.mark.parametrize(
    "args",
    [
        ["weights", "-h"],
        ["weights", "import-keras", "-h"],
        ["weights", "info", "-h"],
        ["weights", "download", "-h"],
    ],
)
def test_help(args: list[str]) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "hf://" in result.output
    if len(args) > 2:
        assert "Examples" in result.output and f"stac-coh weights {args[1]}" in result.output


def test_cli_import_and_info(
    tmp_path: Path, tiny: ResUNet, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STAC_COH_CACHE_DIR", str(tmp_path / "cache"))
    keras = write_legacy(tiny, tmp_path / "model.weights.h5")
    out = tmp_path / "published.safetensors"
    result = runner.invoke(
        app, ["weights", "import-keras", str(keras), str(out), "--name", "my-import", "--fp16"]
    )
    assert result.exit_code == 0, result.output
    assert card_path(out).is_file()
    result = runner.invoke(app, ["weights", "info", str(out), "--json"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    assert info["card"]["name"] == "my-import"
    assert info["card"]["provenance"]["source"] == str(keras)
    assert info["dtype"] == "float16"
    assert info["parameters"] == sum(p.numel() for p in tiny.parameters())
    assert info["file_size"] == out.stat().st_size
    assert info["sha256"] == tensor_checksum({k: v.half() for k, v in model_tensors(tiny).items()})
    assert info["sha256"] in result.output
    table = runner.invoke(app, ["weights", "info", str(keras)])
    assert table.exit_code == 0, table.output
    assert "beyond-backscatter-grd-gee" in table.output and "[-20.0, 0.0]" in table.output
    refused = runner.invoke(app, ["weights", "import-keras", str(out), str(tmp_path / "x")])
    assert isinstance(refused.exception, WeightsError)


def test_cli_offline_hf_in_a_fresh_process(tmp_path: Path, tiny: ResUNet, card: ModelCard) -> None:
    """The console entry point, settings and HF_HUB_OFFLINE as a user would set them."""
    weights = save_weights(tiny, card, tmp_path / "src" / "model.safetensors")
    populate_hf_cache(
        tmp_path / "cache" / "huggingface", "stac-coh/tiny", {"model.safetensors": weights}
    )
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "HF_HOME": str(tmp_path / "hf-home"),
        "STAC_COH_CACHE_DIR": str(tmp_path / "cache"),
    }
    command = [sys.executable, "-m", "stac_coh", "weights", "info", "hf://stac-coh/tiny", "--json"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["card"]["name"] == "unit-test"
    missing = [sys.executable, "-m", "stac_coh", "weights", "info", "hf://stac-coh/absent"]
    done = subprocess.run(missing, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == WeightsError.exit_code
    assert "Traceback" not in done.stderr and "hf://stac-coh/absent" in done.stderr


@pytest.mark.usefixtures("hf_offline")
def test_cli_download_from_cache(
    tmp_path: Path, tiny: ResUNet, card: ModelCard, monkeypatch: pytest.MonkeyPatch
) -> None:
    weights = save_weights(tiny, card, tmp_path / "src" / "model.safetensors")
    cache = tmp_path / "cache"
    populate_hf_cache(cache / "huggingface", "stac-coh/tiny", {"model.safetensors": weights})
    monkeypatch.setenv("STAC_COH_CACHE_DIR", str(cache))
    result = runner.invoke(app, ["weights", "download", "hf://stac-coh/tiny/model.safetensors"])
    assert result.exit_code == 0, result.output
    local = Path(result.output.strip())
    assert local.is_file() and cache in local.parents
    assert local.read_bytes() == weights.read_bytes()
    refused = runner.invoke(app, ["weights", "download", str(weights)])
    assert isinstance(refused.exception, WeightsError)
