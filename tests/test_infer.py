"""The inference engine: receptive field, tile independence, the published tiling, COGs.

Networks here are ``ResUNet(base=4)`` with fixed random weights: same layer graph (so the
same receptive field and tiling behaviour) as the published model at 1/64 of the compute.
"""

from __future__ import annotations

import copy
import threading

import numpy as np
import pytest
import rasterio
import rasterio.env
import torch
from rio_cogeo.cogeo import cog_validate

from stac_coh.errors import RasterReadError
from stac_coh.grid import OutputGrid
from stac_coh.infer.engine import (
    NetworkPredictor,
    TilePredictor,
    plan_units,
    predict_array,
    predict_to_cogs,
    receptive_field,
)
from stac_coh.infer.estimators import SiegertPredictor, siegert_coherence
from stac_coh.load.file_pair import ArrayPairReader
from stac_coh.model.card import ModelCard
from stac_coh.model.preprocess import to_model_input, valid_mask
from stac_coh.model.resunet import ResUNet

# Test rasters of single-look statistics (ENL about 1) with random weights lie outside any training
# domain; the warning for that is tested in tests/test_domain.py.
pytestmark = [
    pytest.mark.filterwarnings("ignore::stac_coh.errors.InputDomainWarning"),
    pytest.mark.usefixtures("one_torch_thread"),
]

FLOAT_TOL = 3e-5
"""Float32 evaluations of the same function with sums in another order (tile shapes, batch
sizes, BatchNorm folded into the convolutions) differ by rounding only: ~1e-6 here and up
to ~1e-5 with the published model's width; a real tiling error (missing context,
misaligned pooling) is >= 1e-3."""


@pytest.fixture(scope="module")
def model() -> ResUNet:
    torch.manual_seed(1234)
    return ResUNet(base=4).eval()


@pytest.fixture(scope="module")
def predictor(model: ResUNet) -> NetworkPredictor:
    return NetworkPredictor(model, ModelCard(name="random-test"), precision="fp32")


@pytest.fixture(scope="module")
def io_predictor(model: ResUNet) -> NetworkPredictor:
    """A short halo, so a 96 x 80 scene makes four 32-pixel tiles (I/O tests only)."""
    return NetworkPredictor(model, ModelCard(name="random-test"), halo=16, precision="fp32")


def _speckled(shape, seed=0):
    """Two speckled images with a bright square, a dark band and some texture."""
    rng = np.random.default_rng(seed)
    height, width = shape
    yy, xx = np.mgrid[0:height, 0:width]
    base = 0.05 + 0.04 * np.sin(xx / 9.0) * np.cos(yy / 13.0) + 0.05
    base[height // 4 : height // 2, width // 3 : width // 2] = 0.5
    base[:, width - 20 : width - 10] = 0.01
    t1 = base * rng.exponential(1.0, shape)
    t2 = base * rng.exponential(1.0, shape)
    return t1.astype(np.float32), t2.astype(np.float32)


def _whole_scene(model, t1, t2):
    """The network over the whole scene at once (padded at the end to a multiple of 16)."""
    x = to_model_input(t1, t2)
    height, width = t1.shape
    x = np.pad(x, ((0, 0), (0, -height % 16), (0, -width % 16)))
    with torch.no_grad():
        out = model(torch.from_numpy(x)[None])[0, 0, :height, :width].numpy()
    out = out.copy()
    out[~valid_mask(t1, t2)] = np.nan
    return out


def _naive_reference(model, t1, t2, patch=128, stride=32, beta=5.0):
    """The published tiling, written as plainly as possible: one patch at a time.

    Returns the coherence and, per pixel, the Kaiser-weighted standard deviation of the
    overlapping patches' predictions: how much the published method disagrees with itself.
    """
    height, width = t1.shape
    x = to_model_input(t1, t2)
    x = np.pad(x, ((0, 0), (0, max(0, patch - height)), (0, max(0, patch - width))))
    _, rows, cols = x.shape

    def starts(n):
        out, pos = [], 0
        while pos < n - patch:
            out.append(pos)
            pos += stride
        if not out or out[-1] != n - patch:
            out.append(n - patch)
        return out

    window = np.outer(np.kaiser(patch, beta), np.kaiser(patch, beta))
    total = np.zeros((rows, cols))
    total_sq = np.zeros((rows, cols))
    weights = np.zeros((rows, cols))
    for r in starts(rows):
        for c in starts(cols):
            with torch.no_grad():
                p = model(torch.from_numpy(x[None, :, r : r + patch, c : c + patch].copy()))
            p = p[0, 0].numpy().astype(np.float64)
            total[r : r + patch, c : c + patch] += p * window
            total_sq[r : r + patch, c : c + patch] += p * p * window
            weights[r : r + patch, c : c + patch] += window
    mean = total / np.maximum(weights, np.finfo(np.float32).eps)
    spread = np.sqrt(np.maximum(total_sq / weights - mean**2, 0.0))[:height, :width]
    coherence = np.clip(mean, 0, 1)[:height, :width]
    coherence[~valid_mask(t1, t2)] = np.nan
    return coherence, spread


def test_receptive_field_matches_the_network(monkeypatch):
    # Positive weights keep every ReLU open and average pooling passes gradient to all four
    # inputs (max pooling passes it to one), so the gradient's support is the full
    # dependence region; the analytic walk must match it exactly.
    monkeypatch.setattr(torch.nn.functional, "max_pool2d", torch.nn.functional.avg_pool2d)
    torch.manual_seed(0)
    net = ResUNet(base=2).double().eval()
    with torch.no_grad():
        for p in net.parameters():
            p.abs_()
    logits = {}
    net.mean_head.register_forward_hook(lambda _m, _i, out: logits.__setitem__("out", out))
    before = after = 0
    for j in range(192, 208):  # all 16 pooling phases
        x = torch.rand(1, 2, 16, 448, dtype=torch.float64, requires_grad=True)
        net(x)
        logits["out"][0, 0, 8, j].backward()
        cols = torch.nonzero(x.grad.abs().sum(dim=(0, 1, 2))).flatten()
        before, after = max(before, j - int(cols.min())), max(after, int(cols.max()) - j)
    assert (before, after) == receptive_field() == (122, 137)


def test_default_halo_covers_the_receptive_field(predictor):
    assert predictor.halo == 144 and predictor.halo % 16 == 0
    assert predictor.halo >= max(receptive_field())
    assert isinstance(predictor, TilePredictor)


@pytest.mark.parametrize("tile", [64, 112])
def test_fast_mode_mosaic_equals_one_whole_scene_pass(model, predictor, tile):
    # Larger than tile + 2 * 144 in both directions, so reads really are partial.
    t1, t2 = _speckled((480, 416))
    t1[:10] = np.nan  # a nodata border
    t2[:, -7:] = 0.0
    whole = _whole_scene(model, t1, t2)
    one_tile = predict_array(t1, t2, predictor, tile=1024)[0]
    mosaic = predict_array(t1, t2, predictor, tile=tile)[0]
    assert len(plan_units(480, 416, predictor, tile=tile)) >= 4
    np.testing.assert_allclose(one_tile, whole, atol=FLOAT_TOL, rtol=0)
    np.testing.assert_allclose(mosaic, one_tile, atol=FLOAT_TOL, rtol=0)


def test_fast_mode_with_too_small_a_halo_depends_on_tiles(model):
    # Negative control: the equality above is not automatic.
    t1, t2 = _speckled((336, 304))
    short = NetworkPredictor(model, ModelCard(name="short-halo"), halo=16, precision="fp32")
    one_tile = predict_array(t1, t2, short, tile=1024)[0]
    mosaic = predict_array(t1, t2, short, tile=64)[0]
    assert np.nanmax(np.abs(mosaic - one_tile)) > 100 * FLOAT_TOL


@pytest.mark.parametrize(
    ("shape", "block"), [((200, 170), 100), ((200, 170), 1024), ((100, 90), 64)]
)
def test_reference_mode_equals_the_naive_published_tiling(model, predictor, shape, block):
    t1, t2 = _speckled(shape, seed=3)
    t1[150:, :20] = np.nan
    t2[5, 5] = -1.0
    expected, _spread = _naive_reference(model, t1, t2)
    got = predict_array(t1, t2, predictor, mode="reference", tile=block)
    np.testing.assert_array_equal(np.isnan(got[0]), np.isnan(expected))
    np.testing.assert_allclose(got[0], expected, atol=FLOAT_TOL, rtol=0)


def test_fast_and_reference_agree_on_a_smooth_scene(model):
    """Tolerance: fast differs from reference by less than half the reference's own spread.

    The modes differ because every 128-pixel reference patch sees its own borders (zero
    padding in every layer) where fast mode sees real context. How much that matters is a
    property of the weights, not of the tiling code, so the tolerance is stated against
    the published method itself: the Kaiser-weighted spread between the overlapping patch
    predictions it averages. With the head bias centred on this scene (outputs span 0..1,
    the sigmoid's most sensitive regime) the measured mean |fast - reference| is ~0.06
    against a mean spread of ~0.13; uncentred (outputs near 0) it is ~2e-4. A tiling bug
    (misplaced patches, a dropped halo) shows up far above either.
    """
    yy, xx = np.mgrid[0:256, 0:240] / 256.0
    t1 = (0.05 + 0.1 * (1 + np.sin(2 * np.pi * xx) * np.cos(2 * np.pi * yy))).astype(np.float32)
    t2 = (t1 * (0.8 + 0.2 * xx)).astype(np.float32)
    centred = copy.deepcopy(model)
    logits = {}
    centred.mean_head.register_forward_hook(lambda _m, _i, out: logits.__setitem__("out", out))
    with torch.no_grad():
        centred(torch.from_numpy(to_model_input(t1, t2))[None])
        centred.mean_head.bias -= logits["out"].mean()
    predictor = NetworkPredictor(centred, ModelCard(name="random-centred"), precision="fp32")
    fast = predict_array(t1, t2, predictor)[0]
    reference = predict_array(t1, t2, predictor, mode="reference")[0]
    naive, spread = _naive_reference(centred, t1, t2)
    np.testing.assert_allclose(reference, naive, atol=FLOAT_TOL)
    assert np.std(fast) > 0.1  # not a comparison of two constants
    assert np.abs(fast - reference).mean() < 0.5 * spread.mean()


def test_image_smaller_than_a_tile(model, predictor):
    t1, t2 = _speckled((40, 27))
    fast = predict_array(t1, t2, predictor, tile=64)
    assert fast.shape == (2, 40, 27)
    np.testing.assert_allclose(fast[0], _whole_scene(model, t1, t2), atol=FLOAT_TOL, rtol=0)
    reference = predict_array(t1, t2, predictor, mode="reference")
    expected, _spread = _naive_reference(model, t1, t2)
    np.testing.assert_allclose(reference[0], expected, atol=FLOAT_TOL)


def test_nodata_anywhere_in_either_input_is_nodata_in_both_outputs(predictor):
    t1, t2 = _speckled((96, 80))
    t1[:, :5] = np.nan
    t1[40, 40] = np.inf
    t2[-3:, :] = 0.0
    t2[10, 60] = -2.0
    out = predict_array(t1, t2, predictor, tile=64)
    invalid = ~valid_mask(t1, t2)
    assert invalid.sum() == 96 * 5 + 75 * 3 + 2
    for channel in out:
        np.testing.assert_array_equal(np.isnan(channel), invalid)
    assert np.all((out[0][~invalid] >= 0) & (out[0][~invalid] <= 1))


def test_a_classic_estimator_runs_through_the_same_engine():
    t1, t2 = _speckled((96, 80))
    siegert = SiegertPredictor(window=9)
    out = predict_array(t1, t2, siegert, tile=32)
    gamma, sigma = siegert_coherence(t1, t2, 9)
    np.testing.assert_allclose(out[0], gamma, atol=1e-6, equal_nan=True)
    np.testing.assert_allclose(out[1], sigma, atol=1e-6, equal_nan=True)


def _grid(shape):
    height, width = shape
    return OutputGrid("EPSG:32633", (20.0, 0.0, 500000.0, 0.0, -20.0, 4600000.0), width, height)


@pytest.mark.parametrize("dtype", ["uint8", "float32"])
def test_predict_to_cogs_writes_valid_cogs_with_encoding(tmp_path, io_predictor, dtype):
    t1, t2 = _speckled((96, 80))
    t1[:8] = np.nan
    reader = ArrayPairReader(t1, t2, _grid((96, 80)))
    calls = []
    out, unc = tmp_path / "out" / "coh.tif", tmp_path / "out" / "unc.tif"
    summary = predict_to_cogs(
        reader,
        io_predictor,
        out,
        uncertainty_path=unc,
        tile=32,
        dtype=dtype,
        on_progress=lambda done, total: calls.append((done, total)),
    )
    expected = predict_array(t1, t2, io_predictor, tile=32)
    assert calls == [(i, 4) for i in range(1, 5)]
    assert sorted(p.name for p in out.parent.iterdir()) == ["coh.tif", "unc.tif"]
    step = 0.002 if dtype == "uint8" else 1e-6  # half a uint8 step of 0.004
    for path, channel in ((out, 0), (unc, 1)):
        is_valid, errors, _warnings = cog_validate(str(path), quiet=True)
        assert is_valid, errors
        with rasterio.open(path) as ds:
            assert ds.dtypes[0] == dtype
            assert ds.crs.to_epsg() == 32633 and ds.transform == reader.grid.affine
            if dtype == "uint8":
                assert (ds.scales, ds.offsets, ds.nodata) == ((0.004,), (0.0,), 255)
            else:
                assert np.isnan(ds.nodata)
            data = ds.read(1, masked=True)
            decoded = data.astype(np.float32) * ds.scales[0] + ds.offsets[0]
        np.testing.assert_array_equal(data.mask, np.isnan(expected[channel]))
        np.testing.assert_allclose(
            decoded.filled(np.nan), expected[channel], atol=step, equal_nan=True
        )
        if channel == 0:
            valid = decoded.compressed()
    assert summary.valid_pixels == valid.size == 88 * 80
    assert summary.total_pixels == 96 * 80 and summary.tiles == 4
    assert summary.mean == pytest.approx(valid.mean(), abs=1e-6)
    assert summary.min == pytest.approx(valid.min()) and summary.max == pytest.approx(valid.max())
    assert summary.std == pytest.approx(valid.std(), abs=1e-5)
    assert summary.path == out and summary.uncertainty_path == unc


class _FailingPredictor:
    """Wraps a predictor and fails on its n-th call."""

    def __init__(self, inner, fail_at):
        self.inner, self.fail_at, self.calls = inner, fail_at, 0
        self.halo, self.multiple = inner.halo, inner.multiple

    def __call__(self, batch):
        self.calls += 1
        if self.calls == self.fail_at:
            raise RuntimeError("boom")
        return self.inner(batch)


class _FailingReader(ArrayPairReader):
    """Fails on the n-th read, as a network read of a corrupt tile would."""

    def __init__(self, *args, fail_at, **kwargs):
        super().__init__(*args, **kwargs)
        self.fail_at, self.calls = fail_at, 0

    def read(self, *window):
        self.calls += 1
        if self.calls == self.fail_at:
            raise RasterReadError("tile 3 of t2.tif is corrupt")
        return super().read(*window)


def test_a_failing_predictor_leaves_no_files(tmp_path, io_predictor):
    t1, t2 = _speckled((96, 80))
    out = tmp_path / "coh.tif"
    with pytest.raises(RuntimeError, match="boom"):
        predict_to_cogs(
            ArrayPairReader(t1, t2, _grid((96, 80))),
            _FailingPredictor(io_predictor, fail_at=3),
            out,
            uncertainty_path=tmp_path / "unc.tif",
            tile=32,
        )
    assert list(tmp_path.iterdir()) == []


def test_a_failing_read_in_the_prefetch_thread_reaches_the_caller(tmp_path, io_predictor):
    t1, t2 = _speckled((96, 80))
    reader = _FailingReader(t1, t2, _grid((96, 80)), fail_at=3)
    with pytest.raises(RasterReadError, match="corrupt"):
        predict_to_cogs(reader, io_predictor, tmp_path / "coh.tif", tile=32, workdir=tmp_path / "w")
    assert [p.name for p in tmp_path.iterdir()] == ["w"] and not any((tmp_path / "w").iterdir())


def test_reads_happen_ahead_in_a_thread_with_the_callers_gdal_options(tmp_path, io_predictor):
    seen = []

    class Recording(ArrayPairReader):
        def read(self, *window):
            seen.append(
                (threading.current_thread().name, rasterio.env.getenv().get("STAC_COH_PROBE"))
            )
            return super().read(*window)

    t1, t2 = _speckled((96, 80))
    with rasterio.Env(STAC_COH_PROBE="yes"):
        predict_to_cogs(
            Recording(t1, t2, _grid((96, 80))), io_predictor, tmp_path / "c.tif", tile=32
        )
    assert seen == [("stac-coh-prefetch", "yes")] * 4
