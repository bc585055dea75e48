"""Training and evaluation data on disk: the dataset layout and raster reading/writing.

A dataset is a list of scenes, each two input rasters (linear backscatter t1, t2) and one or
more label rasters on the same grid. Two layouts are read:

* ``index.json`` (what ``stac-coh simulate`` writes)::

      {"format": "stac-coh/dataset/1",
       "scenes": [{"id": "scene_00000", "t1": "t1/scene_00000.tif", "t2": "t2/...",
                   "labels": {"coherence": "coherence/...", "boxcar": "boxcar/..."},
                   "landcover": "landcover/...", "split": "train"}]}

* a CSV with a header: columns ``t1``, ``t2`` and one column per label kind (e.g.
  ``coherence``), optional ``id`` and ``split`` (``train``/``val``). For HyP3 or SNAP
  products: ``t1``/``t2`` the RTC backscatter (linear power), ``coherence`` the coherence
  raster, all warped onto one grid first (``gdalwarp -tr 10 10 -tap``).

Relative paths resolve against the index/CSV file's folder.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import rasterio
from rasterio.errors import RasterioIOError

from stac_coh.errors import InputError, RasterReadError

__all__ = [
    "DATASET_FORMAT",
    "DatasetEntry",
    "Raster",
    "load_pair",
    "read_dataset",
    "read_raster",
    "split_entries",
    "write_geotiff",
    "write_index",
]

DATASET_FORMAT = "stac-coh/dataset/1"
"""Version of ``index.json``."""


@dataclass(frozen=True)
class DatasetEntry:
    """One scene of a dataset; paths are absolute once read, relative when written."""

    id: str
    """Scene name."""
    t1: str
    """Earlier backscatter raster (linear power)."""
    t2: str
    """Later backscatter raster (linear power)."""
    labels: dict[str, str] = field(default_factory=dict)
    """Label rasters by kind, e.g. ``coherence`` (true) or ``boxcar``."""
    landcover: str | None = None
    """Optional class raster for per-class metrics."""
    split: str | None = None
    """``train`` or ``val`` when the dataset fixes it; None lets training choose."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Anything else recorded with the scene (seed, misregistration)."""


@dataclass(frozen=True)
class Raster:
    """A decoded single-band raster: values with NaN as nodata, plus its grid."""

    values: npt.NDArray[np.float32]
    """Decoded values (scale/offset applied), NaN where nodata."""
    crs: str
    """CRS as a string."""
    transform: tuple[float, ...]
    """Affine coefficients (a, b, c, d, e, f)."""


def write_index(outdir: Path, entries: list[DatasetEntry], *, description: str = "") -> Path:
    """Write ``OUTDIR/index.json`` listing ``entries`` (paths relative to OUTDIR)."""
    body = {
        "format": DATASET_FORMAT,
        "description": description,
        "scenes": [
            {
                "id": e.id,
                "t1": e.t1,
                "t2": e.t2,
                "labels": e.labels,
                **({"landcover": e.landcover} if e.landcover else {}),
                **({"split": e.split} if e.split else {}),
                **e.extra,
            }
            for e in entries
        ],
    }
    outdir.mkdir(parents=True, exist_ok=True)
    path = outdir / "index.json"
    path.write_text(json.dumps(body, indent=2))
    return path


def read_dataset(path: str | Path) -> list[DatasetEntry]:
    """Read a dataset from an ``index.json``, a CSV, or a folder holding ``index.json``."""
    path = Path(path)
    if path.is_dir():
        path = path / "index.json"
    if not path.exists():
        raise InputError(
            f"Dataset {path} does not exist; pass a folder written by `stac-coh simulate`, "
            "its index.json, or a CSV with columns t1,t2,<label>."
        )
    base = path.parent
    if path.suffix.lower() == ".csv":
        with path.open(newline="") as fh:
            rows = list(csv.DictReader(fh))
        entries = [_entry_from_csv(row, i, base) for i, row in enumerate(rows)]
    else:
        try:
            body = json.loads(path.read_text())
            entries = [_entry_from_json(s, base) for s in body["scenes"]]
        except (ValueError, KeyError, TypeError) as exc:
            raise InputError(f"{path} is not a stac-coh dataset index ({exc}).") from None
    if not entries:
        raise InputError(f"Dataset {path} lists no scenes.")
    return entries


def _resolve(base: Path, rel: str) -> str:
    """Absolute path of ``rel``; URLs and absolute paths pass through."""
    return rel if "://" in rel or Path(rel).is_absolute() else str(base / rel)


def _entry_from_json(scene: dict[str, Any], base: Path) -> DatasetEntry:
    """One scene of an index.json."""
    known = {"id", "t1", "t2", "labels", "landcover", "split"}
    return DatasetEntry(
        id=str(scene.get("id", Path(scene["t1"]).stem)),
        t1=_resolve(base, scene["t1"]),
        t2=_resolve(base, scene["t2"]),
        labels={k: _resolve(base, v) for k, v in scene.get("labels", {}).items()},
        landcover=_resolve(base, scene["landcover"]) if scene.get("landcover") else None,
        split=scene.get("split"),
        extra={k: v for k, v in scene.items() if k not in known},
    )


def _entry_from_csv(row: dict[str, str], index: int, base: Path) -> DatasetEntry:
    """One row of a dataset CSV."""
    if not row.get("t1") or not row.get("t2"):
        raise InputError(f"Dataset CSV row {index + 2} needs t1 and t2 columns with paths.")
    special = {"id", "t1", "t2", "landcover", "split"}
    return DatasetEntry(
        id=row.get("id") or f"row_{index:05d}",
        t1=_resolve(base, row["t1"]),
        t2=_resolve(base, row["t2"]),
        labels={k: _resolve(base, v) for k, v in row.items() if k not in special and v},
        landcover=_resolve(base, row["landcover"]) if row.get("landcover") else None,
        split=row.get("split") or None,
    )


def read_raster(path: str | Path) -> Raster:
    """Read band 1 with nodata as NaN and scale/offset applied (works for COGs and GeoTIFFs)."""
    try:
        with rasterio.open(path) as ds:
            data = ds.read(1, masked=True)
            scale = ds.scales[0] if ds.scales else 1.0
            offset = ds.offsets[0] if ds.offsets else 0.0
            crs = ds.crs.to_string() if ds.crs else ""
            transform = tuple(ds.transform)[:6]
    except RasterioIOError as exc:
        raise RasterReadError(f"Cannot read raster {path}: {exc}") from None
    values = data.astype(np.float32).filled(np.nan) * np.float32(scale) + np.float32(offset)
    return Raster(values=values.astype(np.float32), crs=crs, transform=transform)


def load_pair(
    entry: DatasetEntry, label: str | None
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32], npt.NDArray[np.float32] | None]:
    """Read t1, t2 and (when ``label`` is given) that label raster, checking they share a grid."""
    t1 = read_raster(entry.t1)
    t2 = read_raster(entry.t2)
    rasters = [(entry.t1, t1), (entry.t2, t2)]
    target = None
    if label is not None:
        if label not in entry.labels:
            raise InputError(
                f"Scene {entry.id} has no label {label!r}; it has {sorted(entry.labels)}. "
                "Pick one with --label."
            )
        target = read_raster(entry.labels[label])
        rasters.append((entry.labels[label], target))
    ref_path, ref = rasters[0]
    for other_path, other in rasters[1:]:
        same = other.values.shape == ref.values.shape and all(
            math.isclose(a, b, abs_tol=1e-6)
            for a, b in zip(other.transform, ref.transform, strict=False)
        )
        if not same:
            raise InputError(
                f"{other_path} is not on the grid of {ref_path} "
                f"({other.values.shape} vs {ref.values.shape}); warp both onto one grid "
                "(e.g. gdalwarp -te ... -tr 10 10) before training or evaluating."
            )
    return t1.values, t2.values, None if target is None else target.values


def write_geotiff(
    path: Path,
    array: npt.NDArray[Any],
    crs: str,
    transform: tuple[float, ...],
    nodata: float,
    description: str = "",
) -> Path:
    """Write a single-band tiled, compressed GeoTIFF."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rows, cols = array.shape
    is_float = np.dtype(array.dtype).kind == "f"
    profile = {
        "driver": "GTiff",
        "width": cols,
        "height": rows,
        "count": 1,
        "dtype": array.dtype.name,
        "crs": crs,
        "transform": rasterio.Affine(*transform[:6]),
        "nodata": nodata,
        "compress": "deflate",
        "predictor": 3 if is_float else 2,
        "tiled": rows >= 256 and cols >= 256,
        "blockxsize": 256,
        "blockysize": 256,
    }
    if not profile["tiled"]:
        for key in ("tiled", "blockxsize", "blockysize"):
            profile.pop(key)
    with rasterio.open(path, "w", **profile) as ds:
        ds.write(array, 1)
        if description:
            ds.set_band_description(1, description)
    return path


def split_entries(
    entries: list[DatasetEntry], fraction: float, seed: int
) -> tuple[list[DatasetEntry], list[DatasetEntry]]:
    """Train/val scenes: the dataset's own split when given, else a seeded random share."""
    if any(e.split for e in entries):
        val = [e for e in entries if e.split == "val"]
        return [e for e in entries if e.split != "val"], val
    if fraction <= 0 or len(entries) < 2:
        return entries, []
    order = np.random.default_rng([seed, 7]).permutation(len(entries))
    n_val = max(1, round(fraction * len(entries)))
    val_ids = {int(i) for i in order[:n_val]}
    train = [e for i, e in enumerate(entries) if i not in val_ids]
    return train, [e for i, e in enumerate(entries) if i in val_ids]
