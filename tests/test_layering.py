"""Imports go one way: wire <- transport <- jobs <- fanout <- front ends; the library never imports
the testing side; the terminal library stays out of the library's import path."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT

SRC = ROOT / "src" / "hvjob"

#: Each layer and what it may import of hvjob (besides itself, errors and the package's version).
ALLOWED: dict[str, set[str]] = {
    "wire": set(),
    "transport": {"wire"},
    "scenario": {"wire"},
    "recorder": {"wire", "scenario"},
    "jobs": {"wire", "transport"},
    "fanout": {"wire", "transport", "jobs", "recorder"},
    "inventory": {"wire", "transport", "jobs", "fanout"},
    "cli": {"wire", "transport", "jobs", "fanout", "inventory", "recorder", "scenario"},
    "testing": {"wire", "transport", "jobs", "fanout", "recorder", "scenario"},
}
ALWAYS = {"errors", "__init__", "__version__"}


def _layer(path: Path) -> str:
    part = path.relative_to(SRC).parts[0]
    return part.removesuffix(".py")


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] == "hvjob" and len(parts) > 1:
                found.add(parts[1])
    return found


MODULES = sorted(p for p in SRC.rglob("*.py") if _layer(p) in ALLOWED)


@pytest.mark.parametrize("path", MODULES, ids=[str(p.relative_to(SRC)) for p in MODULES])
def test_imports_go_one_way(path: Path) -> None:
    layer = _layer(path)
    wrong = _imports(path) - ALLOWED[layer] - ALWAYS - {layer} - _own_children(layer)
    assert not wrong, f"{path.relative_to(ROOT)} ({layer}) imports hvjob.{sorted(wrong)}"


def _own_children(layer: str) -> set[str]:
    return {p.stem for p in (SRC / layer).glob("*.py")} if (SRC / layer).is_dir() else set()


def test_the_top_level_package_imports_only_the_library() -> None:
    assert _imports(SRC / "__init__.py") <= {"errors", "fanout", "jobs", "transport"}


def test_the_library_loads_neither_the_testing_side_nor_the_terminal_libraries() -> None:
    code = (
        "import sys, hvjob, hvjob.fanout, hvjob.jobs, hvjob.transport, hvjob.recorder;"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('rich', 'click', 'ansible') "
        "or m.startswith('hvjob.testing') or m.startswith('hvjob.cli')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_the_cli_loads_rich_only_to_draw() -> None:
    code = "import sys, hvjob.cli; print('rich' in sys.modules, 'hvjob.testing' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["False", "False"]
