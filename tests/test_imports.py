"""Every module imports on its own, and the layers only point down: transport -> engine -> actors."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# Each folder of the repo and the name it installs under (pyproject.toml's package-dir).
PACKAGES = {"actors": "flashsale.actors", "engine": "flashsale", "transport": "flashsale.transport"}


def _module_name(path: Path) -> str:
    folder, *rest = path.relative_to(ROOT).with_suffix("").parts
    if rest and rest[-1] in ("__init__", "__main__"):
        rest = rest[:-1] if rest[-1] == "__init__" else rest
    return ".".join([PACKAGES[folder], *rest])


def _modules() -> list[str]:
    return [
        _module_name(path)
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
        if path.name != "__main__.py"  # runs the CLI when imported
    ]


MODULES = _modules()


def test_modules_are_discovered() -> None:
    """The module list covers each package and its private modules."""
    expected = {"flashsale", "flashsale._engine", "flashsale.actors", "flashsale.actors._dedup", "flashsale.transport"}
    assert expected <= set(MODULES)
    assert {"flashsale.redis", "flashsale.scenario", "flashsale.stores", "flashsale.config"} <= set(MODULES)


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
    """What a file imports, at any depth (function bodies too).

    Top-level names for other libraries; for flashsale itself, the sub-package
    (``flashsale``, ``flashsale.actors``, ``flashsale.transport``). ``..`` marks a
    relative import that climbs out of its own package.
    """
    names: set[str] = set()

    def add(module: str) -> None:
        parts = module.split(".")
        if parts[0] == "flashsale" and len(parts) > 1 and parts[1] in ("actors", "transport"):
            names.add(".".join(parts[:2]))
        else:
            names.add(parts[0])

    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0 and node.module:
                add(node.module)
            elif node.level > 1:
                names.add("..")  # climbs out of its own package
    return names


FORBIDDEN = {
    # actors/ knows nothing above it: not the engine (``flashsale``), not HTTP, not files or formats.
    "actors": {"flashsale", "flashsale.transport", "aiohttp", "structlog", "orjson", ".."},
    # engine/ (``flashsale``) never imports the transport built on it.
    "engine": {"flashsale.transport"},
    # transport/ reaches the actors only through the engine.
    "transport": {"flashsale.actors", ".."},
}


@pytest.mark.parametrize(
    "path",
    [p for package in FORBIDDEN for p in sorted((ROOT / package).rglob("*.py"))],
    ids=lambda p: str(p.relative_to(ROOT)),
)
def test_layers_point_down(path: Path) -> None:
    """actors/ imports no engine, transport, aiohttp, structlog or orjson; engine/ no transport; transport no actors."""
    package = path.relative_to(ROOT).parts[0]
    assert _imported(path) & FORBIDDEN[package] == set()


def test_layer_check_sees_imports(tmp_path: Path) -> None:
    """The import parser finds plain, from-, nested and relative-climbing imports."""
    probe = tmp_path / "probe.py"
    probe.write_text(
        "import a.b\nfrom c import d\ndef f():\n    import e\nfrom .. import g\nfrom . import h\n"
        "from flashsale.actors._x import y\nimport flashsale.scenario\n"
    )
    assert _imported(probe) == {"a", "c", "e", "..", "flashsale.actors", "flashsale"}


def test_memory_backend_never_imports_redis_or_psycopg() -> None:
    """The engine, the app and a started sale on the memory backend leave redis and psycopg unimported."""
    code = (
        "import asyncio, sys, tempfile, os\n"
        "import flashsale, flashsale.transport\n"
        "from flashsale import SaleEngine, demo_config\n"
        "async def main():\n"
        "    async with SaleEngine(demo_config(os.path.join(tempfile.mkdtemp(), 'x.db'))) as e:\n"
        "        flashsale.transport.create_app(e.config)\n"
        "asyncio.run(main())\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('redis', 'psycopg', 'hiredis')))\n"
    )
    result = subprocess.run(
        [sys.executable, "-W", "error", "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_redis_and_psycopg_are_an_extra() -> None:
    """``pip install flashsale`` pulls neither redis nor psycopg; ``flashsale[redis]`` adds both."""
    from importlib.metadata import requires  # noqa: PLC0415

    required = requires("flashsale") or []
    plain = [r for r in required if "extra ==" not in r]
    assert not [r for r in plain if r.startswith(("redis", "psycopg"))]
    redis_extra = [r.split(";")[0] for r in required if 'extra == "redis"' in r]
    assert any(r.startswith("redis") for r in redis_extra)
    assert any(r.startswith("psycopg") for r in redis_extra)
