"""Streaming I/O of the inference engine: a read-ahead thread and atomic COG outputs.

Reading the next windows overlaps with computing the current ones; finished tiles go
straight to a tiled GeoTIFF on disk, which becomes the COG at the end. Nothing holds the
whole scene, so memory depends on tile size and batch, not on scene size.
"""

from __future__ import annotations

import contextlib
import math
import os
import queue
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt
import rasterio
import rasterio.env
from rasterio.windows import Window

from stac_coh.grid import OutputGrid
from stac_coh.infer.tiling import TileWindow
from stac_coh.io.cog import Encoding, decode, encode, translate_to_cog
from stac_coh.io.gdal_env import CLOUD_DEFAULTS, gdal_env

__all__ = ["CogSink", "OutputStats", "capture_gdal_options", "prefetch"]

T = TypeVar("T")
R = TypeVar("R")

_DONE = object()
_POLL_S = 0.1

INTERMEDIATE_BLOCK = 256
"""Block edge of the intermediate GeoTIFF (uncompressed, so partial blocks write in place)."""


def capture_gdal_options() -> dict[str, Any]:
    """The caller's active GDAL options (``rasterio.Env``), or the cloud defaults if none."""
    if rasterio.env.hasenv():
        return dict(rasterio.env.getenv())
    return dict(CLOUD_DEFAULTS)


def prefetch(
    items: Iterable[T],
    read: Callable[[T], R],
    *,
    depth: int,
    gdal_options: Mapping[str, Any] | None = None,
) -> Iterator[tuple[T, R]]:
    """Yield ``(item, read(item))`` in order, reading up to ``depth`` items ahead in a thread.

    The thread enters ``gdal_env(gdal_options)`` because threads do not inherit a
    ``rasterio.Env``. An exception in the thread is re-raised here; leaving the loop early
    (break or error) stops the thread.
    """
    slots: queue.Queue[Any] = queue.Queue(maxsize=max(1, depth))
    stop = threading.Event()

    def put(value: object) -> None:
        while not stop.is_set():
            try:
                slots.put(value, timeout=_POLL_S)
                return
            except queue.Full:
                continue

    def work() -> None:
        try:
            with gdal_env(gdal_options):
                for item in items:
                    if stop.is_set():
                        return
                    put((item, read(item)))
        except BaseException as exc:
            put(exc)
        finally:
            put(_DONE)

    thread = threading.Thread(target=work, name="stac-coh-prefetch", daemon=True)
    thread.start()
    try:
        while (got := slots.get()) is not _DONE:
            if isinstance(got, BaseException):
                raise got
            yield got
    finally:
        stop.set()
        thread.join()


@dataclass
class OutputStats:
    """Running statistics of the values written (after encoding, as a reader decodes them)."""

    count: int = 0
    total: float = 0.0
    total_sq: float = 0.0
    minimum: float = math.inf
    maximum: float = -math.inf

    def add(self, values: npt.NDArray[np.floating]) -> None:
        """Accumulate the finite values of an array."""
        finite = values[np.isfinite(values)].astype(np.float64)
        if finite.size == 0:
            return
        self.count += int(finite.size)
        self.total += float(finite.sum())
        self.total_sq += float(np.square(finite).sum())
        self.minimum = min(self.minimum, float(finite.min()))
        self.maximum = max(self.maximum, float(finite.max()))

    @property
    def mean(self) -> float:
        """Mean of the values (NaN when none)."""
        return self.total / self.count if self.count else math.nan

    @property
    def std(self) -> float:
        """Population standard deviation (NaN when none)."""
        if not self.count:
            return math.nan
        return math.sqrt(max(self.total_sq / self.count - self.mean**2, 0.0))


class CogSink:
    """Single-band outputs written window by window, published as COGs only on success.

    Tiles go into uncompressed tiled GeoTIFFs in a scratch directory; :meth:`commit` turns
    each into a COG beside its final path and renames it into place, so a final path only
    ever holds a complete file. Leaving the ``with`` block without a commit (an error)
    removes every intermediate and partial file.
    """

    def __init__(
        self,
        grid: OutputGrid,
        outputs: Mapping[str, Path],
        encoding: Encoding,
        *,
        workdir: Path | None = None,
    ) -> None:
        self._grid = grid
        self._outputs = dict(outputs)
        self._encoding = encoding
        self._workdir = workdir
        self._scratch: Path | None = None
        self._datasets: dict[str, Any] = {}
        self._partials: list[Path] = []
        self.stats = {name: OutputStats() for name in self._outputs}

    def __enter__(self) -> CogSink:
        first = next(iter(self._outputs.values()))
        for path in self._outputs.values():
            path.parent.mkdir(parents=True, exist_ok=True)
        parent = self._workdir or first.parent
        parent.mkdir(parents=True, exist_ok=True)
        self._scratch = Path(tempfile.mkdtemp(prefix=".stac-coh-", dir=parent))
        try:
            for name in self._outputs:
                self._datasets[name] = self._open(self._scratch / f"{name}.tif", name)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _open(self, path: Path, description: str) -> Any:
        """Create one intermediate GeoTIFF with the encoding's scale, offset and nodata."""
        enc = self._encoding
        ds = rasterio.open(
            path,
            "w",
            driver="GTiff",
            width=self._grid.width,
            height=self._grid.height,
            count=1,
            dtype=enc.dtype,
            crs=self._grid.rasterio_crs,
            transform=self._grid.affine,
            nodata=enc.nodata,
            tiled=True,
            blockxsize=INTERMEDIATE_BLOCK,
            blockysize=INTERMEDIATE_BLOCK,
            sparse_ok=True,
            bigtiff="IF_SAFER",
        )
        ds.scales = (enc.scale,)
        ds.offsets = (enc.offset,)
        ds.set_band_description(1, description)
        return ds

    def write(self, name: str, window: TileWindow, values: npt.NDArray[np.floating]) -> None:
        """Encode a core window of values in [0, 1] (NaN = nodata) and write it."""
        stored = encode(values, self._encoding)
        self.stats[name].add(decode(stored, self._encoding))
        win = Window(window.col_off, window.row_off, window.width, window.height)
        self._datasets[name].write(stored, 1, window=win)

    def commit(self) -> dict[str, Path]:
        """Close the intermediates, convert each to a COG and move it to its final path."""
        assert self._scratch is not None, "commit() outside the with block"
        self._close_datasets()
        ready = []
        for name, final in self._outputs.items():
            partial = final.with_name(f".{final.stem}.{os.getpid()}.partial{final.suffix}")
            self._partials.append(partial)
            translate_to_cog(self._scratch / f"{name}.tif", partial)
            ready.append((partial, final))
        for partial, final in ready:
            partial.replace(final)
        self._partials.clear()
        return dict(self._outputs)

    def _close_datasets(self) -> None:
        for ds in self._datasets.values():
            ds.close()
        self._datasets.clear()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._close_datasets()
        for partial in self._partials:
            with contextlib.suppress(FileNotFoundError):
                partial.unlink()
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)
