"""Help-text helpers shared by command modules."""

from __future__ import annotations

__all__ = ["prose"]


def prose(text: str) -> str:
    """Join the lines of each paragraph so the terminal wraps them; keep indented lines."""
    out: list[str] = []
    for line in text.strip().splitlines():
        joinable = out and out[-1] and line and not line.startswith(" ")
        if joinable and not out[-1].startswith(" "):
            out[-1] += " " + line
        else:
            out.append(line)
    return "\n".join(out) + "\n"
