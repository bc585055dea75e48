"""Signed URLs never reach a terminal, a log or a report: one redaction, one logging filter.

Signing credentials travel in URL query strings (Azure SAS ``?st=..&se=..&sig=..``, S3
presigned ``X-Amz-Signature``, Google ``X-Goog-Signature``). Hrefs that enter stac-coh are
stripped of them (:func:`stac_coh.io.signing.unsigned`), but a reader signs them again just
before a read, and GDAL, botocore or an exception may quote the signed URL back.
:func:`redact` removes them from any text; :class:`RedactingFilter`, installed on the
handlers of the command line's logging, applies it to every log line (rasterio's GDAL
messages and tracebacks included); :func:`show_warning` prints warnings as one clean line.
"""

from __future__ import annotations

import contextlib
import logging
import re
import sys
from typing import Any, TextIO
from urllib.parse import parse_qsl, urlencode

__all__ = [
    "SAS_PARAMS",
    "SIGNING_PARAMS",
    "RedactingFilter",
    "install_redaction",
    "redact",
    "show_warning",
    "strip_signing",
]

SIGNING_PARAMS = frozenset(
    {
        "sig",
        "signature",
        "x-amz-signature",
        "x-amz-credential",
        "x-amz-security-token",
        "x-amz-algorithm",
        "x-amz-date",
        "x-amz-expires",
        "x-amz-signedheaders",
        "awsaccesskeyid",
        "x-goog-signature",
        "x-goog-credential",
        "x-goog-algorithm",
        "x-goog-date",
        "x-goog-expires",
        "x-goog-signedheaders",
        "token",
        "access_token",
    }
)
"""Query parameters (lower case) that carry or belong to a credential, wherever they appear."""

SAS_PARAMS = frozenset(
    {
        "sv", "ss", "srt", "sp", "se", "st", "spr", "sr", "si", "sdd", "ses",
        "skoid", "sktid", "skt", "ske", "sks", "skv", "saoid", "suoid", "scid",
        "rscc", "rscd", "rsce", "rscl", "rsct",
    }
)  # fmt: skip
"""Azure SAS fields: dropped too when a ``sig`` (the SAS signature) is present."""

# A URL (or GDAL /vsi path) with a query string; the query ends at whitespace or quotes.
_URL_QUERY = re.compile(r"((?:[a-z][a-z0-9+.-]*://|/vsi[a-z0-9_]+/)[^\s?#'\"<>]*)\?([^\s'\"<>]*)")
# Credential parameters that appear outside a URL (a token string, a form body).
_LOOSE_PARAM = re.compile(
    r"(?i)(?<![\w-])(?:sig|signature|x-amz-signature|x-amz-credential|x-amz-security-token"
    r"|x-goog-signature|x-goog-credential|access_token)=[^&\s'\"<>]*&?"
)
_LOOSE_SAS = re.compile(
    r"(?i)(?<![\w-])(?:st|se|sp|sv|sr|spr|skoid|sktid|skt|ske|sks|skv)=[^&\s'\"<>]*&?"
)


def strip_signing(query: str) -> str:
    """``query`` without credential parameters (the SAS family too when ``sig`` is there)."""
    pairs = parse_qsl(query, keep_blank_values=True)
    names = {name.lower() for name, _ in pairs}
    drop = SIGNING_PARAMS | (SAS_PARAMS if "sig" in names else frozenset())
    kept = [(name, value) for name, value in pairs if name.lower() not in drop]
    if len(kept) == len(pairs):
        return query
    return urlencode(kept, safe="/:,")


def redact(text: str) -> str:
    """``text`` without signing parameters in any URL it quotes, or loose ones outside URLs."""
    if "=" not in text:
        return text

    def clean(match: re.Match[str]) -> str:
        query = strip_signing(match.group(2))
        return match.group(1) + (f"?{query}" if query else "")

    text = _URL_QUERY.sub(clean, text)
    if _LOOSE_PARAM.search(text):
        # A token string on its own (``st=..&se=..&sig=..``): its SAS fields go with it.
        text = _LOOSE_SAS.sub("", _LOOSE_PARAM.sub("", text))
    return text


class RedactingFilter(logging.Filter):
    """Redacts each record's message, arguments and traceback (install it on handlers)."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite ``record`` in place; never drops it."""
        try:
            message = record.getMessage()
        except Exception:  # a malformed record: leave it to the handler's own error path
            return True
        record.msg, record.args = redact(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


def install_redaction(logger: logging.Logger | None = None) -> None:
    """Add a :class:`RedactingFilter` to every handler of ``logger`` (default: the root)."""
    for handler in (logger or logging.getLogger()).handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())


def show_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: TextIO | None = None,
    line: str | None = None,
) -> None:
    """``warnings.showwarning`` replacement: ``Warning: text`` on one line, redacted.

    Python's default adds the file, line and source line of the ``warnings.warn`` call,
    which tells a user of the command line nothing.
    """
    from stac_coh.errors import StacCohWarning

    text = " ".join(str(message).split())
    if not issubclass(category, StacCohWarning):
        text = f"{category.__name__}: {text}"
    stream: Any = file or sys.stderr
    with contextlib.suppress(OSError):  # stderr closed: nothing sensible left to do
        stream.write(f"Warning: {redact(text)}\n")
