"""A throwaway PostgreSQL cluster on a free loopback port, spawned from the machine's binaries.

``initdb`` runs once into a temporary directory, then ``postgres`` listens on
127.0.0.1 with trust authentication and its Unix socket in the same
directory. PostgreSQL refuses to run as root, so as root the directory is
handed to the ``postgres`` OS user and the server runs as that user. It can be
stopped and started again on the same port and data.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import uuid
from pathlib import Path
from types import TracebackType
from typing import Self

from ._ports import free_port
from ._wait import ServerFailed, wait_until

SEARCH = ("/usr/lib/postgresql/17/bin", "/usr/lib/postgresql/16/bin", "/usr/lib/postgresql/15/bin")
START_TIMEOUT = 30.0


def postgres_binary(name: str) -> str:
    """The path of a PostgreSQL program: on PATH, or in Debian's versioned directory."""
    found = shutil.which(name) or next((f"{d}/{name}" for d in SEARCH if os.access(f"{d}/{name}", os.X_OK)), None)
    if found is None:
        where = ", ".join(SEARCH)
        raise ServerFailed(f"PostgreSQL's {name!r} is not on PATH nor in {where}: install postgresql (make test does)")
    return found


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
        self._run([postgres_binary("initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust", "-E", "UTF8",
                   "--no-sync"])  # fmt: skip

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
            raise ServerFailed(f"{argv[0]} failed ({result.returncode}): {result.stderr.decode(errors='replace')}")

    def _psql(self, database: str, command: str) -> None:
        self._run([postgres_binary("psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-d", database,
                   "-v", "ON_ERROR_STOP=1", "-qAtc", command])  # fmt: skip

    def start(self) -> None:
        """Start the server and return once it accepts connections."""
        if self.proc is not None:
            raise ServerFailed("already running")
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [postgres_binary("postgres"), "-D", str(self.data), "-p", str(self.port), "-h", "127.0.0.1",
                 "-k", str(self.dir), "-c", "fsync=off", "-c", "full_page_writes=off", "-c", "max_connections=200"],
                user=self.user, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
            )  # fmt: skip
        proc = self.proc
        ready = [postgres_binary("pg_isready"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-q"]

        def up() -> bool:
            if proc.poll() is not None:
                raise ServerFailed(f"postgres exited with {proc.returncode}: {self.log.read_text(errors='replace')}")
            return subprocess.run(ready, check=False, timeout=10).returncode == 0

        wait_until(up, START_TIMEOUT, f"PostgreSQL on port {self.port}")

    def stop(self) -> None:
        """Stop the server (fast shutdown: clients are disconnected, data is kept)."""
        if self.proc is not None:
            self.proc.send_signal(signal.SIGINT)
            self.proc.wait(timeout=60)
            self.proc = None

    def create_database(self, name: str | None = None) -> str:
        """Create an empty database (a fresh random name by default); return its URL."""
        name = name or f"t_{uuid.uuid4().hex[:16]}"
        if not name.replace("_", "").isalnum():
            raise ValueError(f"not a plain database name: {name!r}")
        self._psql("postgres", f'CREATE DATABASE "{name}"')
        return self.url_for(name)

    def drop_database(self, url: str) -> None:
        """Drop the database at ``url``, disconnecting whoever is still on it."""
        name = url.rsplit("/", 1)[1]
        self._psql("postgres", f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def close(self) -> None:
        """Stop the server and delete its directory."""
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.close()
