"""PostgreSQL fixtures for the distributed tests, on :class:`flashsale.testing.PostgresServer`.

The server is a real cluster spawned from the machine's binaries (initdb, then
postgres on a free loopback port); it can be stopped and started again on the
same port and data (the sink's outage tests do exactly that).

Fixtures: ``pg_server`` (one per session) and ``pg_url`` (a fresh database on
it for each test). Missing binaries fail the test with the launcher's message; nothing is
skipped.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from flashsale.testing import PostgresServer, free_port

__all__ = ["PostgresServer", "free_port", "pg_server", "pg_url"]


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
