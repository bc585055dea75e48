"""Stop requests (SIGTERM, SIGINT) that end a run promptly and cleanly.

``kill``, AWS Batch (Spot reclaim, timeouts) and Ctrl-C all mean "stop": the running pair
is interrupted as Ctrl-C would (its scratch files are removed by the context managers
that made them), it is recorded as interrupted, and no new pair starts. Between pairs a
request only sets :attr:`StopSignals.requested`; a second request interrupts whatever is
running, so a stuck step never traps the user.
"""

from __future__ import annotations

import signal
from collections.abc import Sequence
from types import FrameType
from typing import Any

__all__ = ["STOP_SIGNALS", "StopSignals", "interrupted_exit_code"]

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
"""What a run treats as a stop request."""


def interrupted_exit_code(received: signal.Signals | None) -> int:
    """128 + the signal number, as shells report it: 130 for Ctrl-C, 143 for SIGTERM."""
    return 128 + int(received or signal.SIGINT)


class StopSignals:
    """Context manager: while active, stop signals become stop requests.

    Args:
        signals: Signals to handle (``()`` installs nothing: no stop requests).
    """

    def __init__(self, signals: Sequence[signal.Signals] = STOP_SIGNALS) -> None:
        self.signals = tuple(signals)
        self.received: signal.Signals | None = None
        self._in_pair = False
        self._previous: dict[signal.Signals, Any] = {}

    @property
    def requested(self) -> bool:
        """Whether a stop signal arrived."""
        return self.received is not None

    def __enter__(self) -> StopSignals:
        for sig in self.signals:
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def pair_started(self) -> None:
        """From now until :meth:`pair_done`, a stop request interrupts the running pair."""
        self._in_pair = True

    def pair_done(self) -> None:
        """Back between pairs: a first stop request only sets :attr:`requested`."""
        self._in_pair = False

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        """Signal handler: remember the request; interrupt a running pair (or a 2nd request)."""
        again = self.received is not None
        self.received = signal.Signals(signum)
        if self._in_pair or again:
            self._in_pair = False  # one interrupt per pair is enough
            raise KeyboardInterrupt
