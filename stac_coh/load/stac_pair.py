"""Read windows of a pair's two acquisitions onto the pair's grid.

:func:`open_pair_reader` returns a :class:`~stac_coh.grid.PairReader`. Each
:meth:`~stac_coh.grid.PairReader.read` loads just that window of both acquisitions:
slices of one pass are mosaicked (the earliest valid pixel wins), every image is
resampled onto the pair grid (bilinear: identity where the grids align, and it does not
shift speckle by up to half a pixel as nearest would), source nodata becomes NaN, and
pixels outside the grid are NaN.

Hrefs are signed per window, just before the read, so a token never outlives a long
job; a refused read (HTTP 403) drops the token and is retried once with a fresh one.
This is also why a window is a fresh, eager load of its own ``GeoBox`` rather than a
slice of one lazy array built up front: a lazy graph would freeze signed URLs at build
time. Memory is bounded by the window, not the scene.

odc-stac is the main loader; stackstac (``loader="stackstac"``) is the alternative.
Radar-geometry GRD items are read by :func:`stac_coh.load.grd.reader.open_grd_pair_reader`
(calibration, thermal noise removal, geocoding with the product's GCPs), registered in
:data:`READERS`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Literal

import numpy as np
from affine import Affine

from stac_coh.errors import InputError, RasterReadError, TransientReadError
from stac_coh.grid import OutputGrid, PairReader
from stac_coh.io.faults import mark
from stac_coh.io.gdal_env import gdal_env
from stac_coh.io.net import check_resolves
from stac_coh.io.read_faults import classify_read
from stac_coh.io.signing import HrefSigner, strip_query
from stac_coh.load.grd.reader import open_grd_pair_reader
from stac_coh.search.manifest import Manifest, Pair, SourceSpec
from stac_coh.search.profiles import asset_key, is_radar_geometry, make_signer, read_gdal_options

__all__ = [
    "LOADERS",
    "READERS",
    "LoaderName",
    "StacPairReader",
    "as_loader_name",
    "open_pair_reader",
]

log = logging.getLogger(__name__)

LoaderName = Literal["odc", "stackstac"]
Item = dict[str, Any]
WindowLoader = Callable[[Sequence[Item], str, OutputGrid, str, Mapping[str, Any]], np.ndarray]
"""(items, asset key, window grid, resampling, GDAL options) -> (h, w) float32, NaN = no data."""


def open_pair_reader(
    pair: Pair,
    items: Manifest | Mapping[str, Item] | Iterable[Item],
    source: SourceSpec,
    *,
    loader: LoaderName = "odc",
    signer: HrefSigner | Literal["auto"] | None = "auto",
    gdal_options: Mapping[str, Any] | None = None,
    resampling: str = "bilinear",
) -> PairReader:
    """A reader of ``pair`` on ``pair.grid``.

    Args:
        pair: the pair to read.
        items: the manifest, or its items (by id, or as a list).
        source: where the items came from (decides asset key, signing, GDAL options).
        loader: ``odc`` (odc-stac) or ``stackstac``.
        signer: ``auto`` = the source's signer; or another signer; ``None`` = no signing.
        gdal_options: override the source's GDAL options.
        resampling: GDAL resampling name for both images.

    Raises:
        InputError: unknown loader, items missing from ``items``, no asset for the
            polarisation, or radar-geometry (GRD) items.
    """
    by_id = _items_by_id(items)
    acquisitions = []
    for acq in (pair.reference, pair.secondary):
        missing = [i for i in acq.item_ids if i not in by_id]
        if missing:
            raise InputError(
                f"Pair {pair.id}: items {missing} are not in the manifest; regenerate it "
                "with `stac-coh search --json`."
            )
        acquisitions.append([by_id[i] for i in acq.item_ids])
    kind = (
        "radar" if any(is_radar_geometry(source, it) for a in acquisitions for it in a) else "map"
    )
    return READERS[kind](
        pair,
        acquisitions,
        source,
        loader=loader,
        signer=make_signer(source) if signer == "auto" else signer,
        gdal_options=dict(gdal_options) if gdal_options is not None else read_gdal_options(source),
        resampling=resampling,
    )


class StacPairReader:
    """Reads windows of two map-projected acquisitions (e.g. RTC COGs) onto one grid."""

    def __init__(
        self,
        pair: Pair,
        acquisitions: Sequence[Sequence[Item]],
        source: SourceSpec,
        *,
        loader: LoaderName,
        signer: HrefSigner | None,
        gdal_options: Mapping[str, Any],
        resampling: str,
    ) -> None:
        if loader not in LOADERS:
            raise InputError(f"--loader {loader!r} is unknown; use one of {', '.join(LOADERS)}.")
        self._grid = pair.grid
        self._key = asset_key(source, pair.polarization)
        self._acquisitions = [list(a) for a in acquisitions]
        for item in (it for a in self._acquisitions for it in a):
            if self._key not in (item.get("assets") or {}):
                raise InputError(
                    f"Item {item.get('id')!r} has no asset {self._key!r} for "
                    f"{pair.polarization} (assets: {', '.join(item.get('assets') or {})}); "
                    f"map it with --asset-key {pair.polarization}=KEY."
                )
        self._load = LOADERS[loader]
        self._signer = signer
        self._options = dict(gdal_options)
        self._resampling = resampling

    @property
    def grid(self) -> OutputGrid:
        """The pair's grid."""
        return self._grid

    def read(self, row_off: int, col_off: int, height: int, width: int) -> np.ndarray:
        """(2, height, width) float32 (reference, secondary); NaN for no data or off-grid."""
        out = np.full((2, height, width), np.nan, dtype=np.float32)
        r0, r1 = max(row_off, 0), min(row_off + height, self._grid.height)
        c0, c1 = max(col_off, 0), min(col_off + width, self._grid.width)
        if r0 >= r1 or c0 >= c1:
            return out
        window = _window_grid(self._grid, r0, c0, r1 - r0, c1 - c0)
        rows, cols = slice(r0 - row_off, r1 - row_off), slice(c0 - col_off, c1 - col_off)
        for band, items in enumerate(self._acquisitions):
            out[band, rows, cols] = self._read_acquisition(items, window)
        return out

    def close(self) -> None:
        """Nothing stays open between windows."""

    def _read_acquisition(self, items: Sequence[Item], window: OutputGrid) -> np.ndarray:
        """Mosaic of one acquisition on ``window``; one re-sign and retry after a 403."""
        ids = [str(it.get("id")) for it in items]
        for item in items:  # GDAL would retry a host that does not resolve for ~50 s
            check_resolves(item["assets"][self._key]["href"])
        for attempt in (1, 2):
            signed = [self._signed(it) for it in items]
            try:
                with gdal_env(self._options):
                    return self._load(signed, self._key, window, self._resampling, self._options)
            except Exception as exc:
                message = _scrub(str(exc))
                hrefs = [it["assets"][self._key]["href"] for it in signed]
                fault = classify_read(exc, hrefs, self._options)
                if attempt == 1 and self._signer is not None and fault.forbidden:
                    log.info("Read of %s refused; renewing the signature", ids)
                    for it in items:
                        self._signer.invalidate(it["assets"][self._key]["href"])
                    continue
                error = TransientReadError if fault.transient else RasterReadError
                raise mark(
                    error(
                        f"Reading asset {self._key!r} of items {ids} failed "
                        f"({fault.code}, {fault.kind}): {message[:400]}"
                    ),
                    fault,
                ) from None
        raise AssertionError("unreachable")  # pragma: no cover

    def _signed(self, item: Item) -> Item:
        """A shallow copy of ``item`` holding only the wanted asset, its href signed."""
        asset = dict(item["assets"][self._key])
        if self._signer is not None:
            asset["href"] = self._signer.sign(asset["href"])
        return {**item, "assets": {self._key: asset}}


READERS: dict[str, Callable[..., PairReader]] = {
    "map": StacPairReader,
    "radar": open_grd_pair_reader,  # GRD in radar geometry: stac_coh/grd/
}
"""Reader per raster geometry (``map``: projected COGs; ``radar``: GRD with GCPs)."""


# --------------------------------------------------------------------------------------
# loaders: one window of one acquisition


def _odc_window(
    items: Sequence[Item], key: str, grid: OutputGrid, resampling: str, _: Mapping[str, Any]
) -> np.ndarray:
    """odc-stac: load ``key`` of ``items`` onto ``grid`` as one mosaicked plane."""
    import odc.stac
    import pystac
    from odc.geo.geobox import GeoBox

    geobox = GeoBox((grid.height, grid.width), grid.affine, grid.crs)
    # Without links: pystac would resolve relative-looking hrefs (local paths) against
    # the item's self link.
    stac_items = [pystac.Item.from_dict({**it, "links": []}, migrate=False) for it in items]
    data = odc.stac.load(
        stac_items,
        bands=[key],
        geobox=geobox,
        groupby=_one_group,
        resampling=resampling,
        dtype="float32",
        nodata=np.nan,
        fail_on_error=True,
    )[key]
    return np.asarray(data.values[0], dtype=np.float32)


def _one_group(*_: Any) -> int:
    """odc-stac groupby: every item of an acquisition lands in the same plane."""
    return 0


def _stackstac_window(
    items: Sequence[Item], key: str, grid: OutputGrid, resampling: str, options: Mapping[str, Any]
) -> np.ndarray:
    """stackstac: stack ``key`` of ``items`` on ``grid``, earliest valid pixel on top."""
    import stackstac
    from rasterio.enums import Resampling
    from stackstac.rio_env import LayeredEnv

    epsg = grid.rasterio_crs.to_epsg()
    if epsg is None:
        raise InputError(f"stackstac needs an EPSG code; grid CRS {grid.crs!r} has none.")
    stack = stackstac.stack(
        [_with_proj_epsg(it) for it in items],
        assets=[key],
        epsg=epsg,
        resolution=grid.resolution,
        bounds=grid.bounds,
        snap_bounds=False,
        resampling=Resampling[resampling],
        dtype=np.dtype("float32"),
        fill_value=np.float32(np.nan),
        rescale=False,
        xy_coords="center",
        chunksize=max(grid.width, grid.height),
        properties=False,
        band_coords=False,
        sortby_date="asc",
        gdal_env=LayeredEnv(always=dict(options)),
        errors_as_nodata=(),
    )
    mosaic = stackstac.mosaic(stack, dim="time", reverse=True)
    values = mosaic.isel(band=0).compute(scheduler="synchronous").values
    return np.asarray(values, dtype=np.float32)


def _with_proj_epsg(item: Item) -> Item:
    """stackstac 0.5 reads only ``proj:epsg``; newer items may say ``proj:code``."""
    props = item.get("properties") or {}
    code = str(props.get("proj:code") or "")
    if "proj:epsg" in props or not code.upper().startswith("EPSG:"):
        return item
    return {**item, "properties": {**props, "proj:epsg": int(code.split(":", 1)[1])}}


LOADERS: dict[LoaderName, WindowLoader] = {"odc": _odc_window, "stackstac": _stackstac_window}
"""Window loaders by ``--loader`` name."""


def as_loader_name(value: str) -> LoaderName:
    """``--loader``'s value as a :data:`LoaderName`, or an input error naming the loaders."""
    for name in LOADERS:
        if name == value:
            return name
    raise InputError(f"--loader {value!r} is unknown; use one of {', '.join(LOADERS)}.")


# --------------------------------------------------------------------------------------
# helpers


def _items_by_id(items: Manifest | Mapping[str, Item] | Iterable[Item]) -> dict[str, Item]:
    """Canonicalise the accepted item containers to id -> item."""
    if isinstance(items, Manifest):
        return dict(items.items)
    if isinstance(items, Mapping):
        return {str(k): v for k, v in items.items()}
    return {str(it["id"]): it for it in items}


def _window_grid(grid: OutputGrid, row: int, col: int, height: int, width: int) -> OutputGrid:
    """The sub-grid of ``grid`` starting at (row, col)."""
    shifted = grid.affine * Affine.translation(col, row)
    return OutputGrid(grid.crs, tuple(shifted)[:6], width, height)


def _scrub(message: str) -> str:
    """Remove query strings (SAS tokens, signatures) from an error message."""
    return re.sub(r"(https?://[^\s?'\"]+)\?[^\s'\"]*", lambda m: strip_query(m.group(0)), message)
