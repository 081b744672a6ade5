"""Starting and stopping the servers a benchmark measures: ``flashsale serve`` and the bare reference.

``bench/run.py`` and ``bench/redis_bench.py`` both use these; throwaway Redis
and PostgreSQL servers come from :mod:`flashsale.testing`, the same launcher
the tests use.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from flashsale.testing import ServerFailed, free_port

__all__ = [
    "BENCH",
    "SKU",
    "ServerFailed",
    "children",
    "cpu_seconds",
    "flashsale_bin",
    "free_port",
    "running",
    "stop",
    "wait_ready",
]

BENCH = Path(__file__).resolve().parent
READY_POLL_S = 0.05  # interval between /healthz polls (readiness is polled, never assumed)
STOP_TIMEOUT_S = 20.0
SKU = "hot"


def flashsale_bin() -> str:
    here = Path(sys.executable).parent / "flashsale"
    found = str(here) if here.exists() else shutil.which("flashsale")
    if found is None:
        raise ServerFailed("no flashsale executable next to this Python or on PATH")
    return found


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children(pid: int) -> list[int]:
    """The child processes of ``pid`` (Linux /proc), e.g. flashsale's feed writer."""
    try:
        return [int(x) for x in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _log_tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def wait_ready(proc: subprocess.Popen[bytes], port: int, log_path: Path, timeout: float) -> None:
    """Poll GET /healthz until it answers 200; fail fast if the process exits."""
    url = f"http://127.0.0.1:{port}/healthz"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ServerFailed(f"exited with code {proc.returncode} before answering /healthz:\n{_log_tail(log_path)}")
        with contextlib.suppress(urllib.error.URLError, OSError), urllib.request.urlopen(url, timeout=1.0) as resp:
            if resp.status == 200:
                return
        time.sleep(READY_POLL_S)
    raise ServerFailed(f"/healthz did not answer 200 within {timeout:.0f} s:\n{_log_tail(log_path)}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM (graceful: flashsale flushes its orders), then SIGKILL if it hangs."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        print(f"  ! pid {proc.pid} ignored SIGTERM for {STOP_TIMEOUT_S:.0f} s; killing it", flush=True)
        proc.kill()
        proc.wait()


@contextlib.contextmanager
def running(cmd: list[str], port: int, log_path: Path, ready_timeout: float) -> Iterator[subprocess.Popen[bytes]]:
    """Start ``cmd``, wait for /healthz, and always stop it afterwards."""
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
        )
    try:
        wait_ready(proc, port, log_path, ready_timeout)
        yield proc
    finally:
        stop(proc)
