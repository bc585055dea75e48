"""Every error and warning stac-coh raises on purpose, and the exit codes they map to.

Messages are full sentences that name the input at fault and say what to do. Each error
also inherits the builtin it refines, so callers that catch ``ValueError`` or
``FileNotFoundError`` keep working.

Every command exits with a code of :data:`EXIT_CODES` (printed by ``stac-coh --help`` and
in the README): a script or a scheduler can tell "fix the command" (2-6) from "try again
later" (75). Permanent errors never exit 75.
"""

from __future__ import annotations

EXIT_OK = 0
"""Everything asked for was done."""
EXIT_FAILED = 1
"""Some pairs failed (the others are published; the run report names them), or a bug."""
EXIT_BAD_INPUT = 2
"""Wrong options, settings, files or manifests: fix the command line, retrying will not help."""
EXIT_UNREADABLE = 3
"""An input raster could not be read (missing, corrupt, forbidden)."""
EXIT_NOTHING_FOUND = 4
"""A search found no items, or no valid pair among them."""
EXIT_OUTPUT = 5
"""The output location cannot be written (permissions, not a folder, no bucket, no credentials)."""
EXIT_UNUSABLE = 6
"""The command ran but its result is unusable (e.g. no valid pixel)."""
EXIT_DEVICE = 69
"""The GPU is missing or failed (EX_UNAVAILABLE): the host is at fault; Batch retries."""
EXIT_TRANSIENT = 75
"""Temporary failure (offline, name resolution, throttling, 5xx, expired token): retry later."""
EXIT_INTERRUPTED = 130
"""Interrupted (Ctrl-C); a re-run continues where it stopped."""
EXIT_TERMINATED = 143
"""Stopped by SIGTERM (``kill``, a scheduler), cleaned up as on Ctrl-C; a re-run continues."""

EXIT_CODES: tuple[tuple[int, str], ...] = (
    (EXIT_OK, "success"),
    (EXIT_FAILED, "some pairs failed (see the run report), or an unexpected error"),
    (EXIT_BAD_INPUT, "bad input: options, settings (STAC_COH_*), files or manifests"),
    (EXIT_UNREADABLE, "an input raster could not be read (missing, corrupt, forbidden)"),
    (EXIT_NOTHING_FOUND, "the search found no items or no valid pair"),
    (EXIT_OUTPUT, "the output cannot be written (permissions, bucket, credentials)"),
    (EXIT_UNUSABLE, "the result is unusable (no valid pixel)"),
    (EXIT_DEVICE, "the GPU is missing or failed (a host fault): retry, on another host"),
    (EXIT_TRANSIENT, "temporary failure (network, throttling, 5xx, expired token): retry"),
    (EXIT_INTERRUPTED, "interrupted (Ctrl-C); run the same command again to continue"),
    (EXIT_TERMINATED, "stopped by SIGTERM (kill, a scheduler); run it again to continue"),
)
"""The exit-code table, in the order the help and the README print it."""


class StacCohError(Exception):
    """Base of all stac-coh errors."""

    #: Process exit code for the command line (see :data:`EXIT_CODES`).
    exit_code: int = EXIT_FAILED


class InputError(StacCohError, ValueError):
    """The user's input is wrong; retrying will not help."""

    exit_code = EXIT_BAD_INPUT


class WeightsError(InputError):
    """A weight file cannot be read or does not fit the model."""


class RasterReadError(StacCohError, OSError):
    """A raster could not be opened or read (missing, corrupt, forbidden)."""

    exit_code = EXIT_UNREADABLE


class SearchError(StacCohError):
    """A STAC search failed or returned nothing usable."""

    exit_code = EXIT_NOTHING_FOUND


class NoPairsError(SearchError):
    """A search found items, but no pair satisfies the pairing rules."""


class SourceUnreachableError(SearchError, ConnectionError):
    """A STAC API or token service could not be reached."""

    exit_code = EXIT_TRANSIENT  # EX_TEMPFAIL: worth a retry


class StorageError(StacCohError, OSError):
    """Reading or writing the output location failed for good (permissions, no bucket, ...).

    Failures a retry may not see are :class:`TransientStorageError`.
    """

    exit_code = EXIT_OUTPUT


class ConflictError(StorageError):
    """A conditional write lost a race (the object exists or changed)."""

    exit_code = EXIT_TRANSIENT


class TransientError(StacCohError):
    """A failure that a later retry may not see (throttling, 5xx, expired token)."""

    exit_code = EXIT_TRANSIENT


class StacCohWarning(UserWarning):
    """Base of all stac-coh warnings: something works, but not as the user may expect."""


class WeightsProvenanceWarning(StacCohWarning):
    """The weights in use are not the published ones (e.g. the bundled demo weights)."""


class ObjectNotFoundError(StorageError, FileNotFoundError):
    """A key asked of the output store does not exist (yet)."""


class AnnotationError(InputError):
    """A Sentinel-1 annotation XML (calibration, noise, product) is missing or malformed."""


class BatchError(StacCohError):
    """AWS Batch refused or failed a request (unknown queue or job definition, permissions)."""


class TransientReadError(RasterReadError, TransientError):
    """A raster read failed in a way a retry may not see (throttling, 5xx, timeout, no route)."""

    exit_code = EXIT_TRANSIENT


class TransientStorageError(StorageError, TransientError):
    """The output location failed in a way a retry may not see (network, throttling, 5xx)."""

    exit_code = EXIT_TRANSIENT


class UnusableResultError(StacCohError):
    """A command ran, but what it produced is unusable (e.g. a map without a valid pixel)."""

    exit_code = EXIT_UNUSABLE


class HostUnresolvedError(StacCohError, ConnectionError):
    """A host name does not resolve (offline, DNS down, or a typo): not retried in-process."""

    exit_code = EXIT_TRANSIENT


class PrecisionWarning(StacCohWarning):
    """An explicitly chosen numeric precision is emulated (slow) on this device."""


class InputDomainWarning(StacCohWarning):
    """A pair's looks, level or relative gain lie outside the weights' training domain."""


class DeviceError(StacCohError):
    """The GPU is missing or failed (a CUDA runtime error): the host, not the pair, is at fault.

    Raised by the AWS Batch worker only: a new process clears a CUDA context that an error
    left unusable, so the worker exits 69 (EX_UNAVAILABLE) and the job definition retries it.
    """

    exit_code = EXIT_DEVICE
