"""The reader of a config mapping: every key checked, every mistake of a file reported in one run.

The reader notes each mistake and goes on with the key's default, and raises
one :class:`ConfigError` listing them all at the end. The modules of the
sections (``_admin.py``, ``_auth.py``, ``_feed.py``, ``_room.py``) read their
tables with its checks.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, TypeVar

from flashsale._clock import from_datetime, no_offset
from flashsale._errors import ConfigError
from flashsale.actors import BucketSpec

from ._admin import AdminConfig, read_admin
from ._auth import AuthConfig, read_auth
from ._config import Config
from ._connections import KEYS as CONNECTION_KEYS
from ._connections import ConnectionsConfig, read_connections
from ._feed import FeedConfig, read_feed
from ._room import read_room
from ._sections import (
    SKU_ID,
    LimitsConfig,
    PostgresConfig,
    RedisConfig,
    ServerConfig,
    SkuConfig,
    StoreConfig,
)

T = TypeVar("T")


class _Reader:
    """Reads one mapping, naming ``source`` and the key in every error."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.errors: list[str] = []
        self.collect = False  # True while reading a whole config (:meth:`config`); else the first mistake raises

    def fail(self, where: str, msg: str) -> ConfigError:
        return ConfigError(f"{self.source}: {where}: {msg}")

    def note(self, where: str, msg: str) -> None:
        """Record a mistake and go on (:meth:`config` reports them all at the end); outside it, raise it."""
        if not self.collect:
            raise self.fail(where, msg)
        self.errors.append(f"{where}: {msg}")

    def section(self, read: Callable[[], T], default: T) -> T:
        """``read()``, or ``default`` after noting the mistake that stopped it (the rest of the file is still read)."""
        try:
            return read()
        except ConfigError as exc:
            self.errors.append(str(exc).removeprefix(f"{self.source}: "))
            return default

    def raise_errors(self) -> None:
        """One :class:`ConfigError` naming every mistake noted, if there was any."""
        if len(self.errors) == 1:
            raise ConfigError(f"{self.source}: {self.errors[0]}")
        if self.errors:
            listed = "".join(f"\n  {e}" for e in self.errors)
            raise ConfigError(f"{self.source}: {len(self.errors)} errors:{listed}")

    def table(self, data: Any, where: str, allowed: set[str]) -> Mapping[str, Any]:
        if not isinstance(data, Mapping):
            raise self.fail(where, "must be a table")
        for key in sorted(set(data) - allowed):
            self.note(where, f"unknown key {key!r} (known: {', '.join(sorted(allowed))})")
        return data

    def value(self, data: Mapping[str, Any], key: str, kind: type[T] | tuple[type, ...], where: str, default: T) -> T:
        if key not in data:
            return default
        v = data[key]
        if (isinstance(v, bool) and kind is not bool) or not isinstance(v, kind):
            names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
            self.note(f"{where}.{key}", f"must be {names}, got {v!r}")
            return default
        return v  # type: ignore[return-value]

    def positive(self, data: Mapping[str, Any], key: str, where: str, default: int) -> int:
        noted = len(self.errors)
        v = self.value(data, key, int, where, default)
        if v < 1 and len(self.errors) == noted:
            raise self.fail(f"{where}.{key}", f"must be >= 1, got {v}")
        return v

    def seconds(self, data: Mapping[str, Any], key: str, where: str, default: float) -> float:
        v = float(self.value(data, key, (int, float), where, default))
        if not v > 0:
            raise self.fail(f"{where}.{key}", f"must be > 0 seconds, got {v}")
        return v

    def instant(self, data: Mapping[str, Any], key: str, where: str) -> int | None:
        if key not in data:
            return None
        v = data[key]
        if isinstance(v, str):
            try:
                v = datetime.fromisoformat(v.replace("Z", "+00:00"))
            except ValueError:
                raise self.fail(f"{where}.{key}", f"not an ISO 8601 time: {v!r}") from None
        if not isinstance(v, datetime):
            raise self.fail(f"{where}.{key}", f"must be a date-time like 2026-11-11T00:00:00Z, got {v!r}")
        if v.tzinfo is None:  # a local time would be read as UTC: hours early or late, silently
            raise self.fail(f"{where}.{key}", no_offset(v))
        return from_datetime(v)

    def bucket(self, data: Mapping[str, Any], key: str) -> BucketSpec | None:
        if key not in data:
            return None
        where = f"limits.{key}"
        t = self.table(data[key], where, {"rate", "burst", "algorithm", "queue"})
        if "rate" not in t:
            raise self.fail(where, "needs 'rate' (requests per second)")
        rate = float(self.value(t, "rate", (int, float), where, 1.0))  # a wrong type is noted once, not twice
        if not rate > 0:
            raise self.fail(f"{where}.rate", f"must be > 0, got {rate}")
        algorithm = self.value(t, "algorithm", str, where, "token")
        if algorithm not in ("token", "leaky"):
            raise self.fail(f"{where}.algorithm", f"must be 'token' or 'leaky', got {algorithm!r}")
        queue = self.value(t, "queue", int, where, 0)
        if queue < 0 or (queue and algorithm != "leaky"):
            raise self.fail(f"{where}.queue", f"must be >= 0, and only a leaky bucket can queue; got {queue}")
        burst = self.positive(t, "burst", where, max(1, round(rate)))
        try:
            return BucketSpec(rate=rate, burst=burst, algorithm=algorithm, queue=queue)  # type: ignore[arg-type]
        except ValueError as exc:  # what only the bucket knows, such as a leaky bucket's highest rate
            raise self.fail(where, str(exc)) from None

    def networks(self, data: Mapping[str, Any], key: str, where: str) -> tuple[str, ...]:
        v = data.get(key, [])
        if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
            raise self.fail(f"{where}.{key}", f"must be a list of addresses or networks as strings, got {v!r}")
        for x in v:
            try:
                ipaddress.ip_network(x)
            except ValueError as exc:
                raise self.fail(f"{where}.{key}", f"{x!r} is not an IP address or network: {exc}") from None
        return tuple(v)

    def sku(self, data: Any, i: int) -> SkuConfig:
        where = f"sku[{i}]"
        t = self.table(
            data, where, {"id", "stock", "per_user_limit", "payment_timeout", "starts_at", "ends_at", "name"}
        )
        if "id" not in t or "stock" not in t:
            raise self.fail(where, "needs 'id' and 'stock'")
        noted = len(self.errors)
        sku_id = self.value(t, "id", str, where, "")
        if len(self.errors) == noted and not SKU_ID.fullmatch(sku_id):
            raise self.fail(
                f"{where}.id", f"{sku_id!r} must be 1-64 of A-Z a-z 0-9 . _ - (starting with a letter or digit)"
            )
        stock = self.value(t, "stock", int, where, 0)
        if stock < 0:
            raise self.fail(f"{where}.stock", f"must be >= 0, got {stock}")
        limit = self.positive(t, "per_user_limit", where, 0) if "per_user_limit" in t else None
        starts, ends = self.instant(t, "starts_at", where), self.instant(t, "ends_at", where)
        if starts is not None and ends is not None and ends <= starts:
            raise self.fail(f"{where}.ends_at", "must be after starts_at")
        return SkuConfig(
            id=sku_id,
            stock=stock,
            per_user_limit=limit,
            payment_timeout=self.seconds(t, "payment_timeout", where, 900.0),
            starts_at=starts,
            ends_at=ends,
            name=self.value(t, "name", str, where, ""),
        )

    def config(self, data: Mapping[str, Any]) -> Config:
        """The whole config; every mistake in it is in the one :class:`ConfigError` raised at the end."""
        self.collect = True
        top = self.table(
            data,
            "top level",
            {
                *("sku", "store", "limits", "server", "engine", "backend", "redis", "postgres", "connections"),
                *("feed", "admin", "auth", "waiting_room"),
            },
        )
        skus = self.skus(top.get("sku"))
        store = self.section(lambda: self.store(top.get("store", {})), StoreConfig())
        limits = self.section(lambda: self.limits(top.get("limits", {})), LimitsConfig())
        server = self.section(lambda: self.server(top.get("server", {})), ServerConfig())
        inventory_actors, tick = self.section(lambda: self.engine(top.get("engine", {})), (4, 1.0))
        backend = top.get("backend", "memory")
        if backend not in ("memory", "redis"):
            self.note("backend", f"must be 'memory' or 'redis', got {backend!r}")
            backend = "memory"
        if backend == "redis":
            self.shared_scopes(limits)
        redis = self.section(lambda: self.redis(top.get("redis", {})), RedisConfig())
        postgres = self.section(lambda: self.postgres(top.get("postgres", {})), PostgresConfig())
        connections = self.section(
            lambda: read_connections(
                self.table(top.get("connections", {}), "connections", set(CONNECTION_KEYS)), self.seconds, self.positive
            ),
            ConnectionsConfig(),
        )
        feed = self.section(lambda: read_feed(self, top.get("feed", {})), FeedConfig())
        admin = self.section(lambda: read_admin(self, top.get("admin", {})), AdminConfig())
        auth = self.section(lambda: read_auth(self, top.get("auth", {}), server.trusted_proxies), AuthConfig())
        room = (
            self.section(lambda: read_room(self, top["waiting_room"], [s.starts_at for s in skus]), None)
            if "waiting_room" in top
            else None
        )
        self.raise_errors()
        return Config(
            skus=skus,
            store=store,
            limits=limits,
            server=server,
            inventory_actors=inventory_actors,
            tick_interval=tick,
            backend=backend,  # checked just above: a Literal member
            redis=redis,
            postgres=postgres,
            connections=connections,
            feed=feed,
            admin=admin,
            auth=auth,
            waiting_room=room,
        )

    def skus(self, raw_skus: Any) -> tuple[SkuConfig, ...]:
        if not isinstance(raw_skus, list) or not raw_skus:
            self.note("sku", "needs at least one [[sku]] table")
            return ()
        read = [self.section(lambda s=s, i=i: self.sku(s, i), None) for i, s in enumerate(raw_skus)]  # type: ignore[misc]
        skus = tuple(s for s in read if s is not None)
        seen: set[str] = set()
        for s in skus:
            if s.id in seen:
                self.note("sku", f"id {s.id!r} appears twice")
            seen.add(s.id)
        return skus

    def store(self, data: Any) -> StoreConfig:
        st = self.table(data, "store", {"path", "durability", "synchronous"})
        durability = self.value(st, "durability", str, "store", "commit")
        if durability not in ("commit", "async"):
            self.note("store.durability", f"must be 'commit' or 'async', got {durability!r}")
            durability = "commit"
        synchronous = self.value(st, "synchronous", str, "store", "normal")
        if synchronous not in ("normal", "full"):
            self.note("store.synchronous", f"must be 'normal' or 'full', got {synchronous!r}")
            synchronous = "normal"
        return StoreConfig(
            path=self.value(st, "path", str, "store", "flashsale.db"),
            durability=durability,  # type: ignore[arg-type]  # checked just above
            synchronous=synchronous,  # type: ignore[arg-type]
        )

    def limits(self, data: Any) -> LimitsConfig:
        lt = self.table(
            data,
            "limits",
            {
                "global",
                "per_sku",
                "per_user",
                "per_ip",
                "max_tracked_users",
                "max_qty",
                "max_inflight",
                "max_writer_backlog",
                "idempotency_ttl",
                "max_idempotency_keys",
                "max_idempotency_keys_per_buyer",
                "max_idempotency_keys_per_ip",
            },
        )
        d = LimitsConfig()

        def bucket(key: str) -> BucketSpec | None:
            return self.section(lambda: self.bucket(lt, key), None)

        def positive(key: str, default: int) -> int:
            return self.section(lambda: self.positive(lt, key, "limits", default), default)

        return LimitsConfig(
            global_bucket=bucket("global"),
            per_sku=bucket("per_sku"),
            per_user=bucket("per_user"),
            per_ip=bucket("per_ip"),
            max_tracked_users=positive("max_tracked_users", d.max_tracked_users),
            max_qty=positive("max_qty", d.max_qty),
            max_inflight=positive("max_inflight", d.max_inflight),
            max_writer_backlog=positive("max_writer_backlog", d.max_writer_backlog),
            idempotency_ttl=self.section(
                lambda: self.seconds(lt, "idempotency_ttl", "limits", d.idempotency_ttl), d.idempotency_ttl
            ),
            max_idempotency_keys=positive("max_idempotency_keys", d.max_idempotency_keys),
            max_idempotency_keys_per_buyer=positive("max_idempotency_keys_per_buyer", d.max_idempotency_keys_per_buyer),
            max_idempotency_keys_per_ip=positive("max_idempotency_keys_per_ip", d.max_idempotency_keys_per_ip),
        )

    def server(self, data: Any) -> ServerConfig:
        sv = self.table(
            data, "server", {"host", "port", "max_body_bytes", "log_level", "trusted_proxies", "access_log"}
        )
        port = self.value(sv, "port", int, "server", 8080)
        if not 0 <= port <= 65535:
            self.note("server.port", f"must be 0-65535, got {port}")
            port = 8080
        level = self.value(sv, "log_level", str, "server", "info").lower()
        if level not in ("debug", "info", "warning", "error"):
            self.note("server.log_level", f"must be debug, info, warning or error, got {level!r}")
            level = "info"
        return ServerConfig(
            host=self.value(sv, "host", str, "server", "127.0.0.1"),
            port=port,
            max_body_bytes=self.section(lambda: self.positive(sv, "max_body_bytes", "server", 4096), 4096),
            log_level=level,
            trusted_proxies=self.section(lambda: self.networks(sv, "trusted_proxies", "server"), ()),
            access_log=self.value(sv, "access_log", bool, "server", False),
        )

    def engine(self, data: Any) -> tuple[int, float]:
        """``[engine]``: (inventory_actors, tick_interval)."""
        en = self.table(data, "engine", {"inventory_actors", "tick_interval"})
        tick = float(self.value(en, "tick_interval", (int, float), "engine", 1.0))
        if tick < 0:
            self.note("engine.tick_interval", f"must be >= 0 seconds (0: no timer), got {tick}")
            tick = 1.0
        return self.section(lambda: self.positive(en, "inventory_actors", "engine", 4), 4), tick

    def shared_scopes(self, limits: LimitsConfig) -> None:
        """With ``backend = "redis"`` the per-user and per-IP buckets live in Redis and cannot queue."""
        for key, spec in (("per_user", limits.per_user), ("per_ip", limits.per_ip)):
            if spec is not None and spec.queue:
                self.note(
                    f"limits.{key}.queue",
                    "with backend = 'redis' this scope is shared by every process through Redis and cannot"
                    " queue; queue mode is for the global and per_sku scopes, which each process keeps",
                )

    def redis(self, data: Any) -> RedisConfig:
        t = self.table(data, "redis", {"url", "prefix", "timeout", "breaker_failures", "breaker_reset"})
        d = RedisConfig()
        url = self.value(t, "url", str, "redis", d.url)
        if not url.startswith(("redis://", "rediss://", "unix://")):
            raise self.fail("redis.url", f"must start with redis://, rediss:// or unix://, got {url!r}")
        prefix = self.value(t, "prefix", str, "redis", d.prefix)
        if not SKU_ID.fullmatch(prefix):
            raise self.fail("redis.prefix", f"{prefix!r} must be 1-64 of A-Z a-z 0-9 . _ -")
        return RedisConfig(
            url=url,
            prefix=prefix,
            timeout=self.seconds(t, "timeout", "redis", d.timeout),
            breaker_failures=self.positive(t, "breaker_failures", "redis", d.breaker_failures),
            breaker_reset=self.seconds(t, "breaker_reset", "redis", d.breaker_reset),
        )

    def postgres(self, data: Any) -> PostgresConfig:
        t = self.table(data, "postgres", {"url", "batch", "claim_idle", "sale"})
        d = PostgresConfig()
        url = self.value(t, "url", str, "postgres", d.url)
        if not url.startswith(("postgresql://", "postgres://")):
            raise self.fail("postgres.url", f"must start with postgresql:// or postgres://, got {url!r}")
        return PostgresConfig(
            url=url,
            batch=self.positive(t, "batch", "postgres", d.batch),
            claim_idle=self.seconds(t, "claim_idle", "postgres", d.claim_idle),
            sale=self._sale(t),
        )

    def _sale(self, t: Mapping[str, Any]) -> str:
        sale = self.value(t, "sale", str, "postgres", "")
        if sale and not SKU_ID.fullmatch(sale):
            raise self.fail("postgres.sale", f"{sale!r} must be 1-64 of A-Z a-z 0-9 . _ -")
        return sale
