"""A throwaway ``redis-server`` on a free loopback port, its files in a temporary directory."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Literal, Self

from ._ports import free_port
from ._wait import ServerFailed, wait_until

START_TIMEOUT = 20.0


def _pings(port: int) -> bool:
    """True when a Redis on ``port`` answers PING (raw RESP: no client library needed)."""
    with socket.create_connection(("127.0.0.1", port), timeout=1.0) as s:
        s.sendall(b"*1\r\n$4\r\nPING\r\n")
        return s.recv(16).startswith(b"+PONG")


class RedisServer:
    """One ``redis-server`` on ``127.0.0.1:port``.

    ``appendfsync`` chooses the AOF (``"always"``: every write on disk, what a
    sale wants; ``"everysec"``; ``None``: no AOF and no snapshots, so a restart
    comes back empty). It can be stopped (SIGTERM), killed (SIGKILL) and
    started again on the same port and data. Use as a context manager or call
    :meth:`start` and :meth:`close`.
    """

    def __init__(self, *, appendfsync: Literal["always", "everysec"] | None = "always") -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise ServerFailed("'redis-server' is not on PATH: install redis-server (make test does, as root)")
        self.binary = binary
        self.appendfsync = appendfsync
        self.dir = Path(tempfile.mkdtemp(prefix="flashsale-redis-"))
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start the server; return once it answers PING."""
        argv = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.dir), "--save", ""]
        if self.appendfsync is None:
            argv += ["--appendonly", "no"]
        else:
            argv += ["--appendonly", "yes", "--appendfsync", self.appendfsync]
        argv += ["--logfile", "redis.log"]
        proc = self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        def up() -> bool:
            if proc.poll() is not None:
                raise ServerFailed(f"redis-server exited with {proc.returncode}: {self.log_tail()}")
            return _pings(self.port)

        wait_until(up, START_TIMEOUT, f"redis-server on port {self.port}")

    def log_tail(self, lines: int = 20) -> str:
        """The last lines of the server's log."""
        try:
            return "\n".join((self.dir / "redis.log").read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        """Stop the server the way an operator would (SIGTERM: the AOF is flushed)."""
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=START_TIMEOUT)
            self.proc = None

    def kill(self) -> None:
        """SIGKILL: what a crash does (with ``appendfsync = "always"`` every write is already on disk)."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(timeout=START_TIMEOUT)
            self.proc = None

    def close(self) -> None:
        """Stop the server and delete its directory."""
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.close()
