"""The Redis client every part of the redis backend uses: the config's deadline, and never a retry.

A call that timed out may have run: sending it again could take units twice
or admit a buyer twice, so redis-py's own retries are off and a failure is
left to the caller (a breaker, the sink's back-off, a 503).
"""

from __future__ import annotations

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from flashsale.config import RedisConfig


def connect(config: RedisConfig, *, timeout: float | None = None) -> redis.Redis:
    """A client on ``config.url`` answering ``str``; each call's deadline ``timeout`` (default ``config.timeout``)."""
    return redis.Redis.from_url(
        config.url,
        socket_timeout=config.timeout if timeout is None else timeout,
        socket_connect_timeout=config.timeout,
        retry=Retry(NoBackoff(), 0),
        decode_responses=True,
    )
