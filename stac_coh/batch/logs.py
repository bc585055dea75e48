"""JSON log lines for AWS Batch containers: one object per line on stderr, nothing secret.

CloudWatch Logs stores each line of a container's output as one event; with JSON lines,
Logs Insights can filter on fields (``filter event = "pair.done" and status = "failed"``).
Every line passes through :func:`sanitize`, which strips query strings from URLs (SAS
tokens, presigned S3 signatures) and blanks the secret values it was given, so neither a
message of ours nor one quoted from GDAL or botocore can leak them.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import IO, Any

__all__ = ["JsonFormatter", "configure_json_logging", "log_event", "sanitize"]

_URL_WITH_QUERY = re.compile(r"((?:https?|s3|gs|az|abfss?)://[^\s?#'\"<>]+)\?[^\s'\"<>]*")
_SECRET_PARAM = re.compile(
    r"(?i)\b(X-Amz-(?:Signature|Credential|Security-Token)|sig|signature|AWSAccessKeyId"
    r"|access_token|token)=[^&\s'\"]+"
)
_SECRET_ASSIGNMENT = re.compile(
    r"(?i)\b(\w*(?:secret|password|session_token)\w*)(['\"]?\s*[:=]\s*['\"]?)[^\s'\",}]+"
)
_MIN_SECRET_LENGTH = 8  # shorter "secrets" would blank ordinary words


def sanitize(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` without URL query strings, signature parameters or the given secret values."""
    for secret in secrets:
        if len(secret) >= _MIN_SECRET_LENGTH:
            text = text.replace(secret, "***")
    text = _URL_WITH_QUERY.sub(r"\1", text)
    text = _SECRET_PARAM.sub(r"\1=***", text)
    return _SECRET_ASSIGNMENT.sub(r"\1\2***", text)


def _clean(value: Any, secrets: tuple[str, ...]) -> Any:
    """Sanitise every string inside a JSON-able value."""
    if isinstance(value, str):
        return sanitize(value, secrets)
    if isinstance(value, Mapping):
        return {str(k): _clean(v, secrets) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v, secrets) for v in value]
    if value is None or isinstance(value, bool | int | float):
        return value
    return sanitize(str(value), secrets)


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON object: time, level, event, context, fields, message.

    ``context`` (e.g. run id and child index) goes into every line; a record's own fields
    come from ``extra={"event": ..., "fields": {...}}`` (see :func:`log_event`).
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.context: dict[str, Any] = {}
        self.secrets = tuple(s for s in secrets if s)

    def format(self, record: logging.LogRecord) -> str:
        """Return the JSON line of ``record``."""
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "event": getattr(record, "event", "log"),
            **self.context,
        }
        entry.update(getattr(record, "fields", None) or {})
        entry["logger"] = record.name
        entry["message"] = record.getMessage()
        if record.exc_info:
            entry["traceback"] = self.formatException(record.exc_info)
        return json.dumps(_clean(entry, self.secrets), ensure_ascii=False)


def configure_json_logging(
    *, secrets: Iterable[str] = (), verbose: int = 0, stream: IO[str] | None = None
) -> JsonFormatter:
    """Send every log record (and warning) to ``stream`` as JSON lines; return the formatter.

    stac-coh logs at INFO (DEBUG with ``verbose``); other libraries at WARNING, so a
    container's log holds our events and real problems only.
    """
    formatter = JsonFormatter(secrets)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(formatter)
    logging.basicConfig(level=logging.WARNING, handlers=[handler], force=True)
    logging.getLogger("stac_coh").setLevel(logging.DEBUG if verbose else logging.INFO)
    # finalize reads items with more threads than botocore pools connections: not a problem.
    logging.getLogger("urllib3.connectionpool").setLevel(logging.ERROR)
    logging.captureWarnings(True)
    return formatter


def log_event(
    logger: logging.Logger, event: str, message: str, *, level: int = logging.INFO, **fields: Any
) -> None:
    """Log ``message`` as ``event`` with ``fields`` as top-level JSON keys (``None`` dropped)."""
    kept = {k: v for k, v in fields.items() if v is not None}
    logger.log(level, message, extra={"event": event, "fields": kept})
