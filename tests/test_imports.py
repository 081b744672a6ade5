"""Every module imports on its own, and the layers only point down: transport -> engine -> actors."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("actors", "engine", "transport")


def _modules() -> list[str]:
    found = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            found.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return found


MODULES = _modules()


def test_modules_are_discovered() -> None:
    """The module list covers each package and its private modules."""
    assert {"actors", "actors._dedup", "engine", "engine._engine", "transport"} <= set(MODULES)


@pytest.mark.parametrize("module", MODULES)
def test_module_imports_alone(module: str) -> None:
    """``python -c "import <module>"`` works in a fresh interpreter, with warnings as errors."""
    result = subprocess.run(
        [sys.executable, "-W", "error", "-c", f"import {module}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def _imported(path: Path) -> set[str]:
    """Top-level names of every absolute import in a file, at any depth (function bodies too)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
            elif node.level > 1:
                names.add("..")  # climbs out of its own package
    return names


FORBIDDEN = {
    "actors": {"engine", "transport", "aiohttp", "structlog", "orjson", ".."},
    "engine": {"transport", ".."},
}


@pytest.mark.parametrize(
    "path",
    [p for package in FORBIDDEN for p in sorted((ROOT / package).rglob("*.py"))],
    ids=lambda p: str(p.relative_to(ROOT)),
)
def test_layers_point_down(path: Path) -> None:
    """actors/ imports no engine, transport, aiohttp, structlog or orjson; engine/ imports no transport."""
    package = path.relative_to(ROOT).parts[0]
    assert _imported(path) & FORBIDDEN[package] == set()


def test_layer_check_sees_imports(tmp_path: Path) -> None:
    """The import parser finds plain, from-, nested and relative-climbing imports."""
    probe = tmp_path / "probe.py"
    probe.write_text("import a.b\nfrom c import d\ndef f():\n    import e\nfrom .. import g\nfrom . import h\n")
    assert _imported(probe) == {"a", "c", "e", ".."}
