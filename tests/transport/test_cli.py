"""`flashsale serve` as a real process: demo sale, purchases, graceful SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pytest

from flashsale.testing import free_port

FLASHSALE = [sys.executable, "-m", "flashsale.transport"]


def _wait_for(stream: IO[bytes], event: str) -> dict[str, Any]:
    """Read JSON log lines until ``event`` appears (the server says when it listens)."""
    for raw in stream:
        line = json.loads(raw)
        if line.get("event") == event:
            return line  # type: ignore[no-any-return]
    raise AssertionError(f"the server exited before logging {event!r}")


def _post(url: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Any]:
    procs: list[subprocess.Popen[bytes]] = []

    def start(*args: str) -> tuple[subprocess.Popen[bytes], str]:
        port = free_port()
        proc = subprocess.Popen(
            [*FLASHSALE, "serve", "--port", str(port), *args],
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
        )
        procs.append(proc)
        assert proc.stdout is not None
        _wait_for(proc.stdout, "listening")
        return proc, f"http://127.0.0.1:{port}"

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()


def test_demo_sale_serves_and_stops_cleanly(serve: Any, tmp_path: Path) -> None:
    """With no config, the demo sale sells over HTTP; SIGTERM flushes, exits 0, and the order is on disk."""
    proc, url = serve()
    status, body = _post(f"{url}/v1/purchase", {"sku": "moutai-53", "user": "alice"})
    assert (status, body["result"]) == (200, "reserved")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(20) == 0
    assert proc.stdout is not None
    assert _wait_for(proc.stdout, "stopped")
    with sqlite3.connect(tmp_path / "flashsale-demo.db") as db:
        assert db.execute("SELECT order_id, user FROM orders").fetchall() == [(body["order_id"], "alice")]


def test_config_file_sale_survives_a_restart(serve: Any, tmp_path: Path) -> None:
    """A TOML sale sells its stock once; after a restart the sold units stay sold."""
    (tmp_path / "sale.toml").write_text(
        '[store]\npath = "orders/sale.db"\n\n[[sku]]\nid = "gpu"\nstock = 2\nper_user_limit = 1\n', encoding="utf-8"
    )
    proc, url = serve("--config", "sale.toml")
    assert [_post(f"{url}/v1/purchase", {"sku": "gpu", "user": u})[0] for u in ("a", "b", "c")] == [200, 200, 409]
    proc.send_signal(signal.SIGINT)
    assert proc.wait(20) == 0
    _, url = serve("--config", "sale.toml")
    status, body = _post(f"{url}/v1/purchase", {"sku": "gpu", "user": "d"})
    assert (status, body["error"]) == (409, "sold_out")
    with urllib.request.urlopen(f"{url}/v1/skus/gpu", timeout=10) as resp:
        assert json.loads(resp.read())["remaining"] == 0


def test_bad_config_fails_fast_with_a_clear_message(tmp_path: Path) -> None:
    """A config with an unknown key exits 2 naming the file and the key."""
    (tmp_path / "bad.toml").write_text('[[sku]]\nid = "gpu"\nstock = 2\nper_user_limt = 1\n', encoding="utf-8")
    result = subprocess.run(
        [*FLASHSALE, "serve", "--config", "bad.toml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
        check=False,
    )
    assert result.returncode == 2
    assert "bad.toml" in result.stderr
    assert "per_user_limt" in result.stderr
