"""A redis-backend worker checks Redis and PostgreSQL before it starts, and logs only what its backend has.

Each unreachable server is one ``cannot start`` line naming it (never its
URL, which may carry a password) and exit 1, with nothing logged before it.
Real processes, real servers.
"""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path
from typing import Any

from flashsale import RedisConfig
from tests.distributed.conftest import FLASHSALE, Workers, free_port
from tests.distributed.test_cluster import write_config


def _refusal(config: Path) -> str:
    done = subprocess.run(
        [FLASHSALE, "serve", "--config", str(config), "--port", str(free_port())],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    events: list[dict[str, Any]] = [json.loads(line) for line in done.stdout.splitlines()]
    assert [e["event"] for e in events] == ["cannot start"], events
    assert done.stderr == ""
    return str(events[0]["reason"])


def test_unreachable_redis_is_one_line(tmp_path: Path, pg_url: str) -> None:
    """No Redis at the URL: one line naming host and port, exit 1."""
    port = free_port()
    reason = _refusal(write_config(tmp_path, RedisConfig(url=f"redis://:secret@127.0.0.1:{port}/0"), pg_url))
    assert reason.startswith(f"cannot reach Redis at 127.0.0.1:{port} (redis.url): ")
    assert "Connection refused" in reason
    assert "secret" not in reason


def test_missing_postgres_role_is_one_line(tmp_path: Path, redis_config: RedisConfig, pg_url: str) -> None:
    """A role PostgreSQL does not know: one line naming server, database and role, exit 1 (not a worker unready)."""
    url = pg_url.replace("postgresql://postgres@", "postgresql://nobody:hunter2@")
    reason = _refusal(write_config(tmp_path, redis_config, url))
    database = pg_url.rsplit("/", 1)[1]
    assert reason.startswith(f"cannot use PostgreSQL at 127.0.0.1:{url.split(':')[3].split('/')[0]} database")
    assert f"database '{database}' as role 'nobody' (postgres.url): " in reason
    assert 'role "nobody" does not exist' in reason
    assert "hunter2" not in reason


def test_unreachable_postgres_is_one_line(tmp_path: Path, redis_config: RedisConfig) -> None:
    """Nothing listening at the PostgreSQL URL: one line, exit 1."""
    port = free_port()
    reason = _refusal(write_config(tmp_path, redis_config, f"postgresql://flashsale@127.0.0.1:{port}/flashsale"))
    assert reason.startswith(f"cannot use PostgreSQL at 127.0.0.1:{port} database 'flashsale' as role 'flashsale'")


def test_redis_mode_logs_no_store_fields(
    workers: Workers, tmp_path: Path, redis_config: RedisConfig, pg_url: str
) -> None:
    """With backend = "redis" no line carries the SQLite store's durability or the order writer's commit count."""
    proc = workers.start(write_config(tmp_path, redis_config, pg_url), free_port())
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0
    events = workers.events(proc)
    assert {"starting", "sale started", "listening", "sale stopped", "stopped"} <= {e["event"] for e in events}
    for event in events:
        assert "durability" not in event, event
        assert "orders_committed" not in event, event
        assert "store" not in event, event
