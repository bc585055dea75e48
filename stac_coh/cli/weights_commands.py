"""`stac-coh weights ...`: import, inspect and fetch model weights."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.table import Table

from stac_coh.constants import CARD_SUFFIX, PUBLISHED_NAME
from stac_coh.errors import WeightsError

if TYPE_CHECKING:
    from stac_coh.model.weights import WeightsInfo

__all__ = ["register"]

_PUBLISHED_URI = f"hf://FPSica/{PUBLISHED_NAME}"


def _paragraphs(*paragraphs: str) -> str:
    """Join help paragraphs; Typer's rich mode keeps single newlines, so none inside one."""
    return "\n\n".join(paragraphs)


_GROUP_HELP = _paragraphs(
    "Model weights: which ones a run uses, download, import, inspect.",
    'stac-coh runs the Residual U-Net of "Beyond Backscatter" (Sica, Pulella, Schmitt, '
    f"2026). Its authors publish Keras weights on Hugging Face ({_PUBLISHED_URI}) with a "
    "config.yaml (preprocessing, tiling, output channel) and a model card (license).",
    "Every --weights option (and STAC_COH_WEIGHTS) accepts: auto (the default: the published "
    "weights for real data, fetched once, converted with their config.yaml and cached; the "
    "bundled weights for `stac-coh demo`), bundled (the simulation-trained weights shipped "
    "with stac-coh, for the demo and tests), hf://owner/repo (optionally /FILE and "
    "@REVISION), s3://bucket/key, a weight file (ours or a Keras .h5) or a folder holding "
    "one (with its config.yaml). Files are recognised by content, not by name.",
    "Which weights made a result: every item names them (coh:weights_name, "
    "coh:weights_sha256, coh:weights_source, and for Hub weights coh:weights_repository, "
    "coh:weights_revision, coh:weights_license). An unknown or contradicting config.yaml key "
    "is refused, never ignored.",
    "Downloads and conversions go to STAC_COH_CACHE_DIR (huggingface/, converted/). Offline "
    "(HF_HUB_OFFLINE=1 or no network) only what is cached there is used: run "
    "`stac-coh weights download` once with network access.",
)

_IMPORT_HELP = _paragraphs(
    "Convert Keras weights into stac-coh's format.",
    "IN is a Keras .h5 weight file in either layout (the legacy Keras 2 layout of the "
    "published model.weights.h5, or Keras 3 save_weights), a folder holding the published "
    "files (model.weights.h5 with its config.yaml and README.md, e.g. downloaded by hand), "
    "or an hf:// URI. OUT is the safetensors file to write; its model card (architecture, "
    "preprocessing and tiling from config.yaml, provenance, license, checksums) goes into "
    f"the file's metadata and into OUT{CARD_SUFFIX} beside it.",
    "A file that is neither layout, lacks a layer or has a wrongly shaped one is refused, "
    "naming the layer; so is a config.yaml key stac-coh does not know or cannot honour.",
    "Examples:",
    "  stac-coh weights import-keras model.weights.h5 published.safetensors",
    "  stac-coh weights import-keras beyond-backscatter-grd-gee/ published.safetensors",
    f"  stac-coh weights import-keras {_PUBLISHED_URI} published.safetensors --fp16",
)

_INFO_HELP = _paragraphs(
    "Print a weight file's model card, parameter count, checksum and size.",
    "WEIGHTS is anything --weights accepts (default: auto, what a run on real data uses). "
    "The checksum is the sha256 of the tensors' values (not of the file's bytes): the card's "
    "sha256 field.",
    "Examples:",
    "  stac-coh weights info",
    "  stac-coh weights info published.safetensors",
    f"  stac-coh weights info {_PUBLISHED_URI} --json",
)

_DOWNLOAD_HELP = _paragraphs(
    "Download weights from the Hugging Face Hub, convert them, and print the path.",
    f"Without HF_URI: the published weights ({_PUBLISHED_URI}), at the Hub's current "
    "revision, converted with their config.yaml into the cache that --weights auto reads. "
    "Run it once with network access; later runs (also with HF_HUB_OFFLINE=1, also in a "
    "Docker image built with --build-arg STAC_COH_BAKE_WEIGHTS=auto) use the cache.",
    "Examples:",
    "  stac-coh weights download",
    f"  stac-coh weights download {_PUBLISHED_URI}@COMMIT",
    "  stac-coh weights download hf://owner/repo/model.safetensors@v1.0",
)


def _cache() -> Path:
    """The user's stac-coh cache directory (Hub snapshots and conversions live below it)."""
    from stac_coh.settings import get_settings

    return get_settings().cache_dir


def import_keras_command(
    source: str = typer.Argument(
        ..., metavar="IN", help="Keras .h5 file, folder of published files, or hf:// URI."
    ),
    out: Path = typer.Argument(..., metavar="OUT", help="safetensors file to write."),
    name: str | None = typer.Option(
        None, "--name", help=f"Name in the model card (default: {PUBLISHED_NAME})."
    ),
    fp16: bool = typer.Option(False, "--fp16", help="Store float16 (half the size)."),
) -> None:
    """Convert Keras weights into stac-coh's format."""
    from dataclasses import replace

    import torch

    from stac_coh.model.weights import (
        describe_weights,
        detect_format,
        load_weights,
        save_weights,
    )

    is_file = not source.startswith("hf://") and Path(source).is_file()
    if is_file and detect_format(source) != "hdf5":
        raise WeightsError(
            f"{source} is already a safetensors file, not a Keras .h5 file; use it directly "
            "with --weights, or inspect it with `stac-coh weights info`."
        )
    model, card = load_weights(source, cache_dir=_cache())
    card = replace(card, name=name or (PUBLISHED_NAME if is_file else card.name))
    written = save_weights(model, card, out, dtype=torch.float16 if fp16 else torch.float32)
    info = describe_weights(written)
    typer.echo(
        f"Wrote {written} and {written.name}{CARD_SUFFIX}: {info.card.name}, "
        f"{info.parameters:,} parameters, {info.dtype}, sha256 {info.sha256}"
    )


def info_command(
    weights: str = typer.Argument(
        "auto", metavar="WEIGHTS", help="auto, bundled, a file, a folder, hf:// or s3://."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead."),
) -> None:
    """Print a weight file's model card, parameter count, checksum and size."""
    from stac_coh.model.weights import describe_weights

    info = describe_weights(weights, cache_dir=_cache())
    if as_json:
        typer.echo(json.dumps(_info_dict(info), indent=2))
        return
    Console().print(_info_table(info))


def _info_dict(info: WeightsInfo) -> dict[str, object]:
    """JSON form of ``weights info``."""
    return {
        "path": str(info.path),
        "format": info.format,
        "dtype": info.dtype,
        "file_size": info.file_size,
        "parameters": info.parameters,
        "sha256": info.sha256,
        "card": info.card.to_dict(),
    }


def _info_table(info: WeightsInfo) -> Table:
    """Human form of ``weights info``."""
    card = info.card
    table = Table(title=f"Weights: {card.name}", show_header=False)
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    arch, prep, tiling, unc = card.architecture, card.preprocessing, card.tiling, card.uncertainty
    dom = card.training_domain
    rows = {
        "file": str(info.path),
        "format": f"{info.format} ({info.dtype}), {info.file_size / 2**20:.1f} MiB",
        "parameters": f"{info.parameters:,}",
        "sha256 (tensors)": info.sha256,
        "architecture": f"{arch.name}, base {arch.base}, {arch.input_channels} in, "
        f"{arch.output_channels} out",
        "preprocessing": prep.describe(),
        "tiling": f"patch {tiling.patch_size}, stride {tiling.stride}, batch "
        f"{tiling.batch_size}, {tiling.aggregation} (beta {tiling.kaiser_beta})",
        "uncertainty": f"calibrated={unc.calibrated}, log-variance "
        f"[{unc.log_variance_min}, {unc.log_variance_max}]",
        "test-time views": f"{unc.views} (x{unc.views} inference cost); sigma = "
        f"{unc.head_scale:g} head, {unc.spread_scale:g} spread, {unc.floor:g} floor"
        if unc.views > 1 or unc.head_scale != 1.0
        else "",
        "training domain": f"looks {dom.looks[0]:g}-{dom.looks[1]:g}, level "
        f"{dom.level_db[0]:g} to {dom.level_db[1]:g} dB, relative gain "
        f"{dom.relative_gain_db[0]:g} to {dom.relative_gain_db[1]:g} dB (input-domain guard)",
        "source": card.provenance.source,
        "repository": card.provenance.repository,
        "revision": card.provenance.revision,
        "files (sha256)": ", ".join(f"{k} {v}" for k, v in card.provenance.files.items()),
        "trained on": card.provenance.trained_on,
        "license": card.provenance.license,
        "citation": card.provenance.citation,
        "notes": card.provenance.notes,
        "command": card.provenance.command,
    }
    for key, value in rows.items():
        if value:
            # Values may hold brackets (e.g. clip ranges) that rich would read as markup.
            table.add_row(key, value.replace("[", r"\["))
    return table


def download_command(
    uri: str = typer.Argument(
        _PUBLISHED_URI, metavar="HF_URI", help="hf://owner/repo, /FILE, @REVISION."
    ),
) -> None:
    """Download weights from the Hugging Face Hub, convert them, and print the path."""
    if not uri.startswith("hf://"):
        raise WeightsError(f"{uri!r} is not an hf:// URI; write e.g. {_PUBLISHED_URI}.")
    from stac_coh.model.weights import describe_weights, resolve_weights

    path = resolve_weights(uri, cache_dir=_cache())
    typer.echo(str(path))
    card = describe_weights(path).card
    prov = card.provenance
    if prov.revision:
        typer.echo(
            f"{card.name}: {prov.repository} at revision {prov.revision}, license "
            f"{prov.license or 'not stated in the model card'}, sha256 {card.sha256}",
            err=True,
        )


def register(app: typer.Typer) -> None:
    """Add the command group to the app."""
    weights = typer.Typer(help=_GROUP_HELP, no_args_is_help=True)
    weights.command("import-keras", help=_IMPORT_HELP)(import_keras_command)
    weights.command("info", help=_INFO_HELP)(info_command)
    weights.command("download", help=_DOWNLOAD_HELP)(download_command)
    app.add_typer(weights, name="weights")
