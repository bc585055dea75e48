"""config.yaml, statistics files and the license of a published repository: applied or refused."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from stac_coh.errors import WeightsError
from stac_coh.model.card import Tiling
from stac_coh.model.hub_config import PublishedConfig, parse_config
from stac_coh.model.hub_metadata import is_statistics_file, read_license, read_statistics
from stac_coh.model.preprocess import Preprocessing

# The example of the release notes (docs MODEL.md lists the same keys and values).
PUBLISHED = """\
framework: tensorflow
weights_filename: model.weights.h5
architecture:
  name: resunet
  input_shape: [128, 128, 2]
  output_channels: 2
preprocessing:
  db_min: -20
  db_max: 0
  channel_order: [t1, t2]
  input_scale: linear_sigma0_from_gee
  model_scale: db_clipped_normalized
tiling:
  patch_size: 128
  stride: 32
  batch_size: 8
  aggregation: kaiser
output:
  name: coherence
  range: [0, 1]
  channel: 0
"""
WHERE = "hf://o/r/config.yaml"


def _parse(text: str) -> PublishedConfig:
    return parse_config(text, where=WHERE)


def _edit(old: str, new: str) -> str:
    assert old in PUBLISHED
    return PUBLISHED.replace(old, new)


def test_the_published_config_means_the_published_defaults() -> None:
    config = _parse(PUBLISHED)
    assert config.preprocessing == Preprocessing()
    assert config.tiling == Tiling()
    assert (config.weights_filename, config.output_channel, config.defaulted) == (
        "model.weights.h5",
        0,
        (),
    )


def test_values_that_differ_are_applied_and_missing_ones_recorded() -> None:
    text = """\
model: {name: back2coh_resunet, input_shape: [null, null, 2]}
preprocessing: {clip_min_db: -25, db_max: 5, channel_order: [secondary, primary]}
patch_size: 64
tiling: {stride: 16, aggregation: uniform}
output: {channel: 1}
"""
    config = _parse(text)
    assert config.preprocessing.channel_order == ("t2", "t1")
    assert (config.preprocessing.db_min, config.preprocessing.db_max) == (-25.0, 5.0)
    assert config.tiling == Tiling(64, 16, 8, "uniform", 0.0)  # a flat window
    assert config.output_channel == 1
    assert "framework" in config.defaulted and "tiling.batch_size" in config.defaulted


@pytest.mark.parametrize(
    ("old", "new", "key"),
    [
        ("framework: tensorflow", "framework: tensorflow\nnormalize: true", "normalize"),
        ("  db_max: 0", "  db_max: 0\n  mean: [0.1, 0.2]", "preprocessing.mean"),
        ("  stride: 32", "  stride: 32\n  overlap: 0.5", "tiling.overlap"),
        ("  channel: 0", "  channel: 0\n  scale: 2", "output.scale"),
        ("  name: resunet", "  name: resunet\n  module: model", "architecture.module"),
    ],
)
def test_unknown_keys_are_refused(old: str, new: str, key: str) -> None:
    with pytest.raises(WeightsError, match=rf"key '{re.escape(key)}'.*does not know"):
        _parse(_edit(old, new))


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("[128, 128, 2]", "[256, 256, 2]", "contradicts tiling.patch_size 128"),
        ("  db_min: -20", "  db_min: -20\n  clip_min_db: -25", "contradict each other"),
        ("framework: tensorflow", "framework: tensorflow\nstride: 64", "contradict each other"),
        ("framework: tensorflow", "framework: pytorch", "not TensorFlow/Keras"),
        ("  name: resunet", "  name: unet", "not the ResUNet"),
        ("  output_channels: 2", "  output_channels: 3", "two heads"),
        ("[128, 128, 2]", "[128, 128, 3]", "3 channels"),
        ("[t1, t2]", "[t1, t1]", "once each"),
        ("db_clipped_normalized", "db_unclipped", "model_scale 'db_unclipped'"),
        ("linear_sigma0_from_gee", "db", "input_scale 'db'"),
        ("aggregation: kaiser", "aggregation: gaussian", "aggregation 'gaussian'"),
        ("range: [0, 1]", "range: [0, 100]", "not \\[0, 1\\]"),
        ("channel: 0", "channel: 2", "does not exist"),
        ("db_max: 0", "db_max: -30", "must be below"),
        ("weights_filename: model.weights.h5", "weights_filename: model.keras", "Keras .h5"),
        ("stride: 32", "stride: 32.5", "must be an integer"),
        ("framework: tensorflow", "framework: tensorflow\nmodel: {name: unet}", "contradict"),
    ],
)
def test_contradicting_or_impossible_values_are_refused(old: str, new: str, message: str) -> None:
    with pytest.raises(WeightsError, match=message) as caught:
        _parse(_edit(old, new))
    assert str(caught.value).startswith(WHERE) and "\n" not in str(caught.value)


def test_broken_yaml_is_one_clear_line() -> None:
    with pytest.raises(WeightsError, match="not valid YAML") as caught:
        _parse("tiling: [unclosed\n")
    assert "\n" not in str(caught.value)


def _stats(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    assert is_statistics_file(name)
    return path


def test_a_statistics_file_may_only_restate_the_db_range(tmp_path: Path) -> None:
    config = _parse(PUBLISHED)
    agreeing = _stats(tmp_path, "normalization.yaml", "db_min: -20\ndb_max: 0\n")
    assert read_statistics(agreeing, config, where="n") == config
    contradicting = _stats(tmp_path, "stats.json", '{"clip_max_db": 3}')
    with pytest.raises(WeightsError, match="contradicts itself"):
        read_statistics(contradicting, config, where="s")
    moments = _stats(tmp_path, "statistics.yaml", "mean: [0.4, 0.4]\nstd: [0.2, 0.2]\n")
    with pytest.raises(WeightsError, match="'mean', a statistic"):
        read_statistics(moments, config, where="m")
    binary = _stats(tmp_path, "stats.npy", "\x93NUMPY")
    with pytest.raises(WeightsError, match="cannot read"):
        read_statistics(binary, config, where="b")


def test_statistics_fill_a_range_the_config_leaves_out(tmp_path: Path) -> None:
    config = _parse("framework: keras\n")
    stats = _stats(tmp_path, "normalisation.yml", "db_min: -23.5\ndb_max: 2\n")
    applied = read_statistics(stats, config, where="n")
    assert (applied.preprocessing.db_min, applied.preprocessing.db_max) == (-23.5, 2.0)
    assert "preprocessing.db_min" not in applied.defaulted


@pytest.mark.parametrize(
    ("front", "license_text"),
    [
        ("license: apache-2.0\n", "apache-2.0"),
        (
            "license: other\nlicense_name: research-only\nlicense_link: LICENSE\n",
            "other: research-only (LICENSE)",
        ),
        ("tags: [sar]\n", ""),
    ],
)
def test_license_comes_from_the_model_card(tmp_path: Path, front: str, license_text: str) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(f"---\n{front}---\n# Model\n")
    assert read_license(readme) == license_text
    assert read_license(tmp_path / "absent.md") == ""
