"""The ``stac-coh`` command line: one Typer app, one module per command group."""

from __future__ import annotations

import logging
import re
import signal
import sys
import traceback
from types import FrameType
from typing import TYPE_CHECKING, TypeGuard

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
from stac_coh.errors import (
    EXIT_BAD_INPUT,
    EXIT_CODES,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    StacCohError,
)

if TYPE_CHECKING:
    from pydantic import ValidationError

__all__ = ["app", "main"]

ENVIRONMENT = (
    ("STAC_COH_WEIGHTS", "default --weights (auto, bundled, file, folder, hf://, s3://)"),
    ("STAC_COH_DEVICE", "default --device: auto, cpu, cuda or mps"),
    ("STAC_COH_CACHE_DIR", "downloaded weights (default ~/.cache/stac-coh)"),
    ("STAC_COH_HTTP_TIMEOUT_S", "seconds per STAC API request (default 30)"),
    ("STAC_COH_HTTP_RETRIES", "retries on 429/5xx/connection errors (default 5)"),
    ("AWS_PROFILE, AWS_ENDPOINT_URL, ...", "S3 access for s3:// locations"),
    ("PC_SDK_SUBSCRIPTION_KEY", "Planetary Computer key (optional)"),
    ("https_proxy, no_proxy", "proxy for STAC APIs and raster reads"),
)
"""Environment variables, as ``stac-coh --help`` and the README list them."""


def _epilog() -> str:
    """Exit codes and environment variables, kept as lines by Typer (``\\b``)."""
    codes = "\n".join(f"  {code:<4} {meaning}" for code, meaning in EXIT_CODES)
    env = "\n".join(f"  {name}: {meaning}" for name, meaning in ENVIRONMENT)
    return f"\b\nExit codes:\n{codes}\n\n\b\nEnvironment:\n{env}"


app = typer.Typer(
    name="stac-coh",
    help=(
        "InSAR coherence maps from two detected Sentinel-1 backscatter images, "
        "published as a STAC catalog of COGs.\n\n"
        "Start with `stac-coh demo` (offline, well under a minute on a 2-core CPU), then "
        "`stac-coh search-and-run --bbox W S E N --start DATE --end DATE --out DIR`. "
        "-v/-vv (anywhere on the line) logs more."
    ),
    epilog=_epilog(),
    no_args_is_help=True,
    add_completion=True,
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
    verbose: int = typer.Option(
        0, "--verbose", "-v", count=True, metavar="", help="More log output (-vv: debug)."
    ),
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, metavar="", help="Show the version."
    ),
) -> None:
    """Configure logging once, for every command."""
    configure_logging(verbose)


def configure_logging(verbose: int) -> None:
    """Plain log lines on stderr, signed URLs redacted, warnings on one line each."""
    import warnings

    from stac_coh.io.redact import install_redaction, show_warning

    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    install_redaction()
    if verbose == 0:
        # urllib3 logs a WARNING per retry; the final error says what failed.
        logging.getLogger("urllib3").setLevel(logging.ERROR)
    warnings.showwarning = show_warning


_VERBOSE = re.compile(r"^-v+$|^--verbose$")
_OWN_VERBOSE = {"worker"}
"""Commands with a ``-v`` of their own, left alone."""


def hoist_verbose(argv: list[str]) -> list[str]:
    """Move ``-v``/``--verbose`` given after the command to before it, where Click wants them."""
    command = next((i for i, arg in enumerate(argv) if not arg.startswith("-")), None)
    if command is None or argv[command] in _OWN_VERBOSE:
        return list(argv)
    end = argv.index("--") if "--" in argv[command:] else len(argv)
    moved = [a for a in argv[command + 1 : end] if _VERBOSE.match(a)]
    kept = [a for a in argv[command + 1 : end] if not _VERBOSE.match(a)]
    return [*argv[:command], *moved, argv[command], *kept, *argv[end:]]


_stops: list[int] = []


def _stop(signum: int, _frame: FrameType | None) -> None:
    """SIGTERM (``kill``, schedulers) unwinds like Ctrl-C: scratch files are cleaned up."""
    _stops.append(signum)
    raise KeyboardInterrupt


def main() -> None:
    """Entry point of the ``stac-coh`` console script: every failure is one line and a code.

    Typer itself turns usage errors into exit 2; stac-coh's errors carry their code
    (:data:`stac_coh.errors.EXIT_CODES`); Ctrl-C exits 130 and SIGTERM 143 (128 + the
    signal, as shells do); anything else is a bug: one line and exit 1 (``-v`` adds the
    traceback).
    """
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _stop)
    argv = hoist_verbose(sys.argv[1:])
    verbose = sum(a.count("v") if a.startswith("-v") else 1 for a in argv if _VERBOSE.match(a))
    try:
        app(args=argv, prog_name="stac-coh")
    except StacCohError as exc:
        _fail(str(exc), exc.exit_code)
    except SystemExit as exc:
        # Typer reports any interrupt as 130 (Ctrl-C); say which signal, as shells do.
        if _stops and exc.code in (1, EXIT_INTERRUPTED):
            sys.exit(128 + _stops[0])
        raise
    except KeyboardInterrupt:
        _fail("Interrupted.", 128 + _stops[0] if _stops else EXIT_INTERRUPTED)
    except Exception as exc:
        if _is_settings_error(exc):
            _fail(_settings_message(exc), EXIT_BAD_INPUT)
        if verbose:
            from stac_coh.io.redact import redact

            sys.stderr.write(redact(traceback.format_exc()))
        _fail(
            f"{type(exc).__name__}: {exc} (an unexpected error: please report it; "
            "-v shows the traceback).",
            EXIT_FAILED,
        )


def _fail(message: str, code: int) -> None:
    """Print ``Error: message`` (redacted, one line) on stderr and exit with ``code``."""
    from stac_coh.io.redact import redact

    text = " ".join(redact(message).split())
    typer.secho(f"Error: {text}", fg=typer.colors.RED, err=True)
    sys.exit(code)


def _is_settings_error(exc: BaseException) -> TypeGuard[ValidationError]:
    """A pydantic ValidationError about :class:`stac_coh.settings.Settings`."""
    from pydantic import ValidationError  # only on this error path: the CLI starts without it

    return isinstance(exc, ValidationError) and exc.title == "Settings"


def _settings_message(exc: ValidationError) -> str:
    """``STAC_COH_X='value': what is wrong`` for each invalid setting."""
    parts = []
    for error in exc.errors():
        name = "STAC_COH_" + "_".join(str(p) for p in error.get("loc", ())).upper()
        why = str(error.get("msg", "invalid")).removeprefix("Value error, ")
        parts.append(f"{name}={error.get('input')!r}: {why}")
    return "; ".join(parts) + ". Fix or unset the environment variable."
