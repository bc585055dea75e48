"""Stop the worker before AWS Batch's attempt time limit does.

Batch kills an attempt that outlives ``AttemptDurationSeconds`` and does not retry it,
whatever the retry strategy says; the child's array job then fails and the finalize job
with it. So the job definition tells the worker its limit (``STAC_COH_TIME_LIMIT_SECONDS``)
and the worker sends itself SIGTERM a margin before: the running pair is interrupted and
recorded, and the child exits 75 (retried, published pairs skipped) or, on its last
attempt, 0.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
from collections.abc import Iterator, Mapping

from stac_coh.batch.logs import log_event
from stac_coh.errors import InputError

__all__ = ["ENV_TIME_LIMIT", "arm_deadline", "stop_before_time_limit", "stop_margin"]

log = logging.getLogger(__name__)

ENV_TIME_LIMIT = "STAC_COH_TIME_LIMIT_SECONDS"
"""The job definition's ``AttemptDurationSeconds``."""


def stop_margin(limit_s: float) -> float:
    """Seconds before the limit to stop: 5 %, at least 30 s (recording), at most 5 min."""
    return min(300.0, max(30.0, limit_s / 20))


def arm_deadline(env: Mapping[str, str]) -> threading.Timer | None:
    """Start a timer that sends this process SIGTERM :func:`stop_margin` before the limit.

    Call it once the SIGTERM handler is installed. Returns the timer (cancel it when the
    work ends), or None without a limit in ``env``.
    """
    text = env.get(ENV_TIME_LIMIT, "").strip()
    if not text:
        return None
    try:
        limit = float(text)
    except ValueError:
        raise InputError(f"{ENV_TIME_LIMIT}={text!r} must be a number of seconds.") from None
    delay = max(0.0, limit - stop_margin(limit))

    def fire() -> None:
        log_event(
            log,
            "worker.deadline",
            f"{delay:.0f} s of the {limit:.0f} s time limit used: stopping before AWS Batch "
            "kills this attempt (it would not retry it)",
            level=logging.WARNING,
            limit_s=limit,
        )
        os.kill(os.getpid(), signal.SIGTERM)

    timer = threading.Timer(delay, fire)
    timer.daemon = True
    timer.start()
    return timer


@contextlib.contextmanager
def stop_before_time_limit(env: Mapping[str, str]) -> Iterator[threading.Timer | None]:
    """:func:`arm_deadline` for the block (an unreadable limit is logged and ignored)."""
    try:
        timer = arm_deadline(env)
    except InputError as exc:
        log_event(log, "worker.deadline", f"{exc} Running without it.", level=logging.WARNING)
        timer = None
    try:
        yield timer
    finally:
        if timer is not None:
            timer.cancel()
