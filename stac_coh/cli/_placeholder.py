"""Commands that are designed but not built yet say so, and say which issue brings them."""

from __future__ import annotations

import typer


def planned(app: typer.Typer, name: str, summary: str, issue: int) -> None:
    """Register ``name`` as a command that explains it is not built yet."""

    def _command() -> None:
        typer.secho(
            f"`stac-coh {name}` is not built yet; it arrives with issue #{issue}.",
            fg=typer.colors.YELLOW,
            err=True,
        )
        raise typer.Exit(code=64)

    _command.__doc__ = f"{summary} [not built yet: issue #{issue}]"
    app.command(name, help=_command.__doc__)(_command)
