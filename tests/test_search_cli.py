"""`stac-coh search`: help, a run on the local catalog, and one-line errors."""

from __future__ import annotations

import json
import socket
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from stac_coh.cli import app, main
from stac_coh.search.manifest_io import read_manifest
from tests.stac_data import ES_GRD, STAC, VALID_PAIRS

runner = CliRunner()
RTC_DIR = str(STAC / "planetary-computer")


def run_main(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["stac-coh", "search", *args])
    with pytest.raises(SystemExit) as info:
        main()
    out, err = capsys.readouterr()
    return int(info.value.code or 0), out, err


def test_help_teaches_with_examples():
    result = runner.invoke(app, ["search", "--help"], terminal_width=100)
    assert result.exit_code == 0
    for text in ("--bbox", "--aoi", "--baselines", "--min-coverage", "--json", "Examples"):
        assert text in result.output
    assert "stac-coh search --bbox" in result.output


def test_search_prints_pairs_and_writes_the_manifest(tmp_path: Path):
    out = tmp_path / "pairs.json"
    result = runner.invoke(
        app,
        [
            "search",
            "--source",
            RTC_DIR,
            "--collection",
            "sentinel-1-rtc",
            "--bbox",
            "77.4",
            "12.8",
            "77.8",
            "13.1",
            "--start",
            "2026-04-01",
            "--end",
            "2026-08-31",
            "--json",
            str(out),
        ],
        env={"COLUMNS": "120"},
    )
    assert result.exit_code == 0, result.output
    assert "3 pairs -> 6 work units on 2 tiles" in result.output  # the area spans 2 tiles
    assert "Rejected: 12 baseline not 6/12 d" in result.output
    assert result.output.count("desc.") == 6
    assert result.output.count("43PGQ") == result.output.count("43PHQ") == 3
    assert "2026-07-29 00:39 S1D" in result.output
    manifest = read_manifest(out)
    got = {(p.reference.item_ids[0], p.secondary.item_ids[0]) for p in manifest.pairs}
    assert got == VALID_PAIRS
    assert manifest.query["bbox"] == [77.4, 12.8, 77.8, 13.1]


def test_negative_coordinates_and_filters(tmp_path: Path):
    result = runner.invoke(
        app,
        [
            "search",
            "--source",
            str(ES_GRD),
            "--bbox",
            "-54",
            "55",
            "-52",
            "57",
            "--start",
            "2024-04-01",
            "--end",
            "2024-05-31",
            "--pol",
            "hh",
            "--orbit-state",
            "descending",
        ],
    )
    # Real data: one pass only, so no pair; the error counts the merged slices.
    assert result.exit_code != 0
    assert "slice combinations of one pass" in str(result.exception)


@pytest.mark.parametrize(
    ("args", "code", "text"),
    [
        (
            ["--bbox", "10", "0", "5", "10", "--start", "2026-01-01", "--end", "2026-02-01"],
            2,
            "west",
        ),
        (
            ["--bbox", "0", "0", "1", "1", "--start", "2026-02-01", "--end", "2026-01-01"],
            2,
            "before",
        ),
        (["--bbox", "0", "0", "1", "1"], 2, "--start DATE and --end DATE"),
        (
            [
                "--source",
                "nowhere",
                "--bbox",
                "0",
                "0",
                "1",
                "1",
                "--start",
                "2026-01-01",
                "--end",
                "2026-02-01",
            ],
            2,
            "Unknown --source",
        ),
        (
            [
                "--collection",
                "landsat",
                "--bbox",
                "0",
                "0",
                "1",
                "1",
                "--start",
                "2026-01-01",
                "--end",
                "2026-02-01",
            ],
            2,
            "not a Sentinel-1 collection",
        ),
        (
            [
                "--source",
                RTC_DIR,
                "--collection",
                "sentinel-1-rtc",
                "--bbox",
                "0",
                "0",
                "1",
                "1",
                "--start",
                "2026-01-01",
                "--end",
                "2026-02-01",
            ],
            4,
            "No items",
        ),
        (
            [
                "--source",
                RTC_DIR,
                "--collection",
                "sentinel-1-rtc",
                "--bbox",
                "77.4",
                "12.8",
                "77.8",
                "13.1",
                "--start",
                "2026-01-01",
                "--end",
                "2026-12-31",
                "--baselines",
                "24",
            ],
            4,
            "15 baseline not 24 d",
        ),
        (
            [
                "--source",
                RTC_DIR,
                "--asset-key",
                "VV",
                "--bbox",
                "0",
                "0",
                "1",
                "1",
                "--start",
                "2026-01-01",
                "--end",
                "2026-02-01",
            ],
            2,
            "POL=KEY",
        ),
    ],
)
def test_bad_input_is_one_clear_line(monkeypatch, capsys, args, code, text):
    got, _, err = run_main(monkeypatch, capsys, *args)
    assert got == code
    assert text in err
    assert "Traceback" not in err
    assert err.strip().startswith("Error: ") and len(err.strip().splitlines()) == 1


def test_unreachable_api_exit_code_and_hint(monkeypatch, capsys):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("STAC_COH_HTTP_RETRIES", "0")
    url = f"http://127.0.0.1:{port}/v1"
    code, _, err = run_main(
        monkeypatch,
        capsys,
        *["--source", url, "--collection", "s1", "--bbox", "0", "0", "1", "1"],
        *["--start", "2026-01-01", "--end", "2026-02-01"],
    )
    assert code == 75
    assert url in err and "--source PATH" in err


def test_aoi_option(tmp_path: Path):
    area = tmp_path / "area.geojson"
    area.write_text(
        json.dumps(
            {
                "type": "Polygon",
                "coordinates": [
                    [[77.4, 12.8], [77.8, 12.8], [77.8, 13.1], [77.4, 13.1], [77.4, 12.8]]
                ],
            }
        )
    )
    result = runner.invoke(
        app,
        [
            "search",
            "--source",
            RTC_DIR,
            "--collection",
            "sentinel-1-rtc",
            "--aoi",
            str(area),
            "--start",
            "2026-04-01",
            "--end",
            "2026-05-01",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "1 pairs -> 2 work units" in result.output
