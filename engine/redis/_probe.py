"""One look at Redis and PostgreSQL before a worker starts: each answers, or a sentence says why not.

``flashsale serve`` calls these before it opens anything else, so a worker
that cannot reach either server says so in one line and exits (the sink
would otherwise start unready and retry forever). The sentences name the
server by host, port, database and role, never by its URL: a URL may carry a
password.
"""

from __future__ import annotations

import psycopg
import redis
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from redis.backoff import NoBackoff
from redis.retry import Retry

from flashsale.config import PostgresConfig, RedisConfig

from ._schema import migrate
from ._sink import PG_DEFAULTS


def _one_line(exc: BaseException) -> str:
    """The last line of a driver's message, which is the one that says what went wrong."""
    lines = [" ".join(line.split()) for line in str(exc).splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__


def probe_redis(config: RedisConfig) -> str:
    """``""`` when Redis at ``config.url`` answers a PING within ``config.timeout``; else why not."""
    client = redis.Redis.from_url(
        config.url,
        socket_timeout=max(config.timeout, 2.0),
        socket_connect_timeout=max(config.timeout, 2.0),
        retry=Retry(NoBackoff(), 0),
    )
    where = client.get_connection_kwargs()
    name = where.get("path") or f"{where.get('host', '?')}:{where.get('port', '?')}"
    try:
        client.ping()
    except (redis.RedisError, OSError) as exc:
        return f"cannot reach Redis at {name} (redis.url): {_one_line(exc)}"
    finally:
        client.close()
    return ""


def probe_postgres(config: PostgresConfig) -> str:
    """``""`` when PostgreSQL at ``config.url`` accepts the role and its schema is current; else why not.

    The schema is created or migrated here, as the order sink would a moment
    later: a role that may connect but not create tables is caught now too.
    """
    params = conninfo_to_dict(config.url)
    name = (
        f"{params.get('host', 'localhost')}:{params.get('port', 5432)}"
        f" database {params.get('dbname', '?')!r} as role {params.get('user', '?')!r}"
    )
    for key, value in PG_DEFAULTS.items():
        params.setdefault(key, value)
    try:
        with psycopg.connect(make_conninfo("", **params), autocommit=True) as conn:
            migrate(conn)
    except psycopg.Error as exc:
        return f"cannot use PostgreSQL at {name} (postgres.url): {_one_line(exc)}"
    return ""
