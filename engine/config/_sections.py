"""The small tables of a config file: ``[[sku]]``, ``[store]``, ``[limits]``, ``[server]``, ``[redis]``, ``[postgres]``.

Each is a frozen dataclass whose defaults are the keys' defaults; the reader
(``_reader.py``) builds them from a file, and :class:`Config` holds them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from flashsale.actors import BucketSpec

SKU_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")  # whole string: use fullmatch ($ allows a final newline)


@dataclass(frozen=True, slots=True)
class SkuConfig:
    """One SKU on sale."""

    id: str
    stock: int
    per_user_limit: int | None = None
    payment_timeout: float = 900.0
    starts_at: int | None = None
    ends_at: int | None = None
    name: str = ""


@dataclass(frozen=True, slots=True)
class StoreConfig:
    """Where orders go and when a purchase counts as confirmed."""

    path: str = "flashsale.db"
    durability: Literal["commit", "async"] = "commit"
    synchronous: Literal["normal", "full"] = "normal"


@dataclass(frozen=True, slots=True)
class LimitsConfig:
    """Rate limits (one bucket per scope, each optional) and the bounds that keep memory finite.

    ``max_tracked_users`` bounds each keyed scope's table (per SKU, per user,
    per IP).
    """

    global_bucket: BucketSpec | None = None
    per_sku: BucketSpec | None = None
    per_user: BucketSpec | None = None
    per_ip: BucketSpec | None = None
    max_tracked_users: int = 200_000
    max_qty: int = 100
    max_inflight: int = 10_000
    max_writer_backlog: int = 50_000
    idempotency_ttl: float = 86_400.0
    max_idempotency_keys: int = 200_000
    max_idempotency_keys_per_buyer: int = 16
    max_idempotency_keys_per_ip: int = 1_000


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """The HTTP transport."""

    host: str = "127.0.0.1"
    port: int = 8080
    max_body_bytes: int = 4096
    log_level: str = "info"
    trusted_proxies: tuple[str, ...] = ()
    """Addresses or networks whose ``X-Forwarded-For`` is believed; validated at load."""
    access_log: bool = False
    """One log line per request (method, path, status, latency, request id); off: no cost at all."""


@dataclass(frozen=True, slots=True)
class RedisConfig:
    """The shared ledger of ``backend = "redis"``: stock, users, idempotency, orders stream, rate limits."""

    url: str = "redis://127.0.0.1:6379/0"
    prefix: str = "fs"
    timeout: float = 0.5
    breaker_failures: int = 3
    breaker_reset: float = 2.0


@dataclass(frozen=True, slots=True)
class PostgresConfig:
    """Where the orders stream lands in ``backend = "redis"``."""

    url: str = "postgresql://127.0.0.1:5432/flashsale"
    batch: int = 500
    claim_idle: float = 30.0
    sale: str = ""
    """The sale's key in PostgreSQL (rows are keyed by it and the order id); empty: ``redis.prefix``."""
