"""How one AWS Batch attempt of `stac-coh worker` runs: last attempts, logs, exit codes."""

from __future__ import annotations

import os
from typing import Any

from stac_coh.errors import InputError

__all__ = [
    "ENV_ATTEMPT",
    "ENV_MAX_ATTEMPTS",
    "guarded",
    "is_last_attempt",
    "parse_last_attempt",
    "required",
    "start_logging",
]

ENV_MAX_ATTEMPTS = "STAC_COH_MAX_ATTEMPTS"
ENV_ATTEMPT = "AWS_BATCH_JOB_ATTEMPT"
_SECRET_NAMES = ("SECRET", "TOKEN", "PASSWORD", "CREDENTIAL")


def guarded(body: Any, stop: Any, *, last_attempt: bool = False) -> int:
    """Run ``body``; what escapes it becomes a log line and an exit code (0 on a last attempt)."""
    import logging

    from stac_coh.batch.logs import log_event
    from stac_coh.batch.worker import EXIT_DEVICE, EXIT_OK, EXIT_RETRY, exit_code_for_error

    log = logging.getLogger("stac_coh.worker")
    try:
        return int(body())
    except KeyboardInterrupt:
        name = stop.received.name if stop.received else "SIGINT"
        log_event(log, "worker.stop", f"{name} received: stopping", level=logging.WARNING)
        code = EXIT_RETRY
    except Exception as exc:
        code = exit_code_for_error(exc)
        log.log(
            logging.ERROR,
            "%s: %s",
            type(exc).__name__,
            exc,
            exc_info=code == 1,  # a bug: keep the traceback
            extra={"event": "worker.error", "fields": {"exit_code": code}},
        )
    if last_attempt and code in (EXIT_RETRY, EXIT_DEVICE):
        log_event(log, "worker.done", f"last attempt: exit 0, not {code}", exit_code=EXIT_OK)
        return EXIT_OK
    return code


def start_logging(verbose: int) -> Any:
    """JSON logs on stderr; every secret-looking environment value is blanked in them."""
    from stac_coh.batch.logs import configure_json_logging

    secrets = [v for k, v in os.environ.items() if any(w in k.upper() for w in _SECRET_NAMES)]
    return configure_json_logging(secrets=secrets, verbose=verbose)


def required(value: str | None, option: str, env: str) -> str:
    """The value, or an error naming the option and its environment variable."""
    if not value:
        raise InputError(f"{option} is missing: pass it or set {env} (stac-coh submit sets it).")
    return value


def is_last_attempt(attempt: str | None, max_attempts: str | None) -> bool:
    """:func:`parse_last_attempt`, False where it would raise (the body reports that)."""
    try:
        return parse_last_attempt(attempt, max_attempts)
    except InputError:
        return False


def parse_last_attempt(attempt: str | None, max_attempts: str | None) -> bool:
    """Whether AWS Batch will not retry this attempt (both numbers known and equal)."""
    try:
        return bool(attempt and max_attempts) and int(attempt or 0) >= int(max_attempts or 0)
    except ValueError:
        raise InputError(
            f"{ENV_ATTEMPT}={attempt!r} and {ENV_MAX_ATTEMPTS}={max_attempts!r} must be integers."
        ) from None
