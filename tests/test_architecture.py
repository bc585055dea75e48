"""The package's shape: stages import only leftwards, no cycles, small modules, a short top.

See docs/architecture.md. These checks read the source (ast), so they cost no imports.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "stac_coh"

STAGES = {
    "io": 1,
    "search": 2,
    "load": 3,
    "model": 4,
    "infer": 5,
    "publish": 6,
    "pipeline": 7,
    "composite": 8,
    "batch": 8,
    "science": 8,
    "cli": 9,
}
"""Rank of each subpackage; top-level modules (errors, settings, ...) rank 0."""

MAX_TOP_LEVEL_MODULES = 8
MAX_LINES = 400


def _modules() -> dict[str, Path]:
    """Dotted module name -> file, for every module of the package."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """Modules of the package that ``name`` imports, anywhere in its code."""
    tree = ast.parse(path.read_text())
    is_package = path.name == "__init__.py"
    out = set()
    for node in ast.walk(tree):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".")[: len(name.split(".")) - node.level + is_package]
                base = ".".join([*anchor, base] if base else anchor)
            submodules = [f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in known]
            targets = submodules if len(submodules) == len(node.names) else [base, *submodules]
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name and target.startswith("stac_coh"):
                out.add(target)
    return out


def _rank(module: str) -> int:
    parts = module.split(".")
    return STAGES.get(parts[1], 0) if len(parts) > 2 or parts[1] in STAGES else 0


def _stage(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in STAGES else "<top>"


MODULES = _modules()
GRAPH = {name: _imports(name, path, set(MODULES)) for name, path in MODULES.items()}


def test_stages_import_only_leftwards() -> None:
    wrong = []
    for module, targets in GRAPH.items():
        if module in ("stac_coh", "stac_coh.__main__"):  # the lazy public API, the entry point
            continue
        for target in targets:
            if target == "stac_coh":
                continue
            same_stage = _stage(module) == _stage(target)
            if not same_stage and _rank(target) >= _rank(module):
                wrong.append(f"{module} -> {target}")
    assert wrong == []


def test_no_import_cycles() -> None:
    graph = {m: {t for t in ts if t != "stac_coh"} for m, ts in GRAPH.items() if m != "stac_coh"}
    state: dict[str, int] = defaultdict(int)  # 0 new, 1 on the stack, 2 done
    cycles: list[list[str]] = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state[nxt] == 1:
                cycles.append([*stack[stack.index(nxt) :], nxt])
            elif state[nxt] == 0:
                visit(nxt, [*stack, nxt])
        state[node] = 2

    for module in sorted(graph):
        if state[module] == 0:
            visit(module, [module])
    assert cycles == []


def test_the_top_of_the_package_is_short() -> None:
    top = [p.name for p in PACKAGE.glob("*.py")]
    assert len(top) <= MAX_TOP_LEVEL_MODULES, top


@pytest.mark.parametrize("module", sorted(MODULES))
def test_modules_stay_small(module: str) -> None:
    lines = len(MODULES[module].read_text().splitlines())
    assert lines <= MAX_LINES, f"{module} has {lines} lines: split it by idea"


def test_the_checks_can_fail(tmp_path: Path) -> None:
    """A planted wrong-way import is seen (the checks are not vacuous)."""
    planted = tmp_path / "x.py"
    planted.write_text("def f():\n    from stac_coh.cli import main\n")
    known = {"stac_coh.cli", "stac_coh.io.x"}
    assert _imports("stac_coh.io.x", planted, known) == {"stac_coh.cli"}
    assert _rank("stac_coh.cli") > _rank("stac_coh.io.x")
