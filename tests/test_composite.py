"""Composite building blocks: periods, which pairs stack, running statistics, the decay fit."""

from __future__ import annotations

import warnings
from dataclasses import replace
from datetime import UTC, datetime

import numpy as np
import pytest
from typer.testing import CliRunner

from stac_coh.cli import app
from stac_coh.composite.decay import TAU_MAX, decay_model, fit_decay
from stac_coh.composite.pairs import PairRecord, pair_record, resolve_href
from stac_coh.composite.periods import parse_months, plan_periods
from stac_coh.composite.run import CompositeRequest, plan_composites
from stac_coh.composite.stack import LEVELS, HistogramMedian, RunningMean, SortedMedian
from stac_coh.composite.tiles import group_tiles, lattice_of, stack_key
from stac_coh.errors import InputError


def _utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


# -- periods ------------------------------------------------------------------------------


def test_year_means_the_four_seasons_of_the_seasonal_year():
    periods = plan_periods(year=2020)
    assert [p.label for p in periods] == ["2020-DJF", "2020-MAM", "2020-JJA", "2020-SON"]
    djf, _, _, son = periods
    assert (djf.start, djf.stop) == (_utc(2019, 12, 1), _utc(2020, 3, 1))
    assert (son.start, son.stop) == (_utc(2020, 9, 1), _utc(2020, 12, 1))
    assert djf.end.isoformat() == "2020-02-29T23:59:59+00:00"  # leap year
    assert djf.contains(_utc(2019, 12, 1)) and not djf.contains(_utc(2020, 3, 1))


def test_months_make_one_custom_season_wrapping_past_december():
    assert parse_months("11-2") == (11, 12, 1, 2)
    assert parse_months("6,7,8") == (6, 7, 8)
    (p,) = plan_periods(year=2026, months="11-2")
    assert (p.label, p.start, p.stop, p.season) == (
        "2026-M11-02",
        _utc(2025, 11, 1),
        _utc(2026, 3, 1),
        None,
    )
    with pytest.raises(InputError, match="consecutive"):
        parse_months("1,3")


def test_start_end_is_one_period_or_the_seasons_clipped_to_it():
    (one,) = plan_periods(start="2026-03-10", end="2026-04-20")
    assert (one.start, one.stop) == (_utc(2026, 3, 10), _utc(2026, 4, 21))
    seasons = plan_periods(start="2026-02-15", end="2026-06-10", seasons="djf,JJA")
    assert [(p.label, p.start, p.stop) for p in seasons] == [
        ("2026-DJF", _utc(2026, 2, 15), _utc(2026, 3, 1)),
        ("2026-JJA", _utc(2026, 6, 1), _utc(2026, 6, 11)),
    ]


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"year": 2026, "start": "2026-01-01", "end": "2026-02-01"},
        {"start": "2026-02-01", "end": "2026-01-01"},
        {"year": 2026, "seasons": "WINTER"},
        {"year": 2026, "seasons": "DJF", "months": "1-3"},
    ],
)
def test_bad_periods_are_input_errors(kwargs):
    with pytest.raises(InputError):
        plan_periods(**kwargs)


# -- pair records and tiles ---------------------------------------------------------------


def _record(pid: str, x0: float, y0: float, size: int = 100, res: float = 10.0, **kw) -> PairRecord:
    return PairRecord(
        id=pid,
        start=_utc(2026, 6, 1),
        end=_utc(2026, 6, 13),
        baseline_days=12.0,
        polarization="VV",
        crs=kw.pop("crs", "EPSG:32633"),
        transform=(res, 0.0, x0, 0.0, -res, y0),
        width=size,
        height=size,
        coherence_href=f"/data/{pid}.tif",
        item_href=f"/data/{pid}.json",
        **kw,
    )


def test_pairs_on_one_lattice_stack_on_the_union_grid_with_integer_windows():
    a, b = _record("a", 500_000, 5_000_000), _record("b", 500_500, 4_999_700)
    (tile,) = group_tiles([a, b])
    assert (tile.left, tile.top, tile.width, tile.height) == (500_000, 5_000_000, 150, 130)
    assert tile.window(a) == (0, 0, 100, 100)
    assert tile.window(b) == (30, 50, 100, 100)
    assert tile.code == "EPSG32633-10m-500000-5000000"
    assert stack_key(a) == lattice_of(a).code == "EPSG32633-10m"


def test_other_lattices_zones_and_distant_areas_make_other_tiles():
    pairs = [
        _record("a", 500_000, 5_000_000),
        _record("shifted", 500_005, 5_000_000),  # half a pixel off: another lattice
        _record("coarse", 500_000, 5_000_000, res=20.0),
        _record("zone34", 500_000, 5_000_000, crs="EPSG:32634"),
        _record("far", 800_000, 5_000_000),  # same lattice, 300 km away
    ]
    tiles = group_tiles(pairs)
    assert sorted(len(t.pairs) for t in tiles) == [1, 1, 1, 1, 1]
    assert lattice_of(pairs[1]).offset_x == 5.0


def test_grid_code_names_the_tile_and_groups_however_far_apart():
    a = _record("a", 500_000, 5_000_000, grid_code="MGRS-33UXP")
    b = _record("b", 590_000, 4_910_000, grid_code="MGRS-33UXP")
    (tile,) = group_tiles([a, b])
    assert (tile.code, tile.grid_code, tile.width, tile.height) == (
        "MGRS-33UXP",
        "MGRS-33UXP",
        9100,
        9100,
    )


def test_a_plan_does_not_depend_on_the_order_the_source_lists_pairs_in():
    # A folder lists in directory order, S3 in key order, an API in its own: same plan.
    days = [3, 15, 27, 9, 21]
    pairs = [
        replace(_record(f"p{d:02d}", 500_000, 5_000_000), start=_utc(2026, 6, d)) for d in days
    ]
    request = CompositeRequest(periods=tuple(plan_periods(start="2026-06-01", end="2026-06-30")))
    plans = [
        plan_composites(order, request)
        for order in (pairs, pairs[::-1], sorted(pairs, key=lambda p: p.id))
    ]
    assert plans[0] == plans[1] == plans[2]
    (unit,) = plans[0].units
    assert [p.id for p in unit.pairs[12]] == ["p03", "p09", "p15", "p21", "p27"]


def test_pair_record_reads_published_items_and_resolves_relative_hrefs():
    item = {
        "id": "p",
        "properties": {
            "start_datetime": "2026-06-04 14:02:11+00:00",
            "end_datetime": "2026-06-16T14:02:12Z",
            "coh:baseline_days": 12.000012,
            "sar:polarizations": ["VV"],
            "proj:epsg": 32610,
            "proj:transform": [10.0, 0.0, 5.0, 0.0, -10.0, 20.0, 0, 0, 1],
            "proj:shape": [3, 4],
            "grid:code": "MGRS-10SEG",
            "coh:reference_platform": "sentinel-1a",
            "coh:secondary_platform": "sentinel-1c",
        },
        "assets": {"coherence": {"href": "./p_coherence.tif"}},
    }
    record = pair_record(item, "/cat/sentinel-1-coherence/p/p.json")
    assert record is not None
    assert record.coherence_href == "/cat/sentinel-1-coherence/p/p_coherence.tif"
    assert (record.crs, record.width, record.height, record.grid_code) == (
        "EPSG:32610",
        4,
        3,
        "MGRS-10SEG",
    )
    assert record.platforms == ("sentinel-1a", "sentinel-1c")
    assert record.bounds == (5.0, -10.0, 45.0, 20.0)
    assert pair_record({"id": "x", "properties": {}, "assets": {}}, "/x.json") is None
    assert resolve_href("a.tif", "https://h/c/i/i.json") == "https://h/c/i/a.tif"
    assert resolve_href("./a.tif", "s3://b/c/i/i.json") == "s3://b/c/i/a.tif"


# -- running statistics -------------------------------------------------------------------


def _stack(seed: int, n: int, shape=(7, 9)) -> np.ndarray:
    """Values on the product's 0.004 steps with NaN holes, as uint8 pair COGs decode."""
    rng = np.random.default_rng(seed)
    levels = rng.integers(0, LEVELS, (n, *shape)).astype(np.float32)
    values = levels * np.float32(0.004)
    values[rng.random(values.shape) < 0.3] = np.nan
    return values


@pytest.mark.parametrize("n", [1, 2, 5, 12])
@pytest.mark.parametrize("kind", [SortedMedian, HistogramMedian])
def test_medians_equal_numpy_median_and_counts(kind, n):
    values = _stack(n, n)
    acc = kind(values.shape[1:], n)
    for layer in values:
        acc.add(layer[1:, 2:], slice(1, None), slice(2, None))  # a window of the chunk
    median, count = acc.result()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN pixels
        expected = np.nanmedian(values[:, 1:, 2:], axis=0)
    np.testing.assert_allclose(median[1:, 2:], expected, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(count[1:, 2:], np.isfinite(values[:, 1:, 2:]).sum(axis=0))
    assert np.isnan(median[0]).all() and not count[0].any()


def test_running_mean_equals_numpy_mean():
    values = _stack(3, 6)
    acc = RunningMean(values.shape[1:])
    for layer in values:
        acc.add(layer, slice(None), slice(None))
    mean, count = acc.result()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN pixels
        expected = np.nanmean(values, axis=0)
    np.testing.assert_allclose(mean, expected, rtol=1e-6, equal_nan=True)
    np.testing.assert_array_equal(count, np.isfinite(values).sum(axis=0))


# -- decay fit ------------------------------------------------------------------------------


def test_decay_fit_recovers_exact_parameters():
    rng = np.random.default_rng(0)
    t = np.array([6.0, 12.0, 18.0, 24.0, 36.0, 48.0])
    rho = rng.uniform(0.0, 0.9, 4000)
    tau = np.exp(rng.uniform(np.log(2.0), np.log(200.0), 4000))
    fit = fit_decay(t, decay_model(t[:, None], rho[None], tau[None]))
    np.testing.assert_allclose(fit.rho_inf, rho, atol=1e-4)
    np.testing.assert_allclose(fit.tau, tau, rtol=1e-4)
    assert float(np.nanmax(fit.rmse)) < 1e-5


def test_decay_fit_needs_three_baselines_and_stays_in_bounds():
    t = [6.0, 12.0, 24.0]
    values = np.array(
        [
            [0.8, 0.5, np.nan, 0.3],  # 6 d
            [0.6, np.nan, np.nan, 0.3],  # 12 d
            [0.4, 0.4, 0.5, 0.3],  # 24 d: the last pixel never decays
        ]
    )
    fit = fit_decay(t, values)
    assert np.isfinite(fit.tau[[0, 3]]).all() and np.isnan(fit.tau[[1, 2]]).all()
    np.testing.assert_array_equal(fit.n_baselines, [3, 2, 1, 3])
    assert 0.0 <= fit.rho_inf[3] <= 1.0 and 1.0 <= fit.tau[3] <= TAU_MAX


# -- command line --------------------------------------------------------------------------


def test_help_teaches_the_command_with_examples():
    result = CliRunner().invoke(app, ["composite", "--help"], terminal_width=100)
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    for words in ("Examples:", "--year 2026", "--baselines 6,12,18,24,36,48", "rho_inf", "--tile"):
        assert words in text


def test_composite_needs_a_period():
    result = CliRunner().invoke(app, ["composite", "--catalog", "nowhere"])
    assert isinstance(result.exception, InputError)  # exit code 2 through stac_coh.cli.main
    assert "--year" in str(result.exception)
