"""A throwaway PostgreSQL server for the distributed tests, spawned from the machine's binaries.

:class:`PostgresServer` runs ``initdb`` once into a temporary directory, then
``postgres`` on a free loopback port with trust authentication and its Unix
socket in the same directory. PostgreSQL refuses to run as root, so when the
tests run as root the data directory is handed to the ``postgres`` OS user and
the server runs as that user. It can be stopped and started again on the same
port and data (the sink's outage tests do exactly that).

Fixtures: ``pg_server`` (one per session) and ``pg_url`` (a fresh database on
it for each test). Missing binaries fail the test with a message; nothing is
skipped.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

__all__ = ["PostgresServer", "pg_server", "pg_url"]

SEARCH = ("/usr/lib/postgresql/17/bin", "/usr/lib/postgresql/16/bin", "/usr/lib/postgresql/15/bin")
START_TIMEOUT = 30.0


def _binary(name: str) -> str:
    """The path of a PostgreSQL program: on PATH, or in Debian's versioned directory."""
    found = shutil.which(name) or next((f"{d}/{name}" for d in SEARCH if os.access(f"{d}/{name}", os.X_OK)), None)
    if found is None:
        pytest.fail(f"PostgreSQL's {name!r} is not on PATH nor in {', '.join(SEARCH)}: install postgresql")
    return found


def free_port() -> int:
    """A loopback TCP port that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PostgresServer:
    """One PostgreSQL cluster in a temporary directory, listening on ``127.0.0.1:port``."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="flashsale-pg-"))
        self.data = self.dir / "data"
        self.log = self.dir / "server.log"
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        # PostgreSQL will not run as root: run it as the postgres OS user then.
        self.user = "postgres" if os.geteuid() == 0 else None
        if self.user is not None:
            owner = pwd.getpwnam(self.user)
            os.chown(self.dir, owner.pw_uid, owner.pw_gid)
        self._run([_binary("initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync"])

    @property
    def url(self) -> str:
        """The URL of the ``postgres`` maintenance database."""
        return self.url_for("postgres")

    def url_for(self, database: str) -> str:
        """The URL of ``database`` on this server."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, argv: list[str]) -> None:
        result = subprocess.run(argv, user=self.user, capture_output=True, check=False, timeout=120)
        if result.returncode != 0:
            pytest.fail(f"{argv[0]} failed ({result.returncode}): {result.stderr.decode(errors='replace')}")

    def start(self) -> None:
        """Start the server and return once it accepts connections."""
        assert self.proc is None, "already running"
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [_binary("postgres"), "-D", str(self.data), "-p", str(self.port), "-h", "127.0.0.1",
                 "-k", str(self.dir), "-c", "fsync=off", "-c", "full_page_writes=off", "-c", "max_connections=200"],
                user=self.user, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
            )  # fmt: skip
        deadline = time.monotonic() + START_TIMEOUT
        while True:  # poll an external process, with a deadline
            if self.proc.poll() is not None:
                pytest.fail(f"postgres exited with {self.proc.returncode}: {self.log.read_text(errors='replace')}")
            try:
                psycopg.connect(self.url, connect_timeout=2).close()
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    pytest.fail(f"postgres did not accept connections in {START_TIMEOUT}s: {self.log.read_text()}")
                time.sleep(0.05)  # sleep-ok: the poll interval while a spawned PostgreSQL starts
            else:
                return

    def stop(self) -> None:
        """Stop the server (fast shutdown: clients are disconnected, data is kept)."""
        if self.proc is not None:
            self.proc.send_signal(signal.SIGINT)
            self.proc.wait(timeout=60)
            self.proc = None

    def create_database(self) -> str:
        """Create an empty database; return its URL."""
        name = f"t_{uuid.uuid4().hex[:16]}"
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.url_for(name)

    def drop_database(self, url: str) -> None:
        """Drop the database at ``url``, disconnecting whoever is still on it."""
        name = url.rsplit("/", 1)[1]
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))

    def close(self) -> None:
        """Stop the server and delete its directory."""
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    """A PostgreSQL server for the whole session (stopped and deleted at the end)."""
    server = PostgresServer()
    try:
        server.start()
        yield server
    finally:
        server.close()


@pytest.fixture
def pg_url(pg_server: PostgresServer) -> Iterator[str]:
    """The URL of a fresh, empty database for this test; dropped afterwards."""
    if pg_server.proc is None:  # a test that stopped the shared server must not break the next one
        pg_server.start()
    url = pg_server.create_database()
    yield url
    if pg_server.proc is None:
        pg_server.start()
    pg_server.drop_database(url)
