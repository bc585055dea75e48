"""Every error and warning stac-coh raises on purpose.

Messages are full sentences that name the input at fault and say what to do. Each error
also inherits the builtin it refines, so callers that catch ``ValueError`` or
``FileNotFoundError`` keep working.
"""

from __future__ import annotations


class StacCohError(Exception):
    """Base of all stac-coh errors."""

    #: Process exit code for the command line and the AWS Batch worker.
    exit_code: int = 1


class InputError(StacCohError, ValueError):
    """The user's input is wrong; retrying will not help."""

    exit_code = 2


class WeightsError(InputError):
    """A weight file cannot be read or does not fit the model."""


class RasterReadError(StacCohError, OSError):
    """A raster could not be opened or read (missing, corrupt, forbidden)."""

    exit_code = 3


class SearchError(StacCohError):
    """A STAC search failed or returned nothing usable."""

    exit_code = 4


class NoPairsError(SearchError):
    """A search found items, but no pair satisfies the pairing rules."""


class SourceUnreachableError(SearchError, ConnectionError):
    """A STAC API or token service could not be reached."""

    exit_code = 75  # EX_TEMPFAIL: worth a retry


class StorageError(StacCohError, OSError):
    """Reading or writing the output store failed."""

    exit_code = 75


class ConflictError(StorageError):
    """A conditional write lost a race (the object exists or changed)."""


class TransientError(StacCohError):
    """A failure that a later retry may not see (throttling, 5xx, expired token)."""

    exit_code = 75


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


class TransientReadError(RasterReadError):
    """A raster read failed in a way a retry may not see (throttling, 5xx, timeout, no route)."""

    exit_code = 75
