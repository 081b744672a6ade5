"""What `pip install flashsale` puts in a user's environment, and what `make test` needs on a machine."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_wheel_installs_one_top_level_name(tmp_path: Path) -> None:
    """The wheel holds the ``flashsale`` package only (no ``engine``, ``actors`` or ``transport`` at top level)."""
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(tmp_path), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = tmp_path.glob("flashsale-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        metadata = Parser().parsestr(zf.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode())
    tops = {name.split("/")[0] for name in names}
    assert {t for t in tops if not t.endswith(".dist-info")} == {"flashsale"}
    for module in ("__init__.py", "_engine.py", "py.typed", "actors/__init__.py", "transport/__init__.py",
                   "redis/__init__.py", "scenario/__init__.py", "stores/__init__.py", "config/__init__.py",
                   "testing/__init__.py", "transport/static/dashboard/dashboard.js",
                   "transport/static/dashboard/dashboard.html", "transport/static/dashboard/logo.svg"):  # fmt: skip
        assert f"flashsale/{module}" in names
    requires = metadata.get_all("Requires-Dist") or []
    plain = [r for r in requires if "extra ==" not in r]
    assert not [r for r in plain if r.startswith(("redis", "psycopg"))]
    assert "redis" in (metadata.get_all("Provides-Extra") or [])


def test_system_deps_names_the_install_when_not_root(tmp_path: Path) -> None:
    """Missing programs and no root: one line naming the apt-get command, exit 1, nothing installed."""
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    (fake_bin / "bash").symlink_to("/bin/bash")
    (fake_bin / "id").write_text("#!/bin/bash\necho 1000\n")
    (fake_bin / "id").chmod(0o755)
    result = subprocess.run(
        [str(fake_bin / "bash"), str(ROOT / "tests" / "system-deps.sh")],
        env={**os.environ, "PATH": str(fake_bin)},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "apt-get install -y redis-server" in lines[0]
    assert result.stdout == ""
