"""The layer contract (``[tool.importlinter]`` in pyproject.toml) and no import cycles.

``lint-imports`` runs the contract as CI does; the grimp checks below read the same
layers and also show that a planted upward import would be caught.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import grimp
import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"
LAYERS = [
    set(layer.split(" | "))
    for layer in tomllib.loads(PYPROJECT.read_text())["tool"]["importlinter"]["contracts"][0][
        "layers"
    ]
]


@pytest.fixture(scope="module")
def graph():
    return grimp.build_graph("neuraltrader")


def _illegal(graph) -> set:
    return graph.find_illegal_dependencies_for_layers(
        layers=[grimp.Layer(*layer, independent=True) for layer in LAYERS]
    )


def test_lint_imports_keeps_the_contract():
    command = shutil.which("lint-imports")
    assert command is not None, "import-linter is a test dependency"
    result = subprocess.run([command, "--config", str(PYPROJECT)], capture_output=True,
                            text=True, cwd=PYPROJECT.parent)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 kept, 0 broken" in result.stdout


def test_no_layer_imports_one_above_it_and_a_planted_one_is_caught(graph):
    assert _illegal(graph) == set()
    graph.add_import(importer="neuraltrader.core.train", imported="neuraltrader.pipelines.study")
    assert {(d.importer, d.imported) for d in _illegal(graph)} == {
        ("neuraltrader.core", "neuraltrader.pipelines")
    }


def test_no_import_cycles():
    graph = grimp.build_graph("neuraltrader")  # its own: the test above changed the other
    modules = sorted(m for m in graph.modules if m != "neuraltrader")  # the API facade

    def cycle_from(start: str) -> list[str] | None:
        stack, seen = [(start, [start])], set()
        while stack:
            module, path = stack.pop()
            for imported in graph.find_modules_directly_imported_by(module):
                if imported == start:
                    return [*path, start]
                if imported != "neuraltrader" and imported not in seen:
                    seen.add(imported)
                    stack.append((imported, [*path, imported]))
        return None

    cycles = [cycle for cycle in map(cycle_from, modules) if cycle]
    assert cycles == []
