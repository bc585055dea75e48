"""Streaming I/O of the inference engine: read-ahead, write-behind and atomic COG outputs.

Reading the next windows (a read-ahead thread) and encoding and writing finished ones (a
write-behind thread) overlap with computing the current ones; finished tiles go straight
to a tiled GeoTIFF on disk, which becomes the COG at the end, every output converted at
once. Nothing holds the whole scene, so memory depends on tile size and batch, not on
scene size.
"""

from __future__ import annotations

import contextlib
import os
import queue
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import Any, Generic, Protocol, TypeVar

import numpy as np
import numpy.typing as npt
import rasterio
import rasterio.env
from rasterio.windows import Window

from stac_coh.grid import OutputGrid
from stac_coh.infer.outputs import OutputFacts, OutputStats, StageTimes
from stac_coh.infer.tiling import TileWindow
from stac_coh.io.cog import Encoding, encode, padded_size, translate_to_cog
from stac_coh.io.gdal_env import CLOUD_DEFAULTS, gdal_env

__all__ = [
    "CogSink",
    "OutputStats",
    "RenderFactory",
    "RenderSink",
    "WriteBehind",
    "capture_gdal_options",
    "prefetch",
    "run_concurrently",
]

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
    times: StageTimes | None = None,
) -> Iterator[tuple[T, R]]:
    """Yield ``(item, read(item))`` in order, reading up to ``depth`` items ahead in a thread.

    The thread enters ``gdal_env(gdal_options)`` because threads do not inherit a
    ``rasterio.Env``. An exception in the thread is re-raised here; leaving the loop early
    (break or error) stops the thread. ``times`` gets ``wait for input`` (the consumer
    blocked on an empty queue).
    """
    times = times or StageTimes()
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
        while True:
            with times.measure("wait for input"):
                got = slots.get()
            if got is _DONE:
                break
            if isinstance(got, BaseException):
                raise got
            yield got
    finally:
        stop.set()
        thread.join()


class WriteBehind(Generic[T]):
    """Run ``consume(item)`` on every item :meth:`put` here, in order, in one thread.

    At most ``depth`` items wait, so a slow consumer throttles the producer instead of
    filling memory. :meth:`close` waits for the last item; an exception in the thread is
    re-raised by the next :meth:`put` or by :meth:`close`. Leaving the ``with`` block on an
    error stops the thread without consuming what is left. ``done`` counts consumed items.
    The thread enters ``gdal_env(gdal_options)`` (threads do not inherit a ``rasterio.Env``).
    """

    def __init__(
        self,
        consume: Callable[[T], None],
        *,
        depth: int = 2,
        gdal_options: Mapping[str, Any] | None = None,
        times: StageTimes | None = None,
    ) -> None:
        self.done = 0
        self._consume = consume
        self._slots: queue.Queue[Any] = queue.Queue(maxsize=max(1, depth))
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._times = times or StageTimes()
        self._options = gdal_options
        self._thread = threading.Thread(target=self._work, name="stac-coh-write", daemon=True)

    def __enter__(self) -> WriteBehind[T]:
        self._thread.start()
        return self

    def _work(self) -> None:
        try:
            with gdal_env(self._options):
                while (item := self._slots.get()) is not _DONE and not self._stop.is_set():
                    self._consume(item)
                    self.done += 1
        except BaseException as exc:
            self._error = exc
            self._stop.set()

    def _raise(self) -> None:
        if self._error is not None:
            raise self._error

    def put(self, item: T) -> None:
        """Queue ``item`` (blocks while ``depth`` items wait)."""
        started = time.perf_counter()
        try:
            while True:
                self._raise()
                try:
                    self._slots.put(item, timeout=_POLL_S)
                    return
                except queue.Full:
                    continue
        finally:
            self._times.add("wait for writer", time.perf_counter() - started)

    def close(self) -> None:
        """Wait until every queued item is consumed; re-raise the thread's error."""
        while self._thread.is_alive():
            with contextlib.suppress(queue.Full):
                self._slots.put(_DONE, timeout=_POLL_S)
                break
        self._thread.join()
        self._raise()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
            return
        self._stop.set()
        while self._thread.is_alive():  # unblock a consumer waiting on an empty queue
            with contextlib.suppress(queue.Full):
                self._slots.put_nowait(_DONE)
            self._thread.join(timeout=_POLL_S)


class RenderSink(Protocol):
    """A picture (e.g. the ``visual`` COG) rendered from coherence in the same pass.

    It receives every core window of decoded coherence exactly as the coherence COG stores
    it (quantised, NaN = nodata), in the write-behind thread, and writes its file only in
    :meth:`commit`; :meth:`close` removes anything it left behind and may run twice.
    """

    def write(self, row_off: int, col_off: int, values: npt.NDArray[np.float32]) -> None:
        """Render one window of decoded coherence."""
        ...

    def commit(self) -> Path:
        """Write the finished file and return its path."""
        ...

    def close(self) -> None:
        """Release files and scratch space."""
        ...


RenderFactory = Callable[[OutputGrid], RenderSink]
"""Builds a :class:`RenderSink` for the output grid (e.g. ``publish.render.VisualSink``)."""


def run_concurrently(
    tasks: Mapping[str, Callable[[], R]], gdal_options: Mapping[str, Any] | None = None
) -> dict[str, R]:
    """Run independent tasks (COG conversions) in threads at once; re-raise the first error.

    GDAL releases the GIL while it compresses and builds overviews, so converting the
    coherence, uncertainty and visual files together takes about as long as the largest.
    """

    def run(task: Callable[[], R]) -> R:
        with gdal_env(gdal_options):
            return task()

    if len(tasks) <= 1:
        return {name: run(task) for name, task in tasks.items()}

    with ThreadPoolExecutor(max_workers=len(tasks), thread_name_prefix="stac-coh-cog") as pool:
        futures = {name: pool.submit(run, task) for name, task in tasks.items()}
        return {name: future.result() for name, future in futures.items()}


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
        self.encoding = encoding
        """How values are stored."""
        self.outputs: tuple[str, ...] = tuple(self._outputs)
        """Output names, in channel order (``coherence`` first)."""
        self._workdir = workdir
        self._scratch: Path | None = None
        self._datasets: dict[str, Any] = {}
        self._partials: list[Path] = []
        self.stats = {name: OutputStats(encoding) for name in self._outputs}

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

    def write(
        self, name: str, window: TileWindow, values: npt.NDArray[np.floating]
    ) -> npt.NDArray[np.generic]:
        """Encode a core window of values in [0, 1] (NaN = nodata), write it; return it stored."""
        stored = encode(values, self._encoding)
        self.stats[name].add(stored)
        win = Window(window.col_off, window.row_off, window.width, window.height)
        self._datasets[name].write(stored, 1, window=win)
        return stored

    def conversions(self) -> dict[str, Callable[[], Path]]:
        """Close the intermediates; one task per output that writes its COG beside its path.

        Run them (at once, :func:`run_concurrently`), then :meth:`publish` the results.
        """
        assert self._scratch is not None, "conversions() outside the with block"
        scratch = self._scratch
        self._close_datasets()
        tasks = {}
        for name, final in self._outputs.items():
            partial = final.with_name(f".{final.stem}.{os.getpid()}.partial{final.suffix}")
            self._partials.append(partial)
            tasks[name] = _converter(scratch / f"{name}.tif", partial)
        return tasks

    def publish(self) -> dict[str, Path]:
        """Move every converted COG to its final path (after :meth:`conversions` ran)."""
        for partial, final in zip(self._partials, self._outputs.values(), strict=True):
            partial.replace(final)
        self._partials.clear()
        return dict(self._outputs)

    def commit(self) -> dict[str, Path]:
        """Close the intermediates, convert them to COGs at once, move them into place."""
        run_concurrently(self.conversions())
        return self.publish()

    def facts(self) -> dict[str, OutputFacts]:
        """What each output holds, as written (padded size, encoding, exact statistics)."""
        width, height, _levels = padded_size(self._grid.width, self._grid.height)
        return {
            name: OutputFacts(path, self._encoding, width, height, self.stats[name])
            for name, path in self._outputs.items()
        }

    def _close_datasets(self) -> None:
        """Close the intermediate GeoTIFFs (idempotent)."""
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


def _converter(src: Path, dst: Path) -> Callable[[], Path]:
    """A task converting ``src`` into the COG ``dst``."""

    def convert() -> Path:
        translate_to_cog(src, dst)
        return dst

    return convert
