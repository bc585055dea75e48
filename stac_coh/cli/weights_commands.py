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
    "Model weights: import the published Keras file, inspect, download.",
    'stac-coh runs the Residual U-Net of "Beyond Backscatter" (Sica, Pulella, Schmitt, '
    f"2026). Its authors publish Keras weights on Hugging Face ({_PUBLISHED_URI}); "
    "stac-coh loads them directly or after conversion to its own format (safetensors plus "
    "a model card).",
    "Every --weights option (and the commands below) accepts a weight file, a directory "
    "holding one, or hf://owner/repo (optionally /FILE and @REVISION). Files are recognised "
    "by content, not by name. Downloads go to STAC_COH_CACHE_DIR/huggingface; set "
    "HF_HUB_OFFLINE=1 to use only what is cached there.",
)

_IMPORT_HELP = _paragraphs(
    "Convert a Keras weight file into stac-coh's format.",
    "IN is a Keras .h5 weight file in either layout (the legacy Keras 2 layout of the "
    "published model.weights.h5, or Keras 3 save_weights), or an hf:// URI of one. OUT is "
    "the safetensors file to write; its model card (architecture, preprocessing, tiling "
    f"defaults, provenance, checksum) goes into the file's metadata and into OUT{CARD_SUFFIX} "
    "beside it.",
    "A file that is neither layout, lacks a layer or has a wrongly shaped one is refused, "
    "naming the layer.",
    "Examples:",
    "  stac-coh weights import-keras model.weights.h5 published.safetensors",
    f"  stac-coh weights import-keras {_PUBLISHED_URI}/model.weights.h5 published.safetensors "
    "--fp16",
)

_INFO_HELP = _paragraphs(
    "Print a weight file's model card, parameter count, checksum and size.",
    "WEIGHTS is our safetensors file, a Keras .h5 file, a directory, or an hf:// URI. The "
    "checksum is the sha256 of the tensors' values (not of the file's bytes): the card's "
    "sha256 field.",
    "Examples:",
    "  stac-coh weights info published.safetensors",
    f"  stac-coh weights info {_PUBLISHED_URI} --json",
)

_DOWNLOAD_HELP = _paragraphs(
    "Download weights from the Hugging Face hub into the cache and print the path.",
    "Run it once with network access; later runs (also with HF_HUB_OFFLINE=1) use the cache.",
    "Examples:",
    f"  stac-coh weights download {_PUBLISHED_URI}",
    "  stac-coh weights download hf://owner/repo/model.safetensors@v1.0",
)


def _hf_cache() -> Path:
    """huggingface_hub cache below the user's stac-coh cache directory."""
    from stac_coh.settings import get_settings

    return get_settings().cache_dir / "huggingface"


def import_keras_command(
    source: str = typer.Argument(..., metavar="IN", help="Keras .h5 file or hf:// URI."),
    out: Path = typer.Argument(..., metavar="OUT", help="safetensors file to write."),
    name: str = typer.Option(PUBLISHED_NAME, "--name", help="Name in the model card."),
    fp16: bool = typer.Option(False, "--fp16", help="Store float16 (half the size)."),
) -> None:
    """Convert a Keras weight file into stac-coh's format."""
    import torch

    from stac_coh.model.weights import (
        describe_weights,
        detect_format,
        import_keras,
        resolve_weights,
        save_weights,
    )

    path = resolve_weights(source, cache_dir=_hf_cache())
    if detect_format(path) != "hdf5":
        raise WeightsError(
            f"{source} is already a safetensors file, not a Keras .h5 file; use it directly "
            "with --weights, or inspect it with `stac-coh weights info`."
        )
    model, card = import_keras(path, name=name, source=source)
    written = save_weights(model, card, out, dtype=torch.float16 if fp16 else torch.float32)
    info = describe_weights(written)
    typer.echo(
        f"Wrote {written} and {written.name}{CARD_SUFFIX}: {info.card.name}, "
        f"{info.parameters:,} parameters, {info.dtype}, sha256 {info.sha256}"
    )


def info_command(
    weights: str = typer.Argument(..., metavar="WEIGHTS", help="File, directory or hf:// URI."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead."),
) -> None:
    """Print a weight file's model card, parameter count, checksum and size."""
    from stac_coh.model.weights import describe_weights

    info = describe_weights(weights, cache_dir=_hf_cache())
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
    rows = {
        "file": str(info.path),
        "format": f"{info.format} ({info.dtype}), {info.file_size / 2**20:.1f} MiB",
        "parameters": f"{info.parameters:,}",
        "sha256 (tensors)": info.sha256,
        "architecture": f"{arch.name}, base {arch.base}, {arch.input_channels} in, "
        f"{arch.output_channels} out",
        "preprocessing": f"{prep.input_scale} -> dB clipped to [{prep.db_min}, {prep.db_max}] "
        f"-> [0, 1]; channels {', '.join(prep.channel_order)}",
        "tiling": f"patch {tiling.patch_size}, stride {tiling.stride}, batch "
        f"{tiling.batch_size}, {tiling.aggregation} (beta {tiling.kaiser_beta})",
        "uncertainty": f"calibrated={unc.calibrated}, log-variance "
        f"[{unc.log_variance_min}, {unc.log_variance_max}]",
        "source": card.provenance.source,
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
    uri: str = typer.Argument(..., metavar="HF_URI", help="hf://owner/repo, /FILE, @REVISION."),
) -> None:
    """Download weights from the Hugging Face hub into the cache and print the path."""
    if not uri.startswith("hf://"):
        raise WeightsError(f"{uri!r} is not an hf:// URI; write e.g. {_PUBLISHED_URI}.")
    from stac_coh.model.weights import resolve_weights

    typer.echo(str(resolve_weights(uri, cache_dir=_hf_cache())))


def register(app: typer.Typer) -> None:
    """Add the command group to the app."""
    weights = typer.Typer(help=_GROUP_HELP, no_args_is_help=True)
    weights.command("import-keras", help=_IMPORT_HELP)(import_keras_command)
    weights.command("info", help=_INFO_HELP)(info_command)
    weights.command("download", help=_DOWNLOAD_HELP)(download_command)
    app.add_typer(weights, name="weights")
