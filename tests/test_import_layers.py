"""The package's layers import only downwards, so each can be read, tested and reused on its own.

The allowed direction: ``losses`` and ``data`` depend on nothing of ours but the shared
modules (``atomic_io``, ``modalities``, ``regions``, ``env``); ``network`` may use ``losses``;
``training`` may use ``network``, ``losses`` and ``evaluation`` (its 15-subset final validation
scores the way the benchmark does); ``inference`` may use ``network`` and
``data``; ``evaluation`` may use ``inference`` and ``data``. Imports inside functions count.
"""
from __future__ import annotations

import ast
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "nnunetv2_mstkd"
SHARED = {"atomic_io", "modalities", "regions", "env"}
ALLOWED = {
    "losses": SHARED | {"losses"},
    "data": SHARED | {"data"},
    "network": SHARED | {"losses", "network"},
    "training": SHARED | {"losses", "network", "training", "evaluation"},
    "inference": SHARED | {"data", "network", "inference"},
    "evaluation": SHARED | {"data", "inference", "evaluation"},
}


def imported_parts(path: pathlib.Path) -> set[str]:
    """The first component under ``nnunetv2_mstkd`` of every module that ``path`` imports."""
    parts = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + ([f"{node.module}.{a.name}" for a in node.names]
                                     if node.module == "nnunetv2_mstkd" else [])
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        for name in names:
            bits = name.split(".")
            if bits[0] == "nnunetv2_mstkd" and len(bits) > 1:
                parts.add(bits[1])
    return parts


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_layer_imports_only_downwards(layer):
    offences = {str(p.relative_to(PACKAGE)): sorted(imported_parts(p) - ALLOWED[layer])
                for p in sorted((PACKAGE / layer).rglob("*.py"))}
    assert {k: v for k, v in offences.items() if v} == {}


def test_the_check_sees_function_level_imports(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from nnunetv2_mstkd.inference.predict import main\n")
    assert imported_parts(module) == {"inference"}
