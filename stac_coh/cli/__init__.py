"""The ``stac-coh`` command line: one Typer app, one module per command group."""

from __future__ import annotations

import logging
import signal
import sys
from types import FrameType

import typer

from stac_coh import __version__
from stac_coh.cli import (
    batch_commands,
    catalog_commands,
    composite_command,
    demo_command,
    predict_command,
    run_commands,
    science_commands,
    search_command,
    serve_command,
    weights_commands,
)
from stac_coh.errors import StacCohError

__all__ = ["app", "main"]

app = typer.Typer(
    name="stac-coh",
    help=(
        "InSAR coherence maps from two detected Sentinel-1 backscatter images, "
        "published as a STAC catalog of COGs.\n\n"
        "Start with `stac-coh demo` (offline, ~3 minutes), then "
        "`stac-coh search-and-run --bbox W S E N --start DATE --end DATE --out DIR`."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)

for _module in (
    search_command,
    predict_command,
    run_commands,
    demo_command,
    catalog_commands,
    composite_command,
    serve_command,
    batch_commands,
    weights_commands,
    science_commands,
):
    _module.register(app)


def _version(value: bool) -> None:
    """Print the version and exit."""
    if value:
        typer.echo(f"stac-coh {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    verbose: int = typer.Option(0, "--verbose", "-v", count=True, help="More log output."),
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Show the version."
    ),
) -> None:
    """Configure logging once, for every command."""
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")


_stops: list[int] = []


def _stop(signum: int, _frame: FrameType | None) -> None:
    """SIGTERM (``kill``, schedulers) unwinds like Ctrl-C: scratch files are cleaned up."""
    _stops.append(signum)
    raise KeyboardInterrupt


def main() -> None:
    """Entry point of the ``stac-coh`` console script."""
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _stop)
    try:
        app()
    except StacCohError as exc:
        typer.secho(f"Error: {exc}", fg=typer.colors.RED, err=True)
        sys.exit(exc.exit_code)
    except SystemExit as exc:
        # Typer reports any interrupt as 130 (Ctrl-C); say which signal, as shells do.
        if _stops and exc.code in (1, 130):
            sys.exit(128 + _stops[0])
        raise
