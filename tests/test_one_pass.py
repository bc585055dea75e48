"""One pass over the output: what inference writes and learns, and publishing using it.

``predict_to_cogs`` encodes and writes tiles in a write-behind thread, keeps exact
statistics, a decimated valid mask and renders the ``visual`` picture in the same pass;
``publish_pair(prediction=...)`` uses those instead of reading the COGs again.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest
import rasterio
import torch

import stac_coh.publish.item as item_module
import stac_coh.publish.pair as pair_module
from stac_coh.infer.engine import NetworkPredictor, predict_to_cogs
from stac_coh.infer.outputs import DecimatedMask
from stac_coh.infer.streaming import WriteBehind
from stac_coh.io.storage import open_store
from stac_coh.load.file_pair import ArrayPairReader
from stac_coh.model.card import ModelCard
from stac_coh.model.resunet import ResUNet
from stac_coh.publish.pair import publish_pair
from stac_coh.publish.raster_info import Statistics, band_info
from stac_coh.publish.render import VisualSink, write_visual
from tests.publishing import input_items, make_pair, model_card
from tests.stac_validation import assert_valid

# Test rasters of single-look statistics (ENL about 1) with random weights lie outside any training
# domain; the warning for that is tested in tests/test_domain.py.
pytestmark = [
    pytest.mark.filterwarnings("ignore::stac_coh.errors.InputDomainWarning"),
    pytest.mark.usefixtures("one_torch_thread"),
]

SIZE = 301
"""Scene edge: not a multiple of the overview step, so the COGs are padded."""


@pytest.fixture(scope="module")
def predictor() -> NetworkPredictor:
    torch.manual_seed(5)
    return NetworkPredictor(
        ResUNet(base=4).eval(), ModelCard(name="random-test"), halo=16, precision="fp32"
    )


def _inputs(size=SIZE, seed=3):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    base = 0.08 + 0.06 * np.sin(xx / 9.0) * np.cos(yy / 13.0)
    t1 = (base * rng.exponential(1.0, (size, size))).astype(np.float32)
    t2 = (base * rng.exponential(1.0, (size, size))).astype(np.float32)
    t1[: size // 3, : size // 4] = np.nan  # a nodata corner
    t2[-5:] = 0.0
    return t1, t2


@pytest.fixture
def predicted(tmp_path, predictor):
    """A pair's coherence, uncertainty and same-pass visual, as the pipeline writes them."""
    pair = make_pair(0, size=SIZE)
    t1, t2 = _inputs()
    rendered_in = []

    class Recording(VisualSink):
        def write(self, row_off, col_off, values):
            rendered_in.append(threading.current_thread().name)
            super().write(row_off, col_off, values)

    summary = predict_to_cogs(
        ArrayPairReader(t1, t2, pair.grid),
        predictor,
        tmp_path / "coherence.tif",
        uncertainty_path=tmp_path / "uncertainty.tif",
        tile=128,
        workdir=tmp_path,
        renders={"visual": Recording.factory(tmp_path / "visual.tif")},
    )
    return pair, summary, set(rendered_in)


def test_the_pass_knows_exact_statistics_mask_and_renders_the_visual(predicted, tmp_path):
    pair, summary, threads = predicted
    assert threads == {"stac-coh-write"}
    assert summary.precision == "fp32" and summary.grid == pair.grid
    for name, path in (("coherence", summary.path), ("uncertainty", summary.uncertainty_path)):
        facts = summary.outputs[name]
        with rasterio.open(path) as ds:
            stored = ds.read(1, masked=True)
            assert (facts.width, facts.height) == (ds.width, ds.height) != (SIZE, SIZE)
        stats = facts.stored_statistics
        values = stored.compressed().astype(np.float64)
        assert stats.minimum == values.min() and stats.maximum == values.max()
        assert stats.mean == pytest.approx(values.mean(), rel=1e-12)
        assert stats.stddev == pytest.approx(values.std(), rel=1e-9)
        assert stats.valid_percent == pytest.approx(100 * values.size / stored.size)
    with rasterio.open(summary.path) as ds:
        valid = ~ds.read(1, masked=True).mask[:SIZE, :SIZE]
    assert summary.valid_mask.mask.shape == (SIZE, SIZE)  # under 512: every pixel
    np.testing.assert_array_equal(summary.valid_mask.mask, valid)
    whole, tiled = DecimatedMask(SIZE, SIZE, max_size=40), DecimatedMask(SIZE, SIZE, max_size=40)
    whole.add(0, 0, valid)
    for r, c in ((0, 0), (0, 137), (90, 0), (90, 137)):  # any tiling, any order
        tiled.add(r, c, valid[r : r + 211 if r else 90, c : c + 164 if c else 137])
    assert whole.mask.shape == (40, 40) and whole.mask.any() and not whole.mask.all()
    np.testing.assert_array_equal(tiled.mask, whole.mask)
    again = write_visual(summary.path, tmp_path / "visual-from-cog.tif")
    with rasterio.open(summary.renders["visual"]) as a, rasterio.open(again) as b:
        assert (a.count, a.shape, a.transform, a.colorinterp) == (
            b.count,
            b.shape,
            b.transform,
            b.colorinterp,
        )
        np.testing.assert_array_equal(a.read(), b.read())
        np.testing.assert_array_equal(a.read_masks(), b.read_masks())
        for level in range(1, len(a.overviews(1)) + 1):
            shape = (a.count, a.height // 2**level, a.width // 2**level)
            np.testing.assert_array_equal(a.read(out_shape=shape), b.read(out_shape=shape))


def test_publishing_uses_what_inference_knows(predicted, tmp_path, monkeypatch):
    pair, summary, _ = predicted

    def must_not_run(*_args, **_kwargs):
        raise AssertionError("publishing re-read what inference already knew")

    reference = {
        key: band_info(path)
        for key, path in (("coherence", summary.path), ("uncertainty", summary.uncertainty_path))
    }
    monkeypatch.setattr(item_module, "band_info", must_not_run)
    monkeypatch.setattr(item_module, "footprint", must_not_run)
    monkeypatch.setattr(pair_module, "write_visual", must_not_run)
    store = open_store(tmp_path / "catalog")
    result = publish_pair(
        pair,
        summary.path,
        summary.uncertainty_path,
        store,
        model_card=model_card(),
        manifest_items=input_items(pair),
        prediction=summary,
    )
    item = result.item
    assert_valid(item)
    assert item["properties"]["coh:precision"] == "fp32"
    assert item["geometry"]["type"] in ("Polygon", "MultiPolygon")
    for key in ("coherence", "uncertainty"):
        band = item["assets"][key]["bands"][0]
        exact = summary.outputs[key].stored_statistics
        decimated = reference[key]  # what a read of the file says: same encoding
        expected = Statistics(**vars(exact)).to_dict(integer=decimated.is_integer)
        assert band["statistics"] == expected
        assert band["data_type"] == decimated.data_type
        assert item["assets"][key]["raster:bands"][0]["scale"] == decimated.scale
        assert band["statistics"]["valid_percent"] == pytest.approx(
            decimated.statistics.valid_percent, abs=0.5
        )
    assert "visual" in item["assets"] and "thumbnail" in item["assets"]


def test_a_summary_of_other_files_is_not_used(predicted, tmp_path, monkeypatch):
    pair, summary, _ = predicted
    other = tmp_path / "copy.tif"
    other.write_bytes(summary.path.read_bytes())
    calls = []
    monkeypatch.setattr(
        item_module, "band_info", lambda path: calls.append(path) or band_info(path)
    )
    publish_pair(
        pair,
        other,
        None,
        open_store(tmp_path / "catalog"),
        model_card=model_card(),
        manifest_items=input_items(pair),
        prediction=summary,
    )
    assert calls == [other]


class _FailingRender(VisualSink):
    """Fails on its second window, after writing the first."""

    calls = 0

    def write(self, row_off, col_off, values):
        type(self).calls += 1
        if type(self).calls == 2:
            raise OSError("disk full")
        super().write(row_off, col_off, values)


def test_a_failure_in_the_write_behind_thread_leaves_no_files(tmp_path, predictor):
    pair = make_pair(0, size=SIZE)
    t1, t2 = _inputs()
    out = tmp_path / "out"
    with pytest.raises(OSError, match="disk full"):
        predict_to_cogs(
            ArrayPairReader(t1, t2, pair.grid),
            predictor,
            out / "coherence.tif",
            uncertainty_path=out / "uncertainty.tif",
            tile=128,
            renders={"visual": _FailingRender.factory(out / "visual.tif")},
        )
    assert list(out.iterdir()) == []


def test_write_behind_keeps_order_and_reraises_the_consumers_error():
    seen = []

    def consume(item):
        if item == 3:
            raise ValueError("bad item 3")
        seen.append((item, threading.current_thread().name))

    with pytest.raises(ValueError, match="bad item 3"), WriteBehind(consume, depth=1) as writer:
        for item in range(10):
            writer.put(item)
    assert seen == [(i, "stac-coh-write") for i in range(3)]
    ordered = []
    with WriteBehind(ordered.append, depth=2) as writer:
        for item in range(50):
            writer.put(item)
    assert ordered == list(range(50)) and writer.done == 50
