"""Constants the command line needs at import time, kept free of heavy imports.

Typer builds option defaults and help texts when ``stac_coh.cli`` is imported, so the values
they show live here rather than in modules that pull in torch, rasterio or pystac; those
modules import them from here, so there is one definition of each.
"""

from __future__ import annotations

__all__ = [
    "ARRAY_INDEX_ENV",
    "CARD_SUFFIX",
    "DEFAULT_COLLECTION_ID",
    "DEFAULT_COMPOSITE_COLLECTION_ID",
    "DEFAULT_REFERENCE_BLOCK",
    "DEFAULT_TILE",
    "DEVICES",
    "DTYPES",
    "ENV_INDEX_OFFSET",
    "ENV_MANIFEST",
    "ENV_OUT",
    "ENV_PAIRS_PER_JOB",
    "ENV_PUBLIC_URL",
    "ENV_RUN_ID",
    "ENV_WEIGHTS",
    "ESTIMATORS",
    "MODES",
    "PRECISIONS",
    "PUBLISHED_NAME",
]

# Inference (stac_coh.infer.engine, stac_coh.infer.predictors).

MODES: tuple[str, ...] = ("fast", "reference")
"""What ``--mode`` accepts."""

DTYPES: tuple[str, ...] = ("uint8", "float32")
"""What ``--dtype`` accepts: the stored coherence type (uint8 with scale 0.004, or float32)."""

DEFAULT_TILE = 1024
"""Largest inner core edge of ``fast`` mode.

Every fast-mode read is at most ``DEFAULT_TILE + 2 * halo`` = 1312 pixels square with the
ResUNet's 144-pixel halo: about 2.5 GB peak RSS on CPU in float32 with
:func:`stac_coh.infer.engine.reuse_freed_memory` (1.6-1.8 GB without), whatever the scene size
(measured with ``benchmarks/bench_inference.py``). Scenes are split evenly, so
a 2048 x 2048 scene reads four 1168 x 1168 tiles (1.3x the core pixels); inner tiles of
large scenes compute up to 1.64x their core. Larger tiles waste less on halos but need
more memory.
"""

DEFAULT_REFERENCE_BLOCK = 4096
"""Block edge of ``reference`` mode: scenes up to this size compute each published patch
exactly once; larger ones recompute the patches on block borders (~2 % more), and the
block's accumulators take ~0.5 GB."""

ESTIMATORS = ("resunet", "siegert")
"""What ``--estimator`` accepts."""

# Weights (stac_coh.model.weights).

CARD_SUFFIX = ".card.json"
"""Appended to the weight file's name to name the sidecar card."""

PUBLISHED_NAME = "beyond-backscatter-grd-gee"
"""Card name of the published weights (Hugging Face ``FPSica/beyond-backscatter-grd-gee``)."""

# Catalog (stac_coh.publish.collection).

DEFAULT_COLLECTION_ID = "sentinel-1-coherence"
"""Collection id unless the user picks another."""

DEFAULT_COMPOSITE_COLLECTION_ID = "sentinel-1-coherence-seasonal"
"""Collection of the seasonal composites (stac_coh.composite), beside the pair collection."""

# AWS Batch environment of a worker child (stac_coh.batch.plan).

ENV_MANIFEST = "STAC_COH_MANIFEST"
"""``s3://`` URI of the run's manifest."""
ENV_PAIRS_PER_JOB = "STAC_COH_PAIRS_PER_JOB"
"""Pairs each child processes (the last child may get fewer)."""
ENV_INDEX_OFFSET = "STAC_COH_INDEX_OFFSET"
"""Global child index of array index 0 of this job (non-zero past 10,000 children)."""
ENV_OUT = "STAC_COH_OUT"
"""``s3://bucket/prefix`` of the output catalog."""
ENV_RUN_ID = "STAC_COH_RUN_ID"
"""Run id, for logs and the run report."""
ARRAY_INDEX_ENV = "AWS_BATCH_JOB_ARRAY_INDEX"
"""Set by AWS Batch in array children; absent in a plain job (= index 0)."""
ENV_WEIGHTS = "STAC_COH_WEIGHTS"
"""Weights of the worker children: ``submit`` sets the ``s3://`` URI of the run's copy."""

ENV_PUBLIC_URL = "STAC_COH_PUBLIC_URL"
"""HTTP(S) URL readers use for the catalog root (self links of items and the collection)."""

# Devices (stac_coh.settings, --device).

DEVICES: tuple[str, ...] = ("auto", "cpu", "cuda", "mps")
"""What ``--device`` and ``STAC_COH_DEVICE`` accept."""

# Numeric precision of the network (stac_coh.infer.precision).

PRECISIONS: tuple[str, ...] = ("auto", "fp32", "bf16", "fp16")
"""What ``--precision`` accepts."""
