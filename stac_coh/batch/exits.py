"""The worker's exit codes: the contract with the job definitions' retry strategy.

``infra/stac-coh.yaml`` retries every exit code but 1 and 2, so a new code stays retried
unless the template says otherwise; ``batch/README.md`` lists them.
"""

from __future__ import annotations

__all__ = ["EXIT_BAD_INPUT", "EXIT_BUG", "EXIT_DEVICE", "EXIT_OK", "EXIT_RETRY"]

EXIT_OK = 0
"""Every pair done or failed for good (and recorded); also every last attempt."""
EXIT_BUG = 1
"""An unexpected error (a bug): not retried; the traceback is in the log."""
EXIT_BAD_INPUT = 2
"""Unusable input (manifest, index, settings): not retried."""
EXIT_DEVICE = 69
"""EX_UNAVAILABLE: the GPU is missing or failed; retried in a new container."""
EXIT_RETRY = 75
"""EX_TEMPFAIL: a transient failure or a stop request; retried."""
