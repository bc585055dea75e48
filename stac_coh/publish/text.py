"""Text that readers see in STAC Browser: sentences."""

from __future__ import annotations

__all__ = ["as_sentence"]


def as_sentence(text: str) -> str:
    """``text`` with a capital first letter and a full stop (empty stays empty)."""
    text = " ".join(text.split())
    if not text:
        return ""
    text = text[0].upper() + text[1:]
    return text if text[-1] in ".!?" else f"{text}."
