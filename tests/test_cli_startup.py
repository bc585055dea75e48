"""The command line starts without the heavy libraries: they load inside the commands."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("torch", "rasterio", "odc", "pystac", "h5py", "boto3")


def _loaded_after(code: str) -> set[str]:
    """Top-level packages of HEAVY that a fresh interpreter holds after running ``code``."""
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted(set(sys.modules))))"
    out = subprocess.run(
        [sys.executable, "-c", probe], check=True, capture_output=True, text=True
    ).stdout
    modules = json.loads(out.splitlines()[-1])
    return {name for name in modules if name.split(".")[0] in HEAVY}


def test_importing_the_cli_loads_no_heavy_library() -> None:
    assert _loaded_after("import stac_coh.cli") == set()


@pytest.mark.parametrize("argv", [["--help"], ["search", "--help"], ["weights", "--help"]])
def test_help_loads_no_heavy_library(argv: list[str]) -> None:
    code = f"from stac_coh.cli import app\ntry:\n    app({argv!r})\nexcept SystemExit:\n    pass"
    assert _loaded_after(code) == set()


def test_a_command_still_reaches_its_libraries() -> None:
    # Guards the probe itself: a command that needs rasterio does load it lazily (options
    # are checked before: a bad --mode fails without it).
    code = (
        "from stac_coh.cli import app\n"
        "try:\n    app(['predict', 'no-such-a.tif', 'no-such-b.tif', '-o', 'no-such-c.tif'])\n"
        "except BaseException:\n    pass"
    )
    assert "rasterio" in _loaded_after(code)
