"""``flashsale serve`` refusing to start: one clear line, exit 1, nothing opened or changed. Real processes."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from flashsale.testing import free_port as _free_port
from flashsale.testing import wait_until
from tests.transport.test_cli import FLASHSALE, _wait_for

REPO = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(REPO)}


def _run(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*FLASHSALE, *args], cwd=cwd, capture_output=True, text=True, timeout=60, env=ENV, check=False
    )


def _events(out: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.splitlines()]


def _one_refusal(result: subprocess.CompletedProcess[str]) -> str:
    """The process exited 1 having said exactly one thing: its ``cannot start`` line; returns the reason."""
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stderr == ""
    events = _events(result.stdout)
    assert [e["event"] for e in events] == ["cannot start"]
    return str(events[0]["reason"])


def _listing(path: Path) -> dict[str, bytes]:
    """Every file's bytes, but SQLite's shared-memory index, which the running server's own reads touch."""
    return {p.name: p.read_bytes() for p in sorted(path.iterdir()) if p.is_file() and not p.name.endswith("-shm")}


@pytest.fixture
def running(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """A demo server in ``tmp_path/first`` on a free port, stopped with SIGTERM afterwards."""
    first = tmp_path / "first"
    first.mkdir()
    port = _free_port()
    proc = subprocess.Popen([*FLASHSALE, "serve", "--port", str(port)], cwd=first, stdout=subprocess.PIPE, env=ENV)
    assert proc.stdout is not None
    _wait_for(proc.stdout, "listening")
    yield proc, port
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(20) == 0
    proc.stdout.close()


def test_taken_port(running: tuple[subprocess.Popen[bytes], int], tmp_path: Path) -> None:
    """A second server on a port in use says so in one line and exits 1; it creates no database."""
    _, port = running
    second = tmp_path / "second"
    second.mkdir()
    reason = _one_refusal(_run(second, "serve", "--port", str(port)))
    assert reason == (
        f"cannot listen on 127.0.0.1:{port}: the port is in use"
        " (is another flashsale already serving there? pick another with --port)"
    )
    assert list(second.iterdir()) == []


def test_second_server_on_the_same_database(running: tuple[subprocess.Popen[bytes], int], tmp_path: Path) -> None:
    """A second server on another port but the same database file is refused before SQLite opens it."""
    _, port = running
    first = tmp_path / "first"
    with urllib.request.urlopen(
        urllib.request.Request(
            f"http://127.0.0.1:{port}/v1/purchase", data=b'{"sku": "moutai-53", "user": "alice"}', method="POST"
        ),
        timeout=10,
    ) as resp:
        assert resp.status == 200
    before = _listing(first)
    reason = _one_refusal(_run(first, "serve", "--port", str(_free_port())))
    assert reason == (
        "the order database flashsale-demo.db is in use by another flashsale server"
        " (stop that one first, or give this one another [store] path)"
    )
    assert _listing(first) == before  # the database, its WAL and shared memory are untouched


def test_unwritable_database_path(tmp_path: Path) -> None:
    """A [store] path that cannot be written is one line and exit 1; nothing is created."""
    (tmp_path / "orders").write_text("a file, not a directory", encoding="utf-8")
    (tmp_path / "sale.toml").write_text('[store]\npath = "orders/sale.db"\n[[sku]]\nid = "a"\nstock = 1\n')
    before = _listing(tmp_path)
    reason = _one_refusal(_run(tmp_path, "serve", "--config", "sale.toml", "--port", str(_free_port())))
    assert reason == (
        "cannot write the order database orders/sale.db: orders is not a directory"
        " (set [store] path to a writable place)"
    )
    assert _listing(tmp_path) == before


def test_port_refused_before_the_database(tmp_path: Path) -> None:
    """With both a taken port and a bad database, the port is named: it is checked first."""
    (tmp_path / "orders").write_text("not a directory", encoding="utf-8")
    (tmp_path / "sale.toml").write_text('[store]\npath = "orders/sale.db"\n[[sku]]\nid = "a"\nstock = 1\n')
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        reason = _one_refusal(_run(tmp_path, "serve", "--config", "sale.toml", "--port", str(port)))
    assert reason.startswith(f"cannot listen on 127.0.0.1:{port}: the port is in use")


def test_a_second_sigterm_does_not_cut_the_stop_short(tmp_path: Path) -> None:
    """A SIGTERM during the graceful stop (``make serve`` passes its own on) is logged; the stop completes, exit 0."""
    port = _free_port()
    proc = subprocess.Popen([*FLASHSALE, "serve", "--port", str(port)], cwd=tmp_path, stdout=subprocess.PIPE, env=ENV)
    assert proc.stdout is not None
    _wait_for(proc.stdout, "listening")
    # A purchase whose body is still on its way keeps the stop waiting for it.
    slow = socket.create_connection(("127.0.0.1", port))
    slow.sendall(b'POST /v1/purchase HTTP/1.1\r\nHost: x\r\nContent-Length: 60\r\n\r\n{"sku": "tshirt"')
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10) as resp:  # read after the slow one
        assert resp.status == 200
    proc.send_signal(signal.SIGTERM)

    def refusing() -> bool:  # the first stop has begun: the listening socket is closed
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        except OSError:
            return True
        return False

    wait_until(refusing, 20, "the server to stop listening")
    proc.send_signal(signal.SIGTERM)
    _wait_for(proc.stdout, "already stopping")
    slow.close()
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0
    assert [e["event"] for e in _events(out.decode())][-2:] == ["sale stopped", "stopped"]


def test_version() -> None:
    """``flashsale --version`` prints the installed version and exits 0."""
    import importlib.metadata  # noqa: PLC0415

    result = _run(REPO, "--version")
    assert (result.returncode, result.stdout) == (0, f"flashsale {importlib.metadata.version('flashsale')}\n")


def test_access_log_is_off_by_default_and_one_line_per_request_when_on(tmp_path: Path) -> None:
    """``server.access_log = true`` logs method, path, status, latency and request id per request; off: none."""
    for on in (False, True):
        (tmp_path / "sale.toml").write_text(
            f'[server]\naccess_log = {"true" if on else "false"}\n[store]\npath = "o{on}.db"\n'
            '[[sku]]\nid = "a"\nstock = 1\n'
        )
        port = _free_port()
        proc = subprocess.Popen(
            [*FLASHSALE, "serve", "--config", "sale.toml", "--port", str(port)],
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            env=ENV,
        )
        assert proc.stdout is not None
        _wait_for(proc.stdout, "listening")
        request = urllib.request.Request(f"http://127.0.0.1:{port}/v1/skus/a", headers={"X-Request-Id": "rid-7"})
        with urllib.request.urlopen(request, timeout=10) as resp:
            assert resp.status == 200
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=20)
        assert proc.returncode == 0
        lines = [e for e in _events(out.decode()) if e.get("logger") == "flashsale.access" or e["event"] == "request"]
        if not on:
            assert lines == []
            continue
        assert len(lines) == 1
        line = lines[0]
        assert (line["method"], line["path"], line["status"], line["request_id"]) == ("GET", "/v1/skus/a", 200, "rid-7")
        assert 0 <= line["ms"] < 10_000  # uvloop's clock ticks in milliseconds


if sys.platform != "linux":  # flock and SO_REUSEPORT as used here are Linux behaviour
    pytestmark = pytest.mark.skip(reason="Linux only")
